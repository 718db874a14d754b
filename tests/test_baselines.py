"""The simple-baseline panel (zerodiffpp/baselines): known answers, the toy it must solve, and no choice
made on a test split."""
import json

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.neighbors import KNeighborsClassifier

from tests.conftest import make_xlsa17
from zerodiffpp.baselines import ceiling, eszsl, kmeans, prototypes, stacking
from zerodiffpp.baselines.panel import panel, panel_markdown
from zerodiffpp.data.features import Prepared
from zerodiffpp.data.splits import validation_view
from zerodiffpp.data.xlsa17 import load_xlsa17

CHOICES = {"eszsl": ("gamma", "lambda", "temperature", "calibration", "val_T1", "val_H"),
           "ridge_linear": ("alpha", "temperature", "calibration", "val_T1", "val_H"),
           "ridge_whitened": ("alpha", "temperature", "calibration", "val_T1", "val_H"),
           "ridge": ("variant", "alpha", "temperature", "calibration"),
           "ridge_kmeans": ("iterations", "val_T1"),
           "linear_seen": ("alpha", "val_acc")}


def prepared(x_train, y_train, x_seen, y_seen, x_unseen, y_unseen, att) -> Prepared:
    """A Prepared split from hand-made arrays (no scaling)."""
    empty = np.zeros((0, 0), np.float32)
    return Prepared(np.asarray(x_train, float), np.asarray(y_train), np.asarray(x_seen, float), np.asarray(y_seen),
                    np.asarray(x_unseen, float), np.asarray(y_unseen), empty, empty, empty, np.asarray(att, float),
                    np.unique(y_train), np.unique(y_unseen), np.array([f"c{k}" for k in range(len(att))]),
                    np.arange(len(y_train)))


# (1) ESZSL's closed form, centring included

def test_eszsl_by_hand_one_feature():
    """D = 1, two classes, S = I. Training features 0 (class 0) and 2 (class 1): mean 1, centred -1, 1.
    X X^T + gamma = 2 + 2 = 4; X Y = -1 * (1, -1) + 1 * (-1, 1) = (-2, 2); (S S^T + lambda I)^-1 = I / 2,
    so V = (-2, 2) / 4 / 2 = (-0.25, 0.25). A test feature 3 scores (3 - 1) V = (-0.5, 0.5) and 0 scores
    (0.25, -0.25): the *training* mean is subtracted (the test features' own mean, 1.5, would give
    (-0.375, 0.375)), and no centring at all would give V = (-1/6, 1/6)."""
    model = eszsl.eszsl_fit(np.array([[0.0], [2.0]]), np.array([0, 1]), np.eye(2), np.array([0, 1]), 2.0, 1.0)
    assert np.allclose(model.v, [[-0.25, 0.25]]) and np.allclose(model.mean, [1.0])
    assert np.allclose(model.scores(np.array([[3.0], [0.0]]), np.eye(2), np.array([0, 1])),
                       [[-0.5, 0.5], [0.25, -0.25]])
    assert (model.predict(np.array([[3.0], [0.0]]), np.eye(2), np.array([0, 1])) == [1, 0]).all()


def test_eszsl_matches_the_closed_form_done_by_hand_on_random_data():
    rng = np.random.default_rng(3)
    x, y, att = rng.random((12, 4)), np.repeat([0, 1, 3], 4), rng.random((5, 3))
    x_test = rng.random((6, 4)) + 2.0  # a test mean far from the training mean
    classes, gamma, lam = np.array([0, 1, 3]), 0.5, 2.0
    m = x.mean(axis=0)
    xc, s = (x - m).T, att[classes].T  # D x N, A x C
    targets = np.where(y[:, None] == classes[None, :], 1.0, -1.0)
    v = np.linalg.inv(xc @ xc.T + gamma * np.eye(4)) @ xc @ targets @ s.T @ np.linalg.inv(s @ s.T + lam * np.eye(3))
    model = eszsl.eszsl_fit(x, y, att, classes, gamma, lam)
    assert np.allclose(model.v, v)
    all_classes = np.arange(5)
    assert np.allclose(model.scores(x_test, att, all_classes), (x_test - m) @ v @ att.T)


