"""Calibrated stacking's value chosen on the dataset's own held-out seen classes
(`classifier.calibration: auto`).

Calibrated stacking (Chao et al., ECCV 2016) subtracts a value gamma from every seen class's
probability before the GZSL arg-max. Its authors choose gamma on validation classes: some seen
classes play the unseen ones. A value carried over from another dataset is meaningless: on 10
classes a seen probability of 0.6 is common, on 200 classes it is rare, and gamma 0.6 then
removes almost every seen prediction (S collapses).

What `choose_calibration` does, inside the pipeline and without any test image:
  1. hold out `classifier.calibration_holdout` of the seen classes (at least one, at least one kept),
     drawn with the run's seed;
  2. train a GZSL classifier as the classify stage does (same input view, epochs, batch, rate) on
     real training features of the kept seen classes (80 % of each class's images) and on features
     *generated* for the held-out classes, as the unseen classes are generated at test time;
  3. score every gamma of `GRID` on real features: S' on the kept classes' other 20 %, U' on the
     held-out classes' training images (which that classifier never saw); keep the gamma with the
     best H' (ties: the one nearest 0).
Known bias: the generator has seen the held-out classes' real features in training, so their
generated features are better than an unseen class's will be, and the choice leans to the seen
side (lower, even negative, gamma); never the collapse of a toy value (docs/fixture.md).
"""
from __future__ import annotations

import logging

import numpy as np

from zerodiffpp.classifier import InputView, calibrated, load_classifier, train_softmax
from zerodiffpp.metrics import gzsl_scores

log = logging.getLogger(__name__)

# -1.00, -0.98, ..., 1.00. Negative values favour the seen classes: when generated classes swamp the real
# ones (a scarce seen ratio: a few real samples per seen class against hundreds generated), S falls to
# 0 at gamma 0 and only a negative gamma brings it back.
GRID = tuple(round(0.02 * k, 2) for k in range(-50, 51))
FIT_FRACTION = 0.8  # of each kept seen class's training images; the rest score S'


