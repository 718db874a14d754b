"""The validation pass (zerodiffpp/pipeline/validation.py): calibrated stacking chosen on validation
classes that no model of the run trained on, with no test image and no test label read, for the
classifier it calibrates, and used by classify and report."""
import numpy as np
import pytest

from tests.conftest import make_xlsa17
from tests.tiny import tiny_params
from zerodiffpp.evaluation import calibration as cal
from zerodiffpp.runtime.errors import DataError
from zerodiffpp.pipeline import in_process, validation
from zerodiffpp.data.splits import calibration_view, holdout_classes, prepare_split
from zerodiffpp.data.xlsa17 import load_xlsa17


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """8 seen classes (the last 3 the dataset's validation classes, xlsa17 val_loc) and 3 unseen."""
    return load_xlsa17(make_xlsa17(tmp_path_factory.mktemp("val") / "TOY", n_seen=8, n_unseen=3, per_class=24,
                                   n_val=3), "TOY")


def _params(method="zerodiffpp", **over):
    """Tiny settings; tta.gate always (the gate has tests of its own below), so ZeroDiff++ keeps DiffTTA."""
    p = tiny_params()
    p["method"], p["train"]["threads"] = method, 1
    p["tta"]["gate"] = "always"
    for k, v in over.items():
        sec, key = k.split("__")
        p[sec][key] = v
    return p


def _test_images(fs):
    return np.concatenate([fs.test_seen, fs.test_unseen])


def test_holdout_classes_are_a_seeded_fraction_of_the_seen_classes():
    seen = np.arange(10, 160)
    held = holdout_classes(seen, 0.2, seed=3)
    assert len(held) == 30 and np.isin(held, seen).all() and (np.diff(held) > 0).all()
    assert np.array_equal(held, holdout_classes(seen, 0.2, seed=3))
    assert not np.array_equal(held, holdout_classes(seen, 0.2, seed=4))
    assert len(holdout_classes(np.arange(3), 0.01, 0)) == 1  # at least one
    assert len(holdout_classes(np.arange(7), 0.2, 0)) == 2  # two where there are four or more: ZSL over one is 1
    assert len(holdout_classes(np.arange(3), 0.99, 0)) == 2  # at least one kept
    with pytest.raises(DataError, match="two seen classes"):
        holdout_classes(np.arange(1), 0.5, 0)


@pytest.mark.parametrize("protocol", ["test", "validation"])
def test_the_split_holds_no_test_image_and_trains_on_no_validation_class(toy, protocol):
    view = calibration_view(toy, protocol, "", seed=0, fraction=0.4)
    val = np.unique(toy.labels[view.test_unseen])
    used = np.concatenate([view.trainval, view.test_seen, view.test_unseen])
    assert not np.isin(used, _test_images(toy)).any()
    assert not np.isin(toy.labels[np.concatenate([view.trainval, view.test_seen])], val).any()
    assert not np.isin(val, toy.unseen_classes).any()
    if protocol == "test":  # the dataset's own validation classes
        assert np.array_equal(val, toy.val_classes)
    else:  # the run's evaluation classes (the dataset's validation classes) are not in it at all
        assert not np.isin(toy.labels[used], toy.val_classes).any() and len(val) == 2
    prep, _ = prepare_split(view, 1.0, 0)
    # the classifiers' classes: the split's seen and validation classes, no output unit for a real unseen class
    assert np.array_equal(prep.classes, np.union1d(prep.seen, val)) and np.array_equal(prep.unseen, val)


def test_a_dataset_without_validation_classes_holds_out_a_seeded_fraction(tmp_path):
    fs = load_xlsa17(make_xlsa17(tmp_path / "T", n_seen=10, n_unseen=2), "T")
    assert fs.val_classes.size == 0
    view = calibration_view(fs, "test", "", seed=5, fraction=0.2)
    assert np.array_equal(np.unique(fs.labels[view.test_unseen]), holdout_classes(fs.seen_classes, 0.2, 5))


@pytest.fixture(scope="module")
def passed(toy):
    """The whole validation pass of a tiny ZeroDiff++ run, on the toy as it is."""
    p = _params()
    trained = in_process.train_validation(p, toy)
    return p, trained, in_process.calibrate(p, trained)


def test_the_record_names_the_classes_the_values_and_zero_leaks(toy, passed):
    p, (prep, _, _, split), rec = passed
    assert split["classes"] == [str(n) for n in toy.class_names[toy.val_classes]]
    assert split["validation_images_in_training"] == 0 and split["test_images_read"] == 0
    assert not np.isin(prep.y_train, toy.val_classes).any()
    assert rec["classifier"]["source"] == "validation pass" and rec["pseudo_labels"]["source"] == "validation pass"
    # the value is the best H of the final classifier's curve on the validation classes
    assert rec["classifier"]["value"] == cal.best(rec["curve"])
    assert rec["classifier"]["H"] == cal.at(rec["curve"], rec["classifier"]["value"])["H"]


