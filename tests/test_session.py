"""run_stage under DVC: a stage whose params changed under it (a second `dvc exp run -S ...` in the same
workspace rewrites params.yaml before DVC refuses it) fails naming the keys, whether the change came
while it ran or after an upstream stage ran; an ordinary rerun after a params change does not."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.tiny import tiny_params

# python stage.py NAME [before|during SEED]: writes NAME.txt; SEED is written into params.yaml's train.seed
# before run_stage starts or while the stage works (what the other run's -S does)
STAGE = '''import sys
from pathlib import Path

import yaml

from zerodiffpp.runtime.session import run_stage


def set_seed(seed):
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["train"]["seed"] = int(seed)
    Path("params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


name, when, seed = (sys.argv[1:] + [None, None])[:3]


def main():
    Path(f"{name}.txt").write_text(name)
    if when == "during":
        set_seed(seed)


if when == "before":
    set_seed(seed)
run_stage(name, main)
'''


def dvc_yaml(a_args: str = "", b_args: str = "") -> dict:
    return {"stages": {
        "a": {"cmd": f"python stage.py a {a_args}", "deps": ["stage.py"], "params": ["train.seed", "train.device"],
              "outs": ["a.txt"]},
        "b": {"cmd": f"python stage.py b {b_args}", "deps": ["stage.py", "a.txt"], "params": ["train.seed", "gen.lr"],
              "outs": ["b.txt"]}}}


@pytest.fixture
def repo(tmp_path):
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(tmp_path / "site-cache"), PYTHONPATH=str(ROOT),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    work = tmp_path / "repo"
    work.mkdir()
    (work / "stage.py").write_text(STAGE)
    (work / "params.yaml").write_text(yaml.safe_dump(tiny_params(train={"seed": 3}), sort_keys=False))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=work, env=env, check=True)

    def repro(**stages):
        (work / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml(**stages)))
        return subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=work, env=env, capture_output=True, text=True)
    return work, repro


def locked(work: Path) -> dict:
    return yaml.safe_load((work / "dvc.lock").read_text())["stages"] if (work / "dvc.lock").exists() else {}


def test_params_changed_while_the_stage_ran(repo):
    work, repro = repo
    out = repro(a_args="during 4")
    assert out.returncode != 0
    assert ("ERROR: stage a: params.yaml changed while the stage ran: train.seed 3 -> 4; its outputs mix both "
            "settings (parallel runs in one workspace need `dvc exp run --temp` or `--queue`)") in out.stderr, out.stderr
    assert "a" not in locked(work) and not (work / "b.txt").exists()  # DVC records nothing, runs nothing further


def test_params_changed_after_an_upstream_stage_ran(repo):
    work, repro = repo
    out = repro(b_args="before 4")
    assert out.returncode != 0
    assert "ERROR: stage b: params.yaml differs from what upstream stage a ran with (dvc.lock): train.seed 3 -> 4; " \
           "it changed during this run" in out.stderr, out.stderr
    assert locked(work)["a"]["params"]["params.yaml"]["train.seed"] == 3 and "b" not in locked(work)
    assert not (work / "b.txt").exists()  # refused before its work


def test_an_ordinary_rerun_after_a_params_change_passes(repo):
    """DVC reruns the upstream stage first, so the lock agrees with params.yaml by the time b starts."""
    work, repro = repo
    assert repro().returncode == 0
    p = yaml.safe_load((work / "params.yaml").read_text())
    p["train"]["seed"], p["gen"]["lr"] = 5, 0.002
    (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    out = repro()
    assert out.returncode == 0, out.stderr
    assert "Running stage 'a'" in out.stdout and "Running stage 'b'" in out.stdout
    assert {s: v["params"]["params.yaml"]["train.seed"] for s, v in locked(work).items()} == {"a": 5, "b": 5}
