"""How scripts.sweep runs its grid points. Two runners are DVC's own, two give each point a workspace of its own.

queue     `dvc exp run --queue` per point, then `dvc exp run --run-all -j N` (DVC's celery workers).
temp      `dvc exp run --temp` per point, one after another.
workers   a thread pool (concurrent.futures) of one worker per GPU (`--gpus`) or N CPU workers (`--workers`); each
          point runs `run_point` with CUDA_VISIBLE_DEVICES set to its worker's GPU ("" for a CPU worker).
submitit  each point is a submitit job (one Slurm job array), or a local process with `--cluster local`;
          the job runs `run_point` through `PointJob`, which submitit requeues when Slurm preempts it or its
          time limit nears: the requeued job reruns `dvc exp run` in the same clone, and the interrupted
          stage resumes from its checkpoint there (zerodiffpp/runtime/checkpoints.py).

run_point: `git clone --shared` of the repository at the sweep's commit (uncommitted edits to tracked files are
applied as a patch, as DVC's queue would include them) into <jobs-dir>/ws/<name>, the main repository's DVC cache
as its cache, then `dvc exp run -n <name> -S ...` there. The driver `dvc exp pull`s the finished experiment from
that clone into the main repository, so `dvc exp show` lists it, and deletes the clone. Failed points keep their
clone and log; a rerun of the same command imports what finished, skips what is in `dvc exp show` and runs the rest.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("scripts.sweep")
SLURM_ACTIVE = {"PENDING", "READY", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED",
                "PREEMPTED"}


def dvc(*args, check=True, capture=False, cwd=None):
    log.info("$ dvc %s", " ".join(map(str, args)))
    return subprocess.run([sys.executable, "-m", "dvc", *map(str, args)], check=check, text=True,
                          capture_output=capture, cwd=cwd)


def set_args(sets) -> list[str]:
    return [x for s in sets for x in ("-S", s)]


def run_queue(points, jobs: int) -> None:
    for name, sets in points:
        dvc("exp", "run", "--queue", "-n", name, *set_args(sets))
    dvc("exp", "run", "--run-all", "-j", jobs)


def run_temp(points) -> None:
    for name, sets in points:
        dvc("exp", "run", "--temp", "-n", name, *set_args(sets))


def experiment_commits(cwd=None) -> set[str]:
    """Commits of the finished experiments: the ones with a ref under refs/exps."""
    out = subprocess.run(["git", "for-each-ref", "--format=%(objectname)", "refs/exps"], cwd=cwd,
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def finished_only(revs, commits: set[str]):
    """Drop `dvc exp show` entries that are not finished experiments. An interrupted or running
    `dvc exp run --temp` is listed under its name too, with the *baseline's* metrics (its workspace
    files), and would otherwise count as a finished point with another run's numbers."""
    return [(base, r) for base, r in revs if r.get("rev") in commits]


def shown(all_commits: bool):
    """(baseline commit, experiment rev dict) for every finished experiment in `dvc exp show --json`."""
    revs = [(rev.get("rev"), r)
            for rev in json.loads(dvc("exp", "show", "--json", *(["-A"] if all_commits else []), capture=True).stdout)
            for exp in rev.get("experiments") or [] for r in exp.get("revs", [])]
    return finished_only(revs, experiment_commits())


def has_metrics(r: dict) -> bool:
    return bool(((r.get("data") or {}).get("metrics") or {}).get("metrics/eval.json", {}).get("data"))


def devices_for(gpus: list[int] | None, workers: int | None, n_cuda: int, visible: str = ""):
    """(CUDA_VISIBLE_DEVICES value per worker, a one-line message or None). GPU ids are as torch counts them in
    this shell, so they are mapped through an already set CUDA_VISIBLE_DEVICES. "" means a CPU worker."""
    if workers:
        return [""] * workers, None
    physical = [v for v in visible.split(",") if v.strip()] or [str(i) for i in range(n_cuda)]
    usable = [g for g in gpus if g < n_cuda]
    flag = "--gpus " + ",".join(map(str, gpus))
    if not usable:
        return [""], (f"{flag}: torch sees no CUDA GPU; running the points one after another on the CPU "
                      "(--workers N runs N CPU workers at once)")
    msg = None if len(usable) == len(gpus) else (
        f"{flag}: torch sees only {n_cuda} GPU(s); one worker per GPU on {','.join(map(str, usable))}")
    return [physical[g] for g in usable], msg