def test_centred_eszsl_ignores_a_common_offset_of_the_features():
    """Adding one vector to every feature (training and test) changes nothing: the model has a bias."""
    rng = np.random.default_rng(4)
    att, proj = rng.random((6, 3)), rng.normal(size=(3, 8))
    y = np.repeat([0, 2, 3, 5], 5)
    x = att[y] @ proj + 0.1 * rng.normal(size=(20, 8))
    x_test = att[[1, 4]] @ proj
    offset = 50 * rng.random(8)
    a = eszsl.eszsl_fit(x, y, att, np.array([0, 2, 3, 5]), 0.1, 0.1).scores(x_test, att, np.arange(6))
    b = eszsl.eszsl_fit(x + offset, y, att, np.array([0, 2, 3, 5]), 0.1, 0.1).scores(x_test + offset, att,
                                                                                    np.arange(6))
    assert np.allclose(a, b)


# (2) the learnable toy: features a linear map of binary attributes

@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = make_xlsa17(tmp_path_factory.mktemp("toy") / "TOY", n_seen=30, n_unseen=10, att_dim=24, x_dim=32,
                         per_class=20, learnable=True, n_val=6)
    return load_xlsa17(folder, "TOY")


@pytest.fixture(scope="module")
def toy_panel(toy):
    return panel(toy, 1.0, 0)


def test_the_learnable_toy_is_solved_by_the_panel(toy_panel):
    r = toy_panel
    assert r["eszsl"]["T1"] > 0.9 and r["ridge_linear"]["T1"] > 0.9 and r["ceiling"]["T1"] > 0.9, r
    assert r["eszsl"]["H"] > 0.5 and r["ridge"]["H"] > 0.5 and r["linear_seen"]["acc"] > 0.9, r
    assert r["ridge"]["T1"] == r[f"ridge_{r['ridge']['variant']}"]["T1"]
    assert r["strongest"] == max(("eszsl", "ridge"), key=lambda k: r[k]["T1"])
    assert json.loads(json.dumps(r)) == r  # plain values only
    table = panel_markdown(r)
    assert f"| eszsl | {100 * r['eszsl']['T1']:.1f} |" in table and "strongest on T1: " + r["strongest"] in table


# GZSL: softmax temperature and calibrated stacking, chosen on one split and applied to another

def test_stacking_choice_is_scale_free_and_is_what_gets_applied():
    """Seen class 0 outscores unseen class 1 by 1 on unseen images (and by 3.5 on seen ones): the plain
    arg-max calls everything seen (H 0); a positive calibration separates them (H 1). Multiplying every
    score by 100 changes no choice: the temperature is relative to the training images' score spread."""
    x = np.array([[-1.0]] * 4 + [[1.0]] * 4)
    prep = prepared(x[:4], [0] * 4, x[:4], [0] * 4, x[4:], [1] * 4, np.eye(2))

    def score(factor):
        return lambda f: factor * np.column_stack([3 - f[:, 0], f[:, 0]])
    chosen = stacking.choose(stacking.SplitScores.of(prep, score(1.0)))
    assert chosen["val_H"] == 1.0 and chosen["calibration"] > 0, chosen
    assert stacking.choose(stacking.SplitScores.of(prep, score(100.0))) == chosen
    assert stacking.apply(stacking.SplitScores.of(prep, score(100.0)), chosen["temperature"],
                          chosen["calibration"]) == {"U": 1.0, "S": 1.0, "H": 1.0}
    assert stacking.apply(stacking.SplitScores.of(prep, score(1.0)), chosen["temperature"], 0.0)["H"] == 0.0


# (3) prototype regression by hand

