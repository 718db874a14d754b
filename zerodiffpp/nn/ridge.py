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


def held_out_class_accuracy(x: np.ndarray, y: np.ndarray, att: np.ndarray, alphas=ALPHAS, folds: int = 5,
                            seed: int = 0) -> dict[float, float]:
    """For each penalty: how well the predicted means of held-out training classes classify those classes'
    own images. The classes of y are split into `folds` seeded folds; for each fold, the ridge map of the
    other classes' means predicts the fold's means, each image of the fold's classes goes to the nearest
    predicted mean among them (Euclidean), and the fold scores its mean per-class accuracy; the folds'
    scores are averaged (at least two classes in a fold). att: every class's attributes, indexed by class id."""
    classes = np.unique(y)
    means = class_means(x, y, classes)
    order = np.random.default_rng(seed).permutation(len(classes))
    parts = np.array_split(order, max(2, min(folds, len(classes) // 2)))  # two classes or more in a fold
    scores = {float(a): [] for a in alphas}
    for part in parts:
        rest = np.setdiff1d(np.arange(len(classes)), part)
        rows = np.isin(y, classes[part])
        x_part, truth = x[rows], y[rows]
        for a in alphas:
            pred = ridge_means(att[classes[rest]], means[rest], att[classes[part]], a)
            # argmin ||x - m||^2 = argmax 2 x.m - ||m||^2 (the ||x||^2 term is the same for every mean)
            nearest = classes[part][(2 * x_part @ pred.T - (pred ** 2).sum(1)).argmax(1)]
            scores[float(a)].append(np.mean([(nearest[truth == c] == c).mean() for c in classes[part]]))
    return {a: float(np.mean(s)) for a, s in scores.items()}


def alpha_by_held_out_classes(x: np.ndarray, y: np.ndarray, att: np.ndarray, alphas=ALPHAS, folds: int = 5,
                              seed: int = 0) -> float:
    """The penalty whose predicted means of held-out training classes classify their images best
    (`held_out_class_accuracy`; ties: the smaller penalty): chosen on the training classes alone, as
    unseen classes are unseen, and for what the means are for. (The squared error of the predicted
    means, the earlier criterion, prefers more shrinkage: on the CUB fixture it chose 1 where 0.1 classifies
    better at seen ratios 1.0 and 0.3, docs/method.md.)"""
    if len(np.unique(y)) < 4:  # no two folds of two classes: nothing to choose by
        return float(np.median(alphas))
    acc = held_out_class_accuracy(x, y, att, alphas, folds, seed)
    return max(acc, key=lambda a: (acc[a], -a))


def prototype_map(x, y, att, what: str = "the seen training classes") -> tuple:
    """(W, b) of gen.prototype_base (and of its refit, tta.base_refit): ridge regression from the
    attributes of the classes in y to their mean features, its penalty chosen on held-out classes of y
    (no other class is read)."""
    classes = np.unique(y)
    means = class_means(x, y, classes)
    alpha = alpha_by_held_out_classes(x, y, att)
    log.info("prototype base: ridge map fitted on %d classes (%s), penalty %g chosen on held-out ones of them "
             "(their images' nearest predicted mean)", len(classes), what, alpha)
    return ridge_fit(att[classes], means, alpha)


def ridge_class_means(prep) -> np.ndarray:
    """Every class's mean (rows in prep.att's order) predicted by `prototype_map` of prep's seen
    training classes: the means gen.prototype_base starts from, and synth.recentre's targets."""
    w, b = prototype_map(prep.x_train, prep.y_train, prep.att, "the seen training classes; synth.recentre")
    return b + prep.att @ w
