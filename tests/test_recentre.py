"""synth.recentre: each generated class's mean moved a fraction of the way to the ridge regression's mean
for it. Known answers: a hand-computed shift, the targets (the ridge map gen.prototype_base starts from,
fitted on the seen training classes only), the spread left as the generator drew it, 0 leaving the
paper's synthesis untouched, and both GZSL classifiers' generated features (synthesize, DiffTTA's
provisional classifier) recentred alike."""
import numpy as np
import pytest
import torch

from tests.tiny import tiny_prepared
from zerodiffpp.generators.dfg import ZeroDiffTrainer
from zerodiffpp.generators.synth import Synthesizer, recentred
from zerodiffpp.nn import ridge
from zerodiffpp.runtime.params import ParamsError, SCHEMA, _check_value, for_ratio
from zerodiffpp.transductive.diffgen import synthetic_set


def test_recentred_moves_each_class_mean_by_the_fraction_and_keeps_its_spread():
    x = np.array([[0, 0], [2, 2], [5, 5], [7, 7]], np.float32)
    y = np.array([3, 3, 1, 1])
    targets = np.zeros((4, 2), np.float32)
    targets[3], targets[1] = [3, 1], [6, 6]  # class 3: mean (1, 1) -> half way to (3, 1); class 1 at its target
    out = recentred(x.copy(), y, targets, 0.5)
    np.testing.assert_allclose(out, [[1, 0], [3, 2], [5, 5], [7, 7]])
    full = recentred(x.copy(), y, targets, 1.0)
    np.testing.assert_allclose(full[:2].mean(0), targets[3])
    np.testing.assert_allclose(full[:2] - full[:2].mean(0), x[:2] - x[:2].mean(0))  # the spread is the generator's
    np.testing.assert_array_equal(recentred(x.copy(), y, targets, 0.0), x)


@pytest.fixture(scope="module")
def based(tmp_path_factory):
    prep, p = tiny_prepared(tmp_path_factory.mktemp("recentre"))
    p["gen"]["prototype_base"], p["gen"]["sc_view"] = True, False
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    return prep, p, Synthesizer(t.checkpoint(), None, prep.att, "cpu")


def test_the_targets_are_the_base_the_generator_starts_from_and_read_seen_training_classes_only(based):
    prep, _, synth = based
    targets = ridge.ridge_class_means(prep)
    base = synth.gen["G"].base_means(prep.att).numpy()
    np.testing.assert_allclose(targets, base, atol=1e-4)
    other = prep.__class__(**{**prep.__dict__, "x_test_unseen": np.zeros_like(prep.x_test_unseen),
                              "x_test_seen": np.zeros_like(prep.x_test_seen)})
    np.testing.assert_allclose(ridge.ridge_class_means(other), targets)  # no test feature is read


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_synthesize_recentres_unseen_and_generated_seen_classes_and_draws_the_same_stream(based, fraction):
    prep, _, synth = based
    targets = ridge.ridge_class_means(prep)
    sets = {}
    for f in (0.0, fraction):
        torch.manual_seed(5)
        sets[f] = synthetic_set(synth, prep, 6, "one_step", seen_per_class=3, recentre=f)
    x0, y = sets[0.0]["x"], sets[0.0]["y"]
    np.testing.assert_array_equal(sets[fraction]["y"], y)
    for c in np.unique(y):
        rows = y == c
        before, after = x0[rows].mean(0), sets[fraction]["x"][rows].mean(0)
        np.testing.assert_allclose(after, before + fraction * (targets[c] - before), atol=1e-5)
        np.testing.assert_allclose(sets[fraction]["x"][rows] - after, x0[rows] - before, atol=1e-5)
    assert set(np.unique(y)) == set(prep.unseen) | set(prep.seen)


def test_the_provisional_classifier_trains_on_recentred_features(based, monkeypatch):
    from zerodiffpp.transductive import difftta
    prep, p, synth = based
    seen_by_classifier = []

    def recording(x, y, *args, **kw):
        seen_by_classifier.append((x, y))
        return real(x, y, *args, **kw)
    real = difftta.train_softmax
    monkeypatch.setattr(difftta, "train_softmax", recording)
    x_test, _ = prep.test_features()
    targets = ridge.ridge_class_means(prep)
    torch.manual_seed(3)
    difftta.pseudo_label(synth, prep, x_test, p["tta"], {**p["synth"], "unseen_per_class": 5, "seen_per_class": 0,
                                                        "recentre": 1.0},
                         {**p["classifier"], "calibration": 0.0, "epochs": 1}, "cpu")
    x, y = seen_by_classifier[0]
    generated = len(prep.y_train)  # the real seen features come first
    for c in prep.unseen:
        rows = np.flatnonzero(y == c)
        assert rows.min() >= generated
        np.testing.assert_allclose(x[rows].mean(0), targets[c], atol=1e-5)
    np.testing.assert_array_equal(x[:generated], prep.x_train)  # real features are never moved


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", {1.0: 0.0, 0.1: 2}])
def test_recentre_is_a_fraction_per_ratio_or_refused_by_name(value):
    with pytest.raises(ParamsError, match="synth.recentre"):
        _check_value(SCHEMA["synth"]["recentre"], value, "synth.recentre")


def test_recentre_resolves_per_seen_ratio(based):
    _, p, _ = based
    _check_value(SCHEMA["synth"]["recentre"], {1.0: 0.0, 0.1: 1.0}, "synth.recentre")
    q = {**p, "synth": {**p["synth"], "recentre": {1.0: 0.0, 0.1: 1.0}}, "train": {**p["train"], "seen_ratio": 0.1}}
    assert for_ratio(q)["synth"]["recentre"] == 1.0
