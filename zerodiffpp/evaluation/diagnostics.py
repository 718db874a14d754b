"""Is the generator learning? Cheap checks the train stage logs every few epochs (params `diagnostics`).

Both read features generated the way the synthesize stage makes them (from pure noise, `synth.sampler`,
r from the DRG) for the *seen* classes, whose real training features the generator was fitted to:

  gen_seen_acc   a linear probe (closed-form ridge regression onto one-hot labels) fitted on the
                 generated seen features, scored on real seen training features (mean per-class
                 accuracy). Chance is 1 / #seen; a generator that ignores its class condition stays
                 there, one that reproduces its training classes approaches a real-feature probe.
  gen_mean_gap   root mean square over seen classes of the distance between the generated and the
                 real class mean, relative to the RMS distance of the real class means to their grand
                 mean (both bias-corrected for the finite samples, `generation_scores`): 0 when every
                 class mean is reproduced, about 1 or more when the generated means carry no class
                 information.

The checks draw their noise inside `torch.random.fork_rng`, so training with or without them gives
bit-identical weights.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from zerodiffpp.generators.synth import Synthesizer

log = logging.getLogger(__name__)


def ridge_probe(x_fit: torch.Tensor, y_fit: torch.Tensor, n_classes: int, ridge: float = 1000.0) -> torch.Tensor:
    """W (D + 1, n_classes) of least squares onto one-hot labels 0..n_classes-1, with a bias row:
    (X^T X + ridge I)^-1 X^T Y in float64 (the bias row is not penalised)."""
    x = torch.cat([x_fit.double(), torch.ones(len(x_fit), 1, dtype=torch.float64, device=x_fit.device)], 1)
    y = torch.nn.functional.one_hot(y_fit, n_classes).double()
    reg = ridge * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
    reg[-1, -1] = 0.0
    return torch.linalg.solve(x.T @ x + reg, x.T @ y)


def probe_predict(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (x.double() @ w[:-1] + w[-1]).argmax(1)


def mean_per_class(y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int) -> float:
    hit = torch.zeros(n_classes, dtype=torch.float64, device=y_true.device)
    count = torch.zeros_like(hit)
    hit.index_add_(0, y_true, (y_pred == y_true).double())
    count.index_add_(0, y_true, torch.ones_like(hit[y_true]))
    present = count > 0
    return float((hit[present] / count[present]).mean())


def class_moments(x: torch.Tensor, y: torch.Tensor, n_classes: int):
    """(means (C, D), summed per-dimension variances of the class mean's estimate (C,), counts (C,))."""
    x = x.double()
    counts = torch.bincount(y, minlength=n_classes).double()
    means = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, y, x)
    means = means / counts.clamp(min=1)[:, None]
    sq = torch.zeros(n_classes, dtype=torch.float64, device=x.device).index_add_(0, y, ((x - means[y]) ** 2).sum(1))
    mean_var = sq / (counts - 1).clamp(min=1) / counts.clamp(min=1)  # tr(Sigma_c) / n_c, unbiased
    return means, mean_var, counts


def generation_scores(x_gen: torch.Tensor, y_gen: torch.Tensor, x_real: torch.Tensor, y_real: torch.Tensor,
                      n_classes: int, ridge: float = 1000.0) -> dict[str, float]:
    """gen_seen_acc and gen_mean_gap (module docstring) from labels already mapped to 0..n_classes-1.

    The gap is bias-corrected: a class mean estimated from n samples sits tr(Sigma) / n (squared) from
    the true one on average, which on noisy features would swamp the error of interest; both the
    squared gaps and the squared spread of the real class means have that term subtracted (the spread's
    (1 - 1/C) of it, as their grand mean is estimated from the same samples), so the gap estimates the
    distance between the true means whatever the sample sizes and the number of classes C."""
    w = ridge_probe(x_gen, y_gen, n_classes, ridge)
    acc = mean_per_class(y_real, probe_predict(w, x_real), n_classes)
    real_means, real_var, _ = class_moments(x_real, y_real, n_classes)
    gen_means, gen_var, _ = class_moments(x_gen, y_gen, n_classes)
    gap2 = (((gen_means - real_means) ** 2).sum(1) - gen_var - real_var).mean()
    # the grand mean is estimated too: E mean_c |m_c - m|^2 = mean_c |mu_c - mu|^2 + (1 - 1/C) mean_c var_c
    spread2 = (((real_means - real_means.mean(0)) ** 2).sum(1)).mean() - (1 - 1 / n_classes) * real_var.mean()
    gap = (gap2.clamp(min=0) / spread2.clamp(min=1e-12)).sqrt()
    return {"gen_seen_acc": acc, "gen_mean_gap": float(gap)}


class GenerationCheck:
    """Scores a generator checkpoint on the seen classes (see the module docstring).

    `real_x` / `real_y` are the real seen training features and labels (absolute class ids); at most
    `max_real` of them are kept (a fixed, seeded subset) so a check costs the same at any scale."""

    def __init__(self, real_x: np.ndarray, real_y: np.ndarray, seen: np.ndarray, att: np.ndarray, drg_ckpt,
                 p: dict, sampler: str, device, seed: int = 0, max_real: int = 5000):
        device = torch.device(device)
        self.seen, self.att, self.drg_ckpt, self.p, self.sampler, self.device = seen, att, drg_ckpt, p, sampler, device
        self.seed = seed
        keep = np.random.default_rng(seed).permutation(len(real_y))[:max_real]
        keep.sort()
        pos = np.searchsorted(seen, real_y[keep])
        self.x_real = torch.as_tensor(real_x[keep], device=device)
        self.y_real = torch.as_tensor(pos, device=device)

    def __call__(self, gen_ckpt: dict) -> dict[str, float]:
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            synth = Synthesizer(gen_ckpt, self.drg_ckpt, self.att, self.device)
            x, y = synth.full(self.seen, self.p["per_class"], self.sampler)
        x_gen = torch.as_tensor(x, device=self.device)
        y_gen = torch.as_tensor(np.searchsorted(self.seen, y), device=self.device)
        return generation_scores(x_gen, y_gen, self.x_real, self.y_real, len(self.seen), self.p["ridge"])


class Schedule:
    """When to check: every `every` epochs and after the last one (0 = never). Called by the
    trainers at the end of each epoch with a function that returns the current checkpoint; returns
    the scores, or NaN for both on the epochs in between (so every curve row has the same columns)."""

    KEYS = ("gen_seen_acc", "gen_mean_gap")

    def __init__(self, check: GenerationCheck | None, every: int):
        self.check, self.every = check, every

    def __call__(self, epoch: int, epochs: int, checkpoint) -> dict[str, float]:
        due = self.check is not None and self.every > 0 and ((epoch + 1) % self.every == 0 or epoch + 1 == epochs)
        if not due:
            return {k: float("nan") for k in self.KEYS}
        scores = self.check(checkpoint())
        log.info("train: epoch %d: generated-seen accuracy %.3f (chance %.3f), class-mean gap %.3f",
                 epoch, scores["gen_seen_acc"], 1 / len(self.check.seen), scores["gen_mean_gap"])
        return scores