def test_ridge_prototypes_by_hand():
    """Seen classes with attribute 0, 1, 2 and means (1 + 2a, 4 - a). Centred: A = (-1, 0, 1), M = ((-2, 1),
    (0, 0), (2, -1)); W = A^T M / (A^T A + alpha) = (4, -2) / (2 + 2) = (1, -0.5) at alpha 2, intercept the
    mean (3, 3) unpenalised. Unseen attribute 3 -> (5, 2), -1 -> (1, 4); an infinite penalty leaves (3, 3)."""
    att = np.array([[0.0], [1.0], [2.0], [3.0], [-1.0]])
    means = np.array([[1.0, 4.0], [3.0, 3.0], [5.0, 2.0]])
    assert np.allclose(prototypes.ridge_means(att[:3], means, att[3:], 2.0), [[5.0, 2.0], [1.0, 4.0]])
    assert np.allclose(prototypes.ridge_means(att[:3], means, att[3:], 1e12), [[3.0, 3.0], [3.0, 3.0]])
    # training images around the seen means, test images near the predicted unseen means (not the true ones)
    jitter = np.array([[0.1, 0.0], [-0.1, 0.0]])
    x_train = np.concatenate([m + jitter for m in means])
    x_unseen = np.array([[4.6, 2.2], [1.4, 3.9], [2.9, 3.0], [3.1, 3.0]])  # the last two: 2.9 is nearer (1, 4)
    prep = prepared(x_train, np.repeat([0, 1, 2], 2), x_train, np.repeat([0, 1, 2], 2), x_unseen, [3, 4, 4, 3], att)
    protos = prototypes.Prototypes(prep, "linear")
    assert np.allclose(protos.seen_means, means)
    assert (protos.zsl_predict(x_unseen, 2.0) == [3, 4, 4, 3]).all()
    assert protos.zsl_t1(2.0) == 1.0


def test_nearest_generated_mean_scores_the_mean_of_each_class_generated_features():
    """The by-hand split above: generated features spread widely around (5, 2) for class 3 and (1, 4) for
    class 4 have exactly those means, which file every test image right (T1 1); the same features with
    their labels swapped file every one wrong (T1 0). Samples alone would mislead: the spread puts single
    generated rows nearer the other class's images."""
    att = np.array([[0.0], [1.0], [2.0], [3.0], [-1.0]])
    means = np.array([[1.0, 4.0], [3.0, 3.0], [5.0, 2.0]])
    x_train = np.concatenate([m + np.array([[0.1, 0.0], [-0.1, 0.0]]) for m in means])
    x_unseen = np.array([[4.6, 2.2], [1.4, 3.9], [2.9, 3.0], [3.1, 3.0]])
    prep = prepared(x_train, np.repeat([0, 1, 2], 2), x_train, np.repeat([0, 1, 2], 2), x_unseen, [3, 4, 4, 3], att)
    spread = np.array([[-4.0, 2.0], [4.0, -2.0], [0.0, 0.0]])
    x_gen = np.concatenate([np.array([5.0, 2.0]) + spread, np.array([1.0, 4.0]) + spread])
    y_gen = np.repeat([3, 4], 3)
    assert prototypes.nearest_generated_mean_t1(prep, x_gen, y_gen) == {"linear": 1.0, "whitened": 1.0}
    assert prototypes.nearest_generated_mean_t1(prep, x_gen, 7 - y_gen) == {"linear": 0.0, "whitened": 0.0}
    # the ridge regression's own T1 is unchanged by the refactoring that lets `means` replace its prediction
    assert prototypes.Prototypes(prep, "linear").zsl_t1(2.0) == 1.0


# (4) within-class whitening

