"""Diagnostic: does k-means refinement of unseen labels help in the pooled GZSL test set, as it does when told which images are unseen?

    python -m scripts.pooled_kmeans_probe --root /tmp/fx-new/cub --name CUB --ratio 0.1 --seed 0

The panel's transductive baseline (`baselines.kmeans`) refines the ridge regression's predicted unseen
means by k-means on the test-unseen images: ZSL, told which images are unseen. DiffTTA pseudo-labels the
pooled test set (seen and unseen images, not told which), so a k-means step could only refine the
images a GZSL rule already calls unseen. This probe measures both on the same split with the ridge
regression (linear space; alpha, softmax temperature and calibrated stacking chosen on the choice split
of `baselines.panel.splits`, as the panel chooses them):
  told      ZSL T1 after k updates on the test-unseen images (the panel's ridge + k-means);
  pooled    the GZSL rule labels every test image; k updates on the images it calls unseen, starting
            at the predicted unseen means, relabel those among the unseen classes; U, S, H, and the
            share of unseen labels that are right (what DiffTTA would adapt to);
  all       k updates over every class on the whole pool, seen means included, no calibration.
The evaluated split is the validation classes under `--protocol validation` (the default). Nothing here
chooses a setting of the pipeline.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import probes  # noqa: E402

ITERATIONS = (0, 1, 2, 5, 10, 20)


def refine_called_unseen(z: np.ndarray, pred: np.ndarray, unseen: np.ndarray, unseen_means: np.ndarray,
                         iterations: int) -> np.ndarray:
    """`pred` (class ids) with the rows it calls unseen relabelled by `iterations` k-means updates among
    the unseen classes, on those rows only, from `unseen_means` (one row per `unseen` class, in z's space).
    Rows called seen keep their label, however near an unseen mean they lie."""
    from zerodiffpp.baselines.kmeans import lloyd
    out = pred.copy()
    called = np.isin(pred, unseen)
    if called.any():
        out[called] = unseen[lloyd(z[called], unseen_means, iterations)]
    return out


def gzsl(y: np.ndarray, pred: np.ndarray, seen: np.ndarray, unseen: np.ndarray) -> dict:
    """U, S, H (means of per-class accuracies) and the share of unseen labels that are right."""
    from zerodiffpp.evaluation.metrics import harmonic_mean, mean_per_class_accuracy
    is_u = np.isin(y, unseen)
    u = mean_per_class_accuracy(y[is_u], pred[is_u], unseen)
    s = mean_per_class_accuracy(y[~is_u], pred[~is_u], seen)
    called = np.isin(pred, unseen)
    right = float(np.mean(pred[called] == y[called])) if called.any() else float("nan")
    return {"U": u, "S": s, "H": harmonic_mean(u, s), "unseen_labels_right": right}


def main(argv=None):
    a = probes.parser(__doc__, ratio=0.1).parse_args(argv)
    _, val, test = probes.load(a)
    from zerodiffpp.baselines import kmeans, prototypes, stacking

    chosen = prototypes.evaluate(val, test, variants=("linear",))["linear"]
    alpha, temperature, gamma = chosen["alpha"], chosen["temperature"], chosen["calibration"]
    pr, p = prototypes.Prototypes(test, "linear"), test
    means = np.empty((len(p.classes), pr.seen_means.shape[1]))
    means[np.searchsorted(p.classes, p.seen)] = pr.seen_means
    means[np.searchsorted(p.classes, p.unseen)] = pr.unseen_means(alpha)
    x, y = np.concatenate([p.x_test_seen, p.x_test_unseen]), np.concatenate([p.y_test_seen, p.y_test_unseen])
    z, zm = pr.embed(x), pr.embed(means)  # the k-means space and its starting means
    scores = pr.gzsl_split_scores(alpha)  # the panel's GZSL scores over p.classes, rows in x's order
    probs = stacking.softmax(np.concatenate([scores.seen, scores.unseen]), temperature * scores.scale)
    probs[:, np.isin(p.classes, p.seen)] -= gamma
    pred = p.classes[probs.argmax(1)]
    called, is_u = np.isin(pred, p.unseen), np.isin(y, p.unseen)
    told = kmeans.kmeans_t1s(pr, alpha, ITERATIONS)
    print(f"{a.name} {a.protocol} protocol, seen ratio {a.ratio}, seed {a.seed}: {len(p.seen)} seen / "
          f"{len(p.unseen)} unseen classes; ridge (linear, alpha {alpha:g}, temperature {temperature:g}, "
          f"calibration {gamma:g}). The GZSL rule calls {called.sum()} of {len(x)} test images unseen: "
          f"{100 * np.mean(is_u[called]):.1f} % of them are, and {100 * np.mean(called[is_u]):.1f} % of the "
          f"unseen images are called unseen. Percent:")
    print("| k-means updates | told: ZSL T1 | pooled: U | S | H | unseen labels right | all classes: U | S | H |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for k in ITERATIONS:
        pooled = gzsl(y, refine_called_unseen(z, pred, p.unseen, zm[np.searchsorted(p.classes, p.unseen)], k),
                      p.seen, p.unseen)
        every = gzsl(y, p.classes[kmeans.lloyd(z, zm, k)], p.seen, p.unseen)
        print(f"| {k} | {100 * told[k]:.1f} | " + " | ".join(f"{100 * pooled[c]:.1f}" for c in
              ("U", "S", "H", "unseen_labels_right")) + " | "
              + " | ".join(f"{100 * every[c]:.1f}" for c in ("U", "S", "H")) + " |")


if __name__ == "__main__":
    main()
