"""scripts/fold_study.py: fold lists, variant parsing and the paired summary, on hand-made inputs.
(The end-to-end check that its rows equal `dvc exp run` is in tests/test_pipeline.py.)"""
import json

import numpy as np
import pytest

from scripts import fold_study
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.runtime.errors import DataError, ParamsError


def _dataset(n_seen: int) -> FeatureSet:
    labels = np.repeat(np.arange(n_seen + 1), 2)
    names = np.array([f"c{i}" for i in range(n_seen + 1)])
    seen_rows = np.flatnonzero(labels < n_seen)
    return FeatureSet(x=np.zeros((len(labels), 2), np.float32), labels=labels,
                      att=np.eye(n_seen + 1, dtype=np.float32), class_names=names, trainval=seen_rows,
                      test_seen=seen_rows, test_unseen=np.flatnonzero(labels == n_seen))


def test_fold_lists():
    fs = _dataset(7)
    folds = fold_study.fold_list(["subsets:3"], fs)
    assert len(folds) == 35 and folds[0] == "c0,c1,c2" and len(set(folds)) == 35
    assert fold_study.fold_list(["own", "c1,c4"], fs) == ["", "c1,c4"]
    with pytest.raises(SystemExit, match="K must lie in"):
        fold_study.fold_list(["subsets:7"], fs)
    with pytest.raises(SystemExit, match="more than 100"):
        fold_study.fold_list(["subsets:3"], _dataset(12))  # 220 folds


def test_variants_are_validated_params():
    variants = fold_study.build_variants("params.yaml", ["gen.epochs=3"],
                                         [["dec", "tta.unseen_labels=classifier", "tta.rounds=2"]])
    (base_name, _, base), (name, changes, p) = variants
    assert base_name == "base" and name == "dec" and changes == ["tta.unseen_labels=classifier", "tta.rounds=2"]
    assert base["gen"]["epochs"] == 3 and p["gen"]["epochs"] == 3
    assert p["tta"]["rounds"] == 2 and base["tta"]["rounds"] != 2
    with pytest.raises(ParamsError, match="tta.rounds: expected a value"):
        fold_study.build_variants("params.yaml", [], [["bad", "tta.rounds=0"]])
    with pytest.raises(ParamsError, match="expected KEY=VALUE"):
        fold_study.build_variants("params.yaml", ["tta.rounds"], [])


def test_training_signature_separates_only_training_params():
    keys = ["gen", "train.seed"]
    p = {"gen": {"epochs": 20}, "train": {"seed": 0}, "tta": {"rounds": 1}}
    q = {"gen": {"epochs": 20}, "train": {"seed": 0}, "tta": {"rounds": 2}}
    r = {"gen": {"epochs": 10}, "train": {"seed": 0}, "tta": {"rounds": 1}}
    assert fold_study.training_signature(p, keys) == fold_study.training_signature(q, keys)
    assert fold_study.training_signature(p, keys) != fold_study.training_signature(r, keys)


def test_summary_pairs_each_variant_with_the_base():
    rows = [{"fold": f, "seed": 0, "variant": v, "T1": t, "U": 0.5, "S": 0.5, "H": h}
            for f, v, t, h in [("a", "base", 0.4, 0.5), ("a", "x", 0.6, 0.4),
                               ("b", "base", 0.5, 0.5), ("b", "x", 0.5, 0.7)]]
    table = fold_study.summarise(rows, ["base", "x"])
    # x: mean T1 55.0, mean H 55.0; T1 +10.0, higher on fold a only (a tie is no win); H +5.0, won on b
    assert "| x | 55.0 | 50.0 | 50.0 | 55.0 | 55.0 | +10.0 | +5.0 | 1 | 1 |" in table
    assert table.startswith("2 fold x seed pairs")


def test_unknown_fold_class_fails_before_any_training():
    with pytest.raises(DataError, match="unknown class 'c9'"):
        fold_study.fold_list(["c1,c9"], _dataset(7))
    with pytest.raises(DataError, match="'c7' is an unseen class"):
        fold_study.fold_list(["c7"], _dataset(7))


@pytest.mark.parametrize("argv, message", [(["--seeds", "0,x"], "--seeds '0,x'"), (["--jobs", "0"], "--jobs 0")])
def test_bad_seeds_or_jobs_exit_before_any_work(argv, message, tmp_path):
    with pytest.raises(SystemExit, match=message):
        fold_study.main(argv + ["--features", str(tmp_path / "none.npz"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_fold_count_is_checked_before_any_fold_is_built(monkeypatch):
    """SUN has 645 seen classes: subsets:3 would be 44.5 M folds. The guard counts with math.comb and
    refuses before itertools builds a single combination."""
    def no_combinations(*_):
        raise AssertionError("combinations were built before the count was checked")
    monkeypatch.setattr(fold_study.itertools, "combinations", no_combinations)
    with pytest.raises(SystemExit, match="gives 44514890 folds"):
        fold_study.fold_list(["subsets:3"], _dataset(645))


def test_an_interrupted_study_resumes_only_from_rows_of_the_same_variants(tmp_path):
    variants = fold_study.build_variants("params.yaml", [], [["r2", "tta.rounds=2"]])
    digests = {name: fold_study.params_digest(p) for name, _, p in variants}
    runs = tmp_path / "runs.jsonl"
    assert fold_study.finished_rows(runs, variants) == []
    rows = [{"fold": "a,b,c", "seed": 0, "variant": v, "params": digests[v], "T1": 0.5, "H": 0.5} for v in digests]
    runs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fold_study.finished_rows(runs, variants) == rows
    other = fold_study.build_variants("params.yaml", [], [["r2", "tta.rounds=3"]])  # same name, other params
    with pytest.raises(SystemExit, match="variant 'r2' with other params"):
        fold_study.finished_rows(runs, other)


def test_fold_workers_are_spawned_never_forked(tmp_path, monkeypatch):
    """A forked worker inherits the parent's CUDA state; the pool must use the spawn context."""
    contexts = []

    class Stop(Exception):
        pass

    def pool(jobs, mp_context=None):
        contexts.append(mp_context.get_start_method() if mp_context else "default (fork on Linux)")
        raise Stop
    monkeypatch.setattr(fold_study, "ProcessPoolExecutor", pool)
    features = tmp_path / "features.npz"
    _dataset(4).save(features)
    with pytest.raises(Stop):
        fold_study.main(["--folds", "c0,c1", "--features", str(features), "--out", str(tmp_path / "out")])
    assert contexts == ["spawn"]
