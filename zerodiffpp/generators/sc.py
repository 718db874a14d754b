"""Contrastive pretraining (params section `sc`): the supervised-contrastive encoder r = E_sc(x).

ZeroDiff takes r from a CNN fine-tuned offline (con_paco.mat). Here r is learned from the features
themselves, on the kept seen training samples only, so that every sample, test samples included,
gets a real r without touching any test label. Views are feature-space augmentations: a dropout
mask and gaussian noise scaled by each feature's standard deviation."""
from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

from zerodiffpp.data.splits import MinMax
from zerodiffpp.nn.losses import supcon_loss
from zerodiffpp.nn.networks import SCEncoder
from zerodiffpp.nn.training import Curve, adam, iters_per_epoch, to_tensor

log = logging.getLogger(__name__)


def augment(x: torch.Tensor, feat_std: torch.Tensor, noise_std: float, drop_prob: float) -> torch.Tensor:
    keep = (torch.rand_like(x) >= drop_prob).to(x.dtype)
    return x * keep + noise_std * feat_std * torch.randn_like(x)


def train_sc_encoder(x: np.ndarray, y: np.ndarray, p: dict, device, part=None, live=None) -> tuple[SCEncoder, list[dict]]:
    """-> (encoder in eval mode, curve); `part` (a checkpoints.Part) resumes from and saves checkpoints,
    `live` (a live.LiveLog) gets each epoch's row."""
    enc = SCEncoder(x.shape[1], p["hidden"], p["rep_dim"], p["proj_dim"]).to(device)
    opt = adam(enc.parameters(), p["lr"], betas=(0.9, 0.999))
    xt, yt = to_tensor(x, device), to_tensor(y, device, torch.long)
    feat_std = xt.std(dim=0, keepdim=True)
    n, bs = len(xt), min(p["batch_size"], len(xt))
    curve, start = Curve("sc_", live), 0
    state = part.load() if part is not None else None
    if state is not None:
        part.restore(state, enc=enc, opt=opt)
        start = state["epoch"]
        curve.restore(state["rows"])
    for epoch in tqdm(range(start, p["epochs"]), desc="pretrain: SC encoder", unit="epoch", initial=start,
                      total=p["epochs"]):
        perm = torch.randperm(n, device=device)
        for i in range(iters_per_epoch(n, bs)):
            idx = perm[i * bs:(i + 1) * bs]
            if len(idx) < 2:
                continue
            xb = xt[idx]
            views = torch.stack([enc.project(augment(xb, feat_std, p["noise_std"], p["drop_prob"]))
                                 for _ in range(2)], dim=1)
            loss = supcon_loss(views, yt[idx], p["temperature"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curve.add(loss=loss.detach())
        row = curve.end_epoch(epoch)
        log.debug("sc epoch %d %s", epoch, row)
        if part is not None:
            part.maybe_save(epoch + 1, p["epochs"], dict(enc=enc, opt=opt), rows=curve.rows)
    if curve.rows:
        log.info("SC encoder: final SupCon loss %.4f", curve.rows[-1]["sc_loss"])
    return enc.eval(), curve.rows


@torch.no_grad()
def encode(enc: SCEncoder, x: np.ndarray, device, batch: int = 4096) -> np.ndarray:
    out = [enc(to_tensor(x[i:i + batch], device)).cpu().numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float32)


def sc_representations(enc: SCEncoder, prep, device) -> tuple[MinMax, dict[str, np.ndarray]]:
    """r for train / test-seen / test-unseen, MinMax-scaled to [0, 1] on the training r (the DRG's
    sigmoid output range)."""
    raw = {k: encode(enc, getattr(prep, f"x_{k}"), device) for k in ("train", "test_seen", "test_unseen")}
    scaler = MinMax.fit(raw["train"])
    return scaler, {k: scaler(v) for k, v in raw.items()}