def _nuisance_split(seed: int, nuisance: float) -> Prepared:
    """20 seen / 10 unseen classes, means linear in 5 attributes (10-d features, separation about 1),
    plus `nuisance` times a standard normal along one oblique direction shared by every class."""
    rng = np.random.default_rng(seed)
    att, proj = rng.random((30, 5)), rng.normal(size=(5, 10))
    u = rng.normal(size=10)
    u /= np.linalg.norm(u)

    def draw(classes, n):
        y = np.repeat(classes, n)
        return att[y] @ proj + nuisance * rng.normal(size=(len(y), 1)) * u + 0.1 * rng.normal(size=(len(y), 10)), y
    seen, unseen = np.arange(20), np.arange(20, 30)
    return prepared(*draw(seen, 20), *draw(seen, 5), *draw(unseen, 20), att)


@pytest.mark.parametrize("nuisance", [3.0, 0.0])
def test_whitening_discounts_a_large_within_class_direction(nuisance):
    out = prototypes.evaluate(_nuisance_split(1, nuisance), _nuisance_split(2, nuisance))
    linear, whitened = out["linear"]["T1"], out["whitened"]["T1"]
    if nuisance:
        assert whitened > 0.9 and whitened > linear + 0.3 and out["variant"] == "whitened", out
    else:  # isotropic: nothing to whiten, nothing lost
        assert whitened > 0.9 and whitened >= linear - 0.02, out


# (5) nothing is chosen on the evaluated split

def _poisoned(fs, relabel, noise, seed=0):
    """fs with the images at `relabel` and `noise` replaced by noise, and the labels at `relabel` shuffled."""
    rng = np.random.default_rng(seed)
    x, labels = fs.x.copy(), fs.labels.copy()
    idx = np.concatenate([relabel, noise]).astype(np.int64)
    x[idx] = rng.random((len(idx), x.shape[1])) * x.max()
    labels[relabel] = rng.permutation(labels[relabel])
    return type(fs)(**{**fs.__dict__, "x": x, "labels": labels})


def _choices(r):
    return {k: {f: r[k][f] for f in fields} for k, fields in CHOICES.items()}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A toy with noise (tests/conftest.py's default features): its choices are not all ties at T1 1.0."""
    folder = make_xlsa17(tmp_path_factory.mktemp("plain") / "PLAIN", n_seen=30, n_unseen=10, att_dim=24, x_dim=32,
                         per_class=20, n_val=6)
    return load_xlsa17(folder, "PLAIN")


def test_no_choice_depends_on_the_test_split(plain):
    clean = panel(plain, 1.0, 0)
    # test-seen labels are shuffled among themselves (the seen classes are those of the training images)
    poisoned = panel(_poisoned(_poisoned(plain, plain.test_unseen, []), plain.test_seen, [], seed=1), 1.0, 0)
    assert _choices(poisoned) == _choices(clean)
    assert clean["eszsl"]["gamma"] != clean["eszsl"]["lambda"] and clean["eszsl"]["calibration"] != 0, clean
    for k in ("eszsl", "ridge", "ridge_kmeans", "ceiling", "nearest_true_mean"):  # the poison did reach the test split
        assert poisoned[k]["T1"] < clean[k]["T1"] - 0.5, (k, poisoned[k], clean[k])


def test_no_choice_depends_on_the_evaluated_validation_classes(plain):
    """protocol validation: the choices come from classes carved out of the split's own training classes.
    Its held-out seen images get noise only: their labels decide which images the split holds out."""
    clean = panel(plain, 1.0, 0, "validation")
    run = validation_view(plain, 0)
    poisoned = panel(_poisoned(plain, run.test_unseen, run.test_seen), 1.0, 0, "validation")
    assert clean["split"]["n_unseen"] == 6 and clean["split"]["n_val_unseen"] == 5, clean
    assert _choices(poisoned) == _choices(clean)
    for k in ("eszsl", "ridge", "ceiling"):
        assert poisoned[k]["T1"] < clean[k]["T1"] - 0.3, (k, poisoned[k], clean[k])


# (6) the ceiling's cross-validation

class _Recorder:
    """Features carry the image id in column 0; every fit's ids are kept, and predict refuses any of them."""
    fitted: list = []

    def fit(self, x, y):
        self.ids = set(x[:, 0].astype(int))
        _Recorder.fitted.append(self.ids)
        return self

    def predict(self, x):
        assert not self.ids & set(x[:, 0].astype(int)), "scored an image it trained on"
        _Recorder.predicted.extend(x[:, 0].astype(int))
        return np.zeros(len(x), int)


def test_the_ceiling_never_scores_an_image_it_trained_on():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 10)
    x = np.column_stack([np.arange(50), rng.random((50, 3))])
    _Recorder.fitted, _Recorder.predicted = [], []
    ceiling.out_of_fold(x, y, make_classifier=_Recorder)
    assert len(_Recorder.fitted) == 5 and sorted(_Recorder.predicted) == list(range(50))
    # a 1-nearest-neighbour probe is perfect on images it trained on; on random labels it stays near chance
    prep = prepared(x, y, x, y, rng.random((50, 4)), rng.permutation(y) + 5, np.eye(10))
    assert ceiling.ceiling_t1(prep, make_classifier=lambda: KNeighborsClassifier(1)) < 0.5


