"""Benchmark: the generator (DFG) and DRG training steps of two git revisions, timed in one run.

On a shared, noisy machine an absolute time means little; a ratio measured in one run, with the
two revisions interleaved, does. Each revision is checked out into a temporary git worktree and
measured in its own process through APIs both have (`ZeroDiffTrainer.critic_step/generator_step`,
`train_drg`), on the same CUB-shaped random inputs at one width:

    python -m benchmarks.compare_revisions --old 2fa6486 --new HEAD [--width 1024] [--iters 3] [--rounds 3]

Prints per model: ms per iteration of each revision (median over rounds) and their ratio, host
syncs per iteration (reads of a device scalar from the training code) and top-level operators.
"""
import argparse
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import train_step

ROOT = Path(__file__).resolve().parents[1]

# Run inside a worktree of either revision: only APIs both revisions have.
MEASURE = r'''
import json, sys, time
import numpy as np, torch
from torch.profiler import ProfilerActivity, profile
from zerodiffpp.runtime.params import load_params
model, width, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
p = load_params()
x_dim, att_dim, rep_dim, n_classes, batch = 2048, 312, 2048, 150, 64
rng = np.random.default_rng(0)
att = rng.random((n_classes, att_dim)).astype(np.float32)
att /= np.linalg.norm(att, axis=1, keepdims=True)
d = dict(p["diffusion"], time_dim=att_dim)

@@COUNTING@@
counts = dispatch_counts

if model == "dfg":
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    n = 2000
    g = dict(p["gen"], batch_size=batch, hidden=width, critic_hidden=width, dec_hidden=width, noise_dim=att_dim,
             cond_dim=att_dim)
    tr = ZeroDiffTrainer(rng.random((n, x_dim), np.float32), rng.random((n, rep_dim), np.float32),
                         rng.integers(0, n_classes, n), att, g, d, "cpu")
    def iteration():
        for _ in range(g["critic_iter"]):
            _, last = tr.critic_step()
        tr.generator_step(*last)
    iteration()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        iteration()
    syncs, ops = counts(prof)
    t = time.perf_counter()
    for _ in range(iters):
        iteration()
    ms = (time.perf_counter() - t) / iters * 1000
else:
    from zerodiffpp.generators.drg import train_drg
    g = dict(p["drg"], batch_size=batch, hidden=width, critic_hidden=width, noise_dim=att_dim)
    def run(k, epochs):  # k iterations per epoch: k batches of data
        n = batch * k
        return train_drg(rng.random((n, rep_dim), np.float32), rng.integers(0, n_classes, n), att,
                         dict(g, epochs=epochs), d, "cpu")
    run(1, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(1, 1)
    syncs, ops = counts(prof)
    t = time.perf_counter(); run(iters, 0); setup = time.perf_counter() - t
    t = time.perf_counter(); run(iters, 1)
    ms = (time.perf_counter() - t - setup) / iters * 1000
print(json.dumps({"ms": ms, "syncs": syncs, "ops": ops}))
'''
# The same sync and operator counting as benchmarks/train_step.py, pasted in: the old revision may lack it.
MEASURE = MEASURE.replace("@@COUNTING@@", inspect.getsource(train_step._inside_another_operator) + "\n"
                          + inspect.getsource(train_step.dispatch_counts))


def worktree(rev: str, where: Path) -> Path:
    path = where / rev.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT, check=True)
    return path


def measure(tree: Path, model: str, width: int, iters: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, model, str(width), str(iters)], cwd=tree,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"measuring {model} in {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="git revision measured first in each round")
    ap.add_argument("--new", default="HEAD", help="git revision compared against --old")
    ap.add_argument("--models", default="dfg,drg", help="comma list of dfg, drg")
    ap.add_argument("--width", type=int, default=1024, help="every hidden width (4096 at paper scale)")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="old/new measurements interleaved")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {rev: worktree(rev, Path(tmp)) for rev in (a.old, a.new)}
        try:
            print(f"CUB shape (x 2048, a 312, r 2048), widths {a.width}, batch 64, CPU; median of {a.rounds} rounds")
            print("| model | revision | ms / iteration | host syncs / iteration | operators / iteration |")
            print("|---|---|---|---|---|")
            for model in a.models.split(","):
                runs = {rev: [] for rev in trees}
                for _ in range(a.rounds):
                    for rev, tree in trees.items():
                        runs[rev].append(measure(tree, model, a.width, a.iters))
                med = {rev: statistics.median(r["ms"] for r in rs) for rev, rs in runs.items()}
                for rev, rs in runs.items():
                    print(f"| {model} | {rev} | {med[rev]:.0f} | {rs[0]['syncs']} | {rs[0]['ops']} |")
                print(f"| {model} | ratio new / old | {med[a.new] / med[a.old]:.2f} | | |", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
