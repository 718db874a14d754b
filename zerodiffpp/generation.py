"""Generating features with a trained generator: from pure noise (one step or the full reverse
chain) and, for DiffGen, from a real feature noised to an intermediate step k."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from zerodiffpp import diffusion as dfn
from zerodiffpp import fclswgan, zerodiff
from zerodiffpp.losses import reparameterize
from zerodiffpp.representation import load_drg, sample_r
from zerodiffpp.training import to_tensor


class Synthesizer:
    """Wraps a generator checkpoint (ZeroDiff or f-CLSWGAN) and, for ZeroDiff, the DRG that gives r."""

    def __init__(self, gen_ckpt: dict, drg_ckpt: dict | None, att: np.ndarray, device, batch: int = 4096):
        self.cfg, self.device, self.batch = gen_ckpt["config"], device, batch
        self.kind = self.cfg["kind"]
        builder = zerodiff.build_generator if self.kind == "zerodiff" else fclswgan.build_generator
        self.gen: nn.ModuleDict = builder(self.cfg).to(device)
        self.gen.load_state_dict(gen_ckpt["state"])
        self.gen.eval()
        self.dec_ckpt = gen_ckpt.get("dec")  # the attribute decoder rides along, unchanged, for the VS view
        self.att = to_tensor(att, device)
        self.uses_r = self.kind == "zerodiff" and self.cfg["use_r"]
        self.drg, self.drg_cfg = load_drg(drg_ckpt, device) if self.uses_r else (None, None)
        if self.kind == "zerodiff":
            self.sched = dfn.vp_schedule(self.cfg["timesteps"], self.cfg["beta_min"], self.cfg["beta_max"])

    @property
    def adaptable(self) -> bool:
        return self.kind == "zerodiff"

    def _steps(self, z, a, r, x_next, start: int):
        """Reverse chain t = start-1 .. 0 from x_start = x_next; returns the last x_hat_0."""
        G = self.gen["G"]
        x0_hat = x_next
        for step in range(start - 1, -1, -1):
            t = torch.full((len(z),), step, dtype=torch.long, device=self.device)
            x0_hat = G(z, a, r, x_next, t)
            x_next = dfn.sample_posterior(x0_hat, x_next, t, self.sched)
        return x0_hat

    @torch.no_grad()
    def full(self, classes: np.ndarray, per_class: int, sampler: str = "progressive"):
        """`per_class` features for each class, from pure noise. Returns (x, y) as numpy."""
        y = np.repeat(np.asarray(classes), per_class)
        out = []
        for i in range(0, len(y), self.batch):
            a = self.att[torch.as_tensor(y[i:i + self.batch], device=self.device)]
            z = torch.randn(len(a), self.cfg["noise_dim"], device=self.device)
            if self.kind == "fclswgan":
                out.append(self.gen["G"](z, a))
                continue
            r = sample_r(self.drg, self.drg_cfg, a) if self.uses_r else None
            x_T = torch.randn(len(a), self.cfg["x_dim"], device=self.device)
            T = self.cfg["timesteps"]
            if sampler == "one_step":
                t = torch.full((len(a),), T - 1, dtype=torch.long, device=self.device)
                out.append(self.gen["G"](z, a, r, x_T, t))
            else:
                out.append(self._steps(z, a, r, x_T, T))
        return torch.cat(out).cpu().numpy().astype(np.float32), y

    @torch.no_grad()
    def partial(self, x: np.ndarray, r: np.ndarray | None, y: np.ndarray, k: int) -> np.ndarray:
        """DiffGen: noise each real feature to step k, then denoise k -> 0 under its (pseudo-)class
        semantics and its own SC representation. k = 0 returns x unchanged."""
        if k == 0:
            return x.copy()
        out = []
        for i in range(0, len(x), self.batch):
            x0 = to_tensor(x[i:i + self.batch], self.device)
            a = self.att[torch.as_tensor(y[i:i + self.batch], device=self.device)]
            rr = to_tensor(r[i:i + self.batch], self.device) if self.uses_r else None
            z = reparameterize(*self.gen["E"](x0, a))
            x_k = dfn.q_sample(x0, torch.full((len(x0),), k, dtype=torch.long, device=self.device), self.sched)
            out.append(self._steps(z, a, rr, x_k, k))
        return torch.cat(out).cpu().numpy().astype(np.float32)

    def checkpoint(self) -> dict:
        ckpt = {"config": self.cfg, "state": self.gen.state_dict()}
        if self.dec_ckpt is not None:
            ckpt["dec"] = self.dec_ckpt
        return ckpt


def diffgen_set(synth: Synthesizer, x_test: np.ndarray, r_test: np.ndarray, pred: np.ndarray, conf: np.ndarray,
                kept: np.ndarray, start_step: int, per_feature: int, max_per_class: int,
                classes: np.ndarray | None = None):
    """Partially synthesised features from the kept pseudo-labelled test features: `per_feature`
    syntheses each, then at most `max_per_class` per pseudo-class (the most confident sources first).
    `classes` restricts the sources to those pseudo-classes (None: every class)."""
    if classes is not None:
        kept = kept[np.isin(pred[kept], classes)]
    src = []
    for c in np.unique(pred[kept]):
        pos = kept[pred[kept] == c]
        pos = pos[np.argsort(-conf[pos], kind="stable")]
        src.append(np.repeat(pos, per_feature)[:max_per_class])
    src = np.concatenate(src) if src else np.zeros(0, np.int64)
    if len(src) == 0:
        return np.zeros((0, x_test.shape[1]), np.float32), np.zeros(0, np.int64), src
    x = synth.partial(x_test[src], r_test[src] if synth.uses_r else None, pred[src], start_step)
    return x, pred[src], src
