"""Benchmark: one training iteration of the ZeroDiff generator (DFG) or the DRG, at paper widths on
CUB-shaped inputs or at the embedded default's widths.

Prints iterations per second (one iteration = critic_iter critic steps + one generator step), the
model FLOPs per iteration (counted by torch's profiler over a real iteration, backward and gradient
penalty included), the achieved FLOP rate and its fraction of a plain matrix-multiply rate measured
in the same run on the same GEMM shapes, and what a GPU pays per iteration besides the arithmetic:
host syncs (reads of a device value on the host, e.g. `.item()`: each waits for the queued work),
dispatched operators, and host-to-device copies (here: lookups of a diffusion schedule that does not
live on the device).

    python -m benchmarks.train_step [--model dfg|drg] [--device auto] [--iters 3] [--width 4096]
    python -m benchmarks.train_step --shape embedded --iters 40   # params.yaml widths, 1280-d x, 18 attributes
"""
import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from zerodiffpp.nn import diffusion
from zerodiffpp.generators.dfg import ZeroDiffTrainer
from zerodiffpp.generators.drg import DRGTrainer
from zerodiffpp.runtime.params import load_params
from zerodiffpp.runtime.session import compile_networks, resolve_device

BATCH = 64
# (x dim, attribute dim, r dim, classes, training samples) of the two input shapes
SHAPES = {"cub": (2048, 312, 2048, 150, 2000), "embedded": (1280, 18, 128, 10, 5600)}


def make_trainer(model: str, shape: str, width: int, device):
    """Paper shape: every width set to `width` and the noise / embedding sizes to the attribute
    size, as the official CUB settings. Embedded shape: params.yaml's sections as they are."""
    x_dim, att_dim, rep_dim, n_classes, n = SHAPES[shape]
    p = load_params()
    section = "gen" if model == "dfg" else "drg"
    g, d = dict(p[section], batch_size=BATCH), dict(p["diffusion"])
    if shape == "cub":
        g.update(hidden=width, critic_hidden=width, noise_dim=att_dim)
        if model == "dfg":
            g.update(dec_hidden=width, cond_dim=att_dim)
        d.update(time_dim=att_dim)
    rng = np.random.default_rng(0)
    x, r = rng.random((n, x_dim), np.float32), rng.random((n, rep_dim), np.float32)
    att = rng.random((n_classes, att_dim)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    y = rng.integers(0, n_classes, n)
    if model == "dfg":
        return ZeroDiffTrainer(x, r, y, att, g, d, device)
    return DRGTrainer(r, y, att, g, d, device)


def networks(tr) -> list[torch.nn.Module]:
    if isinstance(tr, ZeroDiffTrainer):
        return [tr.gen["E"], tr.gen["G"], *tr.critics.values(), tr.dec]
    return [tr.gen, tr.d_r0, tr.d_rt]


def iteration(tr) -> None:
    for _ in range(tr.p["critic_iter"]):
        _, last = tr.critic_step()
    tr.generator_step(*last)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def gemm_rate(tr, device, repeats: int = 3) -> float:
    """FLOP/s of plain (BATCH x in) @ (in x out) products over every Linear layer of the run."""
    shapes = [m.weight.shape for net in networks(tr) for m in net.modules() if isinstance(m, torch.nn.Linear)]
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


def schedule_lookups(tr) -> tuple[int, int]:
    """(diffusion-schedule lookups of one iteration, those that copy coefficients to the device).
    A lookup copies when the schedule does not live on the device: on a GPU, a host-to-device
    transfer per lookup (the trainers move the schedule there once)."""
    real_at, copies = diffusion._at, []

    def counting(coef, t, like):
        copies.append(coef.device != like.device)
        return real_at(coef, t, like)
    diffusion._at = counting
    try:
        iteration(tr)
    finally:
        diffusion._at = real_at
    return len(copies), sum(copies)


def _inside_another_operator(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::") and parent.name != "aten::item":
            return True
        parent = parent.cpu_parent
    return False


def dispatch_counts(prof) -> tuple[int, int]:
    """(host syncs, top-level operators) of a profiled iteration. A host sync is a read of a device
    scalar on the host from the training code (aten::_local_scalar_dense: .item(), float(t),
    bool(t), `if t:`). Reads inside another operator are left out: on a CPU, fused Adam reads its
    step counts that way, which on a GPU stay on the device inside the kernel."""
    events = prof.events()
    syncs = sum(e.name == "aten::_local_scalar_dense" and not _inside_another_operator(e) for e in events)
    top_level = sum(e.name.startswith("aten::") and e.cpu_parent is None for e in events)
    return syncs, top_level


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["dfg", "drg"], default="dfg", help="the ZeroDiff generator or the DRG")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--width", type=int, default=4096, help="all widths, shape cub only")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="cub")
    ap.add_argument("--no-tf32", action="store_true", help="CUDA: full float32 matrix products")
    ap.add_argument("--compile", action="store_true", help="torch.compile the networks (train.compile)")
    a = ap.parse_args(argv)
    device = resolve_device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not a.no_tf32
    torch.manual_seed(0)
    tr = make_trainer(a.model, a.shape, a.width, device)
    compile_networks(networks(tr), a.compile)
    n_params = sum(q.numel() for net in networks(tr) for q in net.parameters())
    iteration(tr)  # warm-up
    # torch's profiler counts the FLOPs of every matrix product it runs, backward and the gradient
    # penalty included (FlopCounterMode cannot follow autograd.grad here)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        iteration(tr)
    flops = sum(e.flops for e in prof.key_averages() if e.flops)
    syncs, ops = dispatch_counts(prof)
    lookups, copies = schedule_lookups(tr)
    sync(device)
    t = time.perf_counter()
    for _ in range(a.iters):
        iteration(tr)
    sync(device)
    per_iter = (time.perf_counter() - t) / a.iters
    achieved, peak = flops / per_iter, gemm_rate(tr, device)
    x_dim, att_dim, rep_dim = SHAPES[a.shape][:3]
    tf32 = f", tf32 {'off' if a.no_tf32 else 'on'}" if device.type == "cuda" else ""
    print(f"model {a.model}, device {device}{tf32}{', compiled' if a.compile else ''}, "
          f"torch threads {torch.get_num_threads()}, shape {a.shape}, "
          f"widths {tr.p['hidden']}, batch {BATCH}, x {x_dim} / a {att_dim} / r {rep_dim}, "
          f"critic_iter {tr.p['critic_iter']}, {n_params / 1e6:.1f} M params")
    print(f"iterations per second   {1 / per_iter:.3f}  ({per_iter * 1000:.0f} ms per iteration)")
    print(f"model FLOPs / iteration {flops / 1e9:.1f} GFLOP")
    print(f"achieved FLOP rate      {achieved / 1e9:.1f} GFLOP/s")
    print(f"plain GEMM rate         {peak / 1e9:.1f} GFLOP/s (same layer shapes, batch {BATCH})")
    print(f"fraction of GEMM rate   {achieved / peak:.2f}")
    print(f"host syncs / iteration  {syncs}")
    print(f"operators / iteration   {ops} (top-level aten calls)")
    print(f"schedule lookups / iter {lookups} ({copies} copied to the device)")


if __name__ == "__main__":
    main()
