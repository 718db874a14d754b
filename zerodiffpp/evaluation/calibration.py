"""Calibrated stacking's value, chosen on validation classes (`classifier.calibration: auto`).

Calibrated stacking (Chao et al., ECCV 2016) subtracts a value gamma from every seen class's
probability before the GZSL arg-max. Its authors choose gamma on validation classes: seen classes
that the whole pipeline treats as unseen. A value carried over from another dataset is meaningless
(on 10 classes a seen probability of 0.6 is common, on 200 it is rare and 0.6 erases S), and a value
chosen on classes the generator trained on leans to the seen side and collapses U where data is
scarce: their generated features are too good (docs/calibration.md).

The validation pass (`zerodiffpp.pipeline.validation`, stages `val_train` and `calibrate`) runs the
same method on the validation classes with the same class layout; this module scores every gamma of
`GRID` on a split's own images and keeps the best H (`split_curve`, `best`), and turns the params and
the pass's record into the values the test pass uses (`value_for`).
"""
from __future__ import annotations

import numpy as np

from zerodiffpp.nn.classifier import InputView, calibrated, load_classifier
from zerodiffpp.runtime.errors import DataError
from zerodiffpp.evaluation.metrics import gzsl_scores

# -1.00, -0.98, ..., 1.00. Negative values favour the seen classes: when generated classes swamp the real
# ones (a scarce seen ratio: a few real samples per seen class against hundreds generated), S falls to
# 0 at gamma 0 and only a negative gamma brings it back.
GRID = tuple(round(0.02 * k, 2) for k in range(-50, 51))


def sweep(probs_seen: np.ndarray, y_seen: np.ndarray, probs_unseen: np.ndarray, y_unseen: np.ndarray,
          classes: np.ndarray, seen: np.ndarray, unseen: np.ndarray, grid=GRID) -> list[dict]:
    """U, S, H of every gamma in `grid`: gamma is subtracted from the `seen` classes' probabilities."""
    rows = []
    for g in grid:
        pred_seen = classes[calibrated(probs_seen, classes, seen, g).argmax(1)]
        pred_unseen = classes[calibrated(probs_unseen, classes, seen, g).argmax(1)]
        rows.append({"calibration": float(g), **gzsl_scores(y_seen, pred_seen, y_unseen, pred_unseen, seen, unseen)})
    return rows


def best(rows: list[dict]) -> float:
    """The gamma of the highest H (on ties the one nearest 0, then the smaller)."""
    return max(rows, key=lambda r: (r["H"], -abs(r["calibration"]), -r["calibration"]))["calibration"]


def at(rows: list[dict], gamma: float) -> dict:
    """The row of `rows` at `gamma`."""
    return next(r for r in rows if r["calibration"] == gamma)


def split_curve(clf, prep, device) -> list[dict]:
    """U, S, H of the split's own GZSL evaluation at every gamma of `GRID`, from one trained GZSL
    classifier `clf`. In the validation pass the split's unseen classes are validation classes that no
    model of the pass trained on: the place to choose gamma, as calibrated stacking's authors do. On
    the test split the curve may only be *read* at a value chosen elsewhere (choosing on it would tune
    on test)."""
    if len(prep.y_test_seen) == 0 or len(prep.y_test_unseen) == 0:
        raise DataError(f"calibrated stacking is chosen on a split with {len(prep.y_test_seen)} held-out seen and "
                        f"{len(prep.y_test_unseen)} validation images; it needs both (too few images per seen class "
                        f"to hold any out: set classifier.calibration to a number)")
    return sweep(clf.probabilities(prep.x_test_seen, device), prep.y_test_seen,
                 clf.probabilities(prep.x_test_unseen, device), prep.y_test_unseen, prep.classes, prep.seen,
                 prep.unseen)


def gzsl_curve(states: dict, adapted_ckpt: dict, prep, device) -> list[dict]:
    """`split_curve` of the classify stage's GZSL classifier (its saved `states`, reading the view
    of the adapted generator it was trained with)."""
    view = InputView.from_generator(states["view"], adapted_ckpt, device)
    return split_curve(load_classifier(states["gzsl"], prep.x_train.shape[1], device, view), prep, device)


def choice(rows: list[dict]) -> dict:
    """{'value', 'U', 'S', 'H'} of the best gamma of a split's curve."""
    row = at(rows, best(rows))
    return {"value": row["calibration"], "U": row["U"], "S": row["S"], "H": row["H"]}


def is_auto(value) -> bool:
    return value == "auto"


def value_for(value, chosen: dict | None, key: str) -> dict:
    """The value a run uses for `key` (classifier.calibration or tta.calibration, `value` its params
    value): {'value', 'source'}. 'auto' takes the validation pass's choice `chosen` ({'value', 'U',
    'S', 'H'}); a number is used as given."""
    if value != "auto":
        return {"value": float(value), "source": "params"}
    if chosen is None:
        raise DataError(f"{key} is auto but the validation pass chose no value for it (rerun `dvc repro`)")
    return {**chosen, "source": "validation pass"}


def pseudo_labels_value(record: dict) -> float:
    """The calibrate stage's value for DiffTTA's pseudo-labels (an inductive run pseudo-labels nothing: 0)."""
    return record["pseudo_labels"]["value"] if record["pseudo_labels"] else 0.0
