"""Tiny settings shared by the tests: small widths, few epochs, a toy xlsa17 dataset."""
import copy

import yaml

from tests.conftest import ROOT, make_xlsa17

TINY_OVERRIDES = {
    "sc": {"epochs": 2, "batch_size": 64, "hidden": 32, "rep_dim": 8, "proj_dim": 8},
    "drg": {"epochs": 1, "batch_size": 32, "hidden": 32, "critic_hidden": 32, "critic_iter": 2, "noise_dim": 4},
    "gen": {"epochs": 2, "batch_size": 32, "hidden": 32, "critic_hidden": 32, "dec_hidden": 32, "noise_dim": 4,
            "cond_dim": 8, "critic_iter": 2},
    "fclswgan": {"epochs": 2, "batch_size": 32, "hidden": 32, "critic_hidden": 32, "noise_dim": 4,
                 "critic_iter": 2, "cls_epochs": 2},
    "diffusion": {"time_dim": 8},
    "synth": {"unseen_per_class": 20},
    "tta": {"epochs": 2, "batch_size": 32},
    "diffgen": {"max_per_class": 20},
    "classifier": {"epochs": 3, "batch_size": 64},
    "report": {"oracle_folds": 2, "probe_epochs": 3, "seen_per_class": 20},
}


def tiny_params(**sections) -> dict:
    p = yaml.safe_load(open(ROOT / "params.yaml"))
    for sec, vals in TINY_OVERRIDES.items():
        p[sec].update(vals)
    for sec, vals in sections.items():
        if isinstance(vals, dict):
            p[sec].update(vals)
        else:
            p[sec] = vals
    return copy.deepcopy(p)


def tiny_prepared(tmp_path, seen_ratio=1.0):
    """A prepared toy split with real SC representations from a tiny encoder."""
    from zerodiffpp.generators.sc import sc_representations, train_sc_encoder
    from zerodiffpp.data.splits import prepare_split
    from zerodiffpp.data.xlsa17 import load_xlsa17
    p = tiny_params()
    fs = load_xlsa17(make_xlsa17(tmp_path / "TOY"), "TOY")
    prep, _ = prepare_split(fs, seen_ratio, 0)
    enc, _ = train_sc_encoder(prep.x_train, prep.y_train, p["sc"], "cpu")
    _, r = sc_representations(enc, prep, "cpu")
    prep.r_train, prep.r_test_seen, prep.r_test_unseen = r["train"], r["test_seen"], r["test_unseen"]
    return prep, p
