"""Scarcity sweep in one command: queue a grid of DVC experiments, run it, tabulate mean and std.

    python -m scripts.sweep                                   # zerodiffpp, ratios 0.1 0.3 1.0, seeds 0 1 2
    python -m scripts.sweep --methods fclswgan,zerodiff,zerodiffpp
    python -m scripts.sweep --set tta.enabled=false --prefix no-tta
Writes <out>/runs.csv, <out>/summary.csv, <out>/summary.md and <out>/sweep.png. Commit first:
queued experiments only see git-tracked files."""
import argparse
import logging
import subprocess
from pathlib import Path

from zerodiffpp import sweep
from zerodiffpp.io import save_csv, save_text


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
    points = list(sweep.grid(a.methods.split(","), [float(r) for r in a.ratios.split(",")],
                             [int(s) for s in a.seeds.split(",")], a.set, a.prefix))
    if not a.collect_only:
        sweep.run_grid(points, a.runner, a.jobs)
    rows = sweep.collect({name for name, _ in points})
    if not rows:
        raise SystemExit("no finished experiment of this grid was found (see `dvc exp show`)")
    summary = sweep.summarise(rows)
    out = Path(a.out)
    save_csv(out / "runs.csv", rows)
    save_csv(out / "summary.csv", summary)
    save_text(out / "summary.md", sweep.markdown(summary))
    sweep.plot(summary, out / "sweep.png")
    print(sweep.markdown(summary))


if __name__ == "__main__":
    main()
