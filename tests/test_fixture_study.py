"""scripts/fixture_study.py: how points become jobs, `--set` and `--protocol`, and the claim that
ZeroDiff and ZeroDiff++ evaluated on one shared trained generator give exactly the rows of two
separate runs."""
import pytest

from scripts import fixture_study as fst
from tests.conftest import make_xlsa17
from tests.tiny import TINY_OVERRIDES


def test_zerodiff_and_zerodiffpp_share_one_job():
    assert fst.jobs(["panel", "zerodiffpp", "zerodiff", "fclswgan"]) == [("zerodiff", "zerodiffpp"), ("panel",),
                                                                         ("fclswgan",)]
    assert fst.jobs(["zerodiffpp", "fclswgan"]) == [("zerodiffpp",), ("fclswgan",)]
    assert fst.jobs(["panel"]) == [("panel",)]


def test_sets_are_yaml_values_and_bad_ones_are_refused():
    assert fst.parse_sets(["gen.lr=0.001", "classifier.calibration=auto", "gen.epochs={1.0: 20, 0.1: 150}"]) == {
        "gen.lr": 0.001, "classifier.calibration": "auto", "gen.epochs": {1.0: 20, 0.1: 150}}
    for bad in ("gen.lr", "=0.1", "gen..lr=1", "gen.=1"):
        with pytest.raises(SystemExit, match="expected KEY=VALUE with a params.yaml key"):
            fst.parse_sets([bad])


def test_study_params_apply_sets_protocol_and_refuse_unknown_keys(tmp_path):
    p = fst.study_params(None, tmp_path, "CUB", "fclswgan", 2, 0.3, "validation", {"fclswgan.cls_weight": 0.1})
    assert (p["method"], p["train"]["seed"], p["train"]["seen_ratio"], p["data"]["protocol"]) == (
        "fclswgan", 2, 0.3, "validation")
    assert p["fclswgan"]["cls_weight"] == 0.1 and p["data"]["root"] == str(tmp_path)
    with pytest.raises(SystemExit, match="fclswgan.cls_wieght"):
        fst.study_params(None, tmp_path, "CUB", "fclswgan", 0, 1.0, "test", {"fclswgan.cls_wieght": 0.1})


def test_a_shared_job_gives_the_rows_of_separate_runs(tmp_path, monkeypatch):
    """ZeroDiff and ZeroDiff++ on one generator, and a post-training variant on it too, give the rows
    of separate runs (the variant's: a run with its changes as --set)."""
    from zerodiffpp.data import xlsa17
    monkeypatch.setitem(xlsa17.EXPECTED_CLASSES, "CUB", (4, 2))  # a toy folder under an accepted data.name
    root = make_xlsa17(tmp_path / "TOY")
    sets = {f"{sec}.{k}": v for sec, vals in TINY_OVERRIDES.items() for k, v in vals.items()}
    (name, changed), fixed = fst.parse_variants([["labels", "tta.unseen_labels=classifier"],
                                                 ["fixed", "classifier.calibration=-0.6"]], sets)
    point = lambda methods, evaluations: fst.run_point(  # noqa: E731
        (None, root, "CUB", methods, 0, 1.0, "test", sets, evaluations))
    rows = point(("zerodiff", "zerodiffpp"), [(None, sets), (name, changed), fixed])
    shared = {r["method"]: r for r in rows if "variant" not in r}
    assert [(r["method"], r.get("variant"), r["set"] == changed) for r in rows] == [
        ("zerodiff", None, False), ("zerodiffpp", None, False), ("zerodiff", "labels", True),
        ("zerodiffpp", "labels", True), ("zerodiff", "fixed", False), ("zerodiffpp", "fixed", False)]
    # a run with classifier.calibration fixed is the automatic run's curve read at that value, for ZeroDiff++ too:
    # its DiffTTA pseudo-labels keep their own (automatic) value, tta.calibration
    for base_row, fixed_row in zip(rows[:2], rows[4:]):
        assert fixed_row["calibration"] == -0.6 and base_row["calibration"] != -0.6
        assert {k: fixed_row[k] for k in ("U", "S", "H")} == pytest.approx(fst.curve_at(base_row, -0.6), abs=1e-5)
        assert fixed_row["T1"] == base_row["T1"] and fixed_row["spurious"] == base_row["spurious"]
    keys = ("T1", "U", "S", "H", "calibration", "gen_seen_acc", "spurious", "calibration_curve")
    for method in ("zerodiff", "zerodiffpp"):
        alone = point((method,), [(None, sets)])[0]
        for key in keys:
            assert shared[method][key] == alone[key], (method, key)
    assert shared["zerodiff"]["T1"] != shared["zerodiffpp"]["T1"] or shared["zerodiff"]["spurious"] != \
        shared["zerodiffpp"]["spurious"]  # two different evaluations, not one row copied
    variant = rows[3]
    separate = fst.run_point((None, root, "CUB", ("zerodiffpp",), 0, 1.0, "test", changed, [(None, changed)]))[0]
    for key in keys:
        assert variant[key] == separate[key], key
    assert any(variant[k] != shared["zerodiffpp"][k] for k in keys), "the variant's change was not applied"
    for row in rows:  # the curve is that of the row's own GZSL classifier: it passes through its U, S, H
        assert fst.curve_at(row, row["calibration"]) == pytest.approx({k: row[k] for k in ("U", "S", "H")}, abs=1e-5)


