"""Evaluation: the standard ZSL / GZSL protocol and the two spuriousness metrics (project definitions).

All accuracies are fractions in [0, 1] and per-class means (each class counts once, whatever its
number of test samples), as in Xian et al.'s protocol."""
from __future__ import annotations

import numpy as np

from zerodiffpp.nn.classifier import train_softmax


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> dict[int, float]:
    """Top-1 accuracy of each class in `classes`. A class with no test samples maps to NaN, and is
    left out of the mean (`mean_per_class_accuracy`), never silently counted as 0 or 1."""
    out = {}
    for c in np.asarray(classes):
        mask = y_true == c
        out[int(c)] = float((y_pred[mask] == c).mean()) if mask.any() else float("nan")
    return out


def mean_per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> float:
    accs = np.array(list(per_class_accuracy(y_true, y_pred, classes).values()))
    accs = accs[~np.isnan(accs)]
    if accs.size == 0:
        raise ValueError("no class in `classes` has a test sample")
    return float(accs.mean())


def harmonic_mean(u: float, s: float) -> float:
    return 0.0 if u + s == 0 else 2 * u * s / (u + s)


def gzsl_scores(y_seen: np.ndarray, pred_seen: np.ndarray, y_unseen: np.ndarray, pred_unseen: np.ndarray,
                seen: np.ndarray, unseen: np.ndarray) -> dict[str, float]:
    """U on test-unseen over unseen classes, S on test-seen over seen classes, H = 2US / (U + S)."""
    u = mean_per_class_accuracy(y_unseen, pred_unseen, unseen)
    s = mean_per_class_accuracy(y_seen, pred_seen, seen)
    return {"U": u, "S": s, "H": harmonic_mean(u, s)}


def _probe_accuracy(x_fit, y_fit, x_eval, y_eval, classes, epochs, device) -> float:
    clf = train_softmax(x_fit, y_fit, classes, epochs=epochs, batch_size=256, lr=0.001, device=device)
    return mean_per_class_accuracy(y_eval, clf.predict(x_eval, device), classes)


def seen_spuriousness(x_gen, y_gen, x_train, y_train, x_test_seen, y_test_seen, seen, epochs, device) -> dict:
    """A linear probe trained only on generated seen-class features, scored on the real training
    features the generator saw and on real test-seen features. Gap = train - test; near 0 is good:
    a large gap means the generator reproduces what holds on its training samples only."""
    clf = train_softmax(x_gen, y_gen, seen, epochs=epochs, batch_size=256, lr=0.001, device=device)
    acc_train = mean_per_class_accuracy(y_train, clf.predict(x_train, device), seen)
    acc_test = mean_per_class_accuracy(y_test_seen, clf.predict(x_test_seen, device), seen)
    return {"seen": acc_train - acc_test, "seen_train_acc": acc_train, "seen_test_acc": acc_test}


def unseen_spuriousness(x_gen, y_gen, x_test_unseen, y_test_unseen, unseen, epochs, folds, device, seed) -> dict:
    """Accuracy on real test-unseen features of a probe trained only on generated unseen features,
    against an oracle probe trained on real test-unseen features (stratified `folds`-fold
    cross-validation; used for this metric only). Gap = oracle - generated; near 0 is good."""
    from sklearn.model_selection import StratifiedKFold
    acc_gen = _probe_accuracy(x_gen, y_gen, x_test_unseen, y_test_unseen, unseen, epochs, device)
    n_min = np.bincount(y_test_unseen)[unseen].min()
    k = int(min(folds, n_min))
    if k < 2:
        raise ValueError(f"report.oracle_folds: an unseen class has {n_min} test samples; need at least 2")
    pred = np.empty_like(y_test_unseen)
    for fit, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(x_test_unseen, y_test_unseen):
        clf = train_softmax(x_test_unseen[fit], y_test_unseen[fit], unseen, epochs=epochs, batch_size=256,
                            lr=0.001, device=device)
        pred[held] = clf.predict(x_test_unseen[held], device)
    acc_oracle = mean_per_class_accuracy(y_test_unseen, pred, unseen)
    return {"unseen": acc_oracle - acc_gen, "unseen_gen_acc": acc_gen, "unseen_oracle_acc": acc_oracle}
