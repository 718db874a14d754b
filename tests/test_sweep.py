"""scripts.sweep's runners on a tiny committed repository: the sequential `dvc exp run --temp` runner, CPU workers
standing in for GPUs (--workers 2) and submitit's local executor must give the same rows and summary, with every
run in `dvc exp show`; reruns run only what failed or is missing; --help documents every option."""
import csv
import json
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from scripts import sweep
from scripts.sweep_runners import devices_for
from tests.conftest import make_xlsa17
from tests.test_pipeline import _run, copy_repo, dvc_env
from tests.tiny import tiny_params

# Two points: zerodiffpp is the committed baseline (DVC checks its outputs out, nothing reruns), zerodiff reruns
# train onwards; --set passes the tiny baseline's own value, so every runner gets an override to forward.
GRID = ["--methods", "zerodiffpp,zerodiff", "--ratios", "1.0", "--seeds", "0", "--set", "classifier.epochs=3"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    data = make_xlsa17(tmp / "AWA2", n_seen=40, n_unseen=10, att_dim=8, x_dim=16, per_class=4)  # AWA2: 40/10 classes
    work = tmp / "repo"
    work.mkdir()
    copy_repo(work)
    params = tiny_params(data={"name": "AWA2", "root": str(data)}, train={"threads": 1})
    params["synth"]["unseen_per_class"] = 10
    params["report"]["seen_per_class"] = 10
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dvc_env(tmp)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"],
                [sys.executable, "-m", "dvc", "repro"], ["git", "add", "-A"], ["git", "commit", "-qm", "lock"]):
        _run(cmd, work, env)
    return work, env


