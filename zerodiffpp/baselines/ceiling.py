"""Supervised reference points: what a linear classifier reaches when it sees real images.

  ceiling_t1   a linear classifier trained on *real unseen* features (stratified k-fold over the
               test-unseen images, out-of-fold predictions): the ZSL T1 a perfect generator of unseen
               features could at most give a linear classifier. A zero-shot T1 near it leaves little
               to gain; one far below it says how much the attributes leave unexplained.
  nearest_true_mean_t1
               the nearest class mean, each unseen class's mean taken from its own real images (out of
               fold, as the ceiling): how far the zero-shot problem is one of predicting the means. Near
               the ceiling or above it, the classes barely overlap around their means and a method
               can gain over a nearest-predicted-mean rule only by predicting better means (or by
               reading the test features); well below it, within-class structure matters.
  linear_seen  a ridge classifier trained on the seen training features and scored on test-seen
               images: how separable the seen classes are (the S side's reference).

Both are fast at CUB shape (11788 x 2048, 200 classes) on one core without subsampling: the
multinomial logistic regression (lbfgs) converges in a few dozen iterations on 2967 x 2048 unseen
features (about 4 s for 5 folds), the ridge classifier is one D x D Cholesky solve per penalty.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from zerodiffpp.data.features import Prepared
from zerodiffpp.evaluation.metrics import mean_per_class_accuracy

FOLDS, SEED = 5, 0
RIDGE_ALPHAS = tuple(10.0 ** k for k in range(-1, 5))  # 0.1 .. 10000


def logistic():
    """Multinomial logistic regression, L2 penalty C = 1 (fixed: a ceiling, not a tuned model)."""
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=1.0, max_iter=300)


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: int = FOLDS, seed: int = SEED,
                make_classifier: Callable = logistic) -> np.ndarray:
    """Predictions for every image from a classifier trained on the other folds only (stratified,
    shuffled with `seed`; fewer folds where a class has fewer images than `folds`)."""
    from sklearn.model_selection import StratifiedKFold
    k = int(min(folds, np.unique(y, return_counts=True)[1].min()))
    if k < 2:
        raise ValueError("the ceiling's cross-validation needs at least 2 images of every class")
    pred = np.empty_like(y)
    for fit, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y):
        pred[held] = make_classifier().fit(x[fit], y[fit]).predict(x[held])
    return pred


def ceiling_t1(prep: Prepared, folds: int = FOLDS, seed: int = SEED, make_classifier: Callable = logistic) -> float:
    """Mean per-class accuracy over prep's unseen classes of the out-of-fold predictions on its
    test-unseen images (the supervised ZSL T1 ceiling)."""
    pred = out_of_fold(prep.x_test_unseen, prep.y_test_unseen, folds, seed, make_classifier)
    return mean_per_class_accuracy(prep.y_test_unseen, pred, prep.unseen)


def nearest_true_mean_t1(prep: Prepared, folds: int = FOLDS, seed: int = SEED) -> float:
    """ceiling_t1 with a nearest-centroid rule (Euclidean, raw features): an oracle, like the ceiling."""
    import warnings

    from sklearn.neighbors import NearestCentroid
    with warnings.catch_warnings():  # constant features (ReLU zeros) within a class: irrelevant to the centroids
        warnings.filterwarnings("ignore", message=".*zero standard deviation.*")
        return ceiling_t1(prep, folds, seed, NearestCentroid)


def _seen_acc(prep: Prepared, alpha: float) -> float:
    from sklearn.linear_model import RidgeClassifier
    clf = RidgeClassifier(alpha=alpha).fit(prep.x_train, prep.y_train)
    return mean_per_class_accuracy(prep.y_test_seen, clf.predict(prep.x_test_seen), prep.seen)


def linear_seen(val: Prepared, test: Prepared, alphas=RIDGE_ALPHAS) -> dict:
    """{'acc', 'alpha', 'val_acc'}: a ridge classifier on test's seen training features, scored on its
    test-seen images; alpha chosen on `val`'s held-out images of its training classes."""
    val_accs = {a: _seen_acc(val, a) for a in alphas}
    alpha = max(val_accs, key=lambda a: (val_accs[a], -a))
    return {"acc": _seen_acc(test, alpha), "alpha": alpha, "val_acc": val_accs[alpha]}
