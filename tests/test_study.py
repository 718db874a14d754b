"""scripts/study.py, the one study runner: points become jobs that share a generator only where
training agrees, a shared job gives exactly the rows of separate runs, resume by params digest,
folds, presets merged as apply_preset merges them, the table and the paired summary, and the
committed results files keep loading. (That its rows equal `dvc exp run`: tests/test_pipeline.py.)"""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from scripts import study
from tests.conftest import ROOT, make_xlsa17
from tests.tiny import TINY_OVERRIDES
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.runtime.errors import DataError

SETS = {f"{sec}.{k}": v for sec, vals in TINY_OVERRIDES.items() for k, v in vals.items()}


def _dataset(n_seen: int) -> FeatureSet:
    labels = np.repeat(np.arange(n_seen + 1), 2)
    names = np.array([f"c{i}" for i in range(n_seen + 1)])
    seen_rows = np.flatnonzero(labels < n_seen)
    return FeatureSet(x=np.zeros((len(labels), 2), np.float32), labels=labels,
                      att=np.eye(n_seen + 1, dtype=np.float32), class_names=names, trainval=seen_rows,
                      test_seen=seen_rows, test_unseen=np.flatnonzero(labels == n_seen))


def _plan(methods, variants=(), have=(), seeds=(0,), ratios=(1.0,), folds=("",), protocol="test", preset=None):
    base = study.base_params(ROOT / "params.yaml", preset)
    return study.plan(base, list(methods), list(seeds), list(ratios), list(folds), protocol,
                      study.parse_variants([list(v) for v in variants], dict(SETS)), {}, set(have))


def test_jobs_share_a_generator_only_where_training_agrees():
    jobs = _plan(["zerodiffpp", "zerodiff", "fclswgan", "panel"],
                 variants=[("keep", "tta.keep_fraction=1.0"), ("lr", "gen.lr=0.001")])
    groups = [[(m, v) for m, v, _, _ in j["evaluations"]] for j in jobs]
    assert groups == [[("zerodiffpp", "base"), ("zerodiffpp", "keep"), ("zerodiff", "base"), ("zerodiff", "keep")],
                      [("zerodiffpp", "lr"), ("zerodiff", "lr")],  # a training change: a generator of its own
                      [("fclswgan", "base"), ("fclswgan", "keep")],
                      [("fclswgan", "lr")],  # gen.lr is not f-CLSWGAN's, but train declares gen: its own job
                      [("panel", "base")]]  # the panel has no variants
    assert {(j["seed"], j["ratio"], j["fold"]) for j in jobs} == {(0, 1.0, "")}


def test_a_resumed_study_plans_only_the_points_it_lacks():
    first = _plan(["zerodiffpp", "zerodiff"], seeds=(0, 1))
    have = {study.digest(dict(p, method=m)) for j in first for m, _, _, p in j["evaluations"]
            if (m, j["seed"]) != ("zerodiff", 1)}
    again = _plan(["zerodiffpp", "zerodiff"], seeds=(0, 1), have=have)
    assert [[(m, j["seed"]) for m, *_ in j["evaluations"]] for j in again] == [[("zerodiff", 1)]]
    assert _plan(["zerodiffpp", "zerodiff"], seeds=(0, 1), have=have | {
        study.digest(dict(p, method=m)) for j in again for m, _, _, p in j["evaluations"]}) == []


