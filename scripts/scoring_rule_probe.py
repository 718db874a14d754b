"""Diagnostic: how much of ESZSL's lead over the ridge regression is its scoring rule, not its means?

    python -m scripts.scoring_rule_probe --root /tmp/fx-new/cub --name CUB --ratio 0.3 --seed 0

Scores the ridge regression's predicted unseen means (attributes -> class mean features of the seen
training classes) by several rules, each at its best penalty of the grid on the evaluated split, beside
ESZSL (regularisers chosen on the same split): Euclidean nearest mean (the panel's `ridge`), nearest mean
after within-class whitening (the panel's `whitened`), a predictive Gaussian (within-class plus the
covariance of the map's errors on held-out training classes), the dot product and the cosine about the
training mean, and the dot product after a shrunk inverse of the total covariance (ESZSL's form with the
means' regression in place of its own). Read on validation classes (`--protocol validation`, the default)
it chooses nothing: it says which rule the regressed means want (docs/notebook/results.md, item 12).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import probes  # noqa: E402


def _metric(c: np.ndarray) -> np.ndarray:
    e, q = np.linalg.eigh(c)
    return q / np.sqrt(np.maximum(e, 1e-12 * e.max()))


def rule_scores(prep, alpha: float) -> dict[str, np.ndarray]:
    """Each rule's (test-unseen x unseen) scores of the ridge means at penalty alpha."""
    from sklearn.covariance import ledoit_wolf

    from zerodiffpp.baselines.prototypes import whitening
    from zerodiffpp.nn.ridge import class_means, ridge_means
    x, y, att = prep.x_train.astype(np.float64), prep.y_train, prep.att.astype(np.float64)
    mu = class_means(x, y, prep.seen)
    m0 = x.mean(0)
    res = x - mu[np.searchsorted(prep.seen, y)]
    means = ridge_means(att[prep.seen], mu, att[prep.unseen], alpha)
    xt = prep.x_test_unseen.astype(np.float64)
    order = np.random.default_rng(0).permutation(len(prep.seen))
    errors = np.concatenate([ridge_means(att[prep.seen][np.setdiff1d(order, part)], mu[np.setdiff1d(order, part)],
                                         att[prep.seen][part], alpha) - mu[part]
                             for part in np.array_split(order, 5)])
    within = ledoit_wolf(res, assume_centered=True)[0]
    total = np.cov((x - m0).T)
    total_shrunk = total + 10 * np.trace(total) / len(total) * np.eye(len(total))

    def nearest(w):
        z, m = xt @ w, means @ w
        return 2 * z @ m.T - (m ** 2).sum(1)[None]

    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    return {"Euclidean nearest mean": nearest(np.eye(len(m0))),
            "nearest mean, within-class whitened": nearest(whitening(res)),
            "predictive Gaussian (within + held-out error covariance)":
                nearest(_metric(within + ledoit_wolf(errors, assume_centered=True)[0])),
            "dot product about the training mean": (xt - m0) @ (means - m0).T,
            "cosine about the training mean": unit(xt - m0) @ unit(means - m0).T,
            "dot product, shrunk total-covariance inverse": (xt - m0) @ np.linalg.solve(total_shrunk, (means - m0).T)}


def main(argv=None):
    a = probes.parser(__doc__, ratio=0.3).parse_args(argv)
    _, _, prep = probes.load(a)
    from zerodiffpp.baselines import eszsl
    from zerodiffpp.evaluation.metrics import mean_per_class_accuracy
    from zerodiffpp.nn.ridge import ALPHAS
    t1 = lambda s: mean_per_class_accuracy(prep.y_test_unseen, prep.unseen[s.argmax(1)], prep.unseen)  # noqa: E731
    by_alpha = {alpha: {k: t1(s) for k, s in rule_scores(prep, alpha).items()} for alpha in ALPHAS}
    print(f"{a.name} {a.protocol} protocol, seen ratio {a.ratio}, seed {a.seed}: ZSL T1 of the ridge means by rule")
    for rule in by_alpha[ALPHAS[0]]:
        best = max(ALPHAS, key=lambda al: by_alpha[al][rule])
        print(f"  {rule}: {100 * by_alpha[best][rule]:.1f} (penalty {best:g})")
    (gamma, lam), scores = eszsl.select_on_validation([prep])
    print(f"  ESZSL: {100 * np.mean(scores[(gamma, lam)]):.1f} (gamma {gamma:g}, lambda {lam:g})")


if __name__ == "__main__":
    main()
