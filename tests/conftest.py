"""Shared fixtures: tiny xlsa17-format folders written by the tests themselves."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

ROOT = Path(__file__).resolve().parents[1]
SHARED_XLSA17 = ROOT.parent / "shared" / "data" / "xlsa17"  # sent_splits.mat (not shipped)
XLSA17_SPLITS = ROOT / "zerodiffpp" / "assets" / "xlsa17"  # the real split files, shipped


def make_xlsa17(folder: Path, n_seen=4, n_unseen=2, att_dim=6, x_dim=32, per_class=24, seed=0,
                one_based=True, extra_res=None, extra_split=None, drop_keys=(), n_val=0, learnable=False):
    """Write res101.mat + att_splits.mat in the xlsa17 conventions (features D x N, 1-based labels and
    *_loc, att A x C). Features are class prototypes plus noise, so classes are learnable.

    `learnable`: the toy with a known answer. Attributes are random binary vectors (each attribute
    on for about half the classes, L2-normalised) and features a fixed random linear map of them plus
    a little noise, so a linear attribute model fitted on the seen classes recognises the unseen
    ones (ESZSL's T1 is 1.0 at 40 / 10 classes, 24 attributes; tests/test_eszsl.py)."""
    rng = np.random.default_rng(seed)
    c = n_seen + n_unseen
    labels = np.repeat(np.arange(c), per_class)
    if learnable:
        att = (rng.random((c, att_dim)) < 0.5) + 0.05
        att = att / np.linalg.norm(att, axis=1, keepdims=True)
        x = att[labels] @ (2 * rng.normal(size=(att_dim, x_dim))) + 0.1 * rng.normal(size=(len(labels), x_dim))
    else:
        att = rng.random((c, att_dim))
        att /= np.linalg.norm(att, axis=1, keepdims=True)
        proj = rng.normal(size=(att_dim, x_dim))
        x = np.maximum(att[labels] @ proj + 0.3 * rng.normal(size=(len(labels), x_dim)), 0)
    trainval, test_seen = [], []
    for k in range(n_seen):
        pos = np.flatnonzero(labels == k)
        test_seen += pos[: per_class // 4].tolist()
        trainval += pos[per_class // 4:].tolist()
    test_unseen = np.flatnonzero(labels >= n_seen).tolist()
    off = 1 if one_based else 0
    res = {"features": x.T.astype(np.float32), "labels": (labels + off).reshape(-1, 1)}
    split = {"att": att.T, "original_att": att.T * 100,
             "trainval_loc": np.array(trainval).reshape(-1, 1) + off,
             "test_seen_loc": np.array(test_seen).reshape(-1, 1) + off,
             "test_unseen_loc": np.array(test_unseen).reshape(-1, 1) + off,
             "allclasses_names": np.array([[f"c{k}"] for k in range(c)], dtype=object)}
    if n_val:  # xlsa17's class-disjoint train_loc / val_loc: the last n_val seen classes are validation
        tv = np.array(trainval)
        is_val = labels[tv] >= n_seen - n_val
        split["train_loc"] = tv[~is_val].reshape(-1, 1) + off
        split["val_loc"] = tv[is_val].reshape(-1, 1) + off
    res.update(extra_res or {})
    split.update(extra_split or {})
    for k in drop_keys:
        res.pop(k, None)
        split.pop(k, None)
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "res101.mat", res)
    savemat(folder / "att_splits.mat", split)
    return folder


@pytest.fixture
def xlsa17_dir(tmp_path):
    return make_xlsa17(tmp_path / "TOY")


@pytest.fixture(autouse=True)
def _test_log(tmp_path, monkeypatch):
    """Studies the tests run on toy test splits log to a file of their own, not results/test-log.jsonl."""
    monkeypatch.setenv("ZERODIFFPP_TEST_LOG", str(tmp_path / "test-log.jsonl"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    # mutmut runs each mutant in a process forked from one that already ran torch: a forked OpenMP pool
    # deadlocks, and the mutant would be reported as a timeout. Under mutmut (it sets MUTANT_UNDER_TEST),
    # one thread, so no pool exists to fork.
    torch.set_num_threads(1 if os.environ.get("MUTANT_UNDER_TEST") else 2)
    if os.environ.get("MUTANT_UNDER_TEST"):
        # tqdm's default lock is a semaphore shared by every forked mutant run: one killed while holding it
        # blocks each later run's progress bar, and those mutants would be reported as timeouts
        import threading

        from tqdm import tqdm
        tqdm.set_lock(threading.RLock())
