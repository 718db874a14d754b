"""The benchmark-difficulty fixture (benchmarks/fixture.py): labels that honour the real split files,
determinism, the CUB default's difficulty in the real res101 range, and a small version on which the
generator must learn its seen classes (it fails when G stops reading the attributes). The tests of the
real split files skip where ../shared/data/xlsa17 is absent (a clean clone); the learning check runs on
CUB-format split files of the fixture's own (`synthetic_splits`), so it runs everywhere."""
import numpy as np
import pytest
import torch
from scipy.io import loadmat

from benchmarks.fixture import (DIFFICULTY, SHARED_XLSA17, class_labels, difficulty_report, synthetic_splits,
                                write_fixture)
from tests.tiny import tiny_params

real_splits = pytest.mark.skipif(not (SHARED_XLSA17 / "CUB" / "att_splits.mat").exists(),
                                 reason="../shared/data/xlsa17 is not present")


def _split(name):
    return {k: v for k, v in loadmat(str(SHARED_XLSA17 / name / "att_splits.mat")).items() if not k.startswith("__")}


@real_splits
@pytest.mark.parametrize("name", ["CUB", "AWA2", "SUN"])
def test_labels_honour_the_real_index_lists(name):
    split = _split(name)
    labels, seen, unseen = class_labels(split, SHARED_XLSA17 / name)
    loc = lambda k: split[k].ravel() - 1  # noqa: E731
    assert set(np.unique(labels[loc("test_unseen_loc")])) == set(unseen.tolist())
    assert set(np.unique(labels[np.concatenate([loc("trainval_loc"), loc("test_seen_loc")])])) == set(seen.tolist())
    assert np.bincount(labels[loc("test_seen_loc")], minlength=labels.max() + 1)[seen].min() > 0
    if "val_loc" in split:  # the class-disjoint validation split of AWA2 and SUN stays class-disjoint
        assert set(np.unique(labels[loc("val_loc")])).isdisjoint(np.unique(labels[loc("train_loc")]))


@real_splits
def test_same_seed_same_bytes_other_seed_other_features(tmp_path):
    a = write_fixture(tmp_path / "a", "cub", small=True)
    b = write_fixture(tmp_path / "b", "cub", small=True)
    assert (a / "res101.mat").read_bytes() == (b / "res101.mat").read_bytes()
    assert (a / "att_splits.mat").read_bytes() == (b / "att_splits.mat").read_bytes()
    from dataclasses import replace
    c = write_fixture(tmp_path / "c", "cub", replace(DIFFICULTY, seed=1), small=True)
    assert (a / "res101.mat").read_bytes() != (c / "res101.mat").read_bytes()


@real_splits
def test_small_fixture_is_a_valid_xlsa17_folder(tmp_path):
    from zerodiffpp.xlsa17 import load_xlsa17
    fs = load_xlsa17(write_fixture(tmp_path / "s", "cub", small=True), "CUB-small")
    assert (len(fs.seen_classes), len(fs.unseen_classes), fs.x.shape[1]) == (30, 10, 512)
    assert len(fs.val_classes) == 10 and (fs.x >= 0).all()  # post-ReLU, as ResNet features


def test_synthetic_splits_make_a_valid_small_fixture_without_the_real_files(tmp_path):
    """What the learning check below runs on: CUB-format split files of our own, same bytes every time."""
    from zerodiffpp.xlsa17 import load_xlsa17
    a = write_fixture(tmp_path / "a", "cub", small=True, source=synthetic_splits(tmp_path / "sa"))
    b = write_fixture(tmp_path / "b", "cub", small=True, source=synthetic_splits(tmp_path / "sb"))
    assert (a / "res101.mat").read_bytes() == (b / "res101.mat").read_bytes()
    assert (a / "att_splits.mat").read_bytes() == (b / "att_splits.mat").read_bytes()
    fs = load_xlsa17(a, "CUB-small")
    assert (len(fs.seen_classes), len(fs.unseen_classes), fs.x.shape[1], len(fs.val_classes)) == (30, 10, 512, 10)
    assert set(fs.val_classes) <= set(fs.seen_classes) and (fs.x >= 0).all()
    assert len(fs.trainval) == 30 * 48 and len(fs.test_seen) == 30 * 12 and len(fs.test_unseen) == 10 * 60


@real_splits
def test_cub_default_sits_in_the_real_res101_range(tmp_path):
    """ESZSL 0.35-0.55 and a linear seen classifier 0.6-0.8, as ResNet-101 features of CUB."""
    r = difficulty_report(write_fixture(tmp_path / "cub", "cub"), "CUB")
    assert 0.35 <= r["eszsl_t1"] <= 0.55, r
    assert 0.6 <= r["linear_seen_acc"] <= 0.8, r
    assert (r["n_seen"], r["n_unseen"]) == (150, 50)


def _train_and_check(prep, p, drg_ckpt, blind: bool):
    from zerodiffpp.pipeline import train
    from zerodiffpp import networks
    if blind:  # G that ignores its attribute input: what a generator that stopped learning its classes is
        real_forward = networks.FeatureGenerator.forward
        networks.FeatureGenerator.forward = lambda self, z, a, r, x_next, t: real_forward(
            self, z, torch.zeros_like(a), r, x_next, t)
    try:
        torch.manual_seed(0)
        _, rows = train.run(p, prep, torch.device("cpu"), drg_ckpt)
    finally:
        if blind:
            networks.FeatureGenerator.forward = real_forward
    return rows[-1]["gen_seen_acc"]


def test_the_generator_learns_its_seen_classes_on_the_small_fixture(tmp_path):
    """A probe fitted on generated seen features must classify real seen features far above chance;
    the same run with G blind to the attributes stays near chance (so the check can fail)."""
    from zerodiffpp.drg import train_drg
    from zerodiffpp.sc import sc_representations, train_sc_encoder
    from zerodiffpp.splits import prepare_split
    from zerodiffpp.xlsa17 import load_xlsa17
    fs = load_xlsa17(write_fixture(tmp_path / "s", "cub", small=True, source=synthetic_splits(tmp_path / "splits")),
                     "CUB-small")
    prep, _ = prepare_split(fs, 1.0, 0)
    # the generators learn their classes with the number of updates (docs/fixture.md): a higher rate and
    # fewer critic steps get there within a test's budget (16 epochs of 22 iterations, seconds)
    p = tiny_params(method="zerodiff", gen={"epochs": 16, "batch_size": 64, "hidden": 128, "critic_hidden": 128,
                                            "dec_hidden": 128, "noise_dim": 8, "cond_dim": 8, "critic_iter": 2,
                                            "lr": 0.002, "encoder_lr": 0.002},
                    diagnostics={"every": 16, "per_class": 40, "ridge": 1000.0})
    torch.manual_seed(0)
    enc, _ = train_sc_encoder(prep.x_train, prep.y_train, p["sc"], "cpu")
    _, r = sc_representations(enc, prep, "cpu")
    prep.r_train, prep.r_test_seen, prep.r_test_unseen = r["train"], r["test_seen"], r["test_unseen"]
    drg, cfg, _ = train_drg(prep.r_train, prep.y_train, prep.att, p["drg"], p["diffusion"], "cpu")
    drg_ckpt = {"config": cfg, "state": drg.state_dict()}
    chance = 1 / len(prep.seen)
    learned = _train_and_check(prep, p, drg_ckpt, blind=False)
    blind = _train_and_check(prep, p, drg_ckpt, blind=True)
    assert learned > 3 * chance, (learned, blind)  # 0.160 here (4.8x); 0.036 blind
    assert blind < 2 * chance, (learned, blind)