def test_a_resumed_study_runs_only_the_rows_it_lacks():
    sets, variants = {"gen.lr": 0.002}, [("keep", {"gen.lr": 0.002, "tta.keep_fraction": 1.0})]
    row = lambda m, seed, ratio, st: fst.row_key({"method": m, "seed": seed, "seen_ratio": ratio, "set": st})  # noqa
    have = {row("zerodiff", 0, 1.0, sets), row("zerodiffpp", 0, 1.0, sets), row("zerodiff", 0, 1.0, variants[0][1]),
            row("eszsl", 0, 1.0, sets), row("zerodiff", 1, 1.0, {})}  # the last: another study's `set`
    got = fst.missing_jobs(["panel", "zerodiffpp", "zerodiff"], [0, 1], [1.0], sets, variants, have)
    assert got == [(("zerodiffpp",), 0, 1.0, [variants[0]]),  # only ZeroDiff++'s variant row is missing
                   (("zerodiff", "zerodiffpp"), 1, 1.0, [(None, sets), variants[0]]),
                   (("panel",), 1, 1.0, [(None, sets)])]  # the panel's rows are found by its ESZSL row
    assert fst.missing_jobs(["zerodiff"], [0], [1.0], sets, variants, have) == []


def test_variants_change_post_training_params_only():
    sets = {"gen.lr": 0.002}
    variants = fst.parse_variants([["keep", "tta.keep_fraction=0.3", "diffgen.start_step=1"],
                                   ["cal", "classifier.calibration=0.1"]], sets)
    assert variants == [("keep", {"gen.lr": 0.002, "tta.keep_fraction": 0.3, "diffgen.start_step": 1}),
                        ("cal", {"gen.lr": 0.002, "classifier.calibration": 0.1})]
    for bad, match in ((["g", "gen.lr=0.001"], "train reads gen"), (["s", "synth.sampler=one_step"], "synth.sampler"),
                       (["d", "diffusion.timesteps=8"], "diffusion"), (["m", "diagnostics.every=1"], "diagnostics"),
                       (["p", "data.protocol=test"], "data.protocol"),
                       (["w", "synth={sampler: one_step, unseen_per_class: 10}"], "synth.sampler"),
                       (["x"], "expected a new NAME"),
                       (["tta.rounds=2"], "expected a new NAME"), (["t", "tta.rounds"], "expected KEY=VALUE")):
        with pytest.raises(SystemExit, match=match):
            fst.parse_variants([bad], sets)
    with pytest.raises(SystemExit, match="expected a new NAME"):
        fst.parse_variants([["a", "tta.rounds=2"], ["a", "tta.rounds=3"]], sets)


def curve_row(method, seed, ratio, protocol, peak, sets=None):
    """A row whose H peaks at calibration `peak` (U rises, S falls with gamma, crossing there)."""
    grid = [round(0.02 * k, 2) for k in range(-50, 51)]
    curve = [[g, min(1.0, 0.5 + g - peak), min(1.0, 0.5 - g + peak), 0.0] for g in grid]
    curve = [[g, max(u, 0.0), max(s_, 0.0), 2 * max(u, 0) * max(s_, 0) / max(u + s_, 1e-9)] for g, u, s_, _ in curve]
    return {"method": method, "seed": seed, "seen_ratio": ratio, "protocol": protocol, "set": sets or {},
            "T1": 0.5, "U": 0.1, "S": 0.9, "H": 0.18, "calibration": 0.0, "minutes": 1.0, "calibration_curve": curve}


