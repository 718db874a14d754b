"""Small pieces every training loop shares: batch sampling, optimisers, loss curves, checkpoints."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from zerodiffpp.runtime.errors import DivergedError


def adam(params, lr: float, betas=(0.5, 0.999)) -> torch.optim.Adam:
    """Adam with the GAN betas of the official code. The fused kernel (one pass over all parameters)
    cut the optimiser's share of a critic step from about a quarter to a few percent on CPU."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


def iters_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def random_batch(n: int, batch_size: int, device) -> torch.Tensor:
    """A fresh random draw of min(batch, n) distinct indices (as the official code samples)."""
    return torch.randperm(n, device=device)[:min(batch_size, n)]


def to_tensor(a: np.ndarray, device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)


class Curve:
    """Per-epoch means of named losses, written as a CSV plot by the stage.

    Values may be tensors on the training device: they stay there, and `end_epoch` reads every mean
    back in one transfer, so a training loop makes no host sync per step (on a GPU each `.item()`
    would wait for the queued work to finish)."""

    def __init__(self, prefix: str = "", live=None):
        """`live` (a live.LiveLog) receives each finished epoch's row (DVCLive: dvc plots, dvc exp show)."""
        self.prefix, self.rows, self._acc, self.live = prefix, [], defaultdict(list), live
        self.losses: dict[str, float] = {}  # the last epoch's means of what was added (its row without `extra`)

    def add(self, **values) -> None:
        for k, v in values.items():
            self._acc[k].append(v.detach() if torch.is_tensor(v) else float(v))

    def restore(self, rows: list[dict]) -> None:
        """The rows of a resumed run's finished epochs (also written to `live` again: DVC removed them)."""
        self.rows = list(rows)
        if self.live is not None:
            self.live.rows(self.rows)

    def end_epoch(self, epoch: int, **extra) -> dict:
        """The epoch's row: the means of what was added, then `extra` (e.g. the learning diagnostics)."""
        on_device = [k for k, v in self._acc.items() if torch.is_tensor(v[0])]
        means = {k: float(np.mean(v)) for k, v in self._acc.items() if k not in on_device}
        if on_device:  # the epoch's one host read
            stacked = torch.stack([torch.stack([v.double() for v in self._acc[k]]).mean() for k in on_device])
            means.update(zip(on_device, stacked.tolist()))
        self.losses = {f"{self.prefix}{k}": means[k] for k in self._acc}
        row = {"step": epoch, **self.losses, **extra}
        self.rows.append(row)
        self._acc.clear()
        if self.live is not None:
            self.live.epoch(row)
        return row


def require_finite(what: str, nets: dict[str, torch.nn.Module], losses: dict[str, float], fix: str) -> None:
    """Stop a generator that diverged: its NaN features would reach every classifier after it, and
    those would still report finite, meaningless metrics (the arg-max of a NaN row is class 0)."""
    bad = [f"{name} weights" for name, net in nets.items()
           if not all(torch.isfinite(v).all() for v in net.state_dict().values() if v.is_floating_point())]
    bad += [f"{k} loss ({v})" for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise DivergedError(f"{what} diverged, not finite: {', '.join(bad)}; {fix}")


def set_requires_grad(modules, flag: bool) -> None:
    for m in modules:
        if m is not None:
            for p in m.parameters():
                p.requires_grad_(flag)
