"""Generating features with a trained generator (params section `synth`): from pure noise, in one step
or along the full reverse chain. DiffGen's partial synthesis from real features is in `diffgen`."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from zerodiffpp.nn import diffusion as dfn
from zerodiffpp.generators.drg import load_drg, sample_r
from zerodiffpp.nn.networks import build_feature_generator
from zerodiffpp.nn.ridge import ridge_class_means
from zerodiffpp.nn.training import to_tensor

KIND_FULL, KIND_PARTIAL = 0, 1  # synthetic.npz's `kind`: fully generated, or partially synthesised by DiffGen


class Synthesizer:
    """Wraps a generator checkpoint (ZeroDiff or f-CLSWGAN) and, for ZeroDiff, the DRG that gives r."""

    def __init__(self, gen_ckpt: dict, drg_ckpt: dict | None, att: np.ndarray, device, batch: int = 4096):
        self.cfg, self.device, self.batch = gen_ckpt["config"], device, batch
        self.kind = self.cfg["kind"]
        self.gen: nn.ModuleDict = build_feature_generator(self.cfg).to(device)
        self.gen.load_state_dict(gen_ckpt["state"])
        self.gen.eval()
        self.dec_ckpt = gen_ckpt.get("dec")  # the attribute decoder rides along, unchanged, for the VS view
        self.att = to_tensor(att, device)
        self.uses_r = self.kind == "zerodiff" and self.cfg["use_r"]
        self.drg, self.drg_cfg = load_drg(drg_ckpt, device) if self.uses_r else (None, None)

    @property
    def sched(self) -> dfn.Schedule:
        """The generator's diffusion schedule: its buffers, on the generator's device."""
        return self.gen["sched"]

    @property
    def adaptable(self) -> bool:
        return self.kind == "zerodiff"

    def reverse_chain(self, z, a, r, x_next, start: int):
        """Reverse chain t = start-1 .. 0 from x_start = x_next; returns the last x_hat_0."""
        G = self.gen["G"]
        x0_hat = x_next
        for step in range(start - 1, -1, -1):
            t = torch.full((len(z),), step, dtype=torch.long, device=self.device)
            x0_hat = G(z, a, r, x_next, t)
            x_next = dfn.sample_posterior(x0_hat, x_next, t, self.sched)
        return x0_hat

    @torch.no_grad()
    def full(self, classes: np.ndarray, per_class: int, sampler: str = "progressive", out: np.ndarray | None = None):
        """`per_class` features for each class, from pure noise: (x, y) as numpy. Batches are written
        into one array (`out` when given, e.g. a slice of the stage's output), never collected."""
        y = np.repeat(np.asarray(classes), per_class)
        x = np.empty((len(y), self.cfg["x_dim"]), np.float32) if out is None else out
        for i in range(0, len(y), self.batch):
            a = self.att[torch.as_tensor(y[i:i + self.batch], device=self.device)]
            z = torch.randn(len(a), self.cfg["noise_dim"], device=self.device)
            if self.kind == "fclswgan":
                x[i:i + len(a)] = self.gen["G"](z, a).cpu().numpy()
                continue
            r = sample_r(self.drg, self.drg_cfg, a) if self.uses_r else None
            x_T = torch.randn(len(a), self.cfg["x_dim"], device=self.device)
            T = self.cfg["timesteps"]
            if sampler == "one_step":
                t = torch.full((len(a),), T - 1, dtype=torch.long, device=self.device)
                x[i:i + len(a)] = self.gen["G"](z, a, r, x_T, t).cpu().numpy()
            else:
                x[i:i + len(a)] = self.reverse_chain(z, a, r, x_T, T).cpu().numpy()
        return x, y

    def gzsl_set(self, prep, unseen_per_class: int, seen_per_class: int, sampler: str = "progressive",
                 out: np.ndarray | None = None, recentre: float = 0.0):
        """The generated part of a GZSL classifier's training set (synth.unseen_per_class /
        synth.seen_per_class): `unseen_per_class` features for each of prep's unseen classes, then
        `seen_per_class` for each seen class (0: none). The unseen ones are drawn first, so a seen count
        does not move them. `recentre` (synth.recentre) moves each class's generated mean that fraction
        of the way to the ridge regression's mean for it (`recentred`)."""
        n_unseen = len(prep.unseen) * unseen_per_class
        n = n_unseen + len(prep.seen) * seen_per_class
        x = np.empty((n, self.cfg["x_dim"]), np.float32) if out is None else out
        _, y = self.full(prep.unseen, unseen_per_class, sampler, out=x[:n_unseen])
        if seen_per_class:
            _, y_seen = self.full(prep.seen, seen_per_class, sampler, out=x[n_unseen:n])
            y = np.concatenate([y, y_seen])
        if recentre:
            recentred(x, y, ridge_class_means(prep), recentre)
        return x, y

    def checkpoint(self) -> dict:
        ckpt = {"config": self.cfg, "state": self.gen.state_dict()}
        if self.dec_ckpt is not None:
            ckpt["dec"] = self.dec_ckpt
        return ckpt


def recentred(x: np.ndarray, y: np.ndarray, targets: np.ndarray, fraction: float) -> np.ndarray:
    """synth.recentre (not in the paper): each class's rows of x shifted by `fraction` of (its target
    mean - its mean), in place: 1 puts the class mean on targets[class], 0 leaves x as it is. The spread
    around the mean is the generator's. Where seen data is scarce the generator's unseen means drift from
    the ridge regression's (docs/method.md, "Recentred class means")."""
    for c in np.unique(y):
        rows = y == c
        x[rows] += (fraction * (targets[c] - x[rows].mean(axis=0))).astype(x.dtype)
    return x
