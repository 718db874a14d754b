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

from zerodiffpp.nn import diffusion as dfn
from zerodiffpp.nn.losses import gradient_penalty
from zerodiffpp.nn.networks import Critic, RepGenerator
from zerodiffpp.runtime.session import compile_networks
from zerodiffpp.nn.training import Curve, adam, iters_per_epoch, random_batch, set_requires_grad, to_tensor

log = logging.getLogger(__name__)


def build_drg(cfg: dict) -> RepGenerator:
    return RepGenerator(cfg["noise_dim"], cfg["att_dim"], cfg["rep_dim"], cfg["hidden"], cfg["time_dim"],
                        cfg["att_dim"])


class DRGTrainer:
    """One DRG training run: the generator R(z, a, r_in, t), the critics D(r_0 | a) and
    D(r_t | r_{t+1}, a, t), their optimisers and the step logic; the DFG trainer's structure without
    the VAE, the decoder and mutual learning (the official DRG has none). As there, each critic
    scores real and fake in one stacked forward, the penalty's input gradient is in closed form,
    the critics are frozen during the generator step (their gradients would be thrown away), and the
    statistics stay on the device."""

    def __init__(self, r: np.ndarray, y: np.ndarray, att: np.ndarray, p: dict, dp: dict, device,
                 compile: bool = False):
        self.p, self.device = p, device
        self.sched = dfn.vp_schedule(dp["timesteps"], dp["beta_min"], dp["beta_max"]).to(device)
        A, R = att.shape[1], r.shape[1]
        self.cfg = dict(noise_dim=p["noise_dim"], att_dim=A, rep_dim=R, hidden=p["hidden"], time_dim=dp["time_dim"],
                        input_step=p["input_step"], timesteps=dp["timesteps"], beta_min=dp["beta_min"],
                        beta_max=dp["beta_max"])
        self.gen = build_drg(self.cfg).to(device)
        self.d_r0 = Critic(R, A, p["critic_hidden"]).to(device)
        self.d_rt = Critic(R, R + A, p["critic_hidden"], time_dim=dp["time_dim"], cond_dim=A).to(device)
        self.opt_g = adam(self.gen.parameters(), p["lr"])
        self.opt_d = adam(list(self.d_r0.parameters()) + list(self.d_rt.parameters()), p["lr"])
        self.r, self.a_all = to_tensor(r, device), to_tensor(att, device)
        self.y = to_tensor(y, device, torch.long)
        compile_networks([self.gen, self.d_r0, self.d_rt], compile)

    def batch(self):
        idx = random_batch(len(self.r), self.p["batch_size"], self.device)
        return self.r[idx], self.a_all[self.y[idx]]

    def fake(self, r0, a, t):
        """Forward pair (r_t, r_{t+1}); R reads r_t (official) or r_{t+1} (drg.input_step); posterior r_hat_t."""
        r_t, r_next = dfn.q_sample_pairs(r0, t, self.sched)
        r_in = r_t if self.p["input_step"] == "current" else r_next
        z = torch.randn(len(r0), self.p["noise_dim"], device=self.device)
        r0_hat = self.gen(z, a, r_in, t)
        return r_t, r_next, r0_hat, dfn.sample_posterior(r0_hat, r_next, t, self.sched)

    def critic_step(self):
        r0, a = self.batch()
        t = dfn.sample_timesteps(len(r0), self.sched, self.device)
        with torch.no_grad():
            r_t, r_next, r0_hat, rt_hat = self.fake(r0, a, t)
        cond0, cond_t = self.d_r0.condition(a), self.d_rt.condition(r_next, a, t=t)  # once per critic step
        (real0, fake0), (real_t, fake_t) = self.d_r0.judge_pair(r0, r0_hat, cond0), \
            self.d_rt.judge_pair(r_t, rt_hat, cond_t)
        w = (real0.mean() - fake0.mean()) + (real_t.mean() - fake_t.mean())  # the two critics' estimates
        gp = gradient_penalty(lambda v: self.d_r0.input_gradient(v, cond0), r0, r0_hat) + \
            gradient_penalty(lambda v: self.d_rt.input_gradient(v, cond_t), r_t, rt_hat)
        loss = -w + self.p["lambda_gp"] * gp
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return dict(critic=loss.detach(), wasserstein=w.detach(), gp=gp.detach()), (r0, a)

    def generator_step(self, r0, a):
        set_requires_grad([self.d_r0, self.d_rt], False)
        t = dfn.sample_timesteps(len(r0), self.sched, self.device)
        r_t, r_next, r0_hat, rt_hat = self.fake(r0, a, t)
        loss = -(self.d_r0(r0_hat, a).mean() + self.d_rt(rt_hat, r_next, a, t=t).mean())
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        set_requires_grad([self.d_r0, self.d_rt], True)
        return dict(generator=loss.detach())

    def resumable(self) -> dict:
        return dict(gen=self.gen, d_r0=self.d_r0, d_rt=self.d_rt, opt_g=self.opt_g, opt_d=self.opt_d)

    def train(self, epochs: int, desc: str | None = "pretrain: DRG", part=None, live=None) -> list[dict]:
        """`part` (a checkpoints.Part) resumes from and saves checkpoints; `live` gets each epoch's row."""
        curve, start = Curve("drg_", live), 0
        state = part.load() if part is not None else None
        if state is not None:
            part.restore(state, **self.resumable())
            start = state["epoch"]
            curve.restore(state["rows"])
        for epoch in tqdm(range(start, epochs), desc=desc, unit="epoch", disable=desc is None, initial=start,
                          total=epochs):
            for _ in range(iters_per_epoch(len(self.r), self.p["batch_size"])):
                for _ in range(self.p["critic_iter"]):
                    stats, last = self.critic_step()
                curve.add(**stats, **self.generator_step(*last))
            curve.end_epoch(epoch)
            if part is not None:
                part.maybe_save(epoch + 1, epochs, self.resumable(), rows=curve.rows)
        return curve.rows


def train_drg(r: np.ndarray, y: np.ndarray, att: np.ndarray, p: dict, dp: dict, device, compile: bool = False,
              part=None, live=None):
    """-> (trained DRG generator in eval mode, its config, loss curve); `part` resumes (checkpoints.Part),
    `live` (a live.LiveLog) gets each epoch's row."""
    tr = DRGTrainer(r, y, att, p, dp, device, compile)
    rows = tr.train(p["epochs"], part=part, live=live)
    return tr.gen.eval(), tr.cfg, rows


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
