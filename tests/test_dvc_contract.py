"""dvc.yaml against the code: code deps cover imports, paths agree, metrics and plots are git-tracked."""
import ast
import re

import pytest
import yaml

from tests.conftest import ROOT
from tests.import_graph import module_closure
from zerodiffpp.runtime import paths
from zerodiffpp.runtime.params import load_stage_params

DVC = yaml.safe_load(open(ROOT / "dvc.yaml"))
STAGES = ["extract", "pretrain", "train", "val_train", "calibrate", "adapt", "synthesize", "classify", "baselines", "report"]


def test_stages_in_order_and_thin():
    assert list(DVC["stages"]) == STAGES
    for name in STAGES:
        assert DVC["stages"][name]["cmd"] == f"python -m stages.{name}"
        assert len((ROOT / "stages" / f"{name}.py").read_text().splitlines()) < 60


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_are_exactly_the_imported_modules(stage):
    deps = {d for d in DVC["stages"][stage]["deps"] if d.endswith(".py")}
    assert deps == {f"stages/{stage}.py"} | module_closure(stage)


@pytest.mark.parametrize("stage", STAGES)
def test_declared_params_load(stage):
    load_stage_params(stage, ROOT / "params.yaml", ROOT / "dvc.yaml")


@pytest.mark.parametrize("stage", STAGES)
def test_stage_reads_only_declared_params(stage):
    """Every p["section"]["key"] read in the stage script is declared for that stage."""
    src = (ROOT / "stages" / f"{stage}.py").read_text()
    declared = DVC["stages"][stage]["params"]
    for m in re.finditer(r'p\["(\w+)"\](?:\["(\w+)"\])?', src):
        sec, key = m.group(1), m.group(2)
        assert sec in declared or (key and f"{sec}.{key}" in declared) or \
            any(d.startswith(f"{sec}.") for d in declared), f"{stage} reads {sec}.{key}"


def _declared_files():
    out = set()
    for s in DVC["stages"].values():
        for kind in ("deps", "outs", "metrics", "plots"):
            for item in s.get(kind, []):
                out.add(next(iter(item)) if isinstance(item, dict) else item)
    return out


def test_paths_module_agrees_with_dvc_yaml():
    declared = _declared_files()
    for name, value in vars(paths).items():
        if name.isupper() and name not in ("PARAMS", "DVC_YAML"):
            v = str(value)
            # a declared file, a file inside a declared folder, or a folder of declared files (DVCLive's)
            assert v in declared or any(v.startswith(d + "/") or d.startswith(v + "/") for d in declared), \
                f"paths.{name}={v} not in dvc.yaml"


def test_metrics_and_plots_are_git_tracked_and_no_persist():
    for s in DVC["stages"].values():
        for kind in ("metrics", "plots"):
            for item in s.get(kind, []):
                assert isinstance(item, dict) and next(iter(item.values()))["cache"] is False
        for item in s.get("outs", []):
            assert not (isinstance(item, dict) and next(iter(item.values())).get("persist"))
    assert "__pycache__/" in (ROOT / ".dvcignore").read_text()


def test_dvc_analytics_off():
    assert "analytics = false" in (ROOT / ".dvc" / "config").read_text()
