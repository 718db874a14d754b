"""Benchmark: the ZeroDiff train step at paper widths on CUB-shaped inputs.

Prints iterations per second (one iteration = gen.critic_iter critic steps + one generator step),
the model FLOPs per iteration (counted by torch's profiler over a real iteration, backward
and gradient-penalty double-backward included), the achieved FLOP rate, and that rate as a
fraction of a plain matrix-multiply rate measured in the same run on the same GEMM shapes.

    python -m benchmarks.train_step [--device auto] [--iters 3] [--width 4096]
"""
import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from zerodiffpp.params import load_params
from zerodiffpp.runtime import resolve_device
from zerodiffpp.zerodiff import ZeroDiffTrainer

X_DIM, ATT_DIM, REP_DIM, BATCH, N_CLASSES = 2048, 312, 2048, 64, 150


def make_trainer(width: int, device) -> ZeroDiffTrainer:
    p = load_params()
    g = dict(p["gen"], hidden=width, critic_hidden=width, dec_hidden=width, noise_dim=ATT_DIM, cond_dim=ATT_DIM,
             batch_size=BATCH)
    d = dict(p["diffusion"], time_dim=ATT_DIM)
    rng = np.random.default_rng(0)
    n = 2000
    x, r = rng.random((n, X_DIM), np.float32), rng.random((n, REP_DIM), np.float32)
    att = rng.random((N_CLASSES, ATT_DIM)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    return ZeroDiffTrainer(x, r, rng.integers(0, N_CLASSES, n), att, g, d, device)


def iteration(tr: ZeroDiffTrainer) -> None:
    for _ in range(tr.p["critic_iter"]):
        _, last = tr.critic_step()
    tr.generator_step(*last)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def gemm_rate(tr: ZeroDiffTrainer, device, repeats: int = 3) -> float:
    """FLOP/s of plain (BATCH x in) @ (in x out) products over every Linear layer of the run."""
    shapes = [m.weight.shape for net in [*tr.gen.values(), *tr.critics.values(), tr.dec]
              for m in net.modules() if isinstance(m, torch.nn.Linear)]
    mats = [(torch.rand(BATCH, i, device=device), torch.rand(i, o, device=device)) for o, i in shapes]
    for a, b in mats:
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        for a, b in mats:
            a @ b
    sync(device)
    return repeats * sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in mats) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--width", type=int, default=4096)
    a = ap.parse_args()
    device = resolve_device(a.device)
    torch.manual_seed(0)
    tr = make_trainer(a.width, device)
    n_params = sum(q.numel() for net in [*tr.gen.values(), *tr.critics.values(), tr.dec] for q in net.parameters())
    iteration(tr)  # warm-up
    # torch's profiler counts the FLOPs of every matrix product it runs, backward and the gradient
    # penalty's double backward included (FlopCounterMode cannot follow autograd.grad here)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        iteration(tr)
    flops = sum(e.flops for e in prof.key_averages() if e.flops)
    sync(device)
    t = time.perf_counter()
    for _ in range(a.iters):
        iteration(tr)
    sync(device)
    per_iter = (time.perf_counter() - t) / a.iters
    achieved, peak = flops / per_iter, gemm_rate(tr, device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, widths {a.width}, batch {BATCH}, "
          f"x {X_DIM} / a {ATT_DIM} / r {REP_DIM}, critic_iter {tr.p['critic_iter']}, {n_params / 1e6:.1f} M params")
    print(f"iterations per second   {1 / per_iter:.3f}  ({per_iter * 1000:.0f} ms per iteration)")
    print(f"model FLOPs / iteration {flops / 1e9:.1f} GFLOP")
    print(f"achieved FLOP rate      {achieved / 1e9:.1f} GFLOP/s")
    print(f"plain GEMM rate         {peak / 1e9:.1f} GFLOP/s (same layer shapes, batch {BATCH})")
    print(f"fraction of GEMM rate   {achieved / peak:.2f}")


if __name__ == "__main__":
    main()
