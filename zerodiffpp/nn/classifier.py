"""Linear softmax classifiers over a chosen set of classes, trained for a fixed number of epochs."""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from zerodiffpp.nn.networks import AttrDecoder, LinearClassifier
from zerodiffpp.nn.training import Curve, adam, to_tensor

log = logging.getLogger(__name__)


def load_decoder(gen_ckpt: dict, device) -> AttrDecoder:
    """The attribute decoder Dec stored with a ZeroDiff generator checkpoint, in eval mode."""
    dec_ckpt, cfg = gen_ckpt.get("dec"), gen_ckpt["config"]
    if dec_ckpt is None:
        raise ValueError(f"this generator ({cfg['kind']}) has no attribute decoder")
    dec = AttrDecoder(cfg["x_dim"], dec_ckpt["hidden"], cfg["att_dim"]).to(device)
    dec.load_state_dict(dec_ckpt["state"])
    return dec.eval()


class InputView:
    """What every softmax classifier of the pipeline reads (classifier.features).

    'V': the feature x. 'VS': concat(x, Dec(x), Dec-hidden(x)), the official ZeroDiff / tf-VAEGAN
    view. 'S': concat(Dec(x), Dec-hidden(x)) alone, the decoder's semantic embedding (classifying in
    an embedding space, as CE-GZSL does). Dec is the generator's attribute decoder, trained on real
    seen features only; on any feature, real or generated, it gives an attribute estimate and its
    hidden layer, which carry the class semantics over to unseen classes. f-CLSWGAN trains no
    decoder, so its classifiers read V."""

    NAMES = ("V", "VS", "S")

    def __init__(self, name: str, dec: AttrDecoder | None = None, device="cpu", batch: int = 8192):
        if name not in self.NAMES:
            raise ValueError(f"classifier.features: expected one of {self.NAMES}, got {name!r}")
        if name != "V" and dec is None:
            raise ValueError(f"classifier.features {name!r} needs the generator's attribute decoder")
        self.name, self.dec, self.device, self.batch = name, dec, device, batch

    @classmethod
    def from_generator(cls, name: str, gen_ckpt: dict, device) -> "InputView":
        """The view for a generator checkpoint; a checkpoint without a decoder (f-CLSWGAN) gives V."""
        dec_ckpt = gen_ckpt.get("dec")
        if name == "V" or dec_ckpt is None:
            if name != "V":
                log.info("classifier.features %s: this generator (%s) has no attribute decoder; classifiers read x",
                         name, gen_ckpt["config"]["kind"])
            return cls("V")
        return cls(name, load_decoder(gen_ckpt, device), device)

    def dim(self, x_dim: int) -> int:
        """Width of the view of an x_dim-wide feature."""
        if self.name == "V":
            return x_dim
        s_dim = self.dec.net[0].out_features + self.dec.net[2].out_features  # Dec-hidden, Dec(x)
        return x_dim + s_dim if self.name == "VS" else s_dim

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The view of a batch on its device. The classifiers call this per batch, so the view of a
        whole set (3x the features at paper widths: 2 GB on CUB) never exists, on the host or the GPU."""
        if self.name == "V":
            return x
        s = self.dec.semantic(x)
        return torch.cat([x, s], dim=1) if self.name == "VS" else s

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The view of a numpy set, in chunks (for callers outside training: probes, predict)."""
        if self.name == "V":
            return x
        return np.concatenate([self.embed(to_tensor(x[i:i + self.batch], self.device)).cpu().numpy()
                               for i in range(0, max(len(x), 1), self.batch)])


