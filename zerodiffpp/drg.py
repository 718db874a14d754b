"""DRG (params section `drg`): the diffusion representation generator that learns p(r | a), so unseen
classes get an r.

DDGAN-style: a one-step generator predicts r_0 from (z, a, r_in, t); the fake r_t is drawn from the
posterior q(r_t | r_hat_0, r_{t+1}); two WGAN-GP critics judge (r_0, a) and (r_t, r_{t+1}, a, t).
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from zerodiffpp import diffusion as dfn
from zerodiffpp.losses import gradient_penalty
from zerodiffpp.networks import Critic, RepGenerator
from zerodiffpp.training import Curve, adam, iters_per_epoch, random_batch, to_tensor

log = logging.getLogger(__name__)


def build_drg(cfg: dict) -> RepGenerator:
    return RepGenerator(cfg["noise_dim"], cfg["att_dim"], cfg["rep_dim"], cfg["hidden"], cfg["time_dim"],
                        cfg["att_dim"])


def train_drg(r: np.ndarray, y: np.ndarray, att: np.ndarray, p: dict, dp: dict, device):
    sched = dfn.vp_schedule(dp["timesteps"], dp["beta_min"], dp["beta_max"])
    A, R = att.shape[1], r.shape[1]
    cfg = dict(noise_dim=p["noise_dim"], att_dim=A, rep_dim=R, hidden=p["hidden"], time_dim=dp["time_dim"],
               input_step=p["input_step"], timesteps=dp["timesteps"], beta_min=dp["beta_min"],
               beta_max=dp["beta_max"])
    gen = build_drg(cfg).to(device)
    d_r0 = Critic(R, A, p["critic_hidden"]).to(device)
    d_rt = Critic(R, R + A, p["critic_hidden"], time_dim=dp["time_dim"], cond_dim=A).to(device)
    opt_g, opt_d = adam(gen.parameters(), p["lr"]), adam(list(d_r0.parameters()) + list(d_rt.parameters()), p["lr"])
    rt, at = to_tensor(r, device), to_tensor(att, device)
    yt = to_tensor(y, device, torch.long)
    n, lam = len(rt), p["lambda_gp"]
    curve = Curve("drg_")

    def fake(r0, a, t):
        r_t, r_next = dfn.q_sample_pairs(r0, t, sched)
        r_in = r_t if p["input_step"] == "current" else r_next
        z = torch.randn(len(r0), p["noise_dim"], device=device)
        r0_hat = gen(z, a, r_in, t)
        return r_t, r_next, r0_hat, dfn.sample_posterior(r0_hat, r_next, t, sched)

    for epoch in tqdm(range(p["epochs"]), desc="pretrain: DRG", unit="epoch"):
        for _ in range(iters_per_epoch(n, p["batch_size"])):
            for _ in range(p["critic_iter"]):
                idx = random_batch(n, p["batch_size"], device)
                r0, a = rt[idx], at[yt[idx]]
                t = dfn.sample_timesteps(len(idx), sched, device)
                with torch.no_grad():
                    r_t, r_next, r0_hat, rt_hat = fake(r0, a, t)
                cond0, cond_t = d_r0.condition(a), d_rt.condition(r_next, a, t=t)  # once per critic step
                (real0, fake0), (real_t, fake_t) = d_r0.judge_pair(r0, r0_hat, cond0), d_rt.judge_pair(r_t, rt_hat, cond_t)
                w0, wt = real0.mean() - fake0.mean(), real_t.mean() - fake_t.mean()
                gp = gradient_penalty(lambda v: d_r0.input_gradient(v, cond0), r0, r0_hat) + \
                    gradient_penalty(lambda v: d_rt.input_gradient(v, cond_t), r_t, rt_hat)
                loss_d = -(w0 + wt) + lam * gp
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            t = dfn.sample_timesteps(len(idx), sched, device)
            r_t, r_next, r0_hat, rt_hat = fake(r0, a, t)
            loss_g = -(d_r0(r0_hat, a).mean() + d_rt(rt_hat, r_next, a, t=t).mean())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            curve.add(critic=loss_d.item(), wasserstein=(w0 + wt).item(), gp=gp.item(), generator=loss_g.item())
        curve.end_epoch(epoch)
    return gen.eval(), cfg, curve.rows


@torch.no_grad()
def sample_r(gen: RepGenerator, cfg: dict, a: torch.Tensor) -> torch.Tensor:
    """r_hat from pure noise: the generator sees N(0, I) as its noised input at t = T - 1."""
    t = torch.full((len(a),), cfg["timesteps"] - 1, dtype=torch.long, device=a.device)
    z = torch.randn(len(a), cfg["noise_dim"], device=a.device)
    return gen(z, a, torch.randn(len(a), cfg["rep_dim"], device=a.device), t)


def load_drg(ckpt: dict, device) -> tuple[nn.Module, dict]:
    gen = build_drg(ckpt["config"]).to(device)
    gen.load_state_dict(ckpt["state"])
    return gen.eval(), ckpt["config"]