def test_the_chosen_values_read_no_test_image_or_label(toy, passed):
    """Every test feature replaced by noise and every test label shuffled: the same record, to the bit."""
    p, _, rec = passed
    fs = type(toy)(**{k: getattr(toy, k).copy() for k in toy.__dataclass_fields__})
    test = _test_images(fs)
    fs.x[test] = np.random.default_rng(1).random((len(test), fs.x.shape[1])).astype(fs.x.dtype) * 50
    fs.labels[test] = np.random.default_rng(2).permutation(fs.labels[test])
    again = in_process.calibrate(p, in_process.train_validation(p, fs))
    assert again == rec


def test_a_leaking_split_is_refused(toy, monkeypatch):
    """split_record counts, from the indices, images of the validation classes in the pass's training set."""
    real = validation.calibration_view

    def leaky(fs, *args):
        view = real(fs, *args)
        view.trainval = np.sort(np.concatenate([view.trainval, view.test_unseen[:1]]))
        return view

    monkeypatch.setattr(validation, "calibration_view", leaky)
    with pytest.raises(DataError, match="1 images of its validation classes in its training set"):
        validation.train_pass(_params(gen__epochs=1), toy)


def test_fixed_values_train_nothing_and_a_mix_chooses_only_the_auto_one(toy, passed, monkeypatch):
    p, trained, rec = passed
    fixed = _params(classifier__calibration=0.3, tta__calibration=-0.2)
    assert validation.needed(fixed) == {"classifier": False, "pseudo_labels": False, "gate": False}
    assert validation.needed(_params(classifier__calibration=0.3, tta__calibration=-0.2, tta__gate="validation"))["gate"]
    assert in_process.train_validation(fixed, toy) is None
    assert in_process.calibrate(fixed, None)["classifier"] == {"value": 0.3, "source": "params"}
    assert in_process.calibrate(fixed, None)["pseudo_labels"] == {"value": -0.2, "source": "params"}
    assert validation.needed(_params("zerodiff")) == {"classifier": True, "pseudo_labels": False, "gate": False}
    mixed = in_process.calibrate(_params(tta__calibration=0.1), trained)
    assert mixed["pseudo_labels"] == {"value": 0.1, "source": "params"} and mixed["classifier"]["source"] == \
        "validation pass"
    assert in_process.calibrate(_params("zerodiff"), trained)["pseudo_labels"] is None  # inductive


def test_the_pseudo_labels_value_is_chosen_on_the_provisional_classifier_of_the_pass(passed, monkeypatch):
    """DiffTTA in the pass pseudo-labels at the best H of its own provisional classifier's curve on the
    validation split; that value, not the final classifier's, goes to the test run's pseudo-labels."""
    p, (prep, drg, gen, split), rec = passed
    seen = []
    real_split_curve = cal.split_curve

    def spy(clf, prep_, device):
        rows = real_split_curve(clf, prep_, device)
        seen.append((prep_, cal.choice(rows)))
        return rows

    monkeypatch.setattr(cal, "split_curve", spy)
    again = validation.calibrate_pass(p, prep, drg, gen, split)
    assert again == rec
    assert seen[0][0] is prep and again["pseudo_labels"] == dict(seen[0][1], source="validation pass")


@pytest.mark.parametrize("protocol", ["test", "validation"])
def test_scarce_data_does_not_crash(tmp_path, protocol):
    """One training image per kept class (SUN at 10 %, also under the validation protocol, where the
    pass carves its split out of a validation split): the pass still has held-out images to score."""
    fs = load_xlsa17(make_xlsa17(tmp_path / "S", n_seen=10, n_unseen=2, per_class=20, n_val=3), "S")
    p = _params("zerodiff", train__seen_ratio=0.1, gen__epochs=1, data__protocol=protocol)
    trained = in_process.train_validation(p, fs)
    assert np.bincount(trained[0].y_train).max() == 1
    rec = in_process.calibrate(p, trained)
    assert np.isfinite(rec["classifier"]["H"])


def test_classify_and_report_use_the_records_value(toy, passed):
    """The test pass's GZSL predictions and eval.json follow the record: +1 sends every test image to an
    unseen class (S = 0), -1 to a seen one (U = 0)."""
    p, _, rec = passed
    p = _params("zerodiff")
    generators = in_process.train_generators(p, toy)
    for value, zero in ((1.0, "S"), (-1.0, "U")):
        record = dict(rec, classifier={"value": value, "source": "params"}, pseudo_labels=None)
        m = in_process.evaluate_generators(p, generators, record)
        assert m["gzsl"][zero] == 0.0 and m["calibration"]["value"] == value


def test_the_gate_compares_the_configured_method_with_its_lighter_variants():
    names = lambda p: [n for n, _ in validation.candidates(p)]  # noqa: E731
    assert names(_params(tta__gate="validation")) == ["configured", "without DiffTTA", "inductive"]
    assert names(_params("zerodiff+diffgen", tta__gate="validation")) == ["configured", "inductive"]
    assert names(_params(tta__gate="always")) == ["configured"]
    assert names(_params("zerodiff", tta__gate="validation")) == ["configured"]
    assert dict(validation.candidates(_params(tta__gate="validation")))["without DiffTTA"] == \
        {"method": "zerodiff+diffgen", "tta": False, "diffgen": True}


