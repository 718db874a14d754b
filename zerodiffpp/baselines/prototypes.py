"""Ridge prototype regression: predict each unseen class's mean feature from its attributes.

A ridge regression (with intercept, penalty alpha) maps class attributes a_c to the real class mean
features mu_c of the seen training classes; it predicts the unseen classes' means, and a test feature
goes to the nearest mean. It asks the question a generator of class-conditional features answers,
with the least machinery: how far does a linear attribute -> feature-mean map get?

Two feature spaces for the distances:
  linear    Euclidean distance in the scaled feature space;
  whitened  within-class whitening: the pooled within-class covariance of the seen training features,
            shrunk toward a multiple of the identity (Ledoit-Wolf, no extra parameter), maps features
            and means by its inverse square root before the distances (an LDA-like nearest-mean rule):
            directions of large within-class variance (pose, background) stop dominating.

Scores are Gaussian log-likelihoods -d^2 / 2; in the linear variant d is measured in units of the
pooled within-class standard deviation (an isotropic Gaussian), in the whitened one the whitening
already is that unit. The variant and alpha are chosen on a validation split by its ZSL T1; GZSL uses
the real seen means (training features) and the predicted unseen means (`stacking` for the rest).
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from zerodiffpp.baselines import stacking
from zerodiffpp.data.features import Prepared
from zerodiffpp.evaluation.metrics import mean_per_class_accuracy
from zerodiffpp.nn.ridge import ALPHAS, class_means, ridge_means  # noqa: F401 (ridge_means: the panel's map)

VARIANTS = ("linear", "whitened")


def whitening(residuals: np.ndarray) -> np.ndarray:
    """Sigma^-1/2 (D x D) of the Ledoit-Wolf-shrunk covariance of within-class residuals (N x D)."""
    from sklearn.covariance import ledoit_wolf
    cov, _ = ledoit_wolf(residuals, assume_centered=True)
    e, q = np.linalg.eigh(cov)
    if e.max() <= 0:  # no within-class variation at all: nothing to whiten
        return np.eye(len(cov))
    return (q / np.sqrt(np.maximum(e, 1e-12 * e.max()))) @ q.T


class Prototypes:
    """One split's training side in one variant: the real seen class means and the feature space.
    Fitted on prep's training features only; its test features are only scored."""

    def __init__(self, prep: Prepared, variant: str):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        x = prep.x_train.astype(np.float64)
        self.prep, self.variant = prep, variant
        self.seen_means = class_means(x, prep.y_train, prep.seen)
        residuals = x - self.seen_means[np.searchsorted(prep.seen, prep.y_train)]
        # linear: a scalar, 1 / the pooled within-class standard deviation (1 if there is none); whitened: a matrix
        sd = np.sqrt(np.mean(residuals ** 2))
        self.w = whitening(residuals) if variant == "whitened" else (1 / sd if sd > 0 else 1.0)

    def embed(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x @ self.w if np.ndim(self.w) else x * self.w

    def unseen_means(self, alpha: float) -> np.ndarray:
        att = self.prep.att.astype(np.float64)
        return ridge_means(att[self.prep.seen], self.seen_means, att[self.prep.unseen], alpha)

    def log_likelihood(self, z: np.ndarray, means: np.ndarray) -> np.ndarray:
        """-d^2 / 2 between embedded features z (n x D) and raw `means` (C x D): (n x C)."""
        m = self.embed(means)
        return -0.5 * ((z ** 2).sum(1)[:, None] - 2 * z @ m.T + (m ** 2).sum(1)[None, :])

    def zsl_predict(self, x: np.ndarray, alpha: float, embedded: bool = False, means: np.ndarray | None = None
                    ) -> np.ndarray:
        """The unseen class (id) of the nearest predicted unseen mean (or of the nearest row of `means`,
        one per prep.unseen class), for each row of x."""
        z = x if embedded else self.embed(x)
        means = self.unseen_means(alpha) if means is None else means
        return self.prep.unseen[self.log_likelihood(z, means).argmax(1)]

    @cached_property
    def _z_unseen(self) -> np.ndarray:
        return self.embed(self.prep.x_test_unseen)

    def zsl_t1(self, alpha: float, means: np.ndarray | None = None) -> float:
        """T1 over the unseen classes: mean per-class accuracy of `zsl_predict` on the test-unseen images."""
        p = self.prep
        pred = self.zsl_predict(self._z_unseen, alpha, True, means)
        return mean_per_class_accuracy(p.y_test_unseen, pred, p.unseen)

    def gzsl_split_scores(self, alpha: float) -> stacking.SplitScores:
        """Test images scored over prep.classes: real seen means, predicted unseen means."""
        p = self.prep
        means = np.empty((len(p.classes), self.seen_means.shape[1]))
        means[np.searchsorted(p.classes, p.seen)] = self.seen_means
        means[np.searchsorted(p.classes, p.unseen)] = self.unseen_means(alpha)
        return stacking.SplitScores.of(p, lambda x: self.log_likelihood(self.embed(x), means))


def nearest_generated_mean_t1(prep: Prepared, x_gen: np.ndarray, y_gen: np.ndarray) -> dict[str, float]:
    """A diagnostic that splits a generator's ZSL loss into its class means and its classifier: T1 of the
    nearest mean of generated unseen features (x_gen, y_gen: every prep.unseen class), in each variant's
    space, to set beside the ridge regression's nearest predicted mean (the panel) and the method's own T1
    (a classifier trained on the same features). Reads test-unseen labels, as T1 does: never a choice."""
    means = class_means(np.asarray(x_gen, np.float64), np.asarray(y_gen), prep.unseen)
    return {v: Prototypes(prep, v).zsl_t1(np.nan, means) for v in VARIANTS}


def best_alpha(t1s: dict[float, float]) -> float:
    return max(t1s, key=lambda a: (t1s[a], -a))  # ties: the smaller penalty


def evaluate(val: Prepared, test: Prepared, variants=VARIANTS, alphas=ALPHAS) -> dict:
    """Each variant on `test`, with alpha (validation T1), softmax temperature and calibration
    (validation H) chosen on `val`, and the variant with the better validation T1 (ties: the first,
    linear). {'linear': {...}, 'whitened': {...}, 'variant': chosen}, each {'T1', 'U', 'S', 'H',
    'alpha', 'calibration', 'temperature', 'val_T1', 'val_H'}."""
    out = {}
    for v in variants:
        on_val = Prototypes(val, v)
        t1s = {a: on_val.zsl_t1(a) for a in alphas}
        alpha = best_alpha(t1s)
        chosen = stacking.choose(on_val.gzsl_split_scores(alpha))
        protos = Prototypes(test, v)
        gzsl = stacking.apply(protos.gzsl_split_scores(alpha), chosen["temperature"], chosen["calibration"])
        out[v] = {"T1": protos.zsl_t1(alpha), **gzsl, "alpha": alpha, **chosen, "val_T1": t1s[alpha]}
    out["variant"] = max(variants, key=lambda v: (out[v]["val_T1"], -variants.index(v)))
    return out