def test_point_params_resolve_per_ratio_values_and_refuse_bad_keys(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("gen: {epochs: {1.0: 7, 0.1: 9}}\nmethod: zerodiff\n")
    base = study.base_params(ROOT / "params.yaml", preset)
    assert base["method"] == "zerodiff"
    p = study.point_params(base, {"fclswgan.cls_weight": 0.1}, "fclswgan", 2, 0.1, "validation", "", {})
    assert (p["method"], p["train"]["seed"], p["train"]["seen_ratio"], p["data"]["protocol"]) == (
        "fclswgan", 2, 0.1, "validation")
    assert p["gen"]["epochs"] == 9 and p["fclswgan"]["cls_weight"] == 0.1 and p["train"]["threads"] == 1
    with pytest.raises(SystemExit, match="fclswgan.cls_wieght"):
        study.point_params(base, {"fclswgan.cls_wieght": 0.1}, "fclswgan", 0, 1.0, "test", "", {})
    with pytest.raises(SystemExit, match="not for train.seen_ratio 0.3"):
        study.point_params(base, {}, "zerodiff", 0, 0.3, "test", "", {})
    preset.write_text("gen: {epoch: 3}\n")
    with pytest.raises(SystemExit, match="unknown key gen.epoch"):
        study.base_params(ROOT / "params.yaml", preset)


def test_variants_and_sets_are_parsed_before_any_work():
    assert study.parse_changes(["gen.lr=0.001", "gen.epochs={1.0: 20, 0.1: 150}"], "--set") == {
        "gen.lr": 0.001, "gen.epochs": {1.0: 20, 0.1: 150}}
    assert study.parse_variants([["k", "tta.rounds=2"]], {"gen.lr": 0.002}) == [
        ("base", {"gen.lr": 0.002}), ("k", {"gen.lr": 0.002, "tta.rounds": 2})]
    for bad in (["x"], ["tta.rounds=2"], ["base", "tta.rounds=2"]):
        with pytest.raises(SystemExit, match="expected a new NAME"):
            study.parse_variants([bad], {})
    with pytest.raises(SystemExit, match="expected KEY=VALUE"):
        study.parse_changes(["gen..lr=1"], "--set")


def test_fold_lists():
    fs = _dataset(7)
    folds = study.fold_list(["subsets:3"], fs)
    assert len(folds) == 35 and folds[0] == "c0,c1,c2" and len(set(folds)) == 35
    assert study.fold_list(["own", "c1,c4"], fs) == ["", "c1,c4"]
    with pytest.raises(SystemExit, match="K must lie in"):
        study.fold_list(["subsets:7"], fs)
    with pytest.raises(DataError, match="unknown class 'c9'"):
        study.fold_list(["c1,c9"], fs)
    with pytest.raises(DataError, match="'c7' is an unseen class"):
        study.fold_list(["c7"], fs)


def test_fold_count_is_checked_before_any_fold_is_built(monkeypatch):
    """SUN has 645 seen classes: subsets:3 would be 44.5 M folds; refused before one is built."""
    monkeypatch.setattr(study.itertools, "combinations", lambda *_: (_ for _ in ()).throw(AssertionError("built")))
    with pytest.raises(SystemExit, match="gives 44514890 folds"):
        study.fold_list(["subsets:3"], _dataset(645))


def test_a_shared_job_gives_the_rows_of_separate_runs(tmp_path, monkeypatch):
    """ZeroDiff and ZeroDiff++ on one generator, and a post-training variant on it too, give the rows
    of separate runs; a fixed calibration's row is the automatic run's curve read at that value."""
    from zerodiffpp.data import xlsa17
    monkeypatch.setitem(xlsa17.EXPECTED_CLASSES, "CUB", (4, 2))  # a toy folder under an accepted data.name
    root = make_xlsa17(tmp_path / "TOY")
    base = study.base_params(ROOT / "params.yaml", None)
    data, source = {"name": "CUB", "root": str(root)}, (str(root), "CUB")
    variants = study.parse_variants([["labels", "tta.unseen_labels=classifier"],
                                     ["fixed", "classifier.calibration=-0.6"]], dict(SETS))
    run = lambda methods, vs: [r for j in study.plan(base, methods, [0], [1.0], [""], "test", vs, data, set())  # noqa
                               for r in study.run_job((source, j))]
    rows = run(["zerodiff", "zerodiffpp"], variants)
    assert [(r["method"], r["variant"]) for r in rows] == [
        ("zerodiff", "base"), ("zerodiff", "labels"), ("zerodiff", "fixed"),
        ("zerodiffpp", "base"), ("zerodiffpp", "labels"), ("zerodiffpp", "fixed")]
    by = {(r["method"], r["variant"]): r for r in rows}
    for m in ("zerodiff", "zerodiffpp"):
        fixed, auto = by[(m, "fixed")], by[(m, "base")]
        assert fixed["calibration"] == -0.6 and auto["calibration"] != -0.6
        assert {k: fixed[k] for k in ("U", "S", "H")} == pytest.approx(study.curve_at(auto, -0.6), abs=1e-5)
        assert fixed["T1"] == auto["T1"] and fixed["spurious"] == auto["spurious"]
        # the diagnostic reads the classifier's generated features: unchanged by the calibration value
        assert fixed["nearest_generated_mean"] == auto["nearest_generated_mean"]
        assert set(auto["nearest_generated_mean"]) == {"linear", "whitened"}
        assert all(0 <= t <= 1 for t in auto["nearest_generated_mean"].values())
    keys = ("T1", "U", "S", "H", "calibration", "gen_seen_acc", "spurious", "calibration_curve",
            "nearest_generated_mean")
    alone = run(["zerodiffpp"], variants[1:2])[0]  # the variant as a run of its own
    assert all(alone[k] == by[("zerodiffpp", "labels")][k] for k in keys)
    assert any(alone[k] != by[("zerodiffpp", "base")][k] for k in keys), "the variant's change was not applied"
    assert all(run(["zerodiff"], variants[:1])[0][k] == by[("zerodiff", "base")][k] for k in keys)
    for row in rows:  # the curve is that of the row's own GZSL classifier: it passes through its U, S, H
        assert study.curve_at(row, row["calibration"]) == pytest.approx({k: row[k] for k in ("U", "S", "H")},
                                                                        abs=1e-5)


def test_the_panel_job_gives_one_row_per_simple_baseline(tmp_path, monkeypatch):
    from zerodiffpp.data import xlsa17
    monkeypatch.setitem(xlsa17.EXPECTED_CLASSES, "CUB", (8, 3))
    root = make_xlsa17(tmp_path / "T", n_seen=8, n_unseen=3, n_val=3, learnable=True, att_dim=12, x_dim=16)
    base = study.base_params(ROOT / "params.yaml", None)
    jobs = study.plan(base, ["panel"], [0], [1.0], [""], "test", [("base", {})], {"name": "CUB", "root": str(root)},
                      set())
    rows = study.run_job(((str(root), "CUB"), jobs[0]))
    assert [r["method"] for r in rows] == list(study.BASELINES) and len({r["params"] for r in rows}) == 1


def curve_row(method, seed, ratio, protocol, peak, variant="base", sets=None):
    """A row whose H peaks at calibration `peak` (U rises, S falls with gamma, crossing there)."""
    grid = [round(0.02 * k, 2) for k in range(-50, 51)]
    curve = [[g, min(1.0, 0.5 + g - peak), min(1.0, 0.5 - g + peak), 0.0] for g in grid]
    curve = [[g, max(u, 0.0), max(s_, 0.0), 2 * max(u, 0) * max(s_, 0) / max(u + s_, 1e-9)] for g, u, s_, _ in curve]
    return {"method": method, "seed": seed, "seen_ratio": ratio, "protocol": protocol, "set": sets or {}, "fold": "",
            "variant": variant, "T1": 0.5, "U": 0.1, "S": 0.9, "H": 0.18, "calibration": 0.0, "minutes": 1.0,
            "calibration_curve": curve}


def test_calibration_chosen_on_validation_rows_only_and_read_on_the_test_rows():
    val = [curve_row("zerodiff", 0, 0.3, "validation", 0.2), curve_row("zerodiff", 1, 0.3, "validation", 0.24),
           curve_row("zerodiff", 0, 0.3, "test", -0.5),  # a test row in the file: never chooses
           curve_row("zerodiff", 0, 0.3, "validation", 0.8, "lr", {"gen.lr": 0.01}),  # other settings: their own choice
           curve_row("zerodiff", 0, 1.0, "validation", -0.3)]
    assert study.chosen_on_validation(val, "zerodiff", 0.3) == 0.22  # the mean validation H peaks between the seeds
    assert study.chosen_on_validation(val, "zerodiff", 1.0) == -0.3
    assert study.chosen_on_validation(val, "zerodiffpp", 0.3) is None
    assert study.chosen_on_validation(val, "zerodiff", 0.3, {"gen.lr": 0.01}) == 0.8
    test = [curve_row("zerodiff", 0, 0.3, "test", 0.1), curve_row("zerodiff", 1, 0.3, "test", 0.14)]
    with pytest.raises(KeyError, match="0.23"):
        study.curve_at(test[0], 0.23)
    line = study.table(test, val).splitlines()[-1]
    assert line.startswith("| zerodiff | 0.3 | 0,1 | 1 | 50.0 ± 0.0 | 10.0 ± 0.0 | 90.0 ± 0.0 | 18.0 ± 0.0 |")
    # seed 0 at 0.22: U 0.62, S 0.38, H 0.4712; seed 1: U 0.58, S 0.42, H 0.4872
    assert line.endswith("| 0.22 | 60.0 ± 2.8 | 40.0 ± 2.8 | 47.9 ± 1.1 |"), line  # sample std (ddof 1)
    # the nearest-generated-mean column: the linear variant, over the rows that carry it (older rows do not)
    diag = [dict(curve_row("zerodiff", s, 0.3, "test", 0.0), gen_seen_acc=0.3,
                 nearest_generated_mean={"linear": t, "whitened": 0.9}) for s, t in ((0, 0.2), (1, 0.3))]
    assert "| 30.0 ± 0.0 | 25.0 ± 7.1 | 0.00 ± 0.00 |" in study.table(diag + [curve_row("zerodiff", 2, 0.3, "test", 0.0)])
    zdpp = study.table([curve_row("zerodiffpp", 0, 0.3, "test", 0.0)]).splitlines()[-1]
    assert zdpp.startswith("| zerodiffpp (transductive: reads the unlabelled test features) |")


def test_each_rows_calibration_is_set_against_its_own_seeds_validation_value():
    val = [curve_row("zerodiff", 0, 0.3, "validation", 0.2), curve_row("zerodiff", 1, 0.3, "validation", 0.24),
           curve_row("zerodiff", 2, 0.3, "validation", 0.9, "lr", {"gen.lr": 0.01})]  # seed 2: none at these settings
    test = [dict(curve_row("zerodiff", s, 0.3, "test", peak), calibration=peak) for s, peak in ((0, 0.1), (1, 0.14), (2, 0.0))]
    lines = study.per_seed_calibration(test, val).splitlines()[2:]
    # seed 0: its own value 0.10 gives U 0.5, H 0.5; its seed's validation value 0.20 (not the pooled 0.22)
    # gives U 0.6, S 0.4, H 0.48 on the test row's curve: H +4 %, U ratio 0.83
    assert lines == ["| zerodiff | 0.3 | 0 | the study's params | +0.10, 50.0, 50.0 | +0.20, 60.0, 48.0 | +4 % | 0.83 |",
                     "| zerodiff | 0.3 | 1 | the study's params | +0.14, 50.0, 50.0 | +0.24, 60.0, 48.0 | +4 % | 0.83 |"]
    assert "Calibration per seed" in study.summary(test, val) and "Calibration per seed" not in study.summary(test)


def test_a_test_run_with_set_pairs_with_the_validation_variant_of_the_same_settings():
    """A test run made once with --set X pairs with the validation study's --variant NAME X rows, by
    their settings, not by their variants' names (and never with the base rows of other settings)."""
    x = {"synth.seen_per_class": 30}
    val = [curve_row("zerodiff", 0, 0.1, "validation", -0.4),  # the base: other settings
           curve_row("zerodiff", 0, 0.1, "validation", 0.1, "seen30", x)]
    test = [dict(curve_row("zerodiff", 0, 0.1, "test", 0.1, sets=x), calibration=0.1)]
    assert study.chosen_on_validation(val, "zerodiff", 0.1, x) == 0.1
    assert study.per_seed_calibration(test, val).splitlines()[2] == \
        "| zerodiff | 0.1 | 0 | synth.seen_per_class=30 | +0.10, 50.0, 50.0 | +0.10, 50.0, 50.0 | +0 % | 1.00 |"
    assert study.table(test, val).splitlines()[-1].endswith("| 0.10 | 50.0 | 50.0 | 50.0 |")


def test_the_summary_pairs_each_variant_with_its_base_by_fold_and_seed():
    rows = [dict(curve_row("zerodiffpp", 0, 1.0, "validation", 0.0, v), fold=f, T1=t, H=h)
            for f, v, t, h in [("a", "base", 0.4, 0.5), ("a", "x", 0.6, 0.4), ("b", "base", 0.5, 0.5),
                               ("b", "x", 0.5, 0.7), ("c", "x", 0.9, 0.9)]]  # fold c has no base: unpaired
    # x: T1 +10.0 (won on a; b is a tie), H +5.0 (won on b)
    assert "| zerodiffpp | 1.0 | x | 2 | +10.0 | +5.0 | 1 | 1 |" in study.paired(rows)
    assert "| 3 |" in study.table(rows).splitlines()[-1]  # three folds in the variant's line


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results").rglob("*.jsonl")
                                        if p.name != "test-log.jsonl"))
