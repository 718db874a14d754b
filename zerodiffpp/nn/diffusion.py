"""The variance-preserving diffusion used for augmentation (DDGAN style, as in ZeroDiff).

Pure tensor functions, no networks: the schedule (a module of buffers only, so that it moves with
the model it belongs to), forward pairs (x_t, x_{t+1}), the posterior
q(x_t | x_0, x_{t+1}), partial noising to a step k, and the sinusoidal timestep embedding.
Indexing: steps 0..T; x_0 is data, x_T is (almost) pure noise. A training pair uses t in {0..T-1}.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


class Schedule(nn.Module):
    """Per-step coefficients, all 1-D float64 tensors of length T + 1 (index = step), held as the
    module's buffers: a schedule that belongs to a model (the generator's, `networks.build_feature_
    generator`) moves with its `.to(device)`, so no loop can look a coefficient up on the host.
    The buffers are not persistent: checkpoints store the config that rebuilds them, not the numbers."""
    NAMES = ("betas",            # beta_k, with a dummy beta_0 = 1e-8
             "sqrt_alpha_bar",   # signal kept from x_0 at step k
             "sigma_bar",        # noise std at step k (marginal)
             # posterior q(x_t | x_0, x_{t+1}) for t = 0..T-1 (length T)
             "post_coef_x0", "post_coef_xnext", "post_std")

    def __init__(self, **coefs: torch.Tensor):
        super().__init__()
        if sorted(coefs) != sorted(self.NAMES):
            raise ValueError(f"Schedule: expected coefficients {self.NAMES}, got {sorted(coefs)}")
        for name in self.NAMES:
            self.register_buffer(name, coefs[name], persistent=False)

    @property
    def timesteps(self) -> int:
        return len(self.betas) - 1

    @property
    def device(self) -> torch.device:
        return self.betas.device


def vp_schedule(timesteps: int = 4, beta_min: float = 0.1, beta_max: float = 20.0) -> Schedule:
    """Discretised VP-SDE: var(s) = 1 - exp(-s^2 (b_max - b_min) / 2 - s b_min) on s_k = k/T (1 - eps) + eps."""
    eps = 1e-3
    s = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps * (1 - eps) + eps
    var = 1.0 - torch.exp(-0.5 * s ** 2 * (beta_max - beta_min) - s * beta_min)
    alpha_bar = 1.0 - var
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    betas = torch.cat([torch.tensor([1e-8], dtype=torch.float64), betas])
    sqrt_alpha_bar = torch.cumprod(torch.sqrt(1.0 - betas), 0)
    sigma_bar = torch.sqrt(1.0 - sqrt_alpha_bar ** 2)
    # Posterior over the shifted betas (beta_1..beta_T), as in DDGAN: at t = 0 it is exactly x_0.
    b = betas[1:]
    ab = torch.cumprod(1.0 - b, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    post_var = b * (1.0 - ab_prev) / (1.0 - ab)
    return Schedule(
        betas=betas, sqrt_alpha_bar=sqrt_alpha_bar, sigma_bar=sigma_bar,
        post_coef_x0=b * torch.sqrt(ab_prev) / (1.0 - ab),
        post_coef_xnext=(1.0 - ab_prev) * torch.sqrt(1.0 - b) / (1.0 - ab),
        post_std=torch.sqrt(post_var.clamp(min=0.0)))


def _at(coef: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """coef[t] shaped to broadcast over a (B, D) batch, on its device and dtype. (The `.to(device)` is
    free when the schedule lives there, as every model's does: see `Schedule`; benchmarks count the
    lookups that would copy.)"""
    return coef.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def sample_timesteps(batch: int, sched: Schedule, device, generator=None) -> torch.Tensor:
    return torch.randint(0, sched.timesteps, (batch,), device=device, generator=generator)


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """N(0, I) noise shaped like x, from `generator` (None: torch's global stream on x's device)."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def q_sample(x0: torch.Tensor, t: torch.Tensor, sched: Schedule, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, sigma_bar_t^2 I)."""
    noise = randn_like(x0, generator) if noise is None else noise
    return _at(sched.sqrt_alpha_bar, t, x0) * x0 + _at(sched.sigma_bar, t, x0) * noise


def q_sample_pairs(x0: torch.Tensor, t: torch.Tensor, sched: Schedule,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A forward pair: x_t ~ q(x_t | x_0), then x_{t+1} = sqrt(1 - beta_{t+1}) x_t + sqrt(beta_{t+1}) eps."""
    x_t = q_sample(x0, t, sched, generator=generator)
    beta_next = _at(sched.betas, t + 1, x0)
    x_next = torch.sqrt(1.0 - beta_next) * x_t + torch.sqrt(beta_next) * randn_like(x0, generator)
    return x_t, x_next


def sample_posterior(x0: torch.Tensor, x_next: torch.Tensor, t: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """x_t ~ q(x_t | x_0, x_{t+1}); deterministic (= x_0) at t = 0."""
    mean = _at(sched.post_coef_x0, t, x0) * x0 + _at(sched.post_coef_xnext, t, x0) * x_next
    return mean + _at(sched.post_std, t, x0) * torch.randn_like(x0)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps: [cos, sin] halves, zero-padded when dim is odd."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb
