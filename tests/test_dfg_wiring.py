"""The DFG trainer is wired as ZeroDiff specifies: every adversarial and auxiliary term has its sign,
reaches its own parameters and is scaled by its own weight; every conditioning input is read.

Each test here fails under a specific wrong wiring (named in its docstring), so a passing suite means
more than "the shapes fit". Inputs are small fixed tensors, not a trained model."""
import numpy as np
import pytest
import torch

from tests.tiny import tiny_params
from zerodiffpp.nn import networks as N
from zerodiffpp.generators.dfg import ZeroDiffTrainer
from zerodiffpp.nn.losses import gradient_penalty, weighted_l1


def _data(seed=0, n=96, x_dim=12, r_dim=6, att_dim=5, n_classes=4):
    rng = np.random.default_rng(seed)
    att = rng.random((n_classes, att_dim)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_classes), n // n_classes)
    proj = rng.normal(size=(att_dim, x_dim))
    x = 1 / (1 + np.exp(-(att[y] @ proj + 0.3 * rng.normal(size=(n, x_dim)))))
    r = rng.random((n, r_dim))
    return x.astype(np.float32), r.astype(np.float32), y, att


def _trainer(seed=0, **gen):
    p = tiny_params()
    g = dict(p["gen"], noise_dim=4, cond_dim=6, hidden=24, critic_hidden=24, dec_hidden=24, batch_size=32, **gen)
    x, r, y, att = _data()
    torch.manual_seed(seed)
    return ZeroDiffTrainer(x, r, y, att, g, dict(p["diffusion"], time_dim=6), "cpu")


def _fixed_batch(tr, seed=1):
    torch.manual_seed(seed)
    x0, r, a = tr.batch()
    with torch.no_grad():
        f = tr.adversarial_fake(x0, r, a)
    return (x0, r, a), f


def _wasserstein(tr, batch, f):
    """Each critic's estimate mean D(real) - D(fake) on a fixed real and fake batch."""
    x0, r, a = batch
    with torch.no_grad():
        out = {}
        for name in tr.critics:
            real, fake = (f["x_t"], f["xt_hat"]) if name == "xt" else (x0, f["x0_hat"])
            d_real, d_fake = tr.critics[name].judge_pair(real, fake, tr.condition(name, f, a, r))
            out[name] = float((d_real - d_fake).mean())
    return out


def _params(module):
    return [q.detach().clone() for q in module.parameters()]


