import math

import pytest
import torch

from zerodiffpp.nn import diffusion as dfn


@pytest.fixture
def sched():
    return dfn.vp_schedule(4, 0.1, 20.0)


def test_schedule_reference_values(sched):
    # ZeroDiff's 4-step VP schedule (official code notes, section 2.1)
    assert sched.sqrt_alpha_bar.tolist() == pytest.approx([1.000, 0.722, 0.280, 0.059, 0.007], abs=6e-4)
    assert sched.sigma_bar[1:].tolist() == pytest.approx([0.692, 0.960, 0.998, 1.000], abs=1e-3)
    assert sched.sigma_bar[0].item() == pytest.approx(1e-4, rel=1e-2)
    assert sched.post_std.tolist() == pytest.approx([0.0, 0.664, 0.940, 0.992], abs=1e-3)
    # signal coefficient of x_{t+1} per forward step
    assert torch.sqrt(1 - sched.betas[1:]).tolist() == pytest.approx([0.722, 0.388, 0.209, 0.112], abs=1e-3)


def test_schedule_is_variance_preserving(sched):
    assert (sched.sqrt_alpha_bar ** 2 + sched.sigma_bar ** 2).tolist() == pytest.approx([1.0] * 5, abs=1e-12)


def test_posterior_at_t0_returns_x0(sched):
    x0, x1 = torch.randn(16, 5), torch.randn(16, 5)
    t = torch.zeros(16, dtype=torch.long)
    assert torch.allclose(dfn.sample_posterior(x0, x1, t, sched), x0, atol=1e-6)


def test_posterior_mean_matches_bayes(sched):
    # q(x_t | x_0, x_{t+1}) mean at t = 2 against the closed form with the step's own alphas
    t = 2
    b = sched.betas[t + 1]
    ab_t = sched.sqrt_alpha_bar[t].item() ** 2 / (1 - 1e-8)  # alpha_bar of x_t (dummy beta_0 removed)
    ab_next = ab_t * (1 - b.item())
    c0 = math.sqrt(ab_t) * b.item() / (1 - ab_next)
    cn = math.sqrt(1 - b.item()) * (1 - ab_t) / (1 - ab_next)
    assert sched.post_coef_x0[t].item() == pytest.approx(float(c0), rel=1e-6)
    assert sched.post_coef_xnext[t].item() == pytest.approx(float(cn), rel=1e-6)


def test_forward_pairs_have_the_schedule_statistics(sched):
    torch.manual_seed(0)
    x0 = torch.full((200000, 1), 0.5)
    for step in range(4):
        t = torch.full((len(x0),), step, dtype=torch.long)
        x_t, x_next = dfn.q_sample_pairs(x0, t, sched)
        assert x_t.mean().item() == pytest.approx(0.5 * sched.sqrt_alpha_bar[step].item(), abs=5e-3)
        assert x_next.mean().item() == pytest.approx(0.5 * sched.sqrt_alpha_bar[step + 1].item(), abs=5e-3)
        assert x_next.std().item() == pytest.approx(sched.sigma_bar[step + 1].item(), abs=5e-3)


def test_timestep_embedding_values():
    e = dfn.timestep_embedding(torch.tensor([0, 3]), 7)
    assert e.shape == (2, 7)
    assert e[0, :3].tolist() == [1.0, 1.0, 1.0] and e[0, 3:6].tolist() == [0.0, 0.0, 0.0]
    assert e[1, 0].item() == pytest.approx(math.cos(3.0))
    assert e[:, 6].abs().sum().item() == 0.0  # odd size: zero-padded
