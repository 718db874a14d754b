"""classifier.calibration: auto, chosen on held-out seen classes: known sweeps, the choice rule, and
that a many-class run keeps its seen classes where the toy's value erased them."""
import logging

import numpy as np
import pytest

from tests.tiny import tiny_params, tiny_prepared
from zerodiffpp import calibration as cal
from zerodiffpp.errors import ParamsError
from zerodiffpp.params import validate


def test_holdout_classes_are_a_seeded_fraction_of_the_seen_classes():
    seen = np.arange(10, 160)
    held = cal.holdout_classes(seen, 0.2, seed=3)
    assert len(held) == 30 and np.isin(held, seen).all() and (np.diff(held) > 0).all()
    assert np.array_equal(held, cal.holdout_classes(seen, 0.2, seed=3))
    assert not np.array_equal(held, cal.holdout_classes(seen, 0.2, seed=4))
    assert len(cal.holdout_classes(np.arange(3), 0.01, 0)) == 1  # at least one
    assert len(cal.holdout_classes(np.arange(3), 0.99, 0)) == 2  # at least one kept
    with pytest.raises(ValueError, match="two seen classes"):
        cal.holdout_classes(np.arange(1), 0.5, 0)


def test_split_kept_leaves_every_class_in_both_parts():
    y = np.repeat([4, 7, 9], [10, 2, 5])
    fit, score = cal.split_kept(y, np.array([4, 7, 9]), seed=0)
    assert set(fit).isdisjoint(score) and len(fit) + len(score) == len(y)
    for c, n_fit in ((4, 8), (7, 1), (9, 4)):
        assert (y[fit] == c).sum() == n_fit and (y[score] == c).sum() == len(y[y == c]) - n_fit


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
    prep = SimpleNamespace(n_classes=3, seen=np.array([0, 1]), unseen=np.array([2]),
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


def test_adapt_resolves_the_value_of_the_runs_seen_ratio(tmp_path, monkeypatch):
    from stages import adapt
    seen = {}

    def fake_resolve(synth, prep, p_clf, per_class, sampler, device, seed):
        seen["calibration"] = p_clf["calibration"]
        raise RuntimeError("stop here")

    monkeypatch.setattr(cal, "resolve", fake_resolve)
    monkeypatch.setattr(adapt, "Synthesizer", lambda *a: None)
    p = tiny_params()
    p["train"]["seen_ratio"] = 0.3
    p["synth"]["unseen_per_class"] = p["classifier"]["batch_size"] = 10
    p["classifier"]["calibration"] = {1.0: -0.1, 0.3: 0.26, 0.1: "auto"}
    with pytest.raises(RuntimeError, match="stop here"):
        adapt.run(p, type("Prep", (), {"att": None})(), {}, {}, "cpu")
    assert seen["calibration"] == 0.26


def test_pseudo_labels_keep_their_own_calibration(monkeypatch):
    """resolve_run: classifier.calibration for the final classifier, tta.calibration for DiffTTA's
    pseudo-labels; 'auto' is chosen once, first, whichever asks for it (same random draws as an auto run)."""
    calls = []

    def fake_resolve(synth, prep, p_clf, per_class, sampler, device, seed):
        calls.append(p_clf["calibration"])
        auto = p_clf["calibration"] == "auto"
        return {"calibration": -0.5 if auto else p_clf["calibration"], "source": "auto" if auto else "params",
                "held_out": [3] if auto else [], "grid": []}

    monkeypatch.setattr(cal, "resolve", fake_resolve)
    def run(clf, tta, transductive):
        return cal.resolve_run(None, None, {"calibration": clf}, tta, transductive, 10, "progressive", "cpu", 0)

    rec = run("auto", "auto", True)
    assert calls == ["auto"] and rec["calibration"] == -0.5
    assert rec["pseudo_labels"] == {"calibration": -0.5, "source": "auto"}
    calls.clear()
    rec = run(0.1, "auto", True)  # the validation-chosen final value does not move the pseudo-labels
    assert calls == [0.1, "auto"] and rec["calibration"] == 0.1 and rec["source"] == "params"
    assert rec["pseudo_labels"] == {"calibration": -0.5, "source": "auto"}
    calls.clear()
    rec = run("auto", 0.2, True)
    assert calls == ["auto", 0.2] and rec["calibration"] == -0.5
    assert rec["pseudo_labels"] == {"calibration": 0.2, "source": "params"}
    calls.clear()
    assert "pseudo_labels" not in run(0.1, "auto", False) and calls == [0.1]  # inductive: nothing to pseudo-label


def test_resolve_passes_a_number_through_without_training(tmp_path):
    rec = cal.resolve(None, None, {"calibration": 0.4}, 10, "progressive", "cpu", 0)
    assert rec == {"calibration": 0.4, "source": "params", "held_out": [], "grid": []}


class FeatureCopier:
    """A stand-in generator: 'generates' a class by drawing its real training features plus a fixed
    offset, so the held-out classes look like unseen classes do (shifted, learnable)."""

    def __init__(self, prep, shift):
        self.prep, self.shift = prep, shift

    def checkpoint(self):
        return {"config": {"kind": "fclswgan"}}  # no decoder: the classifiers read V

    def full(self, classes, per_class, sampler):
        rng = np.random.default_rng(0)
        xs = [self.prep.x_train[rng.choice(np.flatnonzero(self.prep.y_train == c), per_class)] for c in classes]
        return np.clip(np.concatenate(xs) + self.shift, 0, 1).astype(np.float32), np.repeat(classes, per_class)


def test_auto_choice_is_recorded_with_its_grid_and_never_reads_test_features(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="zerodiffpp.calibration")
    prep, p = tiny_prepared(tmp_path)
    prep.x_test_seen[:] = np.nan  # any use of test features would poison the sweep
    prep.x_test_unseen[:] = np.nan
    p_clf = dict(p["classifier"], calibration="auto", calibration_holdout=0.5)
    rec = cal.resolve(FeatureCopier(prep, 0.05), prep, p_clf, 20, "progressive", "cpu", seed=0)
    assert rec["source"] == "auto" and len(rec["held_out"]) == 2
    assert [r["calibration"] for r in rec["grid"]] == list(cal.GRID)
    assert rec["calibration"] == cal.best(rec["grid"])
    assert all(np.isfinite(r["H"]) for r in rec["grid"])
    # the log line's "at 0" numbers are those of gamma 0, not of the grid's first value (-1)
    zero = next(r for r in rec["grid"] if r["calibration"] == 0.0)
    logged = [m for m in caplog.messages if "seen classes held out" in m][-1]
    assert f"at 0: H' {zero['H']:.3f}, U' {zero['U']:.3f}, S' {zero['S']:.3f}" in logged, logged


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
