import pytest
import torch

from zerodiffpp.nn import losses


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([3.0, 4.0])  # ||w|| = 5 everywhere, so the penalty is (5 - 1)^2 = 16
    critic = lambda v: v @ w  # noqa: E731
    gp = losses.gradient_penalty(losses.autograd_input_gradient(critic), torch.randn(8, 2), torch.randn(8, 2))
    assert gp.item() == pytest.approx(16.0)
    unit = lambda v: v @ torch.tensor([0.6, 0.8])  # noqa: E731
    gp_unit = losses.gradient_penalty(losses.autograd_input_gradient(unit), torch.randn(8, 2), torch.randn(8, 2))
    assert gp_unit.item() == pytest.approx(0.0, abs=1e-10)


def test_mutual_learning_zero_when_critics_agree_positive_otherwise():
    w = torch.randn(10)
    weight = torch.rand(10)
    assert losses.mutual_learning({"x0": w, "xt": w.clone(), "xc": w.clone()}, weight).item() == 0.0
    d = losses.mutual_learning({"x0": w, "xt": w + 1.0, "xc": w}, weight)
    assert d.item() > 0
    # pairs with the diffusion critic are weighted by the timestep weight: zero weight, zero loss
    assert losses.mutual_learning({"x0": w, "xt": w + 1.0}, torch.zeros(10)).item() == 0.0
    # x0-xc pair: 2 * mean((1)^2) = 2
    assert losses.mutual_learning({"x0": w, "xc": w + 1.0}, torch.zeros(10)).item() == pytest.approx(2.0)


def test_mutual_learning_gradient_pulls_toward_the_other_critic():
    a = torch.zeros(4, requires_grad=True)
    b = torch.ones(4, requires_grad=True)
    losses.mutual_learning({"x0": a, "xc": b}, torch.ones(4)).backward()
    assert (a.grad < 0).all() and (b.grad > 0).all()  # a moves up, b moves down


def test_mutual_learning_sends_no_gradient_through_the_stop_gradient_side():
    """d/dw_k of sum over pairs of f (w_k - sg w_l)^2 + f (w_l - sg w_k)^2 is 2 f (w_k - w_l) / n per
    pair: only the term where w_k is the estimate, not the target. Without the stop-gradient it
    would be twice that. Pairs with the diffusion critic 'xt' carry the timestep weight f."""
    n = 4
    w = {"x0": torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True),
         "xc": torch.tensor([1.0, 1.0, 0.0, 0.0], requires_grad=True),
         "xt": torch.tensor([0.5, -1.0, 2.0, 1.0], requires_grad=True)}
    f = torch.tensor([1.0, 0.5, 0.25, 0.0])
    losses.mutual_learning(w, f).backward()
    x0, xc, xt = (w[k].detach() for k in ("x0", "xc", "xt"))
    torch.testing.assert_close(w["x0"].grad, 2 * (x0 - xc) / n + 2 * f * (x0 - xt) / n)
    torch.testing.assert_close(w["xc"].grad, 2 * (xc - x0) / n + 2 * f * (xc - xt) / n)
    torch.testing.assert_close(w["xt"].grad, 2 * f * (xt - x0) / n + 2 * f * (xt - xc) / n)


def test_weighted_l1_known_value():
    pred, target = torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2)
    assert losses.weighted_l1(pred, target).item() == pytest.approx((27 + 64) / 5)


def test_vae_loss_kl_is_zero_at_the_prior():
    x = torch.full((4, 3), 0.5)
    mu, logvar = torch.zeros(4, 2), torch.zeros(4, 2)
    bce = 3 * -torch.log(torch.tensor(0.5)).item()
    assert losses.vae_loss(x, x, mu, logvar).item() == pytest.approx(bce, rel=1e-6)
    assert losses.vae_loss(x, x, mu + 1, logvar).item() == pytest.approx(bce + 1.0, rel=1e-6)


def test_supcon_prefers_class_clusters():
    y = torch.tensor([0, 0, 1, 1])
    clustered = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 0.01], [0, 1], [0.01, 1]]), dim=1)
    mixed = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0, 1], [1, 0.01], [0.01, 1]]), dim=1)
    two_views = lambda z: torch.stack([z, z], 1)  # noqa: E731
    assert losses.supcon_loss(two_views(clustered), y, 0.1) < losses.supcon_loss(two_views(mixed), y, 0.1)


