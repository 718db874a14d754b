"""ESZSL (Romera-Paredes & Torr, ICML 2015): a closed-form linear attribute baseline, for reference.

Not part of the pipeline: `python -m scripts.eszsl_reference` runs it on the same prepared splits,
so a generative result can be read against the simplest model that maps features to attributes.
Scores are x^T V s_c with V = (X X^T + gamma I)^-1 X Y S^T (S S^T + lambda I)^-1, X (D x N)
features, Y (N x C) labels in {-1, 1}, S (A x C) class semantics of the training classes.
"""
from __future__ import annotations

import numpy as np

from zerodiffpp.data import Prepared
from zerodiffpp.metrics import mean_per_class_accuracy

# The paper's grid for both regularisers: 10^-3 .. 10^3
GRID = tuple(10.0 ** k for k in range(-3, 4))


class _Problem:
    """One training set's Gram matrix X X^T and X Y S^T, computed once and reused for every
    (gamma, lambda): the Gram matrix is the most expensive product, and the D x D solve depends
    on gamma only."""

    def __init__(self, x: np.ndarray, y: np.ndarray, att: np.ndarray, classes: np.ndarray):
        classes = np.asarray(classes)
        targets = -np.ones((len(y), len(classes)))
        targets[np.arange(len(y)), np.searchsorted(classes, y)] = 1.0
        x64, self.s = x.astype(np.float64), att[classes].astype(np.float64).T  # (N, D), (A, C)
        self.gram, self.xys = x64.T @ x64, x64.T @ targets @ self.s.T

    def fit(self, gamma: float, lams) -> list[np.ndarray]:
        """V for each lambda in `lams` at this gamma."""
        left = np.linalg.solve(self.gram + gamma * np.eye(len(self.gram)), self.xys)
        eye = np.eye(self.s.shape[0])
        return [np.linalg.solve(self.s @ self.s.T + lam * eye, left.T).T for lam in lams]  # right-multiply by the inverse


def eszsl_fit(x: np.ndarray, y: np.ndarray, att: np.ndarray, classes: np.ndarray,
              gamma: float, lam: float) -> np.ndarray:
    """V (D x A) from training features x (N x D), labels y in `classes` and att (n_classes x A)."""
    return _Problem(x, y, att, classes).fit(gamma, [lam])[0]


def eszsl_predict(x: np.ndarray, v: np.ndarray, att: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Arg-max over `classes` of x^T V a_c."""
    classes = np.asarray(classes)
    return classes[(x.astype(np.float64) @ v @ att[classes].astype(np.float64).T).argmax(axis=1)]


def _unseen_t1(prep: Prepared, v: np.ndarray) -> float:
    pred = eszsl_predict(prep.x_test_unseen, v, prep.att, prep.unseen)
    return mean_per_class_accuracy(prep.y_test_unseen, pred, prep.unseen)


def eszsl_t1(prep: Prepared, gamma: float, lam: float) -> float:
    """ZSL T1 of ESZSL fitted on prep's training features, over prep's unseen classes."""
    return _unseen_t1(prep, eszsl_fit(prep.x_train, prep.y_train, prep.att, prep.seen, gamma, lam))


def select_on_validation(folds: list[Prepared], grid=GRID) -> tuple[tuple[float, float], dict]:
    """The (gamma, lambda) with the best mean T1 over the validation folds, and every grid point's
    fold T1s. Only validation splits go in: the test split is scored once, afterwards."""
    problems = [_Problem(f.x_train, f.y_train, f.att, f.seen) for f in folds]
    scores = {}
    for gamma in grid:
        fits = [p.fit(gamma, grid) for p in problems]  # per fold, one V per lambda
        for j, lam in enumerate(grid):
            scores[(gamma, lam)] = [_unseen_t1(f, vs[j]) for f, vs in zip(folds, fits)]
    best = max(scores, key=lambda k: (np.mean(scores[k]), -k[0], -k[1]))  # ties: the smaller regulariser
    return best, scores