def test_calibration_chosen_on_validation_rows_only_and_read_on_the_test_rows():
    val = [curve_row("zerodiff", 0, 0.3, "validation", 0.2), curve_row("zerodiff", 1, 0.3, "validation", 0.24),
           curve_row("zerodiff", 0, 0.3, "test", -0.5),  # a test row in the file: never chooses
           curve_row("zerodiff", 0, 0.3, "validation", 0.8, {"gen.lr": 0.002}),  # another setting: ignored
           curve_row("zerodiff", 0, 1.0, "validation", -0.3)]
    assert fst.chosen_on_validation(val, "zerodiff", 0.3) == 0.22  # the mean validation H peaks between the seeds
    assert fst.chosen_on_validation(val, "zerodiff", 1.0) == -0.3
    assert fst.chosen_on_validation(val, "zerodiffpp", 0.3) is None
    assert fst.chosen_on_validation(val, "zerodiff", 0.3, {"gen.lr": 0.002}) == 0.8
    test = [curve_row("zerodiff", 0, 0.3, "test", 0.1), curve_row("zerodiff", 1, 0.3, "test", 0.14)]
    assert fst.curve_at(test[0], 0.22) == {"U": pytest.approx(0.62), "S": pytest.approx(0.38), "H": pytest.approx(
        2 * 0.62 * 0.38)}
    with pytest.raises(KeyError, match="0.23"):
        fst.curve_at(test[0], 0.23)
    line = fst.table(test, val).splitlines()[-1]
    assert line.startswith("| zerodiff | 0.3 | 0,1 | 50.0 ± 0.0 | 10.0 ± 0.0 | 90.0 ± 0.0 | 18.0 ± 0.0 |")
    # seed 0 at 0.22: U 0.62, S 0.38, H 0.4712; seed 1: U 0.58, S 0.42, H 0.4872
    assert line.endswith("| 0.22 | 60.0 ± 2.8 | 40.0 ± 2.8 | 47.9 ± 1.1 |"), line  # sample std (ddof 1)
    assert fst.table(test).splitlines()[-1].endswith("| 0.00 ± 0.00 | 1 ± 0 |")  # no validation rows: no extra columns


def test_a_variant_is_a_line_of_its_own_with_its_own_validation_choice():
    v = {"tta.keep_fraction": 0.3}
    val = [curve_row("zerodiffpp", 0, 0.3, "validation", 0.2),
           dict(curve_row("zerodiffpp", 0, 0.3, "validation", -0.4, v), variant="keep")]
    test = [curve_row("zerodiffpp", 0, 0.3, "test", 0.0), dict(curve_row("zerodiffpp", 0, 0.3, "test", 0.0, v),
                                                               variant="keep", T1=0.7)]
    lines = fst.table(test, val).splitlines()[2:]
    assert [line.split(" | ")[0] for line in lines] == ["| zerodiffpp (transductive, self-trains on test-seen)",
                                                      "| zerodiffpp (transductive, self-trains on test-seen) (keep)"]
    assert lines[0].split(" | ")[3] == "50.0" and lines[1].split(" | ")[3] == "70.0"
    assert " | 0.20 | " in lines[0] and " | -0.40 | " in lines[1]  # each chosen on its own validation rows


def test_the_panel_job_gives_one_row_per_simple_baseline(tmp_path):
    from tests.conftest import make_xlsa17
    root = make_xlsa17(tmp_path / "T", n_seen=8, n_unseen=3, n_val=3, learnable=True, att_dim=12, x_dim=16)
    rows = fst.run_point((None, root, "T", ("panel",), 0, 1.0, "test", {}, [(None, {})]))
    assert [r["method"] for r in rows] == list(fst.BASELINES)
    assert all(0 <= r["T1"] <= 1 and r["seed"] == 0 and r["protocol"] == "test" for r in rows)
    assert {"U", "S", "H"} <= set(rows[0]) and set(rows[-1]) >= {"T1"} and "H" not in rows[-1]  # the ceiling: T1


def test_the_table_marks_the_transductive_method_and_gives_the_sample_std():
    rows = [{"method": m, "seed": s, "seen_ratio": 1.0, "T1": t, "U": 0.5, "S": 0.5, "H": 0.5}
            for m in ("zerodiffpp", "zerodiff") for s, t in ((0, 0.2), (1, 0.4))]
    lines = fst.table(rows).splitlines()
    assert lines[2].startswith("| zerodiff | 1.0 | 0,1 | 30.0 ± 14.1 |")  # sample std of 20 and 40: 14.1 (not 10.0)
    assert lines[3].startswith("| zerodiffpp (transductive, self-trains on test-seen) | 1.0 | 0,1 |")
