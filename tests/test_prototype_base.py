"""gen.prototype_base: the ZeroDiff generator starting from a ridge map attributes -> class means.
Known answers: the penalty chosen on held-out training classes, the base the trainer fits (the ridge
map of the seen classes' means, nothing else read), the generator's output at a zero network (the
base itself, whatever the noise), the base surviving a checkpoint, and the switch off leaving the
network as the paper's (no buffers, the golden numbers of tests/test_golden.py)."""
import numpy as np
import pytest
import torch

from tests.tiny import tiny_params, tiny_prepared
from zerodiffpp.generators.dfg import ZeroDiffTrainer, prototype_map
from zerodiffpp.nn import ridge
from zerodiffpp.nn.networks import build_feature_generator


def reload(ckpt: dict):
    gen = build_feature_generator(ckpt["config"])
    gen.load_state_dict(ckpt["state"])
    return gen


def test_the_penalty_follows_how_linear_the_class_means_are():
    rng = np.random.default_rng(0)
    att = rng.random((40, 6))
    linear = att @ rng.normal(size=(6, 5)) + 0.3
    assert ridge.alpha_by_held_out_classes(att, linear) == min(ridge.ALPHAS)  # exact: no shrinkage wanted
    unrelated = rng.normal(size=(40, 5))
    assert ridge.alpha_by_held_out_classes(att, unrelated) == max(ridge.ALPHAS)  # noise: shrink to the mean


def test_ridge_fit_and_ridge_means_agree():
    rng = np.random.default_rng(1)
    att, means = rng.random((7, 3)), rng.random((7, 4))
    w, b = ridge.ridge_fit(att, means, 0.5)
    new = rng.random((2, 3))
    assert np.allclose(b + new @ w, ridge.ridge_means(att, means, new, 0.5))


def test_the_trainer_fits_the_base_on_the_seen_class_means_only(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["prototype_base"] = True
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    G = t.gen["G"]
    seen = np.unique(prep.y_train)
    means = ridge.class_means(prep.x_train, prep.y_train, seen)
    alpha = ridge.alpha_by_held_out_classes(prep.att[seen], means)
    expected = ridge.ridge_means(prep.att[seen], means, prep.att, alpha)  # every class, the unseen ones predicted
    got = (G.proto_b + torch.as_tensor(prep.att) @ G.proto_w).numpy()
    assert np.allclose(got, expected, atol=1e-5)
    w, b = prototype_map(prep.x_train, prep.y_train, prep.att)
    shuffled = prep.att.copy()
    shuffled[prep.unseen] = shuffled[prep.unseen][::-1]  # the unseen classes' attributes are not read
    assert np.allclose(prototype_map(prep.x_train, prep.y_train, shuffled)[0], w)


def test_a_zero_network_generates_the_base_itself_and_a_checkpoint_keeps_it(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["prototype_base"] = True
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    G = t.gen["G"]
    with torch.no_grad():
        G.net[-1].weight.zero_()
        G.net[-1].bias.zero_()
    a = torch.as_tensor(prep.att[prep.unseen])
    base = (G.proto_b + a @ G.proto_w).clamp(0.01, 0.99)
    n, x_dim = len(a), prep.x_train.shape[1]
    for seed in (0, 1):
        torch.manual_seed(seed)
        out = G(torch.randn(n, G.noise_dim), a, torch.rand(n, prep.r_train.shape[1]), torch.rand(n, x_dim),
                torch.zeros(n, dtype=torch.long))
        assert torch.allclose(out, base, atol=1e-5)  # the noise moves nothing: only the learnt part would
    loaded = reload(t.checkpoint())["G"]  # as the later stages load it (zerodiffpp.generators.synth)
    assert torch.equal(loaded.proto_w, G.proto_w) and torch.equal(loaded.proto_b, G.proto_b)


def test_switched_off_the_generator_has_no_base():
    from zerodiffpp.nn.networks import FeatureGenerator
    G = FeatureGenerator(4, 3, 5, 2, 8, 4, 4)
    assert not any("proto" in k for k in G.state_dict())
    p = tiny_params()
    assert p["gen"]["prototype_base"] is False  # the paper's generator is the default


@pytest.mark.parametrize("flag", [False, True])
def test_synthesis_runs_either_way(tmp_path, flag):
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["prototype_base"] = flag
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    x = reload(t.checkpoint())["G"](
        torch.zeros(2, t.gen["G"].noise_dim), torch.as_tensor(prep.att[:2]), torch.zeros(2, prep.r_train.shape[1]),
        torch.zeros(2, prep.x_train.shape[1]), torch.zeros(2, dtype=torch.long))
    assert x.shape == (2, prep.x_train.shape[1]) and bool(((x > 0) & (x < 1)).all())
