"""Benchmark: the generation chain after training, step by step: full synthesis along the reverse
chain (synthesize), DiffGen's partial chain from step k, and one DiffTTA update (adapt).

Prints per workload the time per call and per denoising step (DiffTTA: per update), the host
syncs of one call (reads of a device value on the host, each waiting for the queued work: a
GPU's cost besides the arithmetic) and the diffusion-schedule lookups that would copy: a lookup
copies when its coefficient is not a buffer of the generator being run (such a schedule stays
behind when the generator moves to a GPU) or lives on another device than the batch. The writes of
finished batches to the host (synthesis's output array) are transfers, not counted as syncs.

    python -m benchmarks.generation_step [--shape cub|embedded] [--width 4096] [--device auto] [--reps 3]
"""
import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from zerodiffpp.nn import diffusion
from zerodiffpp.transductive.diffgen import partial_synthesis
from zerodiffpp.transductive.difftta import adaptation_step
from zerodiffpp.nn.networks import build_feature_generator
from zerodiffpp.runtime.params import load_params
from zerodiffpp.runtime.session import resolve_device
from zerodiffpp.generators.synth import Synthesizer
from zerodiffpp.nn.training import adam, to_tensor

from benchmarks.train_step import SHAPES, dispatch_counts, sync

WORKLOADS = ("synthesis", "diffgen", "difftta")


def make_synthesizer(shape: str, width: int | None, device, batch: int) -> Synthesizer:
    """A ZeroDiff generator of `shape` with random weights (the cost of a step does not depend on them),
    without r (the DRG's cost is a separate one-step call per batch)."""
    x_dim, att_dim, _, n_classes, _ = SHAPES[shape]
    p, d = load_params()["gen"], load_params()["diffusion"]
    hidden = width or p["hidden"]
    cond = att_dim if width else p["cond_dim"]
    cfg = dict(kind="zerodiff", x_dim=x_dim, att_dim=att_dim, rep_dim=0, noise_dim=att_dim if width else p["noise_dim"],
               hidden=hidden, cond_dim=cond, time_dim=att_dim if width else d["time_dim"], use_r=False,
               timesteps=d["timesteps"], beta_min=d["beta_min"], beta_max=d["beta_max"])
    att = np.random.default_rng(0).random((n_classes, att_dim)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    return Synthesizer({"config": cfg, "state": build_feature_generator(cfg).state_dict()}, None, att, device, batch)


def workload(name: str, synth: Synthesizer, batch: int, k: int):
    """(a callable running one call of the workload, the denoising steps or updates in one call)."""
    rng = np.random.default_rng(1)
    n_classes, x_dim = len(synth.att), synth.cfg["x_dim"]
    if name == "synthesis":
        classes = np.arange(n_classes)
        per_class = max(1, batch // n_classes)
        return (lambda: synth.full(classes, per_class, "progressive")), synth.cfg["timesteps"]
    x = rng.random((batch, x_dim), dtype=np.float32)
    y = rng.integers(0, n_classes, batch)
    if name == "diffgen":
        return (lambda: partial_synthesis(synth, x, None, y, k)), k
    p = dict(load_params()["tta"], batch_size=batch)
    params = list(synth.gen.parameters())
    anchor = [q.detach().clone() for q in params]
    opt = adam(params, p["lr"])
    xt, wt = to_tensor(x, synth.device), torch.ones(batch, device=synth.device)
    at = synth.att[torch.as_tensor(y, device=synth.device)]
    synth.gen.train()
    return (lambda: adaptation_step(synth, xt, None, at, wt, p, params, anchor, opt)), 1


def schedule_lookups(run, model: torch.nn.Module) -> tuple[int, int]:
    """(schedule lookups in `run()`, those that would copy: a coefficient that is not one of `model`'s
    buffers, or that lives on another device than the batch)."""
    own = {id(b) for b in model.buffers()}
    real_at, copies = diffusion._at, []

    def counting(coef, t, like):
        copies.append(id(coef) not in own or coef.device != like.device)
        return real_at(coef, t, like)
    diffusion._at = counting
    try:
        run()
    finally:
        diffusion._at = real_at
    return len(copies), sum(copies)


def measure(name: str, synth: Synthesizer, batch: int, k: int, reps: int, device) -> dict:
    run, steps = workload(name, synth, batch, k)
    run()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    syncs, ops = dispatch_counts(prof)
    lookups, copies = schedule_lookups(run, synth.gen)
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        run()
    sync(device)
    per_call = (time.perf_counter() - t) / reps
    return dict(workload=name, steps=steps, ms_per_call=1000 * per_call, ms_per_step=1000 * per_call / steps,
                syncs_per_step=syncs / steps, ops=ops, lookups=lookups, copies=copies)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="cub")
    ap.add_argument("--width", type=int, default=None, help="generator width (default: params.yaml's gen.hidden)")
    ap.add_argument("--batch", type=int, default=256, help="features per call")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    device = resolve_device(a.device)
    torch.manual_seed(0)
    k = load_params()["diffgen"]["start_step"]
    synth = make_synthesizer(a.shape, a.width, device, a.batch)
    print(f"device {device}, torch threads {torch.get_num_threads()}, shape {a.shape}, width {synth.cfg['hidden']}, "
          f"batch {a.batch}, T {synth.cfg['timesteps']}, DiffGen k {k}")
    print("| workload | steps / call | ms / call | ms / step | host syncs / step | schedule lookups | copied |")
    print("|---|---|---|---|---|---|---|")
    for name in WORKLOADS:
        m = measure(name, synth, a.batch, k, a.reps, device)
        print(f"| {name} | {m['steps']} | {m['ms_per_call']:.1f} | {m['ms_per_step']:.1f} | {m['syncs_per_step']:g} | "
              f"{m['lookups']} | {m['copies']} |")


if __name__ == "__main__":
    main()
