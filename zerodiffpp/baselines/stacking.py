"""GZSL for the baselines: class scores -> softmax probabilities -> calibrated stacking.

Each baseline gives, for an image, one score per class of the split (seen and unseen). A softmax
over the classes makes them probabilities, and calibrated stacking (`zerodiffpp.evaluation.calibration`)
subtracts a value from the seen classes' probabilities before the arg-max. The softmax temperature
and the calibration are chosen together, on the validation split only (best H), then applied once to
the test split. The temperature is needed because the scores have no common scale (ESZSL's differ
by hundredths between classes, squared distances by hundreds): without it the probabilities are near
uniform or near one-hot, and the calibration grid (steps of 0.02) cannot separate seen from unseen.
It is relative: scores are divided by temperature x `scale`, the mean over the split's *training*
images of their scores' standard deviation across classes, so that one value means the same for the
model fitted on the validation split and the one fitted on the test split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from zerodiffpp.evaluation import calibration
from zerodiffpp.data.features import Prepared

TEMPERATURES = tuple(round(10.0 ** (k / 2), 3) for k in range(-4, 5))  # 0.01, 0.032, ..., 100


@dataclass
class SplitScores:
    """A split's GZSL scores: test-seen and test-unseen images scored over `classes` (seen + unseen)."""
    seen: np.ndarray      # (n_test_seen, C)
    unseen: np.ndarray    # (n_test_unseen, C)
    scale: float          # the training images' mean per-image standard deviation of the scores
    prep: Prepared

    @classmethod
    def of(cls, prep: Prepared, score: Callable[[np.ndarray], np.ndarray]) -> "SplitScores":
        """`score(x)` gives (n, C) scores over prep.classes, in that order."""
        scale = float(score(prep.x_train).std(axis=1).mean())
        return cls(score(prep.x_test_seen), score(prep.x_test_unseen), scale if scale > 0 else 1.0, prep)

    def curve(self, temperature: float, grid=calibration.GRID) -> list[dict]:
        p, t = self.prep, temperature * self.scale
        return calibration.sweep(softmax(self.seen, t), p.y_test_seen, softmax(self.unseen, t),
                                 p.y_test_unseen, p.classes, p.seen, p.unseen, grid)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def choose(val: SplitScores, temperatures=TEMPERATURES) -> dict:
    """{'temperature', 'calibration', 'val_H'}: the pair with the best H on the validation split
    (ties: the first temperature, then `calibration.best`'s rule)."""
    found = None
    for t in temperatures:
        rows = val.curve(t)
        g = calibration.best(rows)
        h = calibration.at(rows, g)["H"]
        if found is None or h > found["val_H"]:
            found = {"temperature": t, "calibration": g, "val_H": h}
    return found


def apply(test: SplitScores, temperature: float, calibration_value: float) -> dict:
    """{'U', 'S', 'H'} of the test split at the chosen temperature and calibration."""
    row = test.curve(temperature, grid=(calibration_value,))[0]
    return {k: row[k] for k in ("U", "S", "H")}
