"""Transductive ridge prototypes: the predicted unseen means refined by k-means on the unlabelled
test-unseen features, the simple transductive baseline a transductive method (ZeroDiff++ reads the
unlabelled test features) must beat.

Lloyd's algorithm in the ridge regression's feature space (linear or whitened, as chosen on
validation), started at the predicted unseen means: each mean moves to the mean of the test-unseen
features nearest it (a mean no feature picks stays where it is); a feature goes to the nearest final
mean. The number of iterations (0 is the inductive ridge regression) is chosen on the validation
split's own unseen classes by their T1. ZSL only: like any transductive ZSL method it is told which
test images are unseen, never their labels.
"""
from __future__ import annotations

import numpy as np

from zerodiffpp.baselines.prototypes import Prototypes
from zerodiffpp.data.features import Prepared
from zerodiffpp.evaluation.metrics import mean_per_class_accuracy

ITERATIONS = (0, 1, 2, 5, 10, 20)


def lloyd(z: np.ndarray, means: np.ndarray, iterations: int) -> np.ndarray:
    """Nearest-mean assignments (row indices into `means`) of z after `iterations` k-means updates."""
    m = np.array(means, dtype=np.float64)
    for step in range(iterations + 1):
        d = (m ** 2).sum(1)[None, :] - 2 * z @ m.T  # |z|^2 is the same for every mean
        nearest = d.argmin(1)
        if step == iterations:
            return nearest
        counts = np.bincount(nearest, minlength=len(m))
        sums = np.zeros_like(m)
        np.add.at(sums, nearest, z)
        picked = counts > 0
        m[picked] = sums[picked] / counts[picked, None]
    raise AssertionError("unreachable")


def kmeans_t1s(protos: Prototypes, alpha: float, iterations) -> dict[int, float]:
    """{k: T1 on protos' test-unseen images after k k-means updates}, the features embedded once."""
    p = protos.prep
    z, means = protos.embed(p.x_test_unseen), protos.embed(protos.unseen_means(alpha))
    return {k: mean_per_class_accuracy(p.y_test_unseen, p.unseen[lloyd(z, means, k)], p.unseen) for k in iterations}


def kmeans_t1(protos: Prototypes, alpha: float, iterations: int) -> float:
    return kmeans_t1s(protos, alpha, (iterations,))[iterations]


def evaluate(val: Prepared, test: Prepared, variant: str, alpha: float, iterations=ITERATIONS) -> dict:
    """{'T1', 'iterations', 'val_T1'}: the ridge variant and alpha already chosen on `val`; the number
    of iterations chosen on `val` (ties: fewer), then applied to `test`."""
    t1s = kmeans_t1s(Prototypes(val, variant), alpha, iterations)
    best = max(t1s, key=lambda k: (t1s[k], -k))
    return {"T1": kmeans_t1(Prototypes(test, variant), alpha, best), "iterations": best, "val_T1": t1s[best]}
