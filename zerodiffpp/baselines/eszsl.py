"""ESZSL (Romera-Paredes & Torr, ICML 2015) as published and as evaluated by Xian et al. (2019).

A closed-form bilinear model: class c's score of image x is (x - m)^T V a_c, where m is the mean of
the training features and
    V = (X X^T + gamma I)^-1 X Y S^T (S S^T + lambda I)^-1,
X (D x N) the centred training features, Y (N x C) labels in {-1, 1}, S (A x C) the training
classes' semantics. The same training mean m is subtracted from every split's features before
scoring (never a test split's own mean). Without the centring the model has no bias and the large
common component of non-negative (post-ReLU, MinMax-scaled) features swamps the class signal: on
real-like data the uncentred closed form scores far below the published numbers.

Not part of the pipeline: `python -m scripts.eszsl_reference` and the baseline panel
(`zerodiffpp.baselines.panel`) run it on the pipeline's prepared splits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zerodiffpp.baselines import stacking
from zerodiffpp.data.features import Prepared
from zerodiffpp.evaluation.metrics import mean_per_class_accuracy

# The paper's grid for both regularisers: 10^-3 .. 10^3
GRID = tuple(10.0 ** k for k in range(-3, 4))


@dataclass(frozen=True)
class Eszsl:
    """A fitted model: V (D x A) and the training features' mean (D,)."""
    v: np.ndarray
    mean: np.ndarray

    def scores(self, x: np.ndarray, att: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """(x - m)^T V a_c for every row of x and every class in `classes` (n x len(classes))."""
        s = att[np.asarray(classes)].astype(np.float64)
        return (x.astype(np.float64) - self.mean) @ self.v @ s.T

    def predict(self, x: np.ndarray, att: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Arg-max over `classes` (ids, not positions)."""
        classes = np.asarray(classes)
        return classes[self.scores(x, att, classes).argmax(axis=1)]


class _Problem:
    """One training set's centred Gram matrix X X^T and X Y S^T, computed once and reused for every
    (gamma, lambda): the Gram matrix is the most expensive product, and the D x D solve depends on
    gamma only."""

    def __init__(self, x: np.ndarray, y: np.ndarray, att: np.ndarray, classes: np.ndarray):
        classes = np.asarray(classes)
        targets = -np.ones((len(y), len(classes)))
        targets[np.arange(len(y)), np.searchsorted(classes, y)] = 1.0
        x64, self.s = x.astype(np.float64), att[classes].astype(np.float64).T  # (N, D), (A, C)
        self.mean = x64.mean(axis=0)
        xc = x64 - self.mean
        self.gram, self.xys = xc.T @ xc, xc.T @ targets @ self.s.T

    def fit(self, gamma: float, lams) -> list[Eszsl]:
        """The model for each lambda in `lams` at this gamma."""
        left = np.linalg.solve(self.gram + gamma * np.eye(len(self.gram)), self.xys)
        eye = np.eye(self.s.shape[0])
        # right-multiply by the inverse: V = left (S S^T + lambda I)^-1, the latter symmetric
        return [Eszsl(np.linalg.solve(self.s @ self.s.T + lam * eye, left.T).T, self.mean) for lam in lams]


def eszsl_fit(x: np.ndarray, y: np.ndarray, att: np.ndarray, classes: np.ndarray,
              gamma: float, lam: float) -> Eszsl:
    """The model fitted on training features x (N x D), labels y in `classes`, att (n_classes x A)."""
    return _Problem(x, y, att, classes).fit(gamma, [lam])[0]


def _unseen_t1(prep: Prepared, model: Eszsl) -> float:
    pred = model.predict(prep.x_test_unseen, prep.att, prep.unseen)
    return mean_per_class_accuracy(prep.y_test_unseen, pred, prep.unseen)


def fit_split(prep: Prepared, gamma: float, lam: float) -> Eszsl:
    return eszsl_fit(prep.x_train, prep.y_train, prep.att, prep.seen, gamma, lam)


def eszsl_t1(prep: Prepared, gamma: float, lam: float) -> float:
    """ZSL T1 of ESZSL fitted on prep's training features, over prep's unseen classes."""
    return _unseen_t1(prep, fit_split(prep, gamma, lam))


def select_on_validation(folds: list[Prepared], grid=GRID) -> tuple[tuple[float, float], dict]:
    """The (gamma, lambda) with the best mean T1 over the validation folds, and every grid point's
    fold T1s. Only validation splits go in: the test split is scored once, afterwards."""
    problems = [_Problem(f.x_train, f.y_train, f.att, f.seen) for f in folds]
    scores = {}
    for gamma in grid:
        fits = [p.fit(gamma, grid) for p in problems]  # per fold, one model per lambda
        for j, lam in enumerate(grid):
            scores[(gamma, lam)] = [_unseen_t1(f, ms[j]) for f, ms in zip(folds, fits)]
    best = max(scores, key=lambda k: (np.mean(scores[k]), -k[0], -k[1]))  # ties: the smaller regulariser
    return best, scores


def gzsl_split_scores(prep: Prepared, model: Eszsl) -> stacking.SplitScores:
    """prep's test images scored over all its classes (seen and unseen) by `model`."""
    return stacking.SplitScores.of(prep, lambda x: model.scores(x, prep.att, prep.classes))


def evaluate(val: Prepared, test: Prepared) -> dict:
    """ESZSL on `test` with every choice made on `val`: the regularisers (validation T1), then the
    softmax temperature and calibrated stacking (validation H). {'T1', 'U', 'S', 'H', 'gamma',
    'lambda', 'calibration', 'temperature', 'val_T1', 'val_H'}."""
    (gamma, lam), scores = select_on_validation([val])
    chosen = stacking.choose(gzsl_split_scores(val, fit_split(val, gamma, lam)))
    model = fit_split(test, gamma, lam)
    gzsl = stacking.apply(gzsl_split_scores(test, model), chosen["temperature"], chosen["calibration"])
    return {"T1": _unseen_t1(test, model), **gzsl, "gamma": gamma, "lambda": lam, **chosen,
            "val_T1": float(scores[(gamma, lam)][0])}