# (7) T1 is the mean of per-class accuracies

def test_t1_is_the_mean_of_per_class_accuracies():
    """Unseen class 3 has 8 images, all right; class 4 has 2, both wrong: T1 0.5, image accuracy 0.8."""
    att = np.array([[0.0], [1.0], [2.0], [3.0], [-1.0]])
    means = np.array([[1.0, 4.0], [3.0, 3.0], [5.0, 2.0]])
    x_train = np.repeat(means, 2, axis=0)
    x_unseen = np.array([[5.0, 2.0]] * 10)  # the predicted mean of class 3 (alpha 2)
    y_unseen = np.array([3] * 8 + [4] * 2)
    prep = prepared(x_train, np.repeat([0, 1, 2], 2), x_train, np.repeat([0, 1, 2], 2), x_unseen, y_unseen, att)
    assert prototypes.Prototypes(prep, "linear").zsl_t1(2.0) == 0.5
    # the ceiling's T1: a classifier that always answers the larger class
    assert ceiling.ceiling_t1(prep, folds=2, make_classifier=lambda: DummyClassifier(strategy="most_frequent")) == 0.5
    # ESZSL: one feature equal to the attribute; every test image scores highest for class 3
    model = eszsl.eszsl_fit(np.array([[0.0], [2.0]]), np.array([0, 2]), att, np.array([0, 2]), 0.1, 0.1)
    prep_e = prepared(np.array([[0.0], [2.0]]), [0, 2], [[0.0]], [0], np.full((10, 1), 5.0), y_unseen, att)
    assert (model.predict(prep_e.x_test_unseen, att, prep_e.unseen) == 3).all()
    assert eszsl.eszsl_t1(prep_e, 0.1, 0.1) == 0.5


def test_panel_metrics_hold_numbers_only_and_the_best_of_eszsl_and_ridge_on_each_metric():
    from zerodiffpp.baselines.panel import panel_metrics
    row = lambda t1, h: {"T1": t1, "U": 0.0, "S": 0.0, "H": h, "alpha": 1.0}  # noqa: E731
    result = {"eszsl": row(0.5, 0.2), "ridge_linear": row(0.4, 0.3), "ridge_whitened": row(0.45, 0.6),
              "ridge": dict(row(0.4, 0.3), variant="linear"), "ceiling": {"T1": 0.9},
              "ridge_kmeans": {"T1": 0.6, "iterations": 5, "val_T1": 0.55}, "nearest_true_mean": {"T1": 0.95},
              "linear_seen": {"acc": 0.7, "alpha": 10.0, "val_acc": 0.7}, "strongest": "eszsl", "split": {}}
    m = panel_metrics(result)
    assert m["strongest"] == {"T1": 0.5, "H": 0.3}  # ESZSL's T1, the chosen ridge's H (not the unchosen variant's)
    # the transductive baseline is reported beside, never as the inductive bar
    assert m["ridge_kmeans"] == {"T1": 0.6, "iterations": 5, "val_T1": 0.55} and m["nearest_true_mean"] == {"T1": 0.95}
    assert "variant" not in m["ridge"] and "split" not in m