@pytest.mark.parametrize("scores, kept", [
    ({"configured": (0.6, 0.5), "without DiffTTA": (0.5, 0.5), "inductive": (0.4, 0.4)}, "configured"),
    ({"configured": (0.3, 0.2), "without DiffTTA": (0.5, 0.45), "inductive": (0.4, 0.4)}, "without DiffTTA"),
    ({"configured": (0.5, 0.5), "without DiffTTA": (0.5, 0.5), "inductive": (0.5, 0.5)}, "inductive"),  # ties: lighter
])
def test_the_gate_keeps_the_best_mean_of_validation_t1_and_h(monkeypatch, scores, kept):
    seen = []

    def fake(p, prep, drg, gen):
        name = {"zerodiffpp": "configured", "zerodiff+diffgen": "without DiffTTA", "zerodiff": "inductive"}[p["method"]]
        seen.append(name)
        t1, h = scores[name]
        return {"T1": t1, "curve": [{"calibration": 0.0, "U": h, "S": h, "H": h}],
                "choice": {"value": len(seen) / 10, "U": h, "S": h, "H": h},
                "pseudo_labels": {"value": -len(seen) / 10, "U": h, "S": h, "H": h} if name != "inductive" else None}

    monkeypatch.setattr(validation, "evaluate_on_split", fake)
    rec = validation.calibrate_pass(_params(tta__gate="validation"), None, None, None, {"classes": []})
    assert seen == ["configured", "without DiffTTA", "inductive"]
    assert rec["components"]["chosen"] == kept
    i = seen.index(kept) + 1
    assert rec["classifier"]["value"] == i / 10  # the kept variant's own calibration
    assert (rec["pseudo_labels"] or {}).get("value") == (None if kept == "inductive" else -i / 10)
    assert rec["components"]["candidates"][kept] == {"T1": scores[kept][0], "H": scores[kept][1]}


@pytest.mark.parametrize("scores, margin, kept", [
    ({"configured": 0.51, "without DiffTTA": 0.50, "inductive": 0.50}, 0.02, "inductive"),  # inside the margin
    ({"configured": 0.53, "without DiffTTA": 0.50, "inductive": 0.50}, 0.02, "configured"),
    ({"configured": 0.47, "without DiffTTA": 0.53, "inductive": 0.50}, 0.02, "without DiffTTA"),
    ({"configured": 0.53, "without DiffTTA": 0.525, "inductive": 0.50}, 0.02, "configured"),  # not margin between them
    ({"configured": 0.53, "without DiffTTA": 0.53, "inductive": 0.50}, 0.02, "without DiffTTA"),  # ties: the lighter
    ({"configured": 0.518, "without DiffTTA": 0.515, "inductive": 0.50}, 0.02, "inductive"),
    ({"configured": 0.501, "without DiffTTA": 0.50, "inductive": 0.50}, 0.0, "configured"),
    ({"configured": 0.60, "inductive": 0.50}, 0.05, "configured"),  # zerodiff+diffgen's two candidates
])
def test_a_transductive_variant_must_beat_the_inductive_one_by_the_margin(scores, margin, kept):
    assert validation.gate_choice(scores, margin) == kept


def test_the_gate_reads_its_margin_from_params(monkeypatch):
    def fake(p, prep, drg, gen):
        t1 = {"zerodiffpp": 0.53, "zerodiff+diffgen": 0.5, "zerodiff": 0.5}[p["method"]]
        return {"T1": t1, "curve": [{"calibration": 0.0, "U": 0.5, "S": 0.5, "H": 0.5}],
                "choice": {"value": 0.0, "U": 0.5, "S": 0.5, "H": 0.5},
                "pseudo_labels": {"value": 0.0, "U": 0.5, "S": 0.5, "H": 0.5}}

    monkeypatch.setattr(validation, "evaluate_on_split", fake)
    kept = lambda m: validation.calibrate_pass(_params(tta__gate="validation", tta__gate_margin=m),  # noqa: E731
                                               None, None, None, {"classes": []})["components"]["chosen"]
    assert kept(0.01) == "configured" and kept(0.02) == "inductive"  # score gain 0.015


def test_the_test_pass_runs_what_the_gate_kept(toy, passed):
    """A record that closed the gate: the test pass adapts nothing and synthesises nothing from test
    features, and says so (transductive 0)."""
    p, _, rec = passed
    generators = in_process.train_generators(p, toy)
    closed = dict(rec, pseudo_labels=None, components={"method": "zerodiff", "tta": False, "diffgen": False, "chosen": "inductive",
                                                       "candidates": {"inductive": {"T1": 0.5, "H": 0.4}}})
    m = in_process.evaluate_generators(p, generators, closed)
    assert m["transductive"] == 0 and m["synthetic"]["n_partial"] == 0 and "tta" not in m
    assert m["gate"] == {"tta": 0, "diffgen": 0, "inductive_T1": 0.5, "inductive_H": 0.4}
    m = in_process.evaluate_generators(p, generators, rec)  # no gate in the record: as params.yaml says
    assert m["transductive"] == 1 and m["synthetic"]["n_partial"] > 0 and "gate" not in m
