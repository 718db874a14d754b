"""DiffGen (ZeroDiff++ v; params section `diffgen`): test-time generation along the denoising path.

The paper's procedure is not public; this is the project's definition (docs/method.md, "DiffGen"):
each kept pseudo-labelled test feature is noised to an intermediate step k and denoised k -> 0 by the
adapted generator under its pseudo-class semantics and its own SC representation, a "partially
synthesised" feature that keeps the real sample's content and moves toward its class. Test labels are
never read.
"""
from __future__ import annotations

import numpy as np
import torch

from zerodiffpp.nn import diffusion as dfn
from zerodiffpp.nn.losses import reparameterize
from zerodiffpp.transductive.pseudo_labels import most_confident_first
from zerodiffpp.generators.synth import KIND_FULL, KIND_PARTIAL, Synthesizer
from zerodiffpp.nn.training import to_tensor
from zerodiffpp.runtime.errors import DivergedError


@torch.no_grad()
def partial_synthesis(synth: Synthesizer, x: np.ndarray, r: np.ndarray | None, y: np.ndarray, k: int,
                      out: np.ndarray | None = None) -> np.ndarray:
    """DiffGen: noise each real feature to step k, then denoise k -> 0 under its (pseudo-)class
    semantics and its own SC representation. k = 0 returns x unchanged. Written into `out` when given."""
    out = np.empty_like(x, dtype=np.float32) if out is None else out
    if k == 0:
        out[:] = x
        return out
    for i in range(0, len(x), synth.batch):
        x0 = to_tensor(x[i:i + synth.batch], synth.device)
        a = synth.att[torch.as_tensor(y[i:i + synth.batch], device=synth.device)]
        rr = to_tensor(r[i:i + synth.batch], synth.device) if synth.uses_r else None
        z = reparameterize(*synth.gen["E"](x0, a))
        x_k = dfn.q_sample(x0, torch.full((len(x0),), k, dtype=torch.long, device=synth.device), synth.sched)
        out[i:i + len(x0)] = synth.reverse_chain(z, a, rr, x_k, k).cpu().numpy()
    return out


def diffgen_sources(pred: np.ndarray, conf: np.ndarray, kept: np.ndarray, per_feature: int, max_per_class: int,
                    classes: np.ndarray | None = None, rank: np.ndarray | None = None) -> np.ndarray:
    """Test-feature positions to synthesise from: each kept pseudo-labelled feature `per_feature`
    times, then at most `max_per_class` per pseudo-class (the most confident sources first, ties by
    `rank`, as DiffTTA's selection). `classes` restricts the sources to those pseudo-classes (None:
    every class)."""
    if classes is not None:
        kept = kept[np.isin(pred[kept], classes)]
    src = []
    for c in np.unique(pred[kept]):
        pos = most_confident_first(kept[pred[kept] == c], conf, rank)
        src.append(np.repeat(pos, per_feature)[:max_per_class])
    return np.concatenate(src) if src else np.zeros(0, np.int64)


def synthetic_set(synth: Synthesizer, prep, per_class: int, sampler: str, pseudo: dict | None = None,
                  g: dict | None = None, seen_per_class: int = 0, recentre: float = 0.0) -> dict:
    """The synthesize stage's output: `per_class` fully generated features for every unseen class
    and `seen_per_class` for every seen class (kind KIND_FULL; `recentre`: Synthesizer.gzsl_set) and, with DiffGen's params `g` and the
    adapt stage's `pseudo` labels, the partial syntheses of `diffgen_sources` under their
    pseudo-labels (kind KIND_PARTIAL), plus their source positions in the pooled test set (`src`).
    One output array; batches are written into it, never collected."""
    src = np.zeros(0, np.int64)
    if g is not None:
        src = diffgen_sources(pseudo["pred"], pseudo["conf"], pseudo["kept"], g["per_feature"], g["max_per_class"],
                              prep.unseen if g["classes"] == "unseen" else None, pseudo.get("rank"))
    n_full = len(prep.unseen) * per_class + len(prep.seen) * seen_per_class
    x = np.empty((n_full + len(src), prep.x_train.shape[1]), np.float32)
    _, y_full = synth.gzsl_set(prep, per_class, seen_per_class, sampler, out=x[:n_full], recentre=recentre)
    if len(src):
        x_test, r_test = prep.test_features()
        partial_synthesis(synth, x_test[src], r_test[src] if synth.uses_r else None, pseudo["pred"][src],
                          g["start_step"], out=x[n_full:])
    # NaN features would still train the classifiers, which then report finite, meaningless metrics
    if not np.isfinite(x.sum(dtype=np.float64)):  # one pass over x, no copy: NaN or inf anywhere makes it so
        n_bad = int((~np.isfinite(x)).any(1).sum())
        raise DivergedError(f"synthesize: {n_bad} of {len(x)} synthetic features are not finite (NaN or inf): a model "
                            f"that generates them diverged ({synth.kind} generator in train or adapt, DRG in "
                            f"pretrain); see their curves (dvc plots show)")
    return dict(x=x, y=np.concatenate([y_full, pseudo["pred"][src] if len(src) else np.zeros(0, np.int64)]),
                kind=np.concatenate([np.full(n_full, KIND_FULL), np.full(len(src), KIND_PARTIAL)]), src=src)
