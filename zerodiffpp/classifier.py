"""Linear softmax classifiers over a chosen set of classes, trained for a fixed number of epochs."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from zerodiffpp.networks import LinearClassifier
from zerodiffpp.training import Curve, adam, to_tensor


class SoftmaxClassifier:
    """A linear layer over `classes` (absolute ids); predictions come back as absolute ids."""

    def __init__(self, net: LinearClassifier, classes: np.ndarray):
        self.net, self.classes = net, np.asarray(classes)
        self.curve: list[dict] = []

    def positions(self, y: torch.Tensor) -> torch.Tensor:
        lut = torch.full((int(self.classes.max()) + 1,), -1, dtype=torch.long, device=y.device)
        lut[torch.as_tensor(self.classes, device=y.device)] = torch.arange(len(self.classes), device=y.device)
        pos = lut[y]
        if (pos < 0).any():
            raise ValueError("labels outside the classifier's classes")
        return pos

    @torch.no_grad()
    def probabilities(self, x: np.ndarray, device, batch: int = 8192) -> np.ndarray:
        self.net.eval()
        out = [F.softmax(self.net(to_tensor(x[i:i + batch], device)), dim=1).cpu().numpy()
               for i in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict(self, x: np.ndarray, device) -> np.ndarray:
        return self.classes[self.probabilities(x, device).argmax(1)]

    def state(self) -> dict:
        return {"classes": self.classes, "state": self.net.state_dict()}


def train_softmax(x: np.ndarray, y: np.ndarray, classes: np.ndarray, epochs: int, batch_size: int, lr: float,
                  device, desc: str | None = None) -> SoftmaxClassifier:
    """Adam (betas 0.5, 0.999), cross-entropy, epoch-wise shuffling drawn from torch's global seed.
    No early stopping and no model selection: the last epoch is the model."""
    classes = np.asarray(classes)
    clf = SoftmaxClassifier(LinearClassifier(x.shape[1], len(classes)).to(device), classes)
    xt = to_tensor(x, device)
    yt = clf.positions(to_tensor(y, device, torch.long))
    opt = adam(clf.net.parameters(), lr)
    curve = Curve()
    epochs_iter = tqdm(range(epochs), desc=desc, unit="epoch") if desc else range(epochs)
    clf.net.train()
    for epoch in epochs_iter:
        perm = torch.randperm(len(xt), device=device)
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(clf.net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curve.add(loss=loss.item())
        curve.end_epoch(epoch)
    clf.curve = curve.rows
    clf.net.eval()
    return clf


def load_classifier(ckpt: dict, in_dim: int, device) -> SoftmaxClassifier:
    net = LinearClassifier(in_dim, len(ckpt["classes"])).to(device)
    net.load_state_dict(ckpt["state"])
    return SoftmaxClassifier(net, ckpt["classes"])
