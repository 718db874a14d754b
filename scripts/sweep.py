"""Scarcity sweep in one command: run a grid of DVC experiments, tabulate mean and std.

    python -m scripts.sweep                                   # zerodiffpp, ratios 0.1 0.3 1.0, seeds 0 1 2
    python -m scripts.sweep --methods fclswgan,zerodiff,zerodiffpp --set tta.rounds=2 --prefix rounds2
Runners (how the points run; every run is a normal DVC experiment named <prefix>-<method>-r<ratio>-s<seed>):
    python -m scripts.sweep --runner queue --jobs 1           # DVC's queue: dvc exp run --queue + --run-all
    python -m scripts.sweep --runner temp                     # one after another: dvc exp run --temp
    python -m scripts.sweep --gpus 0,1,2,3                    # one worker per GPU of this machine
    python -m scripts.sweep --workers 2                       # 2 CPU workers (what the tests use for GPUs)
    python -m scripts.sweep --runner submitit --slurm-partition gpu --slurm-gpus 1 --slurm-time 2:00:00 \\
        --slurm-mem-gb 32 --slurm-cpus 8 --slurm-setup "module load cuda"   # one Slurm job array
    python -m scripts.sweep --runner submitit --cluster local # the same jobs as local processes (tests)
The grid is method x train.seen_ratio x train.seed (plus fixed overrides such as ablation switches).
`--gpus`, `--workers` and `--runner submitit` run each point in its own shared git clone under --jobs-dir with
the repository's DVC cache, and pull the finished experiment back here; rerunning the same command runs only the
points that failed or are missing (see scripts/sweep_runners.py). `dvc exp show` / `dvc metrics diff` see every
run, and DVC's run-cache skips what did not change (feature extraction never depends on the ratio or the seed).
Writes <out>/runs.csv, <out>/summary.csv, <out>/summary.md and <out>/sweep.png. Commit first: queued runs and
jobs only see git-tracked files (uncommitted edits to them are included)."""
import argparse
import itertools
import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from scripts import sweep_runners as runners
from zerodiffpp.runtime.files import atomic_path, save_csv, save_text

log = logging.getLogger("scripts.sweep")
METHODS = ("fclswgan", "zerodiff", "zerodiffpp")
METRICS = {"T1": ("zsl", "T1"), "U": ("gzsl", "U"), "S": ("gzsl", "S"), "H": ("gzsl", "H"),
           "spurious_seen": ("spurious", "seen"), "spurious_unseen": ("spurious", "unseen")}


def exp_name(prefix: str, method: str, ratio: float, seed: int) -> str:
    return f"{prefix}-{method}-r{str(ratio).replace('.', 'p')}-s{seed}"


def grid(methods, ratios, seeds, overrides, prefix):
    """(name, [-S args]) for every grid point."""
    for method, ratio, seed in itertools.product(methods, ratios, seeds):
        sets = [f"method={method}", f"train.seen_ratio={ratio}", f"train.seed={seed}", *overrides]
        yield exp_name(prefix, method, ratio, seed), sets


def run_grid(points, runner: str = "queue", jobs: int = 1) -> None:
    """DVC's own runners on this repository (the clone-per-point ones are in scripts/sweep_runners.py)."""
    runners.run_queue(points, jobs) if runner == "queue" else runners.run_temp(points)


