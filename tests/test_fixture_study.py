"""scripts/fixture_study.py: how points become jobs, `--set` and `--protocol`, and the claim that
ZeroDiff and ZeroDiff++ evaluated on one shared trained generator give exactly the rows of two
separate runs."""
import pytest

from scripts import fixture_study as fst
from tests.conftest import make_xlsa17
from tests.tiny import TINY_OVERRIDES


def test_zerodiff_and_zerodiffpp_share_one_job():
    assert fst.jobs(["eszsl", "zerodiffpp", "zerodiff", "fclswgan"]) == [("zerodiff", "zerodiffpp"), ("eszsl",),
                                                                         ("fclswgan",)]
    assert fst.jobs(["zerodiffpp", "fclswgan"]) == [("zerodiffpp",), ("fclswgan",)]
    assert fst.jobs(["eszsl"]) == [("eszsl",)]


def test_sets_are_yaml_values_and_bad_ones_are_refused():
    assert fst.parse_sets(["gen.lr=0.001", "classifier.calibration=auto", "gen.epochs={1.0: 20, 0.1: 150}"]) == {
        "gen.lr": 0.001, "classifier.calibration": "auto", "gen.epochs": {1.0: 20, 0.1: 150}}
    for bad in ("gen.lr", "lr=0.1", "a.b.c=1"):
        with pytest.raises(SystemExit, match="section.key=value"):
            fst.parse_sets([bad])


def test_study_params_apply_sets_protocol_and_refuse_unknown_keys(tmp_path):
    p = fst.study_params(None, tmp_path, "CUB", "fclswgan", 2, 0.3, "validation", {"fclswgan.cls_weight": 0.1})
    assert (p["method"], p["train"]["seed"], p["train"]["seen_ratio"], p["data"]["protocol"]) == (
        "fclswgan", 2, 0.3, "validation")
    assert p["fclswgan"]["cls_weight"] == 0.1 and p["data"]["root"] == str(tmp_path)
    with pytest.raises(SystemExit, match="fclswgan.cls_wieght"):
        fst.study_params(None, tmp_path, "CUB", "fclswgan", 0, 1.0, "test", {"fclswgan.cls_wieght": 0.1})


def test_a_shared_job_gives_the_rows_of_separate_runs(tmp_path, monkeypatch):
    from zerodiffpp import xlsa17
    monkeypatch.setitem(xlsa17.EXPECTED_CLASSES, "CUB", (4, 2))  # a toy folder under an accepted data.name
    root = make_xlsa17(tmp_path / "TOY")
    sets = {f"{sec}.{k}": v for sec, vals in TINY_OVERRIDES.items() for k, v in vals.items()}
    point = lambda methods: fst.run_point((None, root, "CUB", methods, 0, 1.0, "test", sets))  # noqa: E731
    shared = {r["method"]: r for r in point(("zerodiff", "zerodiffpp"))}
    for method in ("zerodiff", "zerodiffpp"):
        alone = point((method,))[0]
        for key in ("T1", "U", "S", "H", "calibration", "gen_seen_acc", "spurious"):
            assert shared[method][key] == alone[key], (method, key)
    assert shared["zerodiff"]["T1"] != shared["zerodiffpp"]["T1"] or shared["zerodiff"]["spurious"] != \
        shared["zerodiffpp"]["spurious"]  # two different evaluations, not one row copied