class SoftmaxClassifier:
    """A linear layer over `classes` (absolute ids) reading `view` of the features, applied per batch
    on the device (the view is frozen); predictions come back as absolute ids."""

    def __init__(self, net: LinearClassifier, classes: np.ndarray, view: InputView | None = None):
        self.net, self.classes, self.view = net, np.asarray(classes), view or InputView("V")
        self.curve: list[dict] = []

    def positions(self, y: torch.Tensor) -> torch.Tensor:
        lut = torch.full((int(self.classes.max()) + 1,), -1, dtype=torch.long, device=y.device)
        lut[torch.as_tensor(self.classes, device=y.device)] = torch.arange(len(self.classes), device=y.device)
        pos = lut[y]
        if (pos < 0).any():
            raise ValueError("labels outside the classifier's classes")
        return pos

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of raw features (the view is computed here, without gradient)."""
        return self.net(self.view.embed(x))

    @torch.no_grad()
    def probabilities(self, x: np.ndarray, device, batch: int = 8192) -> np.ndarray:
        self.net.eval()
        out = [F.softmax(self.logits(to_tensor(x[i:i + batch], device)), dim=1).cpu().numpy()
               for i in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict(self, x: np.ndarray, device, seen: np.ndarray | None = None, calibration: float = 0.0) -> np.ndarray:
        """Arg-max class ids; with `seen` and `calibration`, calibrated stacking (below)."""
        probs = self.probabilities(x, device)
        if seen is not None:
            probs = calibrated(probs, self.classes, seen, calibration)
        return self.classes[probs.argmax(1)]

    def state(self) -> dict:
        return {"classes": self.classes, "state": self.net.state_dict()}


def calibrated(probs: np.ndarray, classes: np.ndarray, seen: np.ndarray, calibration: float) -> np.ndarray:
    """Calibrated stacking (Chao et al., ECCV 2016): subtract `calibration` from the probability of
    every seen class before the arg-max. A GZSL classifier trained on real seen and generated unseen
    features prefers seen classes; this trades S for U. 0 is the plain arg-max. The value is chosen
    under data.protocol: validation, never on test (README)."""
    return probs - calibration * np.isin(classes, seen).astype(probs.dtype)


@torch.no_grad()
def view_mean(xt: torch.Tensor, view: InputView, batch: int = 8192) -> torch.Tensor:
    """The mean of `view` over the rows of xt, per batch (the whole view never exists at once)."""
    total = sum(view.embed(xt[i:i + batch]).double().sum(0) for i in range(0, len(xt), batch))
    return (total / len(xt)).float()


def train_softmax(x: np.ndarray, y: np.ndarray, classes: np.ndarray, epochs: int, batch_size: int, lr: float,
                  device, desc: str | None = None, view: InputView | None = None,
                  normalise: bool = False) -> SoftmaxClassifier:
    """Adam (betas 0.5, 0.999), cross-entropy, epoch-wise shuffling drawn from torch's global seed.
    No early stopping and no model selection: the last epoch is the model. `x` are raw features; the
    classifier reads `view` of them (None: x itself), computed per batch on the device. `normalise`
    (classifier.normalise): the layer reads the view centred on its mean over this training set and
    scaled to unit length, so a class is told by the direction of a feature from that centre, not by
    its length (docs/method.md)."""
    classes, view = np.asarray(classes), view or InputView("V")
    net = LinearClassifier(view.dim(x.shape[1]), len(classes), normalise).to(device)
    clf = SoftmaxClassifier(net, classes, view)
    xt = to_tensor(x, device)
    if normalise:
        net.centre.copy_(view_mean(xt, view))
    yt = clf.positions(to_tensor(y, device, torch.long))
    opt = adam(clf.net.parameters(), lr)
    curve = Curve()
    epochs_iter = tqdm(range(epochs), desc=desc, unit="epoch") if desc else range(epochs)
    clf.net.train()
    for epoch in epochs_iter:
        perm = torch.randperm(len(xt), device=device)
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(clf.logits(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curve.add(loss=loss.detach())
        curve.end_epoch(epoch)
    clf.curve = curve.rows
    clf.net.eval()
    return clf


def load_classifier(ckpt: dict, x_dim: int, device, view: InputView | None = None) -> SoftmaxClassifier:
    """A classifier of `state()` over x_dim-wide raw features, reading `view` of them (None: x)."""
    view = view or InputView("V")
    net = LinearClassifier(view.dim(x_dim), len(ckpt["classes"]), "centre" in ckpt["state"]).to(device)
    net.load_state_dict(ckpt["state"])
    return SoftmaxClassifier(net.eval(), ckpt["classes"], view)