def holdout_classes(seen: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """round(fraction * #seen) seen classes (at least 1, at most #seen - 1), sorted."""
    if len(seen) < 2:
        raise ValueError("classifier.calibration auto needs at least two seen classes (one to hold out)")
    k = min(len(seen) - 1, max(1, int(round(fraction * len(seen)))))
    return np.sort(np.random.default_rng(seed).choice(np.asarray(seen), size=k, replace=False))


def split_kept(y: np.ndarray, kept: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `y` (kept classes only) split per class into fit / score parts (each part at
    least one image where the class has two)."""
    rng = np.random.default_rng(seed + 1)
    fit, score = [], []
    for c in kept:
        pos = rng.permutation(np.flatnonzero(y == c))
        n_fit = len(pos) if len(pos) < 2 else min(len(pos) - 1, max(1, int(round(FIT_FRACTION * len(pos)))))
        fit.append(pos[:n_fit])
        score.append(pos[n_fit:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(score))


def sweep(probs_kept: np.ndarray, y_kept: np.ndarray, probs_held: np.ndarray, y_held: np.ndarray,
          classes: np.ndarray, kept: np.ndarray, held: np.ndarray, grid=GRID) -> list[dict]:
    """U', S', H' of every gamma in `grid`: gamma is subtracted from the kept (seen-like) classes."""
    rows = []
    for g in grid:
        pred_kept = classes[calibrated(probs_kept, classes, kept, g).argmax(1)]
        pred_held = classes[calibrated(probs_held, classes, kept, g).argmax(1)]
        s = gzsl_scores(y_kept, pred_kept, y_held, pred_held, kept, held)
        rows.append({"calibration": float(g), **s})
    return rows


def best(rows: list[dict]) -> float:
    """The gamma of the highest H' (on ties the one nearest 0, then the smaller)."""
    return max(rows, key=lambda r: (r["H"], -abs(r["calibration"]), -r["calibration"]))["calibration"]


def choose_calibration(synth, prep, p_clf: dict, per_class: int, sampler: str, device, seed: int) -> dict:
    """{'calibration': gamma, 'held_out': class ids, 'grid': rows of `sweep`} (module docstring).
    `synth` is a Synthesizer over the generator whose features the classifier will be trained on."""
    held = holdout_classes(prep.seen, p_clf["calibration_holdout"], seed)
    kept = np.setdiff1d(prep.seen, held)
    in_kept = np.flatnonzero(np.isin(prep.y_train, kept))
    fit, score = split_kept(prep.y_train[in_kept], kept, seed)
    fit, score = in_kept[fit], in_kept[score]
    in_held = np.flatnonzero(np.isin(prep.y_train, held))
    view = InputView.from_generator(p_clf["features"], synth.checkpoint(), device)
    x_gen, y_gen = synth.full(held, per_class, sampler)
    classes = np.sort(np.concatenate([kept, held]))
    clf = train_softmax(np.concatenate([prep.x_train[fit], x_gen]), np.concatenate([prep.y_train[fit], y_gen]),
                        classes, p_clf["epochs"], p_clf["batch_size"], p_clf["lr"], device,
                        desc="calibration: held-out-class GZSL classifier", view=view)
    rows = sweep(clf.probabilities(prep.x_train[score], device), prep.y_train[score],
                 clf.probabilities(prep.x_train[in_held], device), prep.y_train[in_held], classes, kept, held)
    gamma = best(rows)
    chosen = next(r for r in rows if r["calibration"] == gamma)
    zero = next(r for r in rows if r["calibration"] == 0.0)  # the grid runs from -1: rows[0] is gamma -1
    log.info("calibration: %d of %d seen classes held out; gamma %.2f (H' %.3f, U' %.3f, S' %.3f; at 0: H' %.3f, "
             "U' %.3f, S' %.3f)", len(held), len(prep.seen), gamma, chosen["H"], chosen["U"], chosen["S"],
             zero["H"], zero["U"], zero["S"])
    return {"calibration": gamma, "source": "auto", "held_out": held.tolist(), "grid": rows}


def split_curve(clf, prep, device) -> list[dict]:
    """U, S, H of the split's own GZSL evaluation at every gamma of `GRID`, from one trained GZSL
    classifier `clf` (the classify stage's). Under data.protocol: validation the split's unseen
    classes are validation classes that neither the generator nor the classifier saw: the unbiased
    place to choose gamma, as calibrated stacking's authors do. On the test split the curve may only
    be *read* at a value chosen elsewhere (choosing on it would tune on test)."""
    classes = np.arange(prep.n_classes)
    return sweep(clf.probabilities(prep.x_test_seen, device), prep.y_test_seen,
                 clf.probabilities(prep.x_test_unseen, device), prep.y_test_unseen, classes, prep.seen, prep.unseen)


def gzsl_curve(states: dict, adapted_ckpt: dict, prep, device) -> list[dict]:
    """`split_curve` of the classify stage's GZSL classifier (its saved `states`, reading the view
    of the adapted generator it was trained with)."""
    view = InputView.from_generator(states["view"], adapted_ckpt, device)
    return split_curve(load_classifier(states["gzsl"], prep.x_train.shape[1], device, view), prep, device)


def resolve(synth, prep, p_clf: dict, per_class: int, sampler: str, device, seed: int) -> dict:
    """classifier.calibration as a record: chosen by `choose_calibration` when 'auto', else the
    number given in params.yaml."""
    if p_clf["calibration"] == "auto":
        return choose_calibration(synth, prep, p_clf, per_class, sampler, device, seed)
    return {"calibration": float(p_clf["calibration"]), "source": "params", "held_out": [], "grid": []}


def resolve_run(synth, prep, p_clf: dict, tta_value, transductive: bool, per_class: int, sampler: str, device,
                seed: int) -> dict:
    """The adapt stage's calibration record: `resolve` of classifier.calibration (the final GZSL
    classifier's value) and, for a transductive run, 'pseudo_labels': DiffTTA's own value (tta.calibration,
    `tta_value`). The two are apart so that a final value chosen on validation classes does not move the
    pseudo-labels. 'auto' is chosen once, at the same point of the run whichever of the two asks for it:
    a run with classifier.calibration fixed to a value then equals an automatic run's `split_curve` read
    at that value (same pseudo-labels, same random draws)."""
    calib = resolve(synth, prep, p_clf, per_class, sampler, device, seed)
    if not transductive:
        return calib
    pl = calib if (tta_value == "auto" and calib["source"] == "auto") else \
        resolve(synth, prep, dict(p_clf, calibration=tta_value), per_class, sampler, device, seed)
    return dict(calib, pseudo_labels={"calibration": pl["calibration"], "source": pl["source"]})