# (8) transductive ridge prototypes (k-means from the predicted means) and the nearest true mean

def test_lloyd_by_hand():
    """On a line: points 0, 0, 10, 10, 7 started at means 1 and 14. Step 0: 7 is nearer 1 (6 against 7);
    the means move to 7/3 and 10, and then 7 is nearer 10. A mean no point picks stays where it is."""
    z = np.array([[0.0], [0.0], [10.0], [10.0], [7.0]])
    assert list(kmeans.lloyd(z, np.array([[1.0], [14.0]]), 0)) == [0, 0, 1, 1, 0]
    assert list(kmeans.lloyd(z, np.array([[1.0], [14.0]]), 1)) == [0, 0, 1, 1, 1]
    assert list(kmeans.lloyd(z[:2], np.array([[1.0], [100.0]]), 3)) == [0, 0]  # no NaN from the empty mean


class _FakePrototypes:
    """Identity embedding, fixed predicted means: what kmeans_t1 reads of a Prototypes."""
    def __init__(self, x, y, unseen, means):
        self.prep = type("P", (), {"x_test_unseen": x, "y_test_unseen": y, "unseen": unseen})()
        self.means = means

    def embed(self, x):
        return np.asarray(x, float)

    def unseen_means(self, alpha):
        return self.means


def test_kmeans_moves_the_predicted_means_to_the_test_features():
    """Class 5 at 0 (three images), class 6 at 10 and 14, predicted means 4 and 20: the nearest predicted
    mean gets 10 wrong (T1 (1 + 1/2) / 2); one k-means step moves the means to 2.5 and 14, and all are right."""
    protos = _FakePrototypes(np.array([[0.0], [0.0], [0.0], [10.0], [14.0]]), np.array([5, 5, 5, 6, 6]),
                             np.array([5, 6]), np.array([[4.0], [20.0]]))
    assert kmeans.kmeans_t1(protos, 1.0, 0) == 0.75
    assert kmeans.kmeans_t1(protos, 1.0, 1) == 1.0


def test_nearest_true_mean_is_an_out_of_fold_nearest_centroid():
    """Two unseen classes around 0 and 1 on a line, and one image of class 3 at 0.9: the nearest
    centroid (means from the other folds) gets every image but that one."""
    x = np.array([[0.0], [0.1], [-0.1], [0.05], [1.0], [1.1], [0.9], [0.95], [0.9]])
    y = np.array([2, 2, 2, 2, 3, 3, 3, 3, 2])
    prep = prepared(x[:2], [0, 1], x[:2], [0, 1], x, y, np.eye(4))
    assert ceiling.nearest_true_mean_t1(prep, folds=2) == pytest.approx((4 / 5 + 1) / 2)


def test_nearest_true_mean_is_not_the_ceiling_where_a_class_is_wide():
    """Class 2 spread along a line from -6 to 6, class 3 tight at (3, 1): the nearest centroid sends class
    2's images at x >= 2.7 or so (4 of 12) to class 3, where a linear classifier separates the two by y."""
    rng = np.random.default_rng(0)
    x = np.vstack([np.column_stack([np.linspace(-6, 6, 12), np.zeros(12)]),
                   np.column_stack([3 + 0.1 * rng.standard_normal(12), 1 + 0.1 * rng.standard_normal(12)])])
    y = np.array([2] * 12 + [3] * 12)
    prep = prepared(x[:2], [0, 1], x[:2], [0, 1], x, y, np.eye(4))
    assert ceiling.nearest_true_mean_t1(prep, folds=3) == pytest.approx((8 / 12 + 1) / 2)
    assert ceiling.ceiling_t1(prep, folds=3) > 0.9
