"""A learnable toy with a known answer, end to end: every method must recognise unseen classes.

Features are a fixed random linear map of binary class attributes plus a little noise (30 seen and
10 unseen classes; tests/conftest.py `make_xlsa17(learnable=True)`), so the closed-form ESZSL
reference is perfect and a generator that learns p(x | a) on the seen classes transfers. Each
method runs every stage after extract in-process, as `dvc repro` would (scripts/in_process.py), at
widths and epochs just large enough to learn, and must reach ZSL T1 of at least 3x chance. This is
the end-to-end guard: a method wired wrong (a sign, a condition, a stop-gradient) stays at chance."""
import numpy as np
import pytest

from zerodiffpp.pipeline.in_process import run_pipeline
from tests.conftest import make_xlsa17
from tests.tiny import tiny_params
from zerodiffpp.baselines.eszsl import eszsl_t1
from zerodiffpp.data.splits import prepare_split
from zerodiffpp.data.xlsa17 import load_xlsa17

N_SEEN, N_UNSEEN = 30, 10
CHANCE = 1 / N_UNSEEN

# Wide and long enough for the toy to be learned in about half a minute per method (2 CPU cores)
LEARNABLE = {
    "sc": {"epochs": 10, "hidden": 64, "rep_dim": 16, "batch_size": 128},
    "drg": {"epochs": 10, "hidden": 64, "critic_hidden": 64, "noise_dim": 8, "lr": 0.002, "batch_size": 64},
    "gen": {"epochs": 40, "hidden": 64, "critic_hidden": 64, "dec_hidden": 64, "noise_dim": 8, "cond_dim": 8,
            "lr": 0.002, "encoder_lr": 0.002, "dec_lr": 0.002, "batch_size": 64, "critic_iter": 5},
    "fclswgan": {"epochs": 100, "hidden": 64, "critic_hidden": 64, "noise_dim": 8, "lr": 0.002, "batch_size": 64,
                 "critic_iter": 5, "cls_epochs": 25, "cls_weight": 0.1},
    "synth": {"unseen_per_class": 20},
    "classifier": {"epochs": 25, "batch_size": 64, "lr": 0.01},
    "report": {"probe_epochs": 25, "seen_per_class": 20},
    "tta": {"epochs": 5, "batch_size": 64},
    "diffgen": {"max_per_class": 20},
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = make_xlsa17(tmp_path_factory.mktemp("toy") / "TOY", n_seen=N_SEEN, n_unseen=N_UNSEEN, att_dim=24,
                         x_dim=32, per_class=20, learnable=True)
    return load_xlsa17(folder, "TOY")


def test_the_closed_form_reference_solves_the_toy(toy):
    prep, _ = prepare_split(toy, 1.0, 0)
    assert eszsl_t1(prep, 0.1, 0.1) > 0.95


@pytest.mark.parametrize("method", ["zerodiffpp", "zerodiff", "fclswgan"])
def test_every_method_learns_the_toy_end_to_end(toy, method):
    p = tiny_params(**LEARNABLE)
    p["method"] = method
    p["train"]["threads"] = 1
    m = run_pipeline(p, toy)
    assert m["zsl"]["T1"] >= 3 * CHANCE, m["zsl"]
    assert m["gzsl"]["U"] > 2 * CHANCE and m["gzsl"]["S"] > 0.5, m["gzsl"]
    assert m["transductive"] == int(method == "zerodiffpp")
    assert np.isfinite(list(m["spurious"].values())).all()
