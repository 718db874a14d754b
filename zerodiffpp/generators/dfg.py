"""ZeroDiff's diffusion-based feature generator (DFG; params section `gen`): a VAE-GAN trained through
diffusion augmentation.

Encoder E(x, a) -> z; generator G(z, a, r, x_{t+1}, t) -> x_hat_0; attribute decoder Dec(x) -> a
for feedback; three WGAN-GP critics over three views:
  x0 (semantic)       D_s(x_0, a)
  xc (SC view)        D_r(x_0, r)
  xt (diffusion)      D_d(x_t, x_{t+1}, a, r, t)
and Wasserstein mutual learning between their per-sample estimates. Switches remove the diffusion
critic, the SC view (critic and r conditioning) or mutual learning for ablations.

`fake_latent` says which z the adversarial fakes are drawn with. 'posterior' is the official
ZeroDiff code: z = E(x, a) of the real sample, so G can rebuild x from z (and the noised x_{t+1})
without reading a, and the critics never see the path used at synthesis, G(z ~ N(0, I), a, ...).
'prior' is tf-VAEGAN's default (encoded_noise off): the VAE term reconstructs from the posterior z,
while the critics and the attribute feedback judge fakes drawn from the prior, as at synthesis.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

from zerodiffpp.nn import diffusion as dfn
from zerodiffpp.nn.losses import gradient_penalty, mutual_learning, reparameterize, vae_loss, weighted_l1
from zerodiffpp.nn.networks import AttrDecoder, Critic, build_feature_generator
from zerodiffpp.nn.ridge import prototype_map
from zerodiffpp.runtime.session import compile_networks
from zerodiffpp.nn.training import (Curve, adam, iters_per_epoch, random_batch, require_finite, set_requires_grad,
                                    to_tensor)

log = logging.getLogger(__name__)


def model_config(x_dim: int, att_dim: int, rep_dim: int, p: dict, dp: dict) -> dict:
    return dict(kind="zerodiff", x_dim=x_dim, att_dim=att_dim, rep_dim=rep_dim, noise_dim=p["noise_dim"],
                hidden=p["hidden"], cond_dim=p["cond_dim"], time_dim=dp["time_dim"], use_r=bool(p["sc_view"]),
                timesteps=dp["timesteps"], beta_min=dp["beta_min"], beta_max=dp["beta_max"],
                prototype_base=bool(p["prototype_base"]))


def build_critics(cfg: dict, p: dict) -> dict[str, Critic]:
    """Only the switched-on critics are built."""
    X, A, R, H, C, TD = cfg["x_dim"], cfg["att_dim"], cfg["rep_dim"], p["critic_hidden"], cfg["cond_dim"], cfg["time_dim"]
    critics = {"x0": Critic(X, A, H)}
    if p["sc_view"]:
        critics["xc"] = Critic(X, 0, H, rep_dim=R, cond_dim=C)
    if p["diffusion_critic"]:
        critics["xt"] = Critic(X, X + A, H, rep_dim=R if p["sc_view"] else 0, time_dim=TD, cond_dim=C)
    return critics


class ZeroDiffTrainer:
    """One object per training run: networks, optimisers, the adaptive GP weight and the step logic.

    Everything a step computes stays on the device: the steps return their statistics as tensors,
    the gradient-penalty weight lambda is a tensor updated there, and the schedule lives there, so a
    training iteration makes no host sync (the curve reads its means once per epoch)."""

    def __init__(self, x, r, y, att, p: dict, dp: dict, device, compile: bool = False):
        self.p, self.device = p, device
        self.x, self.a_all = to_tensor(x, device), to_tensor(att, device)
        self.r = to_tensor(r, device) if p["sc_view"] else None
        self.y = to_tensor(y, device, torch.long)
        self.cfg = model_config(x.shape[1], att.shape[1], r.shape[1] if p["sc_view"] else 0, p, dp)
        self.gen = build_feature_generator(self.cfg).to(device)
        if p["prototype_base"]:
            self.gen["G"].set_prototypes(*prototype_map(x, y, att))
        self.sched = self.gen["sched"]  # on the device with the generator
        self.critics = {k: c.to(device) for k, c in build_critics(self.cfg, p).items()}
        self.dec = AttrDecoder(x.shape[1], p["dec_hidden"], att.shape[1]).to(device)
        self.opt_g = adam(self.gen["G"].parameters(), p["lr"])
        self.opt_e = adam(self.gen["E"].parameters(), p["encoder_lr"], betas=(0.9, 0.999))  # default betas, as official
        self.opt_d = adam([q for c in self.critics.values() for q in c.parameters()], p["lr"])
        self.opt_dec = adam(self.dec.parameters(), p["dec_lr"])
        self.lam = torch.tensor(float(p["lambda_gp"]), dtype=torch.float64, device=device)
        self.weights = {"x0": p["gamma_x0"], "xt": p["gamma_xt"], "xc": 1.0}
        compile_networks([self.gen["E"], self.gen["G"], self.dec, *self.critics.values()], compile)

    def batch(self):
        idx = random_batch(len(self.x), self.p["batch_size"], self.device)
        return self.x[idx], (self.r[idx] if self.r is not None else None), self.a_all[self.y[idx]]

    def forward_fake(self, x0, r, a, z):
        """Forward pair -> one-step x_hat_0 from latent z -> posterior x_hat_t."""
        t = dfn.sample_timesteps(len(x0), self.sched, self.device)
        x_t, x_next = dfn.q_sample_pairs(x0, t, self.sched)
        x0_hat = self.gen["G"](z, a, r, x_next, t)
        return dict(t=t, x_t=x_t, x_next=x_next, x0_hat=x0_hat,
                    xt_hat=dfn.sample_posterior(x0_hat, x_next, t, self.sched))

    def prior_latent(self, n: int):
        return torch.randn(n, self.cfg["noise_dim"], device=self.device)

    def adversarial_fake(self, x0, r, a, posterior: dict | None = None):
        """The fakes the critics judge: from the posterior z (reusing `posterior` when given) or the prior."""
        if self.p["fake_latent"] == "prior":
            return self.forward_fake(x0, r, a, self.prior_latent(len(x0)))
        if posterior is not None:
            return posterior
        return self.forward_fake(x0, r, a, reparameterize(*self.gen["E"](x0, a)))

    def condition(self, name, f, a, r):
        """Critic `name`'s conditions, always the real ones: a; r; or (x_{t+1}, a, r, t)."""
        c = self.critics[name]
        if name == "x0":
            return c.condition(a)
        if name == "xc":
            return c.condition(r=r)
        return c.condition(f["x_next"], a, r=r, t=f["t"])

    def scores(self, name, x0_or_xt, f, a, r):
        """Critic `name` on a real or fake sample."""
        return self.critics[name].judge(x0_or_xt, self.condition(name, f, a, r))

    def critic_step(self):
        x0, r, a = self.batch()
        dec_loss = weighted_l1(self.dec(x0), a)
        self.opt_dec.zero_grad(set_to_none=True)
        (self.p["gamma_rec"] * dec_loss).backward()
        self.opt_dec.step()
        with torch.no_grad():
            f = self.adversarial_fake(x0, r, a)
        adv, gp_total, w = 0.0, 0.0, {}
        lam = self.lam.float()  # in the loss's dtype, as a Python float would enter it
        for name in self.critics:
            real, fake = (f["x_t"], f["xt_hat"]) if name == "xt" else (x0, f["x0_hat"])
            cond = self.condition(name, f, a, r)
            d_real, d_fake = self.critics[name].judge_pair(real, fake, cond)
            w[name] = d_real - d_fake
            gp = gradient_penalty(lambda v, c=self.critics[name], cond=cond: c.input_gradient(v, cond), real, fake)
            adv = adv + self.weights[name] * (-w[name].mean() + lam * gp)
            gp_total = gp_total + self.weights[name] * gp.detach().double()  # as it enters the loss
        loss = self.p["gamma_adv"] * adv
        ml = torch.zeros((), device=self.device)
        if self.p["mutual_learning"] and len(w) > 1:
            step_w = self.sched.sqrt_alpha_bar[f["t"]].float() ** self.p["ml_factor"]
            ml = mutual_learning(w, step_w)
            loss = loss + self.p["gamma_ml"] * ml
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return dict(critic=loss.detach(), dec=dec_loss.detach(), ml=ml.detach(), gp=gp_total / len(self.critics),
                    gp_sum=gp_total, **{f"W_{k}": v.detach().mean() for k, v in w.items()}), (x0, r, a)

    def generator_step(self, x0, r, a):
        set_requires_grad([*self.critics.values(), self.dec], False)
        mu, logvar = self.gen["E"](x0, a)
        rec_f = self.forward_fake(x0, r, a, reparameterize(mu, logvar))
        vae = vae_loss(rec_f["x0_hat"], x0, mu, logvar)
        f = self.adversarial_fake(x0, r, a, posterior=rec_f)
        adv = 0.0
        for name in self.critics:
            fake = f["xt_hat"] if name == "xt" else f["x0_hat"]
            adv = adv - self.weights[name] * self.scores(name, fake, f, a, r).mean()
        rec = weighted_l1(self.dec(f["x0_hat"]), a)
        loss = self.p["gamma_vae"] * vae + self.p["gamma_adv"] * adv + self.p["gamma_rec"] * rec
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_e.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.opt_e.step()
        set_requires_grad([*self.critics.values(), self.dec], True)
        return dict(generator=loss.detach(), vae=vae.detach(), g_adv=adv.detach(), g_rec=rec.detach())

    def adapt_gp_weight(self, gp) -> None:
        """tf-VAEGAN's rule, written for one critic: raise lambda when the penalty `gp` (averaged over
        the critic steps) exceeds 1.05, lower it below 1.001. `gen.adaptive_gp_input` says what it
        reads: the sum of the active critics' penalties weighted by gamma_x0 / gamma_xt as they enter
        the critic loss (the official code: gamma_x0 GP_x0 + gamma_xt GP_xt + GP_xc) or that sum over
        the number of critics. Decided on the device (torch.where), in float64 like the Python float
        it replaces."""
        if not self.p["adaptive_gp"]:
            return
        gp = torch.as_tensor(gp, dtype=torch.float64, device=self.lam.device)
        self.lam = torch.where(gp > 1.05, self.lam * 1.1, torch.where(gp < 1.001, self.lam / 1.1, self.lam))

    def resumable(self) -> dict:
        """What a checkpoint must hold to continue training exactly (besides lambda and the curve)."""
        return dict(gen=self.gen, dec=self.dec, opt_g=self.opt_g, opt_e=self.opt_e, opt_d=self.opt_d,
                    opt_dec=self.opt_dec, **{f"critic_{k}": c for k, c in self.critics.items()})

    def train(self, epochs: int, desc: str = "train: ZeroDiff generator", check=None, part=None,
              live=None) -> list[dict]:
        """`check` (a diagnostics.Schedule) scores the generator every few epochs into the curve;
        `part` (a checkpoints.Part) resumes from and saves checkpoints; `live` (a live.LiveLog) gets
        each epoch's row."""
        curve, start = Curve(live=live), 0
        state = part.load() if part is not None else None
        if state is not None:
            part.restore(state, **self.resumable())
            self.lam, start = state["lam"].to(self.device), state["epoch"]
            curve.restore(state["rows"])
        for epoch in tqdm(range(start, epochs), desc=desc, unit="epoch", initial=start, total=epochs):
            for _ in range(iters_per_epoch(len(self.x), self.p["batch_size"])):
                gps = []
                for _ in range(self.p["critic_iter"]):
                    stats, last = self.critic_step()
                    gps.append(stats["gp_sum"] if self.p["adaptive_gp_input"] == "sum" else stats["gp"])
                self.adapt_gp_weight(sum(gps) / len(gps))
                curve.add(**stats, **self.generator_step(*last), lambda_gp=self.lam)
            row = curve.end_epoch(epoch, **(check(epoch, epochs, self.checkpoint) if check is not None else {}))
            log.debug("epoch %d %s", epoch, row)
            if part is not None:
                part.maybe_save(epoch + 1, epochs, self.resumable(), lam=self.lam, rows=curve.rows)
        require_finite("train: the ZeroDiff generator", dict(generator=self.gen, decoder=self.dec), curve.losses,
                       "lower gen.lr or try another train.seed")
        return curve.rows

    def checkpoint(self) -> dict:
        """E and G, plus the attribute decoder that the VS classifier view reads."""
        return {"config": self.cfg, "state": self.gen.state_dict(),
                "dec": {"hidden": self.p["dec_hidden"], "state": self.dec.state_dict()}}