def run_point(root: str, commit: str, patch: str | None, cache: str, name: str, sets: list[str], ws: str,
              env: dict | None = None, log_path: str | None = None, resume: bool = False) -> str:
    """One grid point in its own shared clone (what a worker or a submitit job runs). Raises when a step fails.
    With `resume` (a requeued job) an existing clone is kept, with the stage checkpoints inside it, and only
    `dvc exp run` runs again."""
    ws_path = Path(ws)
    out = open(log_path, "a") if log_path else None  # None: the job's own stdout/stderr (submitit's log files)
    run_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               **(env or {})}

    def sh(*cmd, cwd=ws_path):
        print(f"{time.strftime('%H:%M:%S')} [{name}] $ {' '.join(map(str, cmd))}", file=out or sys.stdout, flush=True)
        # its own process group: when this job is interrupted (a requeue exits this process), dvc and the
        # stage it runs are killed with it instead of running on, orphaned, in the clone
        proc = subprocess.Popen(list(map(str, cmd)), cwd=cwd, env=run_env, stdout=out,
                                stderr=subprocess.STDOUT if out else None, start_new_session=True)
        try:
            code = proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        if code:
            raise subprocess.CalledProcessError(code, cmd)
    print(f"{time.strftime('%H:%M:%S')} [{name}] on {socket.gethostname()}, CUDA_VISIBLE_DEVICES="
          f"{run_env.get('CUDA_VISIBLE_DEVICES', '(not set)')!r}", file=out or sys.stdout, flush=True)
    try:
        if resume and (ws_path / ".git").exists():
            print(f"{time.strftime('%H:%M:%S')} [{name}] requeued: resuming in {ws_path}", file=out or sys.stdout,
                  flush=True)
            sh(sys.executable, "-m", "dvc", "exp", "run", "-n", name, *set_args(sets))
            return name
        if ws_path.exists():
            shutil.rmtree(ws_path)
        ws_path.parent.mkdir(parents=True, exist_ok=True)
        sh("git", "clone", "-q", "--shared", "--no-checkout", root, ws_path, cwd=ws_path.parent)
        sh("git", "checkout", "-q", "--detach", commit)
        if patch:
            sh("git", "apply", "--whitespace=nowarn", patch)
        if (Path(root) / ".dvc" / "config.local").exists():
            shutil.copy(Path(root) / ".dvc" / "config.local", ws_path / ".dvc" / "config.local")
        sh(sys.executable, "-m", "dvc", "config", "--local", "cache.dir", cache)
        sh(sys.executable, "-m", "dvc", "exp", "run", "-n", name, *set_args(sets))
    finally:
        if out:
            out.close()
    return name


class PointJob:
    """`run_point` as a submitit job that is requeued, not lost, when Slurm preempts it or its time limit
    nears (submitit.helpers.Checkpointable: on the signal, `checkpoint` gives the submission to requeue)."""

    def __call__(self, *args, resume: bool = False) -> str:
        return run_point(*args, resume=resume)

    def checkpoint(self, *args, resume: bool = False):
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(self, *args, resume=True)


@dataclass
class Repo:
    """The main repository as the clone-per-point runners see it."""
    root: Path
    commit: str
    patch: str | None
    cache: str
    jobs_dir: Path

    @classmethod
    def here(cls, jobs_dir: str | None, prefix: str) -> "Repo":
        git = lambda *a: subprocess.run(["git", *a], check=True, capture_output=True, text=True).stdout  # noqa: E731
        root = Path(git("rev-parse", "--show-toplevel").strip())
        jobs = Path(jobs_dir).resolve() if jobs_dir else root / ".dvc" / "tmp" / "sweep" / prefix
        jobs.mkdir(parents=True, exist_ok=True)
        diff, patch = git("diff", "--binary", "HEAD"), None
        if diff.strip():
            patch = str(jobs / f"workspace-{hashlib.sha1(diff.encode()).hexdigest()[:10]}.patch")
            Path(patch).write_text(diff)
            log.warning("uncommitted changes to tracked files: every job applies them (%s) on top of HEAD", patch)
        cache = dvc("cache", "dir", capture=True).stdout.strip()
        return cls(root, git("rev-parse", "HEAD").strip(), patch, cache, jobs)

    def ws(self, name: str) -> Path:
        return self.jobs_dir / "ws" / name

    def args(self, name: str, sets) -> tuple:
        return str(self.root), self.commit, self.patch, self.cache, name, list(sets), str(self.ws(name))

    def import_point(self, name: str) -> bool:
        """Pull a finished point's experiment from its clone into this repository, then delete the clone."""
        ws = self.ws(name)
        if not (ws / ".git").exists():
            return False
        refs = subprocess.run(["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps"], cwd=ws,
                              capture_output=True, text=True).stdout.splitlines()
        ref = next((r.split() for r in refs if r.endswith("/" + name) and " refs/exps/exec/" not in r), None)
        if not ref:
            return False
        # --force replaces a same-named experiment without metrics; with it DVC 3.67 reports "No experiments to
        # pull." even when it pulled, so the ref itself is checked
        dvc("exp", "pull", "--force", "--no-cache", ws, name, capture=True)
        here = subprocess.run(["git", "rev-parse", "-q", "--verify", ref[1]], cwd=self.root, capture_output=True,
                              text=True).stdout.strip()
        if here != ref[0]:
            raise RuntimeError(f"dvc exp pull {ws} {name} did not bring {ref[1]} into {self.root}")
        shutil.rmtree(ws)
        return True

    def todo(self, points) -> list:
        """The points still to run: not in `dvc exp show` for HEAD with metrics, and not finished in a clone."""
        done = {r["name"] for base, r in shown(all_commits=False) if base == self.commit and has_metrics(r)}
        rest = [p for p in points if p[0] not in done and not self.import_point(p[0])]
        log.info("%d of %d points already finished (not rerun); %d to run; jobs folder %s",
                 len(points) - len(rest), len(points), len(rest), self.jobs_dir)
        return rest


def run_workers(repo: Repo, points, devices: list[str]) -> list[tuple[str, str]]:
    """One worker thread per device; each point a `run_point`. Returns (name, log path) of the failed points."""
    todo, free, failed = repo.todo(points), queue.Queue(), []
    for d in devices:
        free.put(d)
    logs = repo.jobs_dir / "logs"
    logs.mkdir(exist_ok=True)

    def one(name, sets):
        dev = free.get()
        try:
            log.info("%s: started on %s, log %s", name, f"GPU {dev}" if dev else "CPU", logs / f"{name}.log")
            run_point(*repo.args(name, sets), env={"CUDA_VISIBLE_DEVICES": dev}, log_path=str(logs / f"{name}.log"))
        finally:
            free.put(dev)
    with cf.ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = {pool.submit(one, name, sets): name for name, sets in todo}
        for k, fut in enumerate(cf.as_completed(futures), 1):
            name = futures[fut]
            if not finish(repo, name, fut.result, f"{k}/{len(todo)}", str(logs / f"{name}.log")):
                failed.append((name, str(logs / f"{name}.log")))
    return failed


def finish(repo: Repo, name: str, result, progress: str, logs: str) -> bool:
    """Import a point whose worker or job ended (`result()` raises if it failed); log the outcome."""
    try:
        result()
        error = None if repo.import_point(name) else "it ended but its clone holds no experiment"
    except Exception as e:  # a failed command, or submitit's FailedJobError / UncompletedJobError
        error = (str(e).strip().splitlines() or [type(e).__name__])[-1]
    if error:
        log.error("%s: FAILED (%s); logs %s", name, error, logs)
    else:
        log.info("%s: done (%s)", name, progress)
    return error is None


def run_submitit(repo: Repo, points, cluster: str, resources: dict, wait: bool = True):
    """Submit the points still to run as one submitit batch (a Slurm job array); reattach to this sweep's Slurm
    jobs that are still queued or running. Returns the failed points' (name, log paths), or None with --no-wait."""
    import submitit
    from submitit.helpers import as_completed
    todo, folder, record = repo.todo(points), repo.jobs_dir / "submitit", repo.jobs_dir / "jobs.json"
    known = json.loads(record.read_text()) if record.exists() else {}
    jobs = {}
    if cluster == "slurm":
        for name, _ in todo:
            if name in known and (job := submitit.SlurmJob(folder, known[name])).state in SLURM_ACTIVE:
                log.info("%s: job %s is still %s: waiting for it, not resubmitting", name, job.job_id, job.state)
                jobs[name] = job
    new = [(n, s) for n, s in todo if n not in jobs]
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**resources)
    if new:
        with executor.batch():
            submitted = [executor.submit(PointJob(), *repo.args(name, sets)) for name, sets in new]
        for (name, _), job in zip(new, submitted):
            jobs[name] = job
            known[name] = job.job_id
            log.info("%s: submitted as %s job %s, log %s", name, cluster, job.job_id, job.paths.stdout)
        record.write_text(json.dumps(known, indent=1))
    if not wait and jobs:
        return None
    names, failed = {job.job_id: name for name, job in jobs.items()}, []
    for k, job in enumerate(as_completed(list(jobs.values()), poll_frequency=5 if cluster == "slurm" else 1), 1):
        name, logs = names[job.job_id], f"{job.paths.stdout} {job.paths.stderr}"
        if not finish(repo, name, job.result, f"{k}/{len(jobs)}, job {job.job_id}", logs):
            failed.append((name, logs))
    return failed
