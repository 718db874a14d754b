"""classifier.normalise: the softmax classifiers read their view centred on its mean over their own
training set and scaled to unit length; the centre travels with the state dict to every reader."""
import numpy as np
import pytest
import torch

from zerodiffpp.nn.classifier import InputView, load_classifier, train_softmax
from zerodiffpp.nn.networks import AttrDecoder, LinearClassifier


def _toy(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = (rng.normal(size=(n, d)) + 3 * np.eye(3, d)[y] + 5.0).astype(np.float32)  # a large common offset
    return x, y


def test_a_normalised_layer_reads_only_the_direction_from_its_centre():
    """logits(c + s (x - c)) do not move with s > 0; without normalise they do. A centre left out, or a
    length kept, fails the first assertion."""
    torch.manual_seed(0)
    net = LinearClassifier(4, 3, normalise=True)
    centre = torch.tensor([1.0, -2.0, 0.5, 3.0])
    net.centre.copy_(centre)
    x = torch.randn(5, 4)
    for s in (0.1, 7.0):
        torch.testing.assert_close(net(centre + s * (x - centre)), net(x))
    z = torch.nn.functional.normalize(x - centre, dim=1)
    torch.testing.assert_close(net(x), z @ net.fc.weight.T + net.fc.bias)
    raw = LinearClassifier(4, 3)
    raw.load_state_dict({k: v for k, v in net.state_dict().items() if k != "centre"})
    assert not torch.allclose(raw(centre + 7.0 * (x - centre)), raw(x))
    assert "centre" not in raw.state_dict() and not raw.normalise


@pytest.mark.parametrize("view_name", ["V", "VS"])
def test_the_centre_is_the_mean_view_of_the_classifiers_own_training_set(view_name):
    torch.manual_seed(0)
    x, y = _toy()
    view = InputView(view_name, AttrDecoder(6, 5, 4).eval() if view_name == "VS" else None)
    clf = train_softmax(x, y, np.arange(3), 2, 16, 0.01, "cpu", view=view, normalise=True)
    with torch.no_grad():
        want = view.embed(torch.from_numpy(x)).double().mean(0).float()
    torch.testing.assert_close(clf.net.centre, want, rtol=1e-5, atol=1e-6)
    assert clf.net.centre.shape[0] == view.dim(6)


def test_a_normalised_classifier_reloads_with_its_centre_and_a_raw_one_without():
    x, y = _toy()
    for normalise in (True, False):
        torch.manual_seed(0)
        clf = train_softmax(x, y, np.arange(3), 3, 16, 0.01, "cpu", normalise=normalise)
        assert ("centre" in clf.state()["state"]) == normalise
        again = load_classifier(clf.state(), 6, "cpu")
        np.testing.assert_allclose(again.probabilities(x, "cpu"), clf.probabilities(x, "cpu"), rtol=1e-6)


def test_normalising_removes_a_nuisance_length_that_the_raw_classifier_learns():
    """A learnable toy: classes 0 and 1 lie 30 degrees apart in direction from the centre (classes 2 and 3
    opposite them, so the training mean is the centre), each feature's length a nuisance: classes 0 and 2
    trained on short features, 1 and 3 on long ones. Raw, the classifier learns the length and sends long
    class-0 test features to class 1; normalised, it reads the direction and classifies every test
    feature right. A classifier that kept the length, or centred elsewhere, fails."""
    rng = np.random.default_rng(0)
    d, centre = 8, np.full(8, 2.0)
    q = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
    u = np.stack([q[0], np.cos(np.pi / 6) * q[0] + np.sin(np.pi / 6) * q[1]])
    u = np.concatenate([u, -u])

    def draw(c, lo, hi, n):
        dirs = u[c] + 0.03 * rng.normal(size=(n, d))
        lengths = rng.uniform(lo, hi, n)[:, None]
        return (centre + lengths * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32)
    x = np.concatenate([draw(0, 0.5, 1.0, 200), draw(1, 4.0, 8.0, 200), draw(2, 0.5, 1.0, 200),
                        draw(3, 4.0, 8.0, 200)])
    y = np.repeat([0, 1, 2, 3], 200)
    x_test = np.concatenate([draw(0, 4.0, 8.0, 100), draw(1, 0.5, 1.0, 100)])
    y_test = np.repeat([0, 1], 100)
    acc = {}
    for normalise in (False, True):
        torch.manual_seed(0)
        clf = train_softmax(x, y, np.arange(4), 30, 32, 0.01, "cpu", normalise=normalise)
        acc[normalise] = float((clf.predict(x_test, "cpu") == y_test).mean())
    assert acc[True] == 1.0 and acc[False] < 0.7, acc
