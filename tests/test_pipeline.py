"""End to end: `dvc repro` in a temporary copy of the repo on tiny settings and an AWA2-shaped toy
xlsa17 folder (40 seen / 10 unseen classes), then the user's DVC workflows on it."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, make_xlsa17
from tests.tiny import tiny_params


def _run(args, cwd, env, check=True):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file() and not f.startswith(("metrics/", "plots/", "dvclive/", "dvc.lock")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)


def dvc_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update(DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(tmp / "site-cache"), GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    return env


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    data = make_xlsa17(tmp / "AWA2", n_seen=40, n_unseen=10, att_dim=85, x_dim=48, per_class=8,
                       n_val=13)
    work = tmp / "repo"
    work.mkdir()
    copy_repo(work)
    params = tiny_params(data={"name": "AWA2", "root": str(data)})
    params["synth"].update(unseen_per_class=10)
    params["report"].update(seen_per_class=10)
    params["tta"].update(gate="always")  # DiffTTA runs, so its curve is checked (the gate: test_validation_pass.py)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dvc_env(tmp)
    _run(["git", "init", "-q"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "tiny"], work, env)
    out = _run([sys.executable, "-m", "dvc", "repro"], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "lock"], work, env)
    return work, env, out.stdout + out.stderr


def test_repro_writes_metrics(repo):
    """The files and their keys; that the numbers mean something is tests/test_end_to_end.py's job
    (a learnable toy, every method well above chance)."""
    work, _, _ = repo
    m = json.loads((work / "metrics" / "eval.json").read_text())
    assert set(m["zsl"]) == {"T1"} and set(m["gzsl"]) == {"U", "S", "H"}
    assert m["n_seen_classes"] == 40 and m["n_unseen_classes"] == 10 and m["seen_ratio"] == 1.0
    assert m["transductive"] == 1 and m["tta"]["n_kept"] > 0 and m["synthetic"]["n_partial"] > 0
    assert {"seen", "unseen", "seen_train_acc", "seen_test_acc", "unseen_gen_acc", "unseen_oracle_acc"} <= set(m["spurious"])
    assert all(isinstance(v, (int, float)) for v in _leaves(m))
    for f in ("per_class_accuracy.csv", "confusion_gzsl.csv", "per_class_accuracy.png", "training_curves.png"):
        assert (work / "plots" / f).stat().st_size > 0, f
    report = (work / "metrics" / "report.md").read_text()
    assert "Run report" in report
    # the validation pass chose the calibration on the dataset's 13 validation classes, with no leak
    c = m["calibration"]
    assert c["auto"] == 1 and c["n_validation_classes"] == 13 and c["validation_images_in_training"] == 0
    assert c["test_images_read"] == 0 and -1 <= c["value"] <= 1
    # the simple-baseline panel of the same split stands beside the run
    b = json.loads((work / "metrics" / "baselines.json").read_text())
    assert {"eszsl", "ridge", "ceiling", "strongest"} <= set(b) and all(isinstance(v, (int, float)) for v in _leaves(b))
    assert "## Simple baselines on this split" in report and "Simple-baseline panel: protocol test" in report


def test_training_curves_are_dvclive_metrics_and_plots(repo):
    """Each training stage's per-epoch curve is a DVCLive run in dvclive/<curve>/: metrics.json (the last
    epoch) for dvc metrics / dvc exp show, one .tsv per metric for dvc plots; one row per epoch."""
    work, env, _ = repo
    p = yaml.safe_load((work / "params.yaml").read_text())
    epochs = {"sc": p["sc"]["epochs"], "drg": p["drg"]["epochs"], "train": p["gen"]["epochs"],
              "adapt": p["tta"]["epochs"] * p["tta"]["rounds"], "classify": p["classifier"]["epochs"]}
    for curve, n in epochs.items():
        last = json.loads((work / "dvclive" / curve / "metrics.json").read_text())
        tsvs = sorted((work / "dvclive" / curve / "plots" / "metrics").glob("*.tsv"))
        assert tsvs and last["step"] == n - 1, curve
        for tsv in tsvs:
            rows = tsv.read_text().splitlines()
            assert rows[0] == f"step\t{tsv.stem}" and len(rows) == n + 1, tsv
            if tsv.stem in last:
                assert float(rows[-1].split("\t")[1]) == pytest.approx(last[tsv.stem], nan_ok=True), tsv
    assert {"gen_seen_acc", "gen_mean_gap", "lambda_gp"} <= set(json.loads((work / "dvclive/train/metrics.json").read_text()))
    shown = _run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], work, env).stdout
    assert "dvclive/train/metrics.json" in shown and "gen_seen_acc" in shown and "drg_critic" in shown



def test_diagnostic_scripts_run_on_the_pipeline_outputs(repo):
    """The generated-features probe and the ESZSL reference read what `dvc repro` wrote."""
    work, env, _ = repo
    probe = _run([sys.executable, "-m", "scripts.generated_features_probe", "--per-class", "5"], work, env).stdout
    assert "adapted (DiffTTA) generator" in probe and probe.count("(unseen) |") == 2 * 10
    eszsl = _run([sys.executable, "-m", "scripts.eszsl_reference"], work, env).stdout
    assert "| validation |" in eszsl and "| test |" in eszsl

def _leaves(d):
    for v in d.values():
        yield from (_leaves(v) if isinstance(v, dict) else [v])


def test_second_repro_does_nothing(repo):
    work, env, _ = repo
    assert _run([sys.executable, "-m", "dvc", "status", "--json"], work, env).stdout.strip() == "{}"
    out = _run([sys.executable, "-m", "dvc", "repro"], work, env).stdout
    assert "Running stage" not in out


def test_scarcity_experiment_and_methods(repo):
    work, env, _ = repo
    base = json.loads((work / "metrics" / "eval.json").read_text())
    out = _run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", "scarce", "-S", "train.seen_ratio=0.5"],
               work, env)
    assert "Running stage 'extract'" not in out.stdout  # extraction does not depend on the ratio
    for method in ("fclswgan", "zerodiff"):
        out = _run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", method, "-S", f"method={method}"],
                   work, env)
        assert "Running stage 'extract'" not in out.stdout and "Running stage 'pretrain'" not in out.stdout
    shown = json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json"], work, env).stdout)
    exps = {e["name"]: e for e in _experiments(shown)}
    assert {"scarce", "fclswgan", "zerodiff"} <= set(exps)
    metrics = lambda n: exps[n]["data"]["metrics"]["metrics/eval.json"]["data"]  # noqa: E731
    assert metrics("scarce")["validation"] == 0
    scarce = exps["scarce"]["data"]["metrics"]["metrics/eval.json"]["data"]
    assert scarce["seen_ratio"] == 0.5 and scarce["n_train"] < base["n_train"]
    for method in ("fclswgan", "zerodiff"):
        m = exps[method]["data"]["metrics"]["metrics/eval.json"]["data"]
        assert m["transductive"] == 0 and m["synthetic"]["n_partial"] == 0 and "tta" not in m
    # seen spuriousness reads the trained generator, before DiffTTA, for every method: ZeroDiff++ and
    # the inductive ZeroDiff share it, so they share the metric (the adapted one has seen test features)
    seen_keys = ("seen", "seen_train_acc", "seen_test_acc")
    assert {k: metrics("zerodiff")["spurious"][k] for k in seen_keys} == {k: base["spurious"][k] for k in seen_keys}


def _experiments(shown):
    for rev in shown:
        for exp in rev.get("experiments") or []:
            for r in exp.get("revs", []):
                yield r


def test_replacing_an_input_file_reruns_extract(repo):
    """extract depends on the dataset folder (${data.root}): a replaced res101.mat is noticed."""
    from scipy.io import loadmat, savemat
    work, env, _ = repo
    res = Path(yaml.safe_load((work / "params.yaml").read_text())["data"]["root"]) / "res101.mat"
    original = res.read_bytes()
    try:
        mat = loadmat(res)
        savemat(res, {"features": mat["features"] * 1.01, "labels": mat["labels"]})
        status = json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], work, env).stdout)
        assert list(status) == ["extract"] and "changed deps" in status["extract"][0], status
    finally:
        res.write_bytes(original)
    assert _run([sys.executable, "-m", "dvc", "status", "--json"], work, env).stdout.strip() == "{}"


def test_bad_params_fail_before_any_work(repo, tmp_path):
    work, env, _ = repo
    bad = tmp_path / "bad"
    top = {work / n for n in (".dvc", "data", "models")}  # the outputs, not the package's data/ folder
    shutil.copytree(work, bad, ignore=lambda d, names: [n for n in names if Path(d) / n in top])
    p = yaml.safe_load((bad / "params.yaml").read_text())
    p["train"]["seen_ratio"] = 0
    (bad / "params.yaml").write_text(yaml.safe_dump(p))
    out = _run([sys.executable, "-m", "stages.pretrain"], bad, env, check=False)
    assert out.returncode == 1 and "train.seen_ratio: expected a value in (0" in out.stderr
    # one clear line for the user, the traceback in the stage's debug log only
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("ERROR: stage pretrain: params.yaml: train.seen_ratio")
    assert "Traceback" in (bad / "logs" / "pretrain.log").read_text()
    assert not (bad / "data" / "prepared").exists()


def test_sweep_script_on_a_tiny_grid(repo):
    work, env, _ = repo
    out = subprocess.run([sys.executable, "-m", "scripts.sweep", "--ratios", "0.5,1.0", "--seeds", "0", "--prefix", "t",
                          "--out", "results/t"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    summary = (work / "results" / "t" / "summary.md").read_text()
    assert "| zerodiffpp | 0.5 | 1 |" in summary and "| zerodiffpp | 1.0 | 1 |" in summary
    assert (work / "results" / "t" / "sweep.png").stat().st_size > 0


def test_the_study_runner_runs_the_pipelines_code(repo):
    """The in-process study runner reproduces `dvc exp run` under the validation protocol exactly, and
    its variants share the fold's generators (a post-training change reruns adapt onwards only)."""
    work, env, _ = repo
    _run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", "val-1thread", "-S", "data.protocol=validation",
          "-S", "train.threads=1"], work, env)
    shown = json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json"], work, env).stdout)
    dvc_metrics = next(e for e in _experiments(shown) if e["name"] == "val-1thread")["data"]["metrics"]
    dvc_metrics = dvc_metrics["metrics/eval.json"]["data"]
    # the validation protocol (one run serves the scarcity test's protocol check too): the embedded
    # set's validation classes cat and horse join the unseen side
    assert dvc_metrics["validation"] == 1 and dvc_metrics["n_seen_classes"] == 27 and \
        dvc_metrics["n_unseen_classes"] == 13
    out = _run([sys.executable, "-m", "scripts.study", "--folds", "own", "--variant", "dec",
                "tta.unseen_labels=decoder", "--variant", "ind", "method=zerodiff",
                "--out", "results/fs/rows.jsonl"], work, env).stdout
    rows = [json.loads(line) for line in (work / "results" / "fs" / "rows.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["base", "dec", "ind"] and {r["fold"] for r in rows} == {""}
    base = rows[0]
    assert base["T1"] == dvc_metrics["zsl"]["T1"] and base["H"] == dvc_metrics["gzsl"]["H"]
    assert rows[2]["pseudo_label_acc"] is None and rows[1]["pseudo_label_acc"] is not None
    assert "| zerodiffpp | 1.0 | dec | 1 |" in out and "| zerodiffpp (transductive" in out
    bad = _run([sys.executable, "-m", "scripts.study", "--variant", "x", "tta.no_such_key=1"], work, env,
               check=False)
    assert bad.returncode != 0 and "tta.no_such_key" in bad.stderr
