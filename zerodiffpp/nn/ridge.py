"""Ridge regression from class attributes to class mean features: the prototype map the simple
baselines score with (zerodiffpp/baselines/prototypes.py) and the base the ZeroDiff generator may
start from (gen.prototype_base)."""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

ALPHAS = tuple(10.0 ** k for k in range(-3, 4))


def class_means(x: np.ndarray, y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(len(classes), D) mean feature of each class, in the order of `classes`."""
    return np.stack([x[y == c].mean(axis=0) for c in np.asarray(classes)])


def ridge_fit(att_fit: np.ndarray, means_fit: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of the ridge regression (intercept unpenalised) att_fit (C x A) -> means_fit (C x D):
    a mean is predicted as b + a @ W. Dual form: W = Ac^T (Ac Ac^T + alpha I)^-1 Mc, a C x C solve."""
    a0, m0 = att_fit.mean(axis=0), means_fit.mean(axis=0)
    ac, mc = att_fit - a0, means_fit - m0
    w = ac.T @ np.linalg.solve(ac @ ac.T + alpha * np.eye(len(ac)), mc)
    return w, m0 - a0 @ w


def ridge_means(att_fit: np.ndarray, means_fit: np.ndarray, att_new: np.ndarray, alpha: float) -> np.ndarray:
    """Means predicted for attributes `att_new` by `ridge_fit` on att_fit -> means_fit."""
    w, b = ridge_fit(att_fit, means_fit, alpha)
    return b + att_new @ w


def alpha_by_held_out_classes(att: np.ndarray, means: np.ndarray, alphas=ALPHAS, folds: int = 5,
                              seed: int = 0) -> float:
    """The penalty whose predictions of held-out classes' means err least (squared error, `folds`
    seeded folds of the classes): chosen on the training classes alone, as unseen classes are unseen."""
    order = np.random.default_rng(seed).permutation(len(att))
    parts = [p for p in np.array_split(order, min(folds, len(att))) if len(p)]
    if len(parts) < 2:
        return float(np.median(alphas))
    err = [sum(((ridge_means(np.delete(att, p, 0), np.delete(means, p, 0), att[p], a) - means[p]) ** 2).sum()
               for p in parts) for a in alphas]
    return float(alphas[int(np.argmin(err))])


def prototype_map(x, y, att, what: str = "the seen training classes") -> tuple:
    """(W, b) of gen.prototype_base (and of its refit, tta.base_refit): ridge regression from the
    attributes of the classes in y to their mean features, its penalty chosen on held-out classes of y
    (no other class is read)."""
    classes = np.unique(y)
    means = class_means(x, y, classes)
    alpha = alpha_by_held_out_classes(att[classes], means)
    log.info("prototype base: ridge map fitted on %d classes (%s), penalty %g chosen on held-out ones of them",
             len(classes), what, alpha)
    return ridge_fit(att[classes], means, alpha)


def ridge_class_means(prep) -> np.ndarray:
    """Every class's mean (rows in prep.att's order) predicted by `prototype_map` of prep's seen
    training classes: the means gen.prototype_base starts from, and synth.recentre's targets."""
    w, b = prototype_map(prep.x_train, prep.y_train, prep.att, "the seen training classes; synth.recentre")
    return b + prep.att @ w
