"""The f-CLSWGAN baseline (Xian et al., CVPR 2018): a conditional WGAN-GP feature generator G(z, a)
with a classification loss from a softmax classifier pretrained on the real seen features.
No diffusion, no SC representation, no test-time steps."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from zerodiffpp.nn.classifier import load_classifier, train_softmax
from zerodiffpp.nn.losses import gradient_penalty
from zerodiffpp.nn.networks import Critic, build_feature_generator
from zerodiffpp.nn.training import (Curve, adam, iters_per_epoch, random_batch, require_finite, set_requires_grad,
                                    to_tensor)


def train_fclswgan(x: np.ndarray, y: np.ndarray, att: np.ndarray, seen: np.ndarray, p: dict, device, check=None,
                   part=None, live=None):
    """-> (generator checkpoint, curve); `check` (a diagnostics.Schedule) scores G every few epochs;
    `part` (a checkpoints.Part) resumes from and saves checkpoints; `live` gets each epoch's row."""
    cfg = dict(kind="fclswgan", x_dim=x.shape[1], att_dim=att.shape[1], noise_dim=p["noise_dim"], hidden=p["hidden"])
    gen = build_feature_generator(cfg).to(device)
    critic = Critic(x.shape[1], att.shape[1], p["critic_hidden"]).to(device)
    state = part.load() if part is not None else None
    # the classification-loss classifier: seen classes only, frozen while G trains (restored on resume)
    if state is None:
        clf = train_softmax(x, y, seen, epochs=p["cls_epochs"], batch_size=p["batch_size"] * 4, lr=0.001,
                            device=device, desc="train: f-CLSWGAN seen classifier")
    else:  # building the classifier draws initial weights (then overwritten): keep those draws off the
        # just-restored random stream, or the resumed run would diverge from an uninterrupted one
        with torch.random.fork_rng(devices=[]):  # the network is initialised on the CPU
            clf = load_classifier(state["clf"], x.shape[1], device)
    set_requires_grad([clf.net], False)
    opt_g, opt_d = adam(gen.parameters(), p["lr"]), adam(critic.parameters(), p["lr"])
    xt, at, yt = to_tensor(x, device), to_tensor(att, device), to_tensor(y, device, torch.long)
    y_pos = clf.positions(yt)
    n, curve, start = len(xt), Curve(live=live), 0
    if state is not None:
        part.restore(state, gen=gen, critic=critic, opt_g=opt_g, opt_d=opt_d)
        start = state["epoch"]
        curve.restore(state["rows"])
    for epoch in tqdm(range(start, p["epochs"]), desc="train: f-CLSWGAN generator", unit="epoch", initial=start,
                      total=p["epochs"]):
        for _ in range(iters_per_epoch(n, p["batch_size"])):
            for _ in range(p["critic_iter"]):
                idx = random_batch(n, p["batch_size"], device)
                x0, a = xt[idx], at[yt[idx]]
                with torch.no_grad():
                    fake = gen["G"](torch.randn(len(idx), p["noise_dim"], device=device), a)
                cond = critic.condition(a)
                d_real, d_fake = critic.judge_pair(x0, fake, cond)
                w = d_real.mean() - d_fake.mean()
                gp = gradient_penalty(lambda v: critic.input_gradient(v, cond), x0, fake)
                loss_d = -w + p["lambda_gp"] * gp
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            set_requires_grad([critic], False)  # its gradients from the generator loss would be thrown away
            fake = gen["G"](torch.randn(len(idx), p["noise_dim"], device=device), a)
            cls = F.cross_entropy(clf.net(fake), y_pos[idx])
            loss_g = -critic(fake, a).mean() + p["cls_weight"] * cls
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            set_requires_grad([critic], True)
            curve.add(critic=loss_d.detach(), W=w.detach(), gp=gp.detach(), generator=loss_g.detach(), cls=cls.detach())
        curve.end_epoch(epoch, **(check(epoch, p["epochs"], lambda: {"config": cfg, "state": gen.state_dict()})
                                  if check is not None else {}))
        if part is not None:
            part.maybe_save(epoch + 1, p["epochs"], dict(gen=gen, critic=critic, opt_g=opt_g, opt_d=opt_d),
                            clf=clf.state(), rows=curve.rows)
    require_finite("train: the f-CLSWGAN generator", dict(generator=gen), curve.losses,
                   "lower fclswgan.lr or try another train.seed")
    return {"config": cfg, "state": gen.state_dict()}, curve.rows
