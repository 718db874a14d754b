import numpy as np
import pytest
import torch

from tests.tiny import tiny_prepared
from zerodiffpp.nn import losses, networks as N
from zerodiffpp.generators.drg import sample_r, train_drg
from zerodiffpp.generators.dfg import ZeroDiffTrainer, build_critics, model_config


def test_network_shapes():
    B, X, A, R, Z, C = 5, 20, 6, 8, 4, 7
    t = torch.randint(0, 4, (B,))
    x, a, r, z = torch.rand(B, X), torch.rand(B, A), torch.rand(B, R), torch.randn(B, Z)
    assert N.SCEncoder(X, 16, R, 3)(x).shape == (B, R)
    assert N.SCEncoder(X, 16, R, 3).project(x).norm(dim=1).allclose(torch.ones(B))
    assert N.RepGenerator(Z, A, R, 16, 8, A)(z, a, r, t).shape == (B, R)
    mu, logvar = N.FeatureEncoder(X, A, 16, Z)(x, a)
    assert mu.shape == logvar.shape == (B, Z)
    g = N.FeatureGenerator(Z, A, X, R, 16, 8, C)(z, a, r, x, t)
    assert g.shape == (B, X) and (g >= 0).all() and (g <= 1).all()
    assert N.FeatureGenerator(Z, A, X, R, 16, 8, C, use_r=False)(z, a, None, x, t).shape == (B, X)
    assert N.AttrDecoder(X, 16, A)(x).norm(dim=1).allclose(torch.ones(B))
    assert N.Critic(X, X + A, 16, rep_dim=R, time_dim=8, cond_dim=C)(x, x, a, r=r, t=t).shape == (B,)
    assert N.CondGenerator(Z, A, X, 16)(z, a).shape == (B, X)


def test_fclswgan_generator_is_the_published_mlp_with_a_relu_output():
    """Xian et al.'s MLP_G: relu(W2 lrelu(W1 [z, a] + b1, 0.2) + b2). A sigmoid output (what this project had)
    stalls at the published rate on min-max-scaled features; it fails here on the exact zeros and on values
    above 1, a missing LeakyReLU or swapped z / a on the hand computation."""
    Z, A, X, H = 3, 2, 5, 4
    torch.manual_seed(0)
    g = N.CondGenerator(Z, A, X, H)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(torch.randn_like(p) * 2)
    z, a = torch.randn(64, Z), torch.rand(64, A)
    w1, b1, w2, b2 = g.net[0].weight, g.net[0].bias, g.net[2].weight, g.net[2].bias
    h = torch.nn.functional.leaky_relu(torch.cat([z, a], 1) @ w1.T + b1, 0.2)
    expected = torch.relu(h @ w2.T + b2)
    out = g(z, a)
    assert torch.allclose(out, expected, atol=1e-5)
    assert (out == 0).any() and (out > 1).any()


def test_critic_is_one_linear_layer_over_sample_and_conditions():
    B, X, A, H = 4, 6, 3, 5
    torch.manual_seed(0)
    c = N.Critic(X, A, H)
    x, a = torch.rand(B, X), torch.rand(B, A)
    big = torch.nn.Linear(X + A, H)
    with torch.no_grad():
        big.weight.copy_(torch.cat([c.data_fc.weight, c.cond_fc.weight], dim=1))
        big.bias.copy_(c.data_fc.bias)
    expected = c.out(big(torch.cat([x, a], dim=1))).squeeze(1)
    assert torch.allclose(c(x, a), expected, atol=1e-6)
    assert torch.allclose(c.judge(x, c.condition(a)), expected, atol=1e-6)


