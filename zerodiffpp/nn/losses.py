"""Loss functions: WGAN-GP penalty, Wasserstein mutual learning, VAE terms, weighted L1, SupCon."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def gradient_penalty(input_gradient: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """mean((||grad_x D(x_hat)||_2 - 1)^2) at x_hat = alpha real + (1 - alpha) fake, one alpha per sample.

    `input_gradient(x)` returns grad_x D(x) row by row, differentiable in the critic's parameters:
    `Critic.input_gradient` in closed form, or `autograd_input_gradient(critic)` for any critic.
    Only the data argument is interpolated: the callable closes over the (real) conditions."""
    alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    return ((input_gradient(x_hat).norm(2, dim=1) - 1.0) ** 2).mean()


def autograd_input_gradient(critic: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """grad_x critic(x) by double backpropagation, for a critic without a closed form."""
    def input_gradient(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return grad
    return input_gradient


def mutual_learning(w: dict[str, torch.Tensor], step_weight: torch.Tensor) -> torch.Tensor:
    """Wasserstein mutual learning between critics.

    w[k] holds per-sample estimates W_k = D_k(real) - D_k(fake). Each estimate is pulled toward
    every other one (stop-gradient on the target) with a squared loss. Pairs that involve the
    diffusion critic 'xt' are weighted per sample by `step_weight` (sqrt(alpha_bar_t)^factor),
    since its view of a heavily noised pair says little about x_0. Zero when all critics agree."""
    names = sorted(w)
    total = torch.zeros((), device=step_weight.device)
    for i, k in enumerate(names):
        for l in names[i + 1:]:
            weight = step_weight if "xt" in (k, l) else torch.ones_like(step_weight)
            total = total + (weight * (w[k] - w[l].detach()) ** 2).mean() \
                          + (weight * (w[l] - w[k].detach()) ** 2).mean()
    return total


def weighted_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """tf-VAEGAN's attribute feedback loss: per row sum_j |d_j|^3 / ||d||_2, averaged over rows."""
    d = pred - target
    return ((d.abs() ** 3).sum(dim=1) / d.norm(dim=1).clamp_min(1e-12)).mean()


def vae_loss(x_rec: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Summed BCE reconstruction plus KL(q(z|x,a) || N(0, I)), both per sample.

    The BCE of probabilities runs in float32 with autocast off: PyTorch refuses
    F.binary_cross_entropy under autocast (its log is unsafe in half precision)."""
    b = x.shape[0]
    with torch.autocast(device_type=x_rec.device.type, enabled=False):
        bce = F.binary_cross_entropy(x_rec.float(), x.float().clamp(0, 1), reduction="sum") / b
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / b
    return bce + kl


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma eps, eps ~ N(0, I) from `generator` (None: torch's global stream)."""
    eps = torch.randn_like(mu) if generator is None else \
        torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + eps * torch.exp(0.5 * logvar)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) over L2-normalised embeddings.

    z: (B, V, P) with V views per sample. Positives: every other view of the same class."""
    b, v, _ = z.shape
    feats = z.reshape(b * v, -1)
    y = labels.repeat_interleave(v)
    logits = feats @ feats.T / temperature
    self_mask = torch.eye(b * v, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    mean_log_prob_pos = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1) / n_pos.clamp_min(1)
    return -(mean_log_prob_pos[n_pos > 0]).mean()
