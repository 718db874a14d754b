"""scripts/mean_map_probe: the MLP attribute -> class-mean map and its penalty, on hand-made classes."""
import numpy as np

from scripts.mean_map_probe import fit_mlp


def _classes(seed=0):
    rng = np.random.default_rng(seed)
    att = rng.random((12, 5))
    means = att @ rng.normal(size=(5, 3)) + 2.0
    return att, means


def test_without_penalty_the_map_fits_the_seen_means():
    att, means = _classes()
    f = fit_mlp(att, means, hidden=32, penalty=0.0, steps=600, lr=0.01, seed=0)
    assert np.abs(f(att) - means).max() < 0.05 * np.abs(means - means.mean(0)).max()


def test_a_large_penalty_leaves_the_unpenalised_intercept_the_mean_class_mean():
    """Weights shrink to zero; the biases are not penalised, so every prediction is the mean of the means
    (the ridge regression's limit). A sign error in the penalty would blow the weights up instead."""
    att, means = _classes()
    f = fit_mlp(att, means, hidden=32, penalty=1e6, steps=600, lr=0.01, seed=0)
    new = np.random.default_rng(1).random((4, 5))
    assert np.allclose(f(new), means.mean(0), atol=1e-2)
    assert np.allclose(f(att), means.mean(0), atol=1e-2)