def test_committed_results_files_keep_loading(path):
    rows = study.load_rows(ROOT / path)
    assert rows and all({"method", "seed", "seen_ratio", "protocol", "fold", "variant"} <= set(r) for r in rows)
    assert study.summary(rows).startswith("| method |")


def test_compare_sets_each_row_beside_its_committed_twin():
    def row(method="eszsl", seed=0, t1=0.5, params="a"):
        return {"method": method, "seed": seed, "seen_ratio": 0.1, "protocol": "test", "fold": "", "variant": "base",
                "params": params, "T1": t1, "U": 0.2, "S": 0.4, "H": 0.3}
    committed = [row(), row(seed=1, t1=0.6)]
    text, ok = study.compare([row(params="b")], committed)  # same point, another digest, same numbers
    assert ok and "| 0 | no |" in text and "reproduced" in text
    text, ok = study.compare([row(t1=0.5001)], committed)
    assert not ok and "0.0001" in text and "NOT reproduced" in text
    assert not study.compare([row(seed=2)], committed)[1]  # no committed twin at all
    assert not study.compare([row(method="ridge")], committed)[1]
    assert not study.compare([], committed)[1]
    text, ok = study.compare([row(), row(seed=2)], committed)  # a new point beside a reproduced one: listed
    assert ok and "no such row" in text and "1 of 2 rows" in text
    assert not study.compare([row(t1=0.4), row(seed=2)], committed)[1]


