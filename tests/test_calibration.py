"""Calibrated stacking's value: known sweeps, the choice rule, a many-class run that keeps its seen
classes where the toy's value erased them, and params. The validation pass that chooses it:
tests/test_validation_pass.py."""
import numpy as np
import pytest

from tests.tiny import tiny_params
from zerodiffpp.evaluation import calibration as cal
from zerodiffpp.runtime.errors import DataError, ParamsError
from zerodiffpp.runtime.params import validate


def test_sweep_by_hand():
    classes = np.array([0, 1, 2])  # 0, 1 kept (seen-like), 2 held out
    kept, held = np.array([0, 1]), np.array([2])
    probs_kept = np.array([[0.6, 0.1, 0.3], [0.2, 0.5, 0.3]])  # both right at 0; wrong from gamma > 0.3 / 0.2
    probs_held = np.array([[0.5, 0.1, 0.4], [0.1, 0.2, 0.7]])  # first right once gamma > 0.1
    rows = cal.sweep(probs_kept, np.array([0, 1]), probs_held, np.array([2, 2]), classes, kept, held,
                     grid=(0.0, 0.15, 0.25, 0.5))
    got = [(r["calibration"], r["U"], r["S"]) for r in rows]
    assert got == [(0.0, 0.5, 1.0), (0.15, 1.0, 1.0), (0.25, 1.0, 0.5), (0.5, 1.0, 0.0)]
    assert rows[1]["H"] == pytest.approx(1.0) and rows[0]["H"] == pytest.approx(2 * 0.5 / 1.5)
    assert cal.best(rows) == 0.15


class FixedProbabilities:
    """A stand-in GZSL classifier whose probability rows are its inputs (one row per image)."""

    def probabilities(self, x, device):
        return np.asarray(x)


def test_split_curve_scores_the_splits_own_test_images_subtracting_from_its_seen_classes():
    from types import SimpleNamespace
    # classes 0, 1 seen; 2 unseen (in a validation run: a validation class no model trained on)
    prep = SimpleNamespace(classes=np.arange(3), seen=np.array([0, 1]), unseen=np.array([2]),
                           x_test_seen=np.array([[0.6, 0.1, 0.3], [0.2, 0.5, 0.3]]), y_test_seen=np.array([0, 1]),
                           x_test_unseen=np.array([[0.5, 0.1, 0.4], [0.1, 0.2, 0.7]]), y_test_unseen=np.array([2, 2]))
    rows = cal.split_curve(FixedProbabilities(), prep, "cpu")
    assert [r["calibration"] for r in rows] == list(cal.GRID)
    at = {r["calibration"]: (r["U"], r["S"]) for r in rows}
    # the numbers of test_sweep_by_hand: the unseen image flips to its class once gamma > 0.1, the
    # seen images leave theirs above 0.2 / 0.3; a negative gamma takes the sure unseen image too
    assert at[0.0] == (0.5, 1.0) and at[0.12] == (1.0, 1.0) and at[0.22] == (1.0, 0.5) and at[0.5] == (1.0, 0.0)
    assert at[-0.6] == (0.0, 1.0)
    assert cal.best(rows) == 0.12


def test_best_prefers_the_smallest_value_on_ties():
    rows = [{"calibration": g, "H": h} for g, h in ((0.0, 0.2), (0.1, 0.5), (0.2, 0.5), (0.3, 0.1))]
    assert cal.best(rows) == 0.1


def test_params_accept_auto_or_a_number_only():
    p = tiny_params()
    validate(p)
    for bad in ("0.6x", -1.1, 1.5, "Auto"):
        p["classifier"]["calibration"] = bad
        with pytest.raises(ParamsError, match="classifier.calibration: expected 'auto' or a number"):
            validate(p)


def test_params_accept_one_value_per_seen_ratio_and_name_a_missing_ratio():
    p = tiny_params()
    p["classifier"]["calibration"] = {1.0: -0.1, 0.3: "auto", 0.1: 0.25}
    validate(p)
    p["classifier"]["calibration"] = {1.0: -0.1, 0.3: 1.5}
    with pytest.raises(ParamsError, match="classifier.calibration: expected 'auto' or a number in"):
        validate(p)
    p["classifier"]["calibration"] = {0.3: 0.2, 0.1: 0.1}  # no value for the run's seen ratio 1.0
    with pytest.raises(ParamsError, match=r"classifier.calibration gives values for seen ratios \[0.1, 0.3\], "
                                          r"not for train.seen_ratio 1.0"):
        validate(p)


def test_many_classes_keep_their_seen_accuracy():
    """200 classes, probabilities spread thin: the toy's 0.6 erases the seen classes (S = 0), the
    value chosen on held-out classes keeps S near its uncalibrated level while raising U."""
    rng = np.random.default_rng(0)
    n_kept, n_held, n = 150, 50, 40
    classes = np.arange(n_kept + n_held)
    kept, held = classes[:n_kept], classes[n_kept:]

    def probs(y, bias_to_kept):
        logits = rng.normal(size=(len(y), len(classes)))
        logits[np.arange(len(y)), y] += 4.0  # right class on top, usually
        logits[:, :n_kept] += bias_to_kept  # classes trained on real features are favoured
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    y_kept, y_held = rng.choice(kept, n * 10), rng.choice(held, n * 10)
    p_kept, p_held = probs(y_kept, 1.5), probs(y_held, 1.5)
    rows = cal.sweep(p_kept, y_kept, p_held, y_held, classes, kept, held)
    at = {r["calibration"]: r for r in rows}
    chosen = at[cal.best(rows)]
    assert at[0.6]["S"] < 0.1 * at[0.0]["S"]  # the toy's value: seen-like predictions all but gone
    assert chosen["S"] > 0.5 * at[0.0]["S"] and chosen["U"] > at[0.0]["U"] and chosen["H"] > at[0.0]["H"]
    assert cal.best(rows) < 0.3


def test_value_for_takes_the_validation_passs_choice_for_auto_and_a_number_as_given():
    chosen = {"value": -0.3, "U": 0.4, "S": 0.5, "H": 0.44}
    assert cal.value_for("auto", chosen, "classifier.calibration") == {**chosen, "source": "validation pass"}
    assert cal.value_for(0.25, chosen, "classifier.calibration") == {"value": 0.25, "source": "params"}
    with pytest.raises(DataError, match="tta.calibration is auto but the validation pass chose no value"):
        cal.value_for("auto", None, "tta.calibration")


def test_a_split_without_held_out_images_is_refused_by_name():
    from types import SimpleNamespace
    prep = SimpleNamespace(classes=np.arange(3), seen=np.array([0, 1]), unseen=np.array([2]),
                           x_test_seen=np.zeros((0, 3)), y_test_seen=np.zeros(0, int),
                           x_test_unseen=np.eye(3)[[2]], y_test_unseen=np.array([2]))
    with pytest.raises(DataError, match="0 held-out seen and 1 validation images"):
        cal.split_curve(FixedProbabilities(), prep, "cpu")