def _moved(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def _on_fixed_batch(tr):
    batch, f = _fixed_batch(tr)
    tr.batch, tr.adversarial_fake = (lambda: batch), (lambda *args, **kw: f)
    return batch, f


def test_critic_steps_raise_every_critics_wasserstein_estimate():
    """Critic steps on a fixed real and fake batch (penalty off, so that the Wasserstein term acts
    alone) raise every critic's estimate; a flipped sign lowers them. G and E do not move."""
    tr = _trainer(lambda_gp=0.0, adaptive_gp=False)
    batch, f = _on_fixed_batch(tr)
    before = _wasserstein(tr, batch, f)
    g_before, critics_before = _params(tr.gen), {k: _params(c) for k, c in tr.critics.items()}
    for _ in range(15):
        tr.critic_step()
    after = _wasserstein(tr, batch, f)
    assert sorted(before) == ["x0", "xc", "xt"]
    for name in before:
        assert after[name] > before[name] + 5e-3, (name, before[name], after[name])
        assert _moved(critics_before[name], tr.critics[name]), name
    assert not _moved(g_before, tr.gen)


def _penalties(tr, batch, f):
    """Each critic's WGAN-GP penalty on the fixed batch, with fixed interpolation weights."""
    x0, r, a = batch
    out = {}
    for name, c in tr.critics.items():
        real, fake = (f["x_t"], f["xt_hat"]) if name == "xt" else (x0, f["x0_hat"])
        cond = tr.condition(name, f, a, r)
        torch.manual_seed(11)
        with torch.no_grad():
            out[name] = float(gradient_penalty(lambda v, c=c, cond=cond: c.input_gradient(v, cond), real, fake))
    return out


def test_critic_steps_lower_every_critics_gradient_penalty():
    """The penalty term pushes each critic toward unit input-gradient norm (a flipped sign of
    lambda * GP would push the norms away from 1)."""
    tr = _trainer(lambda_gp=10.0, adaptive_gp=False)
    batch, f = _on_fixed_batch(tr)
    before = _penalties(tr, batch, f)
    for _ in range(15):
        tr.critic_step()
    after = _penalties(tr, batch, f)
    for name in before:
        assert after[name] < before[name] - 0.01, (name, before[name], after[name])


def _fake_scores(tr, batch, seed=5):
    """Each critic's mean score of G's fakes (prior z, fixed noise) on a fixed batch, and the
    decoder's attribute error on them."""
    x0, r, a = batch
    torch.manual_seed(seed)
    with torch.no_grad():
        f = tr.adversarial_fake(x0, r, a)
        scores = {name: float(tr.scores(name, f["xt_hat"] if name == "xt" else f["x0_hat"], f, a, r).mean())
                  for name in tr.critics}
        return scores, float(weighted_l1(tr.dec(f["x0_hat"]), a))


def test_generator_steps_raise_the_critics_scores_of_their_fakes():
    """With only the adversarial term on, G learns to be scored higher by every critic (a flipped
    sign of the generator's adversarial term lowers them); the critics and the decoder stay fixed."""
    tr = _trainer(gamma_vae=0.0, gamma_rec=0.0)
    batch, _ = _fixed_batch(tr)
    for c in tr.critics.values():  # spread the critics so that their scores depend on the sample
        for q in c.parameters():
            torch.nn.init.normal_(q, 0.0, 0.3)
    before, _ = _fake_scores(tr, batch)
    frozen = {k: _params(c) for k, c in tr.critics.items()}
    dec_before = _params(tr.dec)
    for _ in range(10):
        tr.generator_step(*batch)
    after, _ = _fake_scores(tr, batch)
    assert sum(after.values()) > sum(before.values()) + 1e-3
    for name in before:
        assert after[name] > before[name], (name, before[name], after[name])
        assert not _moved(frozen[name], tr.critics[name]), name
    assert not _moved(dec_before, tr.dec)


def test_generator_steps_lower_the_decoders_attribute_error_on_their_fakes():
    """With only the attribute feedback on, G's fakes decode closer to their class attributes
    (a flipped sign, or feedback computed on real features, would not)."""
    tr = _trainer(gamma_vae=0.0, gamma_adv=0.0, gamma_rec=1.0)
    batch, _ = _fixed_batch(tr)
    _, before = _fake_scores(tr, batch)
    for _ in range(20):
        tr.generator_step(*batch)
    _, after = _fake_scores(tr, batch)
    assert after < before - 1e-3


def test_each_gamma_scales_its_own_generator_term():
    """L_G = gamma_vae VAE + gamma_adv ADV + gamma_rec REC: distinct weights, so swapping two of them
    in the code breaks the sum."""
    tr = _trainer(gamma_vae=0.3, gamma_adv=7.0, gamma_rec=2.0)
    batch, _ = _fixed_batch(tr)
    s = tr.generator_step(*batch)
    assert float(s["generator"]) == pytest.approx(0.3 * float(s["vae"]) + 7.0 * float(s["g_adv"])
                                                  + 2.0 * float(s["g_rec"]), rel=1e-5)
    assert float(s["vae"]) > 0 and float(s["g_rec"]) > 0


def _critic_grads(seed=3, **gen):
    """Gradients of every critic's parameters from one critic step (the update itself skipped)."""
    tr = _trainer(**gen)
    tr.opt_d.step = lambda: None
    torch.manual_seed(seed)
    tr.critic_step()
    return {k: torch.cat([q.grad.flatten() for q in c.parameters()]) for k, c in tr.critics.items()}


@pytest.mark.parametrize("weight, scaled", [("gamma_x0", {"x0"}), ("gamma_xt", {"xt"}),
                                            ("gamma_adv", {"x0", "xc", "xt"})])
def test_each_gamma_scales_its_own_critics_gradient(weight, scaled):
    """Without mutual learning, doubling gamma_x0 doubles exactly the semantic critic's gradient,
    gamma_xt the diffusion critic's, gamma_adv all three."""
    base = _critic_grads(mutual_learning=False)
    doubled = _critic_grads(mutual_learning=False, **{weight: 2.0 * tiny_params()["gen"][weight]})
    for name in base:
        factor = 2.0 if name in scaled else 1.0
        assert base[name].abs().sum() > 0
        torch.testing.assert_close(doubled[name], factor * base[name], rtol=1e-4, atol=1e-7)


def test_gamma_ml_scales_the_mutual_learning_gradient():
    no_adv = dict(gamma_adv=0.0, mutual_learning=True)
    one = _critic_grads(gamma_ml=1.0, **no_adv)
    three = _critic_grads(gamma_ml=3.0, **no_adv)
    for name in one:
        assert one[name].abs().sum() > 0, name  # mutual learning alone reaches every critic
        torch.testing.assert_close(three[name], 3.0 * one[name], rtol=1e-4, atol=1e-7)


def test_the_adaptive_gradient_penalty_weight_moves_the_right_way_on_both_sides_of_its_band():
    tr = _trainer(lambda_gp=10.0)
    tr.adapt_gp_weight(1.2)
    assert float(tr.lam) == pytest.approx(11.0)
    tr.adapt_gp_weight(1.02)  # inside the band (1.001, 1.05]: unchanged
    assert float(tr.lam) == pytest.approx(11.0)
    tr.adapt_gp_weight(0.5)
    assert float(tr.lam) == pytest.approx(10.0)
    tr.adapt_gp_weight(0.5)
    assert float(tr.lam) == pytest.approx(10.0 / 1.1)
    fixed = _trainer(lambda_gp=10.0, adaptive_gp=False)
    fixed.adapt_gp_weight(5.0)
    assert float(fixed.lam) == 10.0


@pytest.mark.parametrize("gamma_x0, gamma_xt", [(1.0, 1.0), (2.0, 3.0), (0.5, 0.0)])
def test_the_adaptive_rule_reads_the_penalties_weighted_as_in_the_critic_loss(monkeypatch, gamma_x0, gamma_xt):
    """The official rule reads gamma_x0 GP_x0 + gamma_xt GP_xt + GP_xc (the sum as it enters the
    loss), not the raw sum: here each critic's penalty is a known constant."""
    import zerodiffpp.generators.dfg as dfg
    tr = _trainer(gamma_x0=gamma_x0, gamma_xt=gamma_xt)
    penalty = iter([0.3, 0.5, 0.7])  # the critics in their order: x0, xc, xt
    monkeypatch.setattr(dfg, "gradient_penalty", lambda fn, real, fake: torch.tensor(next(penalty)))
    assert list(tr.critics) == ["x0", "xc", "xt"]
    stats, _ = tr.critic_step()
    expected = gamma_x0 * 0.3 + 0.5 + gamma_xt * 0.7
    assert float(stats["gp_sum"]) == pytest.approx(expected)
    assert float(stats["gp"]) == pytest.approx(expected / 3)


def test_the_decoder_learns_from_real_seen_features():
    """The attribute decoder is fitted on real training features in the critic step: on real
    features its error falls and its estimate Dec(x) names the right class (nearest attribute
    vector) well above chance. A decoder trained on noise or on fakes learns a constant instead."""
    tr = _trainer(dec_lr=0.001)
    x, _, y, att = _data()
    x, att, y = torch.as_tensor(x), torch.as_tensor(att), torch.as_tensor(y)

    def error_and_accuracy():
        with torch.no_grad():
            a_hat = tr.dec(x)
            return float(weighted_l1(a_hat, att[y])), float(((a_hat @ att.T).argmax(1) == y).float().mean())
    before, _ = error_and_accuracy()
    for _ in range(40):
        tr.critic_step()
    after, accuracy = error_and_accuracy()
    assert after < 0.9 * before and accuracy > 0.5  # chance 0.25


def _vary(fn, base: dict, key: str, other):
    with torch.no_grad():
        return (fn(**base) - fn(**{**base, key: other})).abs().max().item()


def test_the_generator_reads_every_conditioning_input():
    """G(z, a, r, x_{t+1}, t): changing any one input changes x_hat_0; without the SC view r is not read."""
    torch.manual_seed(0)
    B, Z, A, X, R = 8, 4, 5, 12, 6
    g = N.FeatureGenerator(Z, A, X, R, 24, 6, 6)
    base = dict(z=torch.randn(B, Z), a=torch.rand(B, A), r=torch.rand(B, R), x_next=torch.randn(B, X),
                t=torch.full((B,), 1, dtype=torch.long))
    other = dict(z=torch.randn(B, Z), a=torch.rand(B, A), r=torch.rand(B, R), x_next=torch.randn(B, X),
                 t=torch.full((B,), 3, dtype=torch.long))
    for key in base:
        assert _vary(g, base, key, other[key]) > 1e-6, key
    g_no_r = N.FeatureGenerator(Z, A, X, R, 24, 6, 6, use_r=False)
    assert _vary(g_no_r, base, "r", other["r"]) == 0.0
    assert _vary(g_no_r, base, "a", other["a"]) > 1e-6


def test_every_critic_reads_each_of_its_conditions():
    """D_s(x_0 | a), D_r(x_0 | r), D_d(x_t | x_{t+1}, a, r, t): each condition changes the score."""
    tr = _trainer()
    (x0, r, a), f = _fixed_batch(tr)
    rng = torch.Generator().manual_seed(9)
    changed = {"a": torch.rand(a.shape, generator=rng), "r": torch.rand(r.shape, generator=rng),
               "x_next": torch.randn(f["x_next"].shape, generator=rng), "t": (f["t"] + 1) % 4}
    reads = {"x0": ["a"], "xc": ["r"], "xt": ["x_next", "a", "r", "t"]}
    ignores = {"x0": ["r", "x_next", "t"], "xc": ["a", "x_next", "t"]}
    for name, conds in reads.items():
        sample = f["x_t"] if name == "xt" else x0
        with torch.no_grad():
            ref = tr.scores(name, sample, f, a, r)
            for cond in conds + ignores.get(name, []):
                ff = dict(f, **{k: v for k, v in changed.items() if k in ("x_next", "t") and k == cond})
                aa = changed["a"] if cond == "a" else a
                rr = changed["r"] if cond == "r" else r
                delta = (tr.scores(name, sample, ff, aa, rr) - ref).abs().max().item()
                if cond in conds:
                    assert delta > 1e-7, (name, cond)
                else:
                    assert delta == 0.0, (name, cond)


def test_train_compile_compiles_the_networks_and_gives_the_eager_losses():
    """train.compile: each network goes through torch.compile (the critics through the methods the
    steps call), the optimisers stay outside, and a seeded compiled run gives the eager run's
    losses and weights. Inductor is torch.compile's default backend; aot_eager here traces the same
    graphs (dynamo + autograd) without the C++ code generation that would take a minute on CPU."""
    import functools
    real = torch.compile
    compiled = []

    def compile_(fn, **kw):  # Module.compile calls torch.compile(self._call_impl) too
        compiled.append(f"{type(fn.__self__).__name__}.{fn.__name__}")
        return real(fn, **{**kw, "backend": "aot_eager"})
    runs = {}
    for flag in (False, True):
        torch._dynamo.reset()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch, "compile", compile_)
            tr = ZeroDiffTrainer(*_data(), dict(_trainer().p), dict(tiny_params()["diffusion"], time_dim=6), "cpu",
                                 compile=flag)
            torch.manual_seed(4)
            rows = tr.train(2, desc=None)
        runs[flag] = (rows, tr.gen.state_dict())
    assert sorted(compiled) == sorted([f"{m}._call_impl" for m in ("FeatureEncoder", "FeatureGenerator", "AttrDecoder")]
                                      + [f"Critic.{m}" for m in ("judge", "condition", "input_gradient")] * 3)
    for eager, comp in zip(runs[False][0], runs[True][0]):
        assert comp == pytest.approx(eager, rel=1e-4, abs=1e-6)
    for k, v in runs[False][1].items():
        torch.testing.assert_close(runs[True][1][k], v, rtol=1e-4, atol=1e-5)


def test_a_training_iteration_reads_nothing_back_from_the_device():
    """No .item() / float() in the steps: their statistics stay tensors, lambda is a tensor, and the
    curve reads everything once per epoch."""
    tr = _trainer()
    stats, last = tr.critic_step()
    stats.update(tr.generator_step(*last))
    assert all(torch.is_tensor(v) for v in stats.values()) and torch.is_tensor(tr.lam)