def test_vae_loss_runs_in_float32_whatever_precision_it_is_given():
    """Under autocast a generator's output can arrive in half precision, and CUDA's autocast refuses
    F.binary_cross_entropy on it: vae_loss computes its BCE in float32 with autocast off."""
    torch.manual_seed(0)
    x, rec = torch.rand(6, 5), torch.rand(6, 5).clamp(0.05, 0.95)
    mu, logvar = torch.randn(6, 2), torch.randn(6, 2) * 0.1
    low = rec.bfloat16()
    reference = losses.vae_loss(low.float(), x, mu, logvar)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = losses.vae_loss(low, x, mu, logvar)
    assert out.dtype == torch.float32 and torch.equal(out, reference)
    assert torch.equal(losses.vae_loss(low, x, mu, logvar), reference)


def test_gradient_penalty_interpolates_between_real_and_fake():
    """With the critic v -> |v|^2 / 2 the input gradient is v itself, so the penalty is
    mean((|alpha real + (1 - alpha) fake| - 1)^2) for the alphas drawn: a known value."""
    real, fake = torch.tensor([[3.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 6.0]])
    torch.manual_seed(5)
    alpha = torch.rand(2, 1)
    expected = ((torch.linalg.norm(alpha * real + (1 - alpha) * fake, dim=1) - 1) ** 2).mean()
    torch.manual_seed(5)
    gp = losses.gradient_penalty(lambda v: v, real, fake)
    assert gp.item() == pytest.approx(expected.item(), rel=1e-6)


def test_autograd_input_gradient_lets_the_penalty_train_the_critic():
    """Double backpropagation: the penalty of autograd's input gradient has a gradient with respect
    to the critic's weights (create_graph), which is what WGAN-GP trains."""
    w = torch.tensor([[0.5], [2.0]], requires_grad=True)
    critic = lambda v: (torch.tanh(v @ w)).squeeze(1)  # noqa: E731
    gp = losses.gradient_penalty(losses.autograd_input_gradient(critic), torch.randn(6, 2), torch.randn(6, 2))
    gp.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_weighted_l1_on_two_rows_against_a_nonzero_target():
    pred, target = torch.tensor([[3.0, 4.0], [0.1, 0.2]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    # d = [[2, 3], [0.1, 0.2]] (the second row's norm below 1): row means of sum |d|^3 / ||d||
    expected = ((8 + 27) / 13 ** 0.5 + (0.001 + 0.008) / 0.05 ** 0.5) / 2
    assert losses.weighted_l1(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_vae_loss_kl_known_value_away_from_the_prior():
    x = torch.full((2, 3), 0.5)
    mu, logvar = torch.tensor([[0.5, -2.0], [1.5, 0.0]]), torch.tensor([[0.3, -1.0], [0.2, 0.9]])
    bce = 3 * -torch.log(torch.tensor(0.5)).item()
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum().item() / 2
    assert losses.vae_loss(x, x, mu, logvar).item() == pytest.approx(bce + kl, rel=1e-6)


def _supcon_by_hand(feats, labels, tau):
    """Khosla et al.'s L_out written out: for each anchor i with positives, minus the mean over its
    positives p of log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) )."""
    import math
    losses_per_anchor = []
    for i in range(len(feats)):
        others = [a for a in range(len(feats)) if a != i]
        denom = sum(math.exp(float(feats[i] @ feats[a]) / tau) for a in others)
        positives = [p for p in others if labels[p] == labels[i]]
        if positives:
            losses_per_anchor.append(-sum(float(feats[i] @ feats[p]) / tau - math.log(denom)
                                          for p in positives) / len(positives))
    return sum(losses_per_anchor) / len(losses_per_anchor)


@pytest.mark.parametrize("n_views", [1, 2])
def test_supcon_loss_known_value(n_views):
    """Random unit vectors; class 2 has one sample, so with one view its anchor has no positive
    (left out of the mean) and with two views exactly one."""
    torch.manual_seed(3)
    y, tau = torch.tensor([0, 0, 0, 1, 1, 2]), 0.5
    views = torch.nn.functional.normalize(torch.randn(6, n_views, 4), dim=2)
    expected = _supcon_by_hand(views.reshape(6 * n_views, 4), y.repeat_interleave(n_views), tau)
    assert losses.supcon_loss(views, y, tau).item() == pytest.approx(expected, rel=1e-5)


def test_vae_loss_bce_known_value_with_targets_clipped_to_the_unit_interval():
    """Summed BCE per sample, targets clamped to [0, 1] (features slightly outside count as 0 or 1)."""
    x_rec = torch.tensor([[0.9, 0.2, 0.6]])
    x = torch.tensor([[1.3, -0.1, 0.25]])
    clipped = torch.tensor([1.0, 0.0, 0.25])
    bce = -(clipped * torch.log(x_rec[0]) + (1 - clipped) * torch.log(1 - x_rec[0])).sum().item()
    zeros = torch.zeros(1, 2)
    assert losses.vae_loss(x_rec, x, zeros, zeros).item() == pytest.approx(bce, rel=1e-6)
