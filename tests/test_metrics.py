import numpy as np
import pytest

from zerodiffpp.evaluation import metrics as M


def test_per_class_mean_is_not_the_sample_mean():
    # class 0: 8 samples all right; class 1: 2 samples all wrong -> per-class 0.5, per-sample 0.8
    y = np.array([0] * 8 + [1] * 2)
    pred = np.array([0] * 8 + [0] * 2)
    assert M.mean_per_class_accuracy(y, pred, np.array([0, 1])) == pytest.approx(0.5)
    assert (pred == y).mean() == pytest.approx(0.8)


def test_class_without_test_samples_is_reported_and_left_out():
    y = np.array([0, 0, 1])
    pred = np.array([0, 1, 1])
    per = M.per_class_accuracy(y, pred, np.array([0, 1, 2]))
    assert per[0] == 0.5 and per[1] == 1.0 and np.isnan(per[2])
    assert M.mean_per_class_accuracy(y, pred, np.array([0, 1, 2])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no class"):
        M.mean_per_class_accuracy(y, pred, np.array([5]))


def test_harmonic_mean_known_values():
    assert M.harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert M.harmonic_mean(0.2, 0.8) == pytest.approx(0.32)
    assert M.harmonic_mean(0.0, 0.9) == 0.0
    assert M.harmonic_mean(0.0, 0.0) == 0.0


def test_gzsl_scores_on_hand_made_predictions():
    seen, unseen = np.array([0, 1]), np.array([2, 3])
    y_s, p_s = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])  # S = (1 + 0.5) / 2
    y_u, p_u = np.array([2, 3, 3, 3]), np.array([2, 0, 3, 3])  # U = (1 + 2/3) / 2
    out = M.gzsl_scores(y_s, p_s, y_u, p_u, seen, unseen)
    assert out["S"] == pytest.approx(0.75) and out["U"] == pytest.approx(5 / 6)
    assert out["H"] == pytest.approx(2 * 0.75 * (5 / 6) / (0.75 + 5 / 6))


def _blobs(rng, centers, n, noise):
    y = np.repeat(np.arange(len(centers)), n)
    return (centers[y] + noise * rng.normal(size=(len(y), centers.shape[1]))).astype(np.float32), y


def test_seen_spuriousness_near_zero_for_faithful_and_large_for_memorising_generator():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 30)) * 0.3
    x_train, y_train = _blobs(rng, centers, 40, 1.0)
    x_test, y_test = _blobs(rng, centers, 200, 1.0)
    seen = np.arange(3)
    faithful_x, faithful_y = _blobs(rng, centers, 300, 1.0)
    good = M.seen_spuriousness(faithful_x, faithful_y, x_train, y_train, x_test, y_test, seen, 40, "cpu")
    copy_x = np.repeat(x_train, 15, axis=0) + 0.01 * rng.normal(size=(len(x_train) * 15, 30))
    copy_y = np.repeat(y_train, 15)
    bad = M.seen_spuriousness(copy_x.astype(np.float32), copy_y, x_train, y_train, x_test, y_test, seen, 40, "cpu")
    assert abs(good["seen"]) < 0.1
    assert bad["seen"] > good["seen"] + 0.15
    assert bad["seen_train_acc"] > bad["seen_test_acc"] + 0.15


def test_unseen_spuriousness_gap_near_zero_when_generated_equals_real():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 8)) * 2
    unseen = np.array([5, 6, 7])
    x_test, y_idx = _blobs(rng, centers, 60, 1.0)
    y_test = unseen[y_idx]
    x_gen, g_idx = _blobs(rng, centers, 200, 1.0)
    out = M.unseen_spuriousness(x_gen, unseen[g_idx], x_test, y_test, unseen, 40, 5, "cpu", seed=0)
    assert abs(out["unseen"]) < 0.1
    shifted = M.unseen_spuriousness(x_gen + rng.normal(size=(1, 8)).astype(np.float32) * 3, unseen[g_idx], x_test,
                                    y_test, unseen, 40, 5, "cpu", seed=0)
    assert shifted["unseen"] > out["unseen"]