@pytest.mark.parametrize("conditioned", [True, False])
def test_closed_form_input_gradient_matches_double_backprop(conditioned):
    """Critic.input_gradient gives the same grad_x D, and the same WGAN-GP parameter gradients,
    as autograd's double backward."""
    B, X, A, R, H, C = 16, 7, 3, 5, 9, 4
    torch.manual_seed(0)
    c = N.Critic(X, A, H, rep_dim=R, time_dim=8, cond_dim=C) if conditioned else N.Critic(X, 0, H)
    for q in c.parameters():  # N(0, 0.02) init leaves every h near 0: spread it so both slopes occur
        torch.nn.init.normal_(q, 0.0, 0.5)
    x, a, r, t = torch.rand(B, X), torch.rand(B, A), torch.rand(B, R), torch.randint(0, 4, (B,))
    cond_of = (lambda: c.condition(a, r=r, t=t)) if conditioned else (lambda: None)
    slope = (c.data_fc(x) + (cond_of() if conditioned else 0)) > 0
    assert slope.any() and (~slope).any()
    grads = []
    for closed_form in (True, False):
        c.zero_grad()
        cond = cond_of()
        fn = (lambda v: c.input_gradient(v, cond)) if closed_form else \
            losses.autograd_input_gradient(lambda v: c.judge(v, cond))
        g = fn(x)
        torch.manual_seed(1)
        gp = losses.gradient_penalty(fn, x, torch.rand(B, X))
        gp.backward()
        grads.append((g.detach(), gp.detach(), {k: (q.grad.clone() if q.grad is not None else torch.zeros_like(q))
                                                 for k, q in c.named_parameters()}))
    (g1, gp1, p1), (g2, gp2, p2) = grads
    assert torch.allclose(g1, g2, atol=1e-5) and torch.allclose(gp1, gp2, atol=1e-5)
    assert p1["data_fc.weight"].abs().sum() > 0
    for k in p1:
        assert torch.allclose(p1[k], p2[k], atol=1e-5), k


def test_judge_pair_of_an_unconditional_critic():
    c = N.Critic(6, 0, 5)
    real, fake = torch.rand(3, 6), torch.rand(3, 6)
    d_real, d_fake = c.judge_pair(real, fake, None)
    assert torch.allclose(d_real, c(real)) and torch.allclose(d_fake, c(fake))


@pytest.mark.parametrize("switches, expected", [
    ({}, ["x0", "xc", "xt"]),
    ({"diffusion_critic": False}, ["x0", "xc"]),
    ({"sc_view": False}, ["x0", "xt"]),
    ({"sc_view": False, "diffusion_critic": False}, ["x0"]),
])
def test_switched_off_critics_are_not_built(switches, expected):
    from tests.tiny import tiny_params
    p = tiny_params(gen=switches)
    cfg = model_config(10, 4, 0 if not p["gen"]["sc_view"] else 6, p["gen"], p["diffusion"])
    assert sorted(build_critics(cfg, p["gen"])) == expected
    gen = N.build_feature_generator(cfg)
    assert (gen["G"].remb is None) == (not p["gen"]["sc_view"])


def _trainer(prep, p, **switches):
    g = dict(p["gen"], **switches)
    torch.manual_seed(0)
    return ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, g, p["diffusion"], "cpu")


