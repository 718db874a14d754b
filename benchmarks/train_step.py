"""Benchmark: the ZeroDiff train step, at paper widths on CUB-shaped inputs or at the embedded default.

Prints iterations per second (one iteration = gen.critic_iter critic steps + one generator step),
the model FLOPs per iteration (counted by torch's profiler over a real iteration, backward
and gradient-penalty included), the achieved FLOP rate, and that rate as a fraction of a plain
matrix-multiply rate measured in the same run on the same GEMM shapes.

    python -m benchmarks.train_step [--device auto] [--iters 3] [--width 4096]
    python -m benchmarks.train_step --shape embedded --iters 40   # params.yaml widths, 1280-d x, 18 attributes
"""
import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from zerodiffpp.params import load_params
from zerodiffpp.runtime import resolve_device
from zerodiffpp.dfg import ZeroDiffTrainer

BATCH = 64
# (x dim, attribute dim, r dim, classes, training samples) of the two input shapes
SHAPES = {"cub": (2048, 312, 2048, 150, 2000), "embedded": (1280, 18, 128, 10, 5600)}


def make_trainer(shape: str, width: int, device) -> ZeroDiffTrainer:
    """Paper shape: every width set to `width` and the noise / embedding sizes to the attribute
    size, as the official CUB settings. Embedded shape: params.yaml's gen section as it is."""
    x_dim, att_dim, rep_dim, n_classes, n = SHAPES[shape]
    p = load_params()
    g, d = dict(p["gen"], batch_size=BATCH), dict(p["diffusion"])
    if shape == "cub":
        g.update(hidden=width, critic_hidden=width, dec_hidden=width, noise_dim=att_dim, cond_dim=att_dim)
        d.update(time_dim=att_dim)
    rng = np.random.default_rng(0)
    x, r = rng.random((n, x_dim), np.float32), rng.random((n, rep_dim), np.float32)
    att = rng.random((n_classes, att_dim)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    return ZeroDiffTrainer(x, r, rng.integers(0, n_classes, n), att, g, d, device)


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


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--width", type=int, default=4096, help="all widths, shape cub only")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="cub")
    a = ap.parse_args(argv)
    device = resolve_device(a.device)
    torch.manual_seed(0)
    tr = make_trainer(a.shape, a.width, device)
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
    x_dim, att_dim, rep_dim = SHAPES[a.shape][:3]
    print(f"device {device}, torch threads {torch.get_num_threads()}, shape {a.shape}, widths {tr.p['hidden']}, "
          f"batch {BATCH}, x {x_dim} / a {att_dim} / r {rep_dim}, critic_iter {tr.p['critic_iter']}, "
          f"{n_params / 1e6:.1f} M params")
    print(f"iterations per second   {1 / per_iter:.3f}  ({per_iter * 1000:.0f} ms per iteration)")
    print(f"model FLOPs / iteration {flops / 1e9:.1f} GFLOP")
    print(f"achieved FLOP rate      {achieved / 1e9:.1f} GFLOP/s")
    print(f"plain GEMM rate         {peak / 1e9:.1f} GFLOP/s (same layer shapes, batch {BATCH})")
    print(f"fraction of GEMM rate   {achieved / peak:.2f}")


if __name__ == "__main__":
    main()
