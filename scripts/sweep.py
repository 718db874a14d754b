"""Scarcity sweep in one command: queue a grid of DVC experiments, run it, tabulate mean and std.

    python -m scripts.sweep                                   # zerodiffpp, ratios 0.1 0.3 1.0, seeds 0 1 2
    python -m scripts.sweep --methods fclswgan,zerodiff,zerodiffpp
    python -m scripts.sweep --set tta.enabled=false --prefix no-tta
The grid is method x train.seen_ratio x train.seed (plus fixed overrides such as ablation switches).
Every run is a normal DVC experiment, so `dvc exp show` / `dvc metrics diff` see it too, and DVC's
run-cache skips what did not change (feature extraction never depends on the ratio or the seed).
Writes <out>/runs.csv, <out>/summary.csv, <out>/summary.md and <out>/sweep.png. Commit first:
queued experiments only see git-tracked files."""
import argparse
import itertools
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

from zerodiffpp.io import atomic_path, save_csv, save_text

log = logging.getLogger(__name__)

METRICS = {"T1": ("zsl", "T1"), "U": ("gzsl", "U"), "S": ("gzsl", "S"), "H": ("gzsl", "H"),
           "spurious_seen": ("spurious", "seen"), "spurious_unseen": ("spurious", "unseen")}


def exp_name(prefix: str, method: str, ratio: float, seed: int) -> str:
    return f"{prefix}-{method}-r{str(ratio).replace('.', 'p')}-s{seed}"


def grid(methods, ratios, seeds, overrides, prefix):
    """(name, [-S args]) for every grid point."""
    for method, ratio, seed in itertools.product(methods, ratios, seeds):
        sets = [f"method={method}", f"train.seen_ratio={ratio}", f"train.seed={seed}", *overrides]
        yield exp_name(prefix, method, ratio, seed), sets


def _dvc(*args, check=True, capture=False):
    cmd = [sys.executable, "-m", "dvc", *args]
    log.info("$ %s", " ".join(cmd[2:]))
    return subprocess.run(cmd, check=check, text=True, capture_output=capture)


def run_grid(points, runner: str = "queue", jobs: int = 1) -> None:
    points = list(points)
    if runner == "queue":
        for name, sets in points:
            _dvc("exp", "run", "--queue", "-n", name, *sum((["-S", s] for s in sets), []))
        _dvc("exp", "run", "--run-all", "-j", str(jobs))
    else:  # sequential temp-dir runs: no celery workers, same experiments
        for name, sets in points:
            _dvc("exp", "run", "--temp", "-n", name, *sum((["-S", s] for s in sets), []))


def collect(names: set[str]) -> list[dict]:
    """One row per named experiment: method, seen_ratio, seed and the metrics, from `dvc exp show`."""
    shown = json.loads(_dvc("exp", "show", "--json", "-A", capture=True).stdout)
    rows = []
    for rev in shown:
        for exp in rev.get("experiments") or []:
            for r in exp.get("revs", []):
                if r.get("name") not in names or not r.get("data"):
                    continue
                params = r["data"]["params"]["params.yaml"]["data"]
                metrics = (r["data"].get("metrics") or {}).get("metrics/eval.json", {}).get("data")
                if not metrics:
                    log.warning("experiment %s has no metrics (failed run?)", r["name"])
                    continue
                row = {"name": r["name"], "method": params["method"], "seen_ratio": params["train"]["seen_ratio"],
                       "seed": params["train"]["seed"]}
                row.update({k: metrics[a][b] for k, (a, b) in METRICS.items()})
                rows.append(row)
    return sorted(rows, key=lambda r: (r["method"], r["seen_ratio"], r["seed"]))


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="zerodiffpp", help="comma list of fclswgan, zerodiff, zerodiffpp")
    ap.add_argument("--ratios", default="0.1,0.3,1.0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra params override for every run (repeatable), e.g. gen.mutual_learning=false")
    ap.add_argument("--prefix", default="sweep", help="experiment name prefix")
    ap.add_argument("--runner", choices=["queue", "temp"], default="queue",
                    help="queue: dvc exp run --queue + --run-all; temp: sequential dvc exp run --temp")
    ap.add_argument("--jobs", type=int, default=1, help="parallel queue workers (2 cores: keep 1)")
    ap.add_argument("--out", default="results/sweep")
    ap.add_argument("--collect-only", action="store_true", help="tabulate experiments that already ran")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                      text=True).stdout.strip():
        logging.warning("uncommitted changes: queued experiments run the committed code plus these edits")
    points = list(grid(a.methods.split(","), [float(r) for r in a.ratios.split(",")],
                             [int(s) for s in a.seeds.split(",")], a.set, a.prefix))
    if not a.collect_only:
        run_grid(points, a.runner, a.jobs)
    rows = collect({name for name, _ in points})
    if not rows:
        raise SystemExit("no finished experiment of this grid was found (see `dvc exp show`)")
    summary = summarise(rows)
    out = Path(a.out)
    save_csv(out / "runs.csv", rows)
    save_csv(out / "summary.csv", summary)
    save_text(out / "summary.md", markdown(summary))
    plot(summary, out / "sweep.png")
    print(markdown(summary))


if __name__ == "__main__":
    main()