def test_compare_refuses_the_committed_file_as_out(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    with pytest.raises(SystemExit, match="the same file as --out"):
        study.main(["--out", str(rows), "--compare", str(rows)])


@pytest.mark.parametrize("argv, message", [(["--jobs", "0"], "--jobs 0"), (["--folds", "own", "--protocol", "test"],
                                                                           "--folds"),
                                           (["--preset", "none.yaml"], "--preset none.yaml")])
def test_bad_arguments_exit_before_any_work(argv, message, tmp_path):
    features = tmp_path / "features.npz"
    _dataset(4).save(features)
    with pytest.raises(SystemExit, match=message):
        study.main(argv + ["--features", str(features), "--out", str(tmp_path / "out" / "rows.jsonl")])
    assert not (tmp_path / "out").exists()


def test_workers_are_spawned_never_forked(tmp_path, monkeypatch):
    """A forked worker inherits the parent's CUDA state; the pool must use the spawn context."""
    contexts = []

    class Stop(Exception):
        pass

    def pool(jobs, mp_context=None):
        contexts.append(mp_context.get_start_method() if mp_context else "default (fork on Linux)")
        raise Stop
    monkeypatch.setattr(study, "ProcessPoolExecutor", pool)
    monkeypatch.setenv("ZERODIFFPP_TEST_LOG", str(tmp_path / "log.jsonl"))
    features = tmp_path / "features.npz"
    _dataset(4).save(features)
    with pytest.raises(Stop):
        study.main(["--folds", "c0,c1", "--features", str(features), "--out", str(tmp_path / "rows.jsonl")])
    assert contexts == ["spawn"]


def test_a_study_appends_to_the_test_log_only_on_the_test_split(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("ZERODIFFPP_TEST_LOG", str(log))
    monkeypatch.setattr(study, "run_jobs", lambda todo, jobs, out, on_rows: on_rows(
        [{"method": "zerodiff", "seed": 0, "seen_ratio": 1.0, "T1": 0.5}]))
    features = tmp_path / "features.npz"
    _dataset(4).save(features)
    common = ["--features", str(features), "--methods", "zerodiff", "--out", str(tmp_path / "rows.jsonl")]
    study.main(common + ["--protocol", "validation"])
    assert not log.exists()
    study.main(common + ["--protocol", "test"])
    entry = json.loads(log.read_text())
    assert entry["study"] == "study" and entry["runs"] == [{"method": "zerodiff", "seed": 0, "seen_ratio": 1.0,
                                                             "T1": 0.5}]


def _in_process_pool(monkeypatch, outcomes: list) -> None:
    """Replace the study's process pool with one that settles the jobs in order in this process: each
    outcome is a job's rows, or the exception that job raises."""
    from concurrent.futures import Future

    class Pool:
        def __init__(self, jobs, mp_context=None):
            self.n = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def shutdown(self, wait=True, cancel_futures=False):
            pass

        def submit(self, fn, job):
            f, outcome = Future(), outcomes[self.n]
            self.n += 1
            if isinstance(outcome, BaseException):
                f.set_exception(outcome)
            else:
                f.set_result(outcome)
            return f
    monkeypatch.setattr(study, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(study, "as_completed", lambda futures: iter(futures))


def test_a_stopped_test_study_leaves_every_finished_run_in_the_log(tmp_path, monkeypatch):
    """Each job's runs are logged as it ends, not when the study ends: the second job's failure (or a
    killed session) must not take the first job's test numbers out of the log."""
    _in_process_pool(monkeypatch, [[{"method": "zerodiff", "variant": "base", "seed": 0, "seen_ratio": 1.0,
                                     "fold": "", "T1": 0.5, "minutes": 1.0}], RuntimeError("killed")])
    # the first job finishes, the second fails
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("ZERODIFFPP_TEST_LOG", str(log))
    features = tmp_path / "features.npz"
    _dataset(4).save(features)
    with pytest.raises(RuntimeError, match="killed"):
        study.main(["--features", str(features), "--methods", "zerodiff", "--seeds", "0", "1", "--protocol", "test",
                    "--out", str(tmp_path / "rows.jsonl")])
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["runs"] for e in entries] == [[{"method": "zerodiff", "variant": "base", "seed": 0, "seen_ratio": 1.0,
                                              "T1": 0.5}], []]
    assert entries[0]["failed"] == [] and entries[1]["failed"] == ["RuntimeError: killed"]



def _sleeping_job(args: tuple) -> list[dict]:
    """A job for the stop test: says it started (its pid, in a file), then works for a long time."""
    import os
    import time
    from pathlib import Path
    folder, i = args
    (Path(folder) / f"worker{i}.pid").write_text(str(os.getpid()))
    time.sleep(300)
    return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"  # a zombie is gone
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker states from /proc")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_signalled_study_ends_its_workers_and_says_so(tmp_path, signame):
    """`kill <study>` once left its pool workers training for an hour with nowhere to write (they kept
    two cores from CI). Now the signal raises StudyStopped in the study, which ends the running workers
    and leaves the pool at once (main logs the stop of a test study as its failure)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    script = ("import sys; from pathlib import Path; from scripts import study; from tests import test_study\n"
              "study.run_job = test_study._sleeping_job\n"
              "d = sys.argv[1]\n"
              "study.run_jobs([(d, 0), (d, 1), (d, 2)], 2, Path(d) / 'rows.jsonl', lambda rows: None)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            # under nohup SIGHUP is ignored, and the study rightly leaves it so (next test)
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while len(list(tmp_path.glob("worker*.pid"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        pids = [int(f.read_text()) for f in tmp_path.glob("worker*.pid")]
        assert len(pids) == 2, proc.stderr.read() if proc.poll() is not None else "the workers did not start"
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and f"StudyStopped: stopped by {signame}" in err
        deadline = time.time() + 10
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:  # a failed run leaves no sleeper behind
        if proc.poll() is None:
            proc.kill()
        for f in tmp_path.glob("worker*.pid"):
            if _alive(pid := int(f.read_text())):
                os.kill(pid, signal.SIGKILL)
    assert not (tmp_path / "worker2.pid").exists()  # the queued job was cancelled, not started


@pytest.mark.skipif(not hasattr(study.signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_study_under_nohup_keeps_ignoring_sighup():
    """nohup ignores SIGHUP so that a study outlives its terminal: the study's handler must not undo that;
    SIGTERM raises StudyStopped all the same, and both handlers are restored afterwards."""
    import signal
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN), signal.getsignal(signal.SIGTERM)
    try:
        with study.stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            with pytest.raises(study.StudyStopped, match="SIGTERM"):
                signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is before[1]
    finally:
        signal.signal(signal.SIGHUP, before[0])


def test_a_stop_between_a_jobs_rows_and_its_log_entry_waits_for_the_entry(tmp_path, monkeypatch):
    """A SIGTERM that arrives after a job's rows are appended but before its test-log entry is written
    must not leave rows the log does not know of: it is let in once both are written."""
    import signal
    _in_process_pool(monkeypatch, [[{"method": "zerodiff", "variant": "base", "seed": 0, "seen_ratio": 1.0,
                                     "fold": "", "T1": 0.5, "minutes": 1.0}]])
    logged = []

    def on_rows(rows):  # the signal comes while the entry is being written
        signal.raise_signal(signal.SIGTERM)
        logged.extend(rows)
    out = tmp_path / "rows.jsonl"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(study.StudyStopped, match="SIGTERM"):
        study.run_jobs([None], 1, out, on_rows)
    assert len(logged) == 1 and len(out.read_text().splitlines()) == 1
    assert signal.getsignal(signal.SIGTERM) is before and not signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_apply_preset_merges_as_the_study_does(tmp_path):
    from scripts.apply_preset import apply
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    apply("cub-cpu", "/data/CUB", params)
    merged = study.base_params(ROOT / "params.yaml", ROOT / "presets" / "cub-cpu.yaml")
    applied = yaml.safe_load(params.read_text())
    merged["data"]["root"] = "/data/CUB"
    assert applied == merged


def test_a_variant_may_set_the_method_and_still_share_the_generator():
    jobs = _plan(["zerodiffpp"], variants=[("ind", "method=zerodiff"), ("gan", "method=fclswgan")])
    assert [[(m, v) for m, v, _, _ in j["evaluations"]] for j in jobs] == [
        [("zerodiffpp", "base"), ("zerodiff", "ind")], [("fclswgan", "gan")]]