def collect(names: set[str]) -> list[dict]:
    """One row per named experiment: method, seen_ratio, seed and the metrics, from `dvc exp show -A`.
    A name found under several commits counts once: the one under HEAD, else the first listed."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    found = {}
    for base, r in runners.shown(all_commits=True):
        if r.get("name") not in names or not r.get("data") or (r["name"] in found and base != head):
            continue
        if not runners.has_metrics(r):
            log.warning("experiment %s has no metrics (failed run?)", r["name"])
            continue
        params = r["data"]["params"]["params.yaml"]["data"]
        metrics = r["data"]["metrics"]["metrics/eval.json"]["data"]
        row = {"name": r["name"], "method": params["method"], "seen_ratio": params["train"]["seen_ratio"],
               "seed": params["train"]["seed"]}
        row.update({k: metrics[a][b] for k, (a, b) in METRICS.items()})
        found[r["name"]] = row
    return sorted(found.values(), key=lambda r: (r["method"], r["seen_ratio"], r["seed"]))


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and (sample) standard deviation per (method, seen_ratio)."""
    out = []
    keys = sorted({(r["method"], r["seen_ratio"]) for r in rows})
    for method, ratio in keys:
        group = [r for r in rows if r["method"] == method and r["seen_ratio"] == ratio]
        s = {"method": method, "seen_ratio": ratio, "n": len(group)}
        for k in METRICS:
            v = np.array([g[k] for g in group], float)
            s[f"{k}_mean"], s[f"{k}_std"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
        out.append(s)
    return out


def markdown(summary: list[dict]) -> str:
    head = "| method | seen_ratio | n | " + " | ".join(METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    for s in summary:
        cells = []
        for k in METRICS:
            scale = 100 if not k.startswith("spurious") else 1
            fmt = "{:.1f} ± {:.1f}" if scale == 100 else "{:+.3f} ± {:.3f}"
            cells.append(fmt.format(scale * s[f"{k}_mean"], scale * s[f"{k}_std"]))
        lines.append(f"| {s['method']} | {s['seen_ratio']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for method in sorted({s["method"] for s in summary}):
        pts = sorted((s for s in summary if s["method"] == method), key=lambda s: s["seen_ratio"])
        x = [s["seen_ratio"] for s in pts]
        for ax, k in zip(axes, ("H", "spurious_seen", "spurious_unseen")):
            ax.errorbar(x, [s[f"{k}_mean"] for s in pts], yerr=[s[f"{k}_std"] for s in pts], marker="o",
                        capsize=3, label=method)
            ax.set_xscale("log")
            ax.set_xlabel("train.seen_ratio")
            ax.set_title(k)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _list(kind, what, ok=lambda v: True):
    def parse(text):
        try:
            vals = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            vals = []
        if not vals or not all(ok(v) for v in vals) or len(set(vals)) != len(vals):
            raise argparse.ArgumentTypeError(f"expected a comma list of distinct {what}, got {text!r}")
        return vals
    return parse


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _minutes(text):
    """Slurm-style time: MINUTES, H:MM:SS or D-HH:MM:SS."""
    days, _, hms = text.rpartition("-")
    parts = hms.split(":")
    if not (days.isdigit() or not days) or not all(p.isdigit() for p in parts) or len(parts) not in (1, 3) \
            or (days and len(parts) != 3):
        raise argparse.ArgumentTypeError(f"expected MINUTES, H:MM:SS or D-HH:MM:SS, got {text!r}")
    h, m, s = (0, int(parts[0]), 0) if len(parts) == 1 else map(int, parts)
    return max(1, int(days or 0) * 1440 + h * 60 + m + (s + 59) // 60)


def _key_value(text):
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m scripts.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    opt = ap.add_argument
    opt("--methods", default=["zerodiffpp"], metavar="LIST", type=_list(str, "of " + ", ".join(METHODS),
        lambda m: m in METHODS), help="comma list of fclswgan, zerodiff, zerodiffpp (default zerodiffpp)")
    opt("--ratios", default=[0.1, 0.3, 1.0], metavar="LIST", type=_list(float, "train.seen_ratio values in (0, 1]",
        lambda r: 0 < r <= 1), help="comma list of train.seen_ratio values (default 0.1,0.3,1.0)")
    opt("--seeds", default=[0, 1, 2], metavar="LIST", type=_list(int, "integer seeds"),
        help="comma list of train.seed values (default 0,1,2)")
    opt("--set", action="append", default=[], metavar="KEY=VALUE",
        help="extra params override for every run (repeatable), e.g. gen.mutual_learning=false")
    opt("--prefix", default="sweep", metavar="NAME", help="experiment name prefix (default sweep)")
    opt("--runner", choices=["queue", "temp", "workers", "submitit"],
        help="queue: dvc exp run --queue + --run-all (the default); temp: sequential dvc exp run --temp; "
             "workers: one worker per --gpus GPU or --workers N CPU workers (the default when either is given); "
             "submitit: one job per point through submitit (Slurm, or --cluster local)")
    opt("--jobs", type=_positive, default=1, metavar="N", help="queue runner: parallel DVC queue workers (default 1)")
    opt("--gpus", type=_list(int, "GPU indices >= 0", lambda g: g >= 0), metavar="LIST",
        help="workers runner: one worker per GPU, e.g. 0,1,2,3 (indices as torch counts them here); each run "
             "sees only its GPU (CUDA_VISIBLE_DEVICES). Without CUDA, or with fewer GPUs, it says so and uses the "
             "GPUs there are, or runs the points one after another on the CPU")
    opt("--workers", type=_positive, metavar="N",
        help="workers runner: N CPU workers (CUDA_VISIBLE_DEVICES empty), e.g. as stand-ins for GPUs")
    opt("--jobs-dir", metavar="DIR", help="workers/submitit: where each point's clone (ws/<name>), the logs (logs/, "
        "submitit/) and jobs.json go; must be visible to the Slurm nodes (default .dvc/tmp/sweep/<prefix>)")
    opt("--out", default="runs/sweep", metavar="DIR", help="folder of the summary files (default runs/sweep, git-ignored)")
    opt("--collect-only", action="store_true", help="tabulate experiments that already ran")
    sl = ap.add_argument_group("submitit runner (Slurm resources are per job, i.e. per grid point)").add_argument
    sl("--cluster", choices=["slurm", "local"], default="slurm",
       help="slurm: sbatch job array (default); local: submitit's LocalExecutor, every job at once as a process "
            "of this machine (for tests and tiny grids)")
    sl("--slurm-partition", metavar="NAME", help="partition (sbatch --partition)")
    sl("--slurm-gpus", type=int, default=1, metavar="N", help="GPUs per job (default 1; 0 for CPU jobs)")
    sl("--slurm-cpus", type=_positive, metavar="N", help="CPUs per job (sbatch --cpus-per-task); match train.threads")
    sl("--slurm-mem-gb", type=float, metavar="GB", help="memory per job in GB (sbatch --mem)")
    sl("--slurm-time", type=_minutes, default=60, metavar="TIME", help="time limit per job: MINUTES, H:MM:SS or "
       "D-HH:MM:SS (default 60 minutes; also the local executor's timeout)")
    sl("--slurm-account", metavar="NAME", help="account to charge (sbatch --account)")
    sl("--slurm-qos", metavar="NAME", help="quality of service (sbatch --qos)")
    sl("--slurm-constraint", metavar="FEATURES", help="node features (sbatch --constraint), e.g. a100")
    sl("--slurm-max-running", type=_positive, metavar="N", help="at most this many jobs of the array at once")
    sl("--slurm-setup", action="append", default=[], metavar="SHELL",
       help="shell line run in the job before the point (repeatable), e.g. 'module load cuda'")
    sl("--slurm-extra", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
       help="any other sbatch option (repeatable), e.g. exclude=node3 or mail-type=FAIL")
    sl("--no-wait", action="store_true", help="submit and return; rerun the same command later to wait for running "
       "jobs, import finished ones and resubmit failed ones")
    return ap


def _check(ap, a):
    """Flag combinations, before any work."""
    a.runner = a.runner or ("workers" if a.gpus or a.workers else "queue")
    if a.gpus and a.workers:
        ap.error("--gpus and --workers: give one of them")
    if (a.gpus or a.workers) and a.runner != "workers":
        ap.error(f"--gpus/--workers run the workers runner; they do not combine with --runner {a.runner}")
    if a.runner == "workers" and not (a.gpus or a.workers):
        ap.error("--runner workers needs --gpus LIST or --workers N")
    if a.jobs_dir and a.runner in ("queue", "temp"):
        ap.error(f"--jobs-dir is for --gpus, --workers and --runner submitit, not --runner {a.runner}")
    if a.jobs != 1 and a.runner != "queue":
        ap.error("--jobs is for --runner queue (use --gpus or --workers for parallel runs)")
    defaults = {d.dest: d.default for d in ap._actions}
    slurm = [k for k in ("cluster", "no_wait") if getattr(a, k) != defaults[k]] + \
        [k for k in vars(a) if k.startswith("slurm_") and getattr(a, k) != defaults[k]]
    if slurm and a.runner != "submitit":
        ap.error(f"--{slurm[0].replace('_', '-')} is for --runner submitit")
    if a.runner == "submitit" and a.cluster == "slurm" and not a.collect_only and not shutil.which("sbatch"):
        ap.error("--cluster slurm: sbatch is not on PATH (--cluster local runs the jobs as processes of this machine)")
    if a.no_wait and a.cluster == "local":
        ap.error("--no-wait needs --cluster slurm: local jobs cannot be found again by a later run")
    if a.slurm_gpus < 0:
        ap.error("--slurm-gpus: expected a number >= 0")


def _run(a, points):
    """Runs the points; returns the failed ones as (name, log paths), or None when nothing is to tabulate yet."""
    if a.runner in ("queue", "temp"):
        if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                          text=True).stdout.strip():
            log.warning("uncommitted changes: queued experiments run the committed code plus these edits")
        run_grid(points, a.runner, a.jobs)
        return []
    repo = runners.Repo.here(a.jobs_dir, a.prefix)
    if a.runner == "workers":
        import torch
        n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        devices, msg = runners.devices_for(a.gpus, a.workers, n_cuda, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        if msg:
            log.warning(msg)
        return runners.run_workers(repo, points, devices)
    resources = dict(name=f"sweep-{a.prefix}", timeout_min=a.slurm_time, gpus_per_node=a.slurm_gpus,
                     cpus_per_task=a.slurm_cpus, mem_gb=a.slurm_mem_gb, slurm_partition=a.slurm_partition,
                     slurm_account=a.slurm_account, slurm_qos=a.slurm_qos, slurm_constraint=a.slurm_constraint,
                     slurm_array_parallelism=a.slurm_max_running, slurm_setup=a.slurm_setup or None,
                     slurm_additional_parameters=dict(kv.split("=", 1) for kv in a.slurm_extra) or None)
    return runners.run_submitit(repo, points, a.cluster, resources, wait=not a.no_wait)


def main(argv=None):
    ap = parser()
    a = ap.parse_args(argv)
    _check(ap, a)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    points = list(grid(a.methods, a.ratios, a.seeds, a.set, a.prefix))
    from scripts import test_log
    started_on = test_log.commit()  # the code the points run (the log entry is written at the end)
    failed = []
    if not a.collect_only:
        log.info("%d grid points, runner %s", len(points), a.runner)
        failed = _run(a, points)
        if failed is None:
            log.info("jobs submitted; rerun the same command to wait for them and tabulate the sweep")
            return
    rows = collect({name for name, _ in points})
    if not a.collect_only and "data.protocol=validation" not in a.set:
        test_log.append("sweep", {"set": a.set, "prefix": a.prefix}, rows, [name for name, _ in failed or []],
                        started_on=started_on)
    if rows:
        summary = summarise(rows)
        out = Path(a.out)
        save_csv(out / "runs.csv", rows)
        save_csv(out / "summary.csv", summary)
        save_text(out / "summary.md", markdown(summary))
        plot(summary, out / "sweep.png")
        print(markdown(summary))
    if failed:
        raise SystemExit(f"{len(failed)} of {len(points)} points failed; logs:\n"
                         + "\n".join(f"  {name}: {logs}" for name, logs in failed)
                         + "\nrerun the same command to run only the failed and missing points again")
    if not rows:
        raise SystemExit("no finished experiment of this grid was found (see `dvc exp show`)")


if __name__ == "__main__":
    main()