def test_calibrated_stacking_on_hand_made_probabilities():
    from zerodiffpp.nn.classifier import calibrated
    probs = np.array([[0.60, 0.30, 0.10],
                      [0.45, 0.10, 0.45]], np.float32)
    classes, seen = np.array([0, 5, 7]), np.array([0])
    np.testing.assert_array_equal(calibrated(probs, classes, seen, 0.0), probs)
    np.testing.assert_allclose(calibrated(probs, classes, seen, 0.2), [[0.40, 0.30, 0.10], [0.25, 0.10, 0.45]])
    assert classes[calibrated(probs, classes, seen, 0.2).argmax(1)].tolist() == [0, 7]
    assert classes[calibrated(probs, classes, seen, 0.35).argmax(1)].tolist() == [5, 7]
    # only the listed seen classes are penalised
    np.testing.assert_allclose(calibrated(probs, classes, np.array([5, 7]), 0.1), [[0.60, 0.20, 0.00], [0.45, 0.00, 0.35]])


def test_the_unseen_oracle_uses_the_seeded_folds_it_is_given(monkeypatch):
    """report.oracle_folds folds (one oracle probe each, plus the generated-features probe), split with
    the run's seed: the same seed gives the same oracle accuracy, on data where the folds matter."""
    import torch
    from zerodiffpp.evaluation import metrics as M
    rng = np.random.default_rng(0)
    y = np.repeat([3, 4], 12)
    x = (rng.normal(size=(24, 4)) + 0.6 * np.eye(2, 4)[y - 3]).astype(np.float32)  # overlapping classes
    calls, real = [], M.train_softmax
    monkeypatch.setattr(M, "train_softmax", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))

    def oracle(seed):
        torch.manual_seed(0)
        return M.unseen_spuriousness(x, y, x, y, np.array([3, 4]), 5, 3, "cpu", seed)["unseen_oracle_acc"]
    first = oracle(7)
    assert calls == [24, 16, 16, 16]  # the generated probe on all 24, then 3 folds of 2/3 each
    assert all(oracle(7) == first for _ in range(3))
    assert len({oracle(s) for s in range(6)}) > 1  # the seed decides the folds


def test_every_spuriousness_probe_is_the_same_fixed_linear_probe(monkeypatch):
    """The probes behind both spuriousness metrics follow one recipe, so that their numbers compare
    across runs and methods: a linear softmax over the probed classes, Adam at lr 0.001, batches of 256,
    report.probe_epochs epochs."""
    calls, real = [], M.train_softmax
    monkeypatch.setattr(M, "train_softmax", lambda x, y, classes, **kw: calls.append((list(classes), kw))
                        or real(x, y, classes, **kw))
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 3), dtype=np.float32), np.repeat([0, 1], 6)
    M.seen_spuriousness(x, y, x, y, x, y, np.array([0, 1]), 2, "cpu")
    M.unseen_spuriousness(x, y + 5, x, y + 5, np.array([5, 6]), 2, 2, "cpu", seed=0)
    recipe = {"epochs": 2, "batch_size": 256, "lr": 0.001, "device": "cpu"}
    assert calls == [([0, 1], recipe)] + [([5, 6], recipe)] * 3  # seen probe; generated probe, two oracle folds


def test_the_oracle_needs_two_test_samples_per_unseen_class():
    x, y = np.zeros((5, 2), np.float32), np.array([5, 5, 5, 6, 6])
    with pytest.raises(ValueError, match="report.oracle_folds: an unseen class has 1 test samples; need at least 2"):
        M.unseen_spuriousness(x, y, x, np.array([5, 5, 5, 5, 6]), np.array([5, 6]), 1, 3, "cpu", seed=0)