def test_a_few_steps_lower_the_losses(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    tr = _trainer(prep, p)
    x0, r, a = tr.batch()
    first = [tr.generator_step(x0, r, a)["vae"] for _ in range(3)]
    for _ in range(60):
        tr.critic_step()
        tr.generator_step(x0, r, a)
    last = [tr.generator_step(x0, r, a)["vae"] for _ in range(3)]
    assert np.mean(last) < np.mean(first)
    decs = [tr.critic_step()[0]["dec"] for _ in range(40)]
    assert np.mean(decs[-5:]) < np.mean(decs[:5])


def test_mutual_learning_switch_zeroes_its_loss(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    on = _trainer(prep, p).critic_step()[0]
    off = _trainer(prep, p, mutual_learning=False).critic_step()[0]
    assert on["ml"] > 0 and off["ml"] == 0.0
    solo = _trainer(prep, p, sc_view=False, diffusion_critic=False).critic_step()[0]
    assert solo["ml"] == 0.0 and "W_xt" not in solo and "W_xc" not in solo


def test_stacked_real_fake_scores_equal_separate_calls(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    tr = _trainer(prep, p)
    x0, r, a = tr.batch()
    with torch.no_grad():
        f = tr.adversarial_fake(x0, r, a)
        for name in ("x0", "xc", "xt"):
            real, fake = (f["x_t"], f["xt_hat"]) if name == "xt" else (x0, f["x0_hat"])
            d_real, d_fake = tr.critics[name].judge_pair(real, fake, tr.condition(name, f, a, r))
            assert torch.allclose(d_real, tr.scores(name, real, f, a, r), atol=1e-6)
            assert torch.allclose(d_fake, tr.scores(name, fake, f, a, r), atol=1e-6)
            assert not torch.allclose(d_real, d_fake)


def test_same_seed_same_weights(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    states = []
    for _ in range(2):
        torch.manual_seed(7)
        tr = _trainer(prep, p)
        torch.manual_seed(7)
        tr.train(1, desc=None)
        states.append(tr.checkpoint()["state"])
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_drg_trains_and_samples_in_range(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    gen, cfg, rows = train_drg(prep.r_train, prep.y_train, prep.att, p["drg"], p["diffusion"], "cpu")
    assert len(rows) == p["drg"]["epochs"] and {"drg_critic", "drg_gp", "drg_generator"} <= set(rows[0])
    r = sample_r(gen, cfg, torch.as_tensor(prep.att[:3]))
    assert r.shape == (3, prep.r_train.shape[1]) and (r >= 0).all() and (r <= 1).all()


def _encoder_grad_after_generator_step(tr):
    """Norm of E's gradient from one generator step with only the adversarial term on."""
    tr.p = dict(tr.p, gamma_vae=0.0, gamma_rec=0.0)
    x0, r, a = tr.batch()
    tr.opt_e.step = lambda: None  # keep the gradient for inspection
    tr.generator_step(x0, r, a)
    return sum(float(q.grad.abs().sum()) for q in tr.gen["E"].parameters() if q.grad is not None)


def test_prior_fakes_do_not_pass_through_the_encoder(tmp_path):
    """fake_latent prior: the adversarial loss is blind to E (z ~ N(0, I), as at synthesis);
    posterior (official): the critics judge G(E(x, a), ...), so E gets an adversarial gradient."""
    prep, p = tiny_prepared(tmp_path)
    assert _encoder_grad_after_generator_step(_trainer(prep, p, fake_latent="prior")) == 0.0
    assert _encoder_grad_after_generator_step(_trainer(prep, p, fake_latent="posterior")) > 0.0


def test_prior_fakes_still_train_the_vae(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    tr = _trainer(prep, p, fake_latent="prior")
    x0, r, a = tr.batch()
    before = tr.generator_step(x0, r, a)["vae"]
    for _ in range(30):
        tr.generator_step(x0, r, a)
    assert tr.generator_step(x0, r, a)["vae"] < before


def test_checkpoint_carries_the_attribute_decoder_into_the_vs_view(tmp_path):
    from zerodiffpp.nn.classifier import InputView
    from zerodiffpp.generators.synth import Synthesizer
    prep, p = tiny_prepared(tmp_path)
    tr = _trainer(prep, p, sc_view=False)
    for _ in range(3):
        tr.critic_step()
    ckpt = Synthesizer(tr.checkpoint(), None, prep.att, "cpu").checkpoint()  # adapt passes it through
    x = prep.x_test_unseen[:7]
    assert InputView.from_generator("V", ckpt, "cpu")(x) is x
    vs = InputView.from_generator("VS", ckpt, "cpu")(x)
    A, H = prep.att.shape[1], p["gen"]["dec_hidden"]
    assert vs.shape == (7, x.shape[1] + A + H)
    np.testing.assert_array_equal(vs[:, :x.shape[1]], x)
    with torch.no_grad():
        expected = tr.dec(torch.as_tensor(x)).numpy()  # Dec(x), L2-normalised
    np.testing.assert_allclose(vs[:, x.shape[1]:x.shape[1] + A], expected, atol=1e-6)
    assert InputView.from_generator("VS", ckpt, "cpu")(x[:0]).shape == (0, x.shape[1] + A + H)
    s = InputView.from_generator("S", ckpt, "cpu")(x)  # the decoder's embedding alone
    np.testing.assert_allclose(s, vs[:, x.shape[1]:], atol=1e-6)


def test_a_generator_without_decoder_is_classified_on_x():
    from zerodiffpp.nn.classifier import InputView
    for name in ("VS", "S"):
        assert InputView.from_generator(name, {"config": {"kind": "fclswgan"}, "state": {}}, "cpu").name == "V"
    with pytest.raises(ValueError, match="classifier.features"):
        InputView("VA")
    with pytest.raises(ValueError, match="classifier.features 'VS' needs the generator's attribute decoder"):
        InputView("VS")


def test_loading_the_decoder_of_a_generator_without_one_names_its_kind():
    from zerodiffpp.nn.classifier import load_decoder
    with pytest.raises(ValueError, match=r"this generator \(fclswgan\) has no attribute decoder"):
        load_decoder({"config": {"kind": "fclswgan"}, "state": {}}, "cpu")


@pytest.mark.parametrize("rule_input", ["sum", "mean"])
def test_adaptive_gp_reads_the_sum_or_the_mean_of_the_penalties(tmp_path, rule_input):
    """gen.adaptive_gp_input: the official code feeds tf-VAEGAN's one-critic rule the sum of the
    three critics' penalties; 'mean' divides by the number of critics."""
    prep, p = tiny_prepared(tmp_path)
    tr = _trainer(prep, p, adaptive_gp_input=rule_input, critic_iter=1)
    seen = []
    tr.adapt_gp_weight = seen.append
    tr.train(1, desc=None)
    stats, _ = _trainer(prep, p, adaptive_gp_input=rule_input, critic_iter=1).critic_step()
    assert stats["gp_sum"] == pytest.approx(3 * stats["gp"])
    expected = stats["gp_sum"] if rule_input == "sum" else stats["gp"]
    assert seen[0] == pytest.approx(expected)


@pytest.mark.parametrize("input_step", ["current", "next"])
def test_drg_input_step_chooses_which_noised_r_the_generator_reads(tmp_path, monkeypatch, input_step):
    """drg.input_step: the official code feeds the DRG generator r_t ('current'; at t = 0 that is
    the clean target), textbook DDGAN feeds r_{t+1} ('next')."""
    from zerodiffpp.nn import diffusion
    prep, p = tiny_prepared(tmp_path)
    pairs, inputs = [], []
    real_pairs = diffusion.q_sample_pairs

    def recording_pairs(x0, t, sched, *args, **kw):
        out = real_pairs(x0, t, sched, *args, **kw)
        pairs.append(out)
        return out
    monkeypatch.setattr(diffusion, "q_sample_pairs", recording_pairs)
    real_forward = N.RepGenerator.forward
    monkeypatch.setattr(N.RepGenerator, "forward",
                        lambda self, z, a, r_in, t: inputs.append(r_in) or real_forward(self, z, a, r_in, t))
    train_drg(prep.r_train, prep.y_train, prep.att, dict(p["drg"], input_step=input_step, epochs=1),
              p["diffusion"], "cpu")
    assert len(pairs) == len(inputs) > 0
    for (r_t, r_next), r_in in zip(pairs, inputs):
        assert torch.equal(r_in, r_t if input_step == "current" else r_next)
        assert not torch.equal(r_t, r_next)


def test_classifiers_apply_the_view_per_batch_and_never_to_a_whole_set(monkeypatch):
    """The VS view (3x the features at paper widths) is computed per batch on the device inside
    training and prediction; the numpy whole-set path is never taken, and the result equals a
    classifier trained on the precomputed view with the same seed."""
    from zerodiffpp.nn.classifier import InputView, load_classifier, train_softmax
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    from tests.tiny import tiny_params
    rng = np.random.default_rng(0)
    x, y = rng.random((96, 12), dtype=np.float32), np.repeat(np.arange(3), 32)
    att = rng.random((3, 5)).astype(np.float32)
    p = tiny_params()
    ckpt = ZeroDiffTrainer(x, rng.random((96, 4), dtype=np.float32), y, att, dict(p["gen"], sc_view=False),
                           p["diffusion"], "cpu").checkpoint()
    view = InputView.from_generator("VS", ckpt, "cpu")
    whole = view(x)  # the reference, computed before the whole-set path is closed
    assert view.dim(12) == whole.shape[1] > 12
    torch.manual_seed(0)
    ref = train_softmax(whole, y, np.arange(3), 2, 32, 0.01, "cpu")
    monkeypatch.setattr(InputView, "__call__", lambda self, x: pytest.fail("a whole-set view was built"))
    torch.manual_seed(0)
    clf = train_softmax(x, y, np.arange(3), 2, 32, 0.01, "cpu", view=view)
    for a, b in zip(ref.net.parameters(), clf.net.parameters()):
        torch.testing.assert_close(a, b)
    np.testing.assert_allclose(clf.probabilities(x, "cpu"), ref.probabilities(whole, "cpu"), rtol=1e-5, atol=1e-6)
    again = load_classifier(clf.state(), 12, "cpu", view)
    np.testing.assert_array_equal(again.predict(x, "cpu"), clf.predict(x, "cpu"))


def test_predict_applies_calibrated_stacking_to_the_seen_classes_only():
    """SoftmaxClassifier.predict(x, seen, gamma) is the arg-max of the probabilities less gamma on the
    seen classes, as classify and DiffTTA call it; without `seen` it is the plain arg-max."""
    from zerodiffpp.nn.classifier import SoftmaxClassifier
    from zerodiffpp.nn.networks import LinearClassifier
    net = LinearClassifier(3, 3)
    with torch.no_grad():
        net.fc.weight.copy_(torch.eye(3))
        net.fc.bias.zero_()
    clf = SoftmaxClassifier(net, np.array([5, 7, 9]))  # absolute ids; 5 and 7 seen, 9 unseen
    x = np.array([[2.0, 0.0, 1.5], [0.0, 3.0, 0.0]], np.float32)
    assert clf.predict(x, "cpu").tolist() == [5, 7]
    assert clf.predict(x, "cpu", seen=np.array([5, 7]), calibration=0.3).tolist() == [9, 7]
    assert clf.predict(x, "cpu", seen=np.array([5, 7]), calibration=0.0).tolist() == [5, 7]
    assert clf.predict(x, "cpu", seen=np.array([5, 7])).tolist() == [5, 7]  # calibration defaults to 0


def test_the_view_width_of_each_input_view():
    from zerodiffpp.nn.classifier import InputView
    from zerodiffpp.nn.networks import AttrDecoder
    dec = AttrDecoder(12, 7, 5)
    assert [InputView(n, dec).dim(12) if n != "V" else InputView(n).dim(12) for n in ("V", "VS", "S")] == [12, 24, 12]


def test_a_classifier_loaded_without_a_view_reads_x():
    """load_classifier's default view is V (f-CLSWGAN's seen classifier, reloaded on resume, passes none):
    the reloaded classifier gives the trained one's probabilities on raw features."""
    from zerodiffpp.nn.classifier import load_classifier, train_softmax
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 5), dtype=np.float32), np.repeat([2, 4, 6], 20)
    clf = train_softmax(x, y, np.array([2, 4, 6]), 2, 20, 0.01, "cpu")
    again = load_classifier(clf.state(), 5, "cpu")
    assert again.view.name == "V" and again.classes.tolist() == [2, 4, 6]
    np.testing.assert_array_equal(again.probabilities(x, "cpu"), clf.probabilities(x, "cpu"))


def test_train_softmax_visits_every_sample_once_per_epoch_and_refuses_foreign_labels(monkeypatch):
    """Each epoch is one shuffled pass in batches of batch_size (every sample once, the last batch the
    remainder), the curve has one row per epoch numbered from 0, and a label outside `classes` is an
    error, never silently mapped to some class."""
    from zerodiffpp.nn import classifier
    from zerodiffpp.nn.classifier import train_softmax
    seen, real = [], classifier.F.cross_entropy
    monkeypatch.setattr(classifier.F, "cross_entropy", lambda logits, target: seen.append(len(target))
                        or real(logits, target))
    rng = np.random.default_rng(0)
    x, y = rng.random((23, 4), dtype=np.float32), np.repeat([3, 8], [12, 11])
    clf = train_softmax(x, y, np.array([3, 8]), 2, 10, 0.01, "cpu")
    assert seen == [10, 10, 3] * 2
    assert [row["step"] for row in clf.curve] == [0, 1]
    with pytest.raises(ValueError, match="labels outside the classifier's classes"):
        train_softmax(x, np.where(y == 8, 5, y), np.array([3, 8]), 1, 10, 0.01, "cpu")


def test_the_vs_view_by_hand_as_the_official_code_takes_it():
    """VS = concat(x, Dec(x), Dec-hidden(x)) as tf-VAEGAN / ZeroDiff feed their classifiers: Dec(x) is the
    decoder's output L2-normalised, Dec-hidden(x) its hidden layer *after* the LeakyReLU(0.2) (the
    official getLayersOutDet returns self.hidden = lrelu(fc1(x))), in that order. Pre-activation hidden
    values, an unnormalised Dec(x) or another order all fail here."""
    from zerodiffpp.nn.classifier import InputView
    from zerodiffpp.nn.networks import AttrDecoder
    w1 = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]])  # (x_dim 2, hidden 3)
    b1 = np.array([0.1, -0.3, 0.2])
    w2 = np.array([[2.0, 0.0], [-1.0, 1.0], [0.5, 3.0]])  # (hidden 3, att 2)
    b2 = np.array([0.0, -0.5])
    dec = AttrDecoder(2, 3, 2)
    with torch.no_grad():
        dec.net[0].weight.copy_(torch.tensor(w1.T)), dec.net[0].bias.copy_(torch.tensor(b1))
        dec.net[2].weight.copy_(torch.tensor(w2.T)), dec.net[2].bias.copy_(torch.tensor(b2))
    x = np.array([[1.0, 2.0], [-0.5, 0.3]], np.float32)
    pre = x @ w1 + b1
    hidden = np.where(pre > 0, pre, 0.2 * pre)
    assert (pre < 0).any()  # the activation matters on these inputs
    out = hidden @ w2 + b2
    expected = np.concatenate([x, out / np.linalg.norm(out, axis=1, keepdims=True), hidden], axis=1)
    np.testing.assert_allclose(InputView("VS", dec)(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(InputView("S", dec)(x), expected[:, 2:], rtol=1e-5, atol=1e-6)