def sweep_cli(work, env, *args, check=True):
    out = subprocess.run([sys.executable, "-m", "scripts.sweep", *args], cwd=work, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 or not check, out.stdout[-3000:] + out.stderr[-5000:]
    return out


def rows(work, out):
    """runs.csv without the experiment names (they carry the prefix)."""
    with open(work / out / "runs.csv") as f:
        return [{k: v for k, v in r.items() if k != "name"} for r in csv.DictReader(f)]


def exp_names(work, env):
    shown = json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json"], work, env).stdout)
    return {r["name"] for rev in shown for e in rev.get("experiments") or [] for r in e["revs"]}


@pytest.fixture(scope="module")
def sequential(repo):
    work, env = repo
    sweep_cli(work, env, *GRID, "--runner", "temp", "--prefix", "seq", "--out", "results/seq")
    return rows(work, "results/seq"), (work / "results/seq/summary.md").read_text()


def test_cpu_workers_match_the_sequential_runner(repo, sequential):
    work, env = repo
    out = sweep_cli(work, env, *GRID, "--workers", "2", "--prefix", "w", "--out", "results/w")
    assert rows(work, "results/w") == sequential[0] and len(sequential[0]) == 2
    assert (work / "results/w/summary.md").read_text() == sequential[1]
    assert {"w-zerodiffpp-r1p0-s0", "w-zerodiff-r1p0-s0"} <= exp_names(work, env)
    jobs = work / ".dvc/tmp/sweep/w"
    assert not list((jobs / "ws").iterdir())  # finished clones are deleted
    for name in ("w-zerodiff-r1p0-s0", "w-zerodiffpp-r1p0-s0"):  # each run saw its worker's device: none
        assert "CUDA_VISIBLE_DEVICES=''" in (jobs / f"logs/{name}.log").read_text()
    assert "started on CPU" in out.stderr and (work / "results/w/sweep.png").stat().st_size > 0


def test_submitit_local_executor_matches_the_sequential_runner_and_reruns_only_what_failed(repo, sequential):
    work, env = repo
    shutil.rmtree(work / ".dvc/cache/runs")  # so that the jobs train instead of restoring DVC's run-cache
    jobs = work / ".dvc/tmp/sweep/sub"
    (jobs / "ws").mkdir(parents=True)
    (jobs / "ws/sub-zerodiff-r1p0-s0").symlink_to(work)  # fault injection: that job cannot make its clone
    cmd = [*GRID, "--runner", "submitit", "--cluster", "local", "--slurm-time", "10", "--prefix", "sub",
           "--out", "results/sub"]
    out = sweep_cli(work, env, *cmd, check=False)
    assert out.returncode == 1 and out.stderr.count("submitted as local job") == 2, out.stderr[-3000:]
    assert "1 of 2 points failed; logs:" in out.stderr and "rerun the same command" in out.stderr
    logs = out.stderr.split("  sub-zerodiff-r1p0-s0: ")[-1].split("\n")[0].split()
    assert "symbolic link" in "".join(open(p).read() for p in logs)
    assert "| zerodiffpp | 1.0 | 1 |" in (work / "results/sub/summary.md").read_text()  # what finished is tabulated
    (jobs / "ws/sub-zerodiff-r1p0-s0").unlink()
    out = sweep_cli(work, env, *cmd)  # the same command again: only the failed point is resubmitted
    assert "1 of 2 points already finished" in out.stderr and out.stderr.count("submitted as local job") == 1
    assert "sub-zerodiff-r1p0-s0: submitted" in out.stderr
    assert "Running stage 'train'" in "".join(p.read_text() for p in (jobs / "submitit").glob("*_log.out"))
    assert rows(work, "results/sub") == sequential[0]
    assert (work / "results/sub/summary.md").read_text() == sequential[1]
    assert {"sub-zerodiffpp-r1p0-s0", "sub-zerodiff-r1p0-s0"} <= exp_names(work, env)
    assert not list((jobs / "ws").iterdir())  # finished clones are deleted


def test_failed_points_are_listed_with_their_logs(repo):
    work, env = repo
    out = sweep_cli(work, env, "--ratios", "1.0", "--seeds", "0", "--set", "tta.no_such_key=1", "--prefix", "bad",
                    "--out", "results/bad", "--workers", "1", check=False)
    assert out.returncode == 1 and "1 of 1 points failed; logs:" in out.stderr
    log = out.stderr.split("bad-zerodiffpp-r1p0-s0: ")[-1].split("\n")[0]
    assert "no_such_key" in open(log).read() and "rerun the same command" in out.stderr


def test_devices_for_gpus_workers_and_the_cpu_fallback():
    assert devices_for([0, 1], None, 2) == (["0", "1"], None)
    assert devices_for(None, 3, 0) == (["", "", ""], None)
    devices, msg = devices_for([0, 1], None, 0)
    assert devices == [""] and msg.startswith("--gpus 0,1: torch sees no CUDA GPU") and "\n" not in msg
    devices, msg = devices_for([0, 1, 2, 3], None, 2, visible="4,5")
    assert devices == ["4", "5"] and "only 2 GPU" in msg


def test_help_documents_every_option_and_bad_flags_fail_before_any_work(capsys):
    ap = sweep.parser()
    text = ap.format_help()
    for action in ap._actions:
        assert action.help, action.option_strings
        assert all(o in text for o in action.option_strings)
    for runner in ("--runner queue", "--runner temp", "--gpus 0,1,2,3", "--workers 2", "--cluster local",
                   "--runner submitit --slurm-partition"):
        assert runner in (sweep.__doc__ or "")
    assert sweep._minutes("90") == 90 and sweep._minutes("1:30:00") == 90 and sweep._minutes("1-00:00:30") == 1441
    bad = [(["--ratios", "0,1"], "--ratios"), (["--gpus", "a"], "--gpus"), (["--workers", "0"], "--workers"),
           (["--slurm-partition", "gpu"], "--slurm-partition"), (["--gpus", "0", "--runner", "temp"], "--gpus"),
           (["--slurm-time", "1:00"], "--slurm-time"), (["--methods", "x"], "--methods"),
           (["--jobs", "2", "--workers", "2"], "--jobs"), (["--jobs-dir", "x", "--runner", "temp"], "--jobs-dir"),
           (["--runner", "submitit", "--cluster", "local", "--no-wait"], "--no-wait")]
    if not shutil.which("sbatch"):
        bad.append((["--runner", "submitit"], "--cluster slurm"))
    for argv, flag in bad:
        with pytest.raises(SystemExit) as e:
            sweep.main(argv)
        assert e.value.code == 2 and flag in capsys.readouterr().err, argv


def test_an_interrupted_temp_run_is_not_a_finished_point(tmp_path):
    """`dvc exp show` lists an interrupted `dvc exp run --temp` under its name with the baseline's
    metrics (seen on 2026-12-02: a killed point reappeared with the previous defaults' numbers). Only
    experiments with a ref under refs/exps count as finished, so a rerun runs that point again."""
    from scripts.sweep_runners import experiment_commits, finished_only
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    git("init", "-q")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    done = git("rev-parse", "HEAD").strip()
    git("update-ref", "refs/exps/ab/cdef/sweep-zerodiff-r1p0-s0", done)
    revs = [("base", {"rev": done, "name": "sweep-zerodiff-r1p0-s0"}),
            ("base", {"rev": "acfabcba87887a3d017bd5700522328ce9c9add7", "name": "sweep-zerodiff-r1p0-s1"})]
    kept = finished_only(revs, experiment_commits(cwd=tmp_path))
    assert [r["name"] for _, r in kept] == ["sweep-zerodiff-r1p0-s0"]


def test_a_preempted_submitit_job_is_requeued_and_its_stage_resumes(repo, monkeypatch):
    """Slurm preemption or a near time limit, as submitit's local executor stands in for it (the signal
    it sends): the job is requeued, reruns `dvc exp run` in the same clone, and the train stage
    continues from its checkpoint there; the finished point is imported like any other."""
    import psutil
    import submitit
    from scripts.sweep_runners import PointJob, Repo
    work, env = repo
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    here = Repo.here(None, "req")
    name, sets = "req-zerodiff-r1p0-s0", ["method=zerodiff", "gen.epochs=40", "checkpoint.every_epochs=1"]
    executor = submitit.AutoExecutor(folder=here.jobs_dir / "submitit", cluster="local")
    executor.update_parameters(timeout_min=15)
    job = executor.submit(PointJob(), *here.args(name, sets))
    checkpoints = here.ws(name) / ".checkpoints" / "train"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/generator.pt")):
        assert not job.done() and time.monotonic() < deadline, (job.stdout() or "") + (job.stderr() or "")
        time.sleep(0.2)
    # what Slurm sends before preempting a job or at its time limit, to the job's own process (submitit's
    # local controller only forwards it at its time limit, which would not land in the train stage)
    from submitit.local.local import LocalJobEnvironment
    task, = psutil.Process(job._process.pid).children()
    task.send_signal(LocalJobEnvironment._usr_sig())
    assert job.result() == name
    out = (job.stdout() or "") + (job.stderr() or "")
    assert "requeued: resuming in" in out and "resuming train (generator) at epoch" in out, out[-3000:]
    assert here.import_point(name) and name in exp_names(work, env)
