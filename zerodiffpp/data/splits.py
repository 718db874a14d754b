"""Splits, data scarcity and scaling: what the pretrain stage does to a `FeatureSet` before training."""
from __future__ import annotations

import logging

import numpy as np

from zerodiffpp.data.features import FeatureSet, Prepared, without_constant_columns
from zerodiffpp.runtime.errors import DataError

log = logging.getLogger(__name__)


def holdout_classes(seen: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """round(fraction * #seen) of the `seen` classes, sorted, drawn with `seed`: at least 2 where there are
    4 or more (a ZSL accuracy over one validation class is always 1), at least 1, at most #seen - 1."""
    if len(seen) < 2:
        raise DataError("a validation split needs at least two seen classes (one to hold out, one to train on)")
    k = min(len(seen) - 1, max(2 if len(seen) >= 4 else 1, int(round(fraction * len(seen)))))
    return np.sort(np.random.default_rng(seed).choice(np.asarray(seen), size=k, replace=False))


def validation_view(fs: FeatureSet, seed: int, held_out_fraction: float = 0.2, classes: str = "",
                    class_ids: np.ndarray | None = None) -> FeatureSet:
    """A class-disjoint split carved from the seen training images only: the validation classes play
    the unseen classes, and the real test images are not used. The validation classes are
    `class_ids`, else `classes` (data.val_classes, comma-separated seen class names), else the
    dataset's own (`fs.val_classes`). The other seen classes keep (1 - fraction) of their training
    images for training and the rest as test-seen (at least one where a class has two). Classes that
    are neither (the real unseen ones) are left out of the split. Attribute columns that take one
    value in every training class are removed (`without_constant_columns`)."""
    if class_ids is not None:
        val_classes = np.asarray(class_ids)
    else:
        val_classes = fs.named_seen_classes(classes) if classes.strip() else fs.val_classes
    if val_classes.size == 0:
        raise DataError("data.protocol is 'validation' but this dataset defines no validation classes "
                        "(xlsa17 train_loc/val_loc or valclasses1.txt); name them in data.val_classes")
    y = fs.labels[fs.trainval]
    is_val = np.isin(y, val_classes)
    if is_val.all():
        raise DataError(f"data.val_classes {classes!r}: at least one seen class must stay a training class")
    train_classes = np.unique(y[~is_val])
    att, removed = without_constant_columns(fs.att, train_classes)
    if removed.size:
        log.info("validation split: attribute columns %s take one value in every training class of this "
                 "fold (%s); removed for this fold", removed.tolist(),
                 ", ".join(map(str, fs.class_names[val_classes])))
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in train_classes:
        pos = rng.permutation(fs.trainval[y == c])
        n_held = min(len(pos) - 1, max(1, int(round(held_out_fraction * len(pos)))))
        held.append(pos[:n_held])
        train.append(pos[n_held:])
    return FeatureSet(x=fs.x, labels=fs.labels, att=att, class_names=fs.class_names,
                      trainval=np.sort(np.concatenate(train)), test_seen=np.sort(np.concatenate(held)).astype(np.int64),
                      test_unseen=fs.trainval[is_val], r=fs.r)


def calibration_view(fs: FeatureSet, protocol: str, val_classes: str, seed: int, fraction: float) -> FeatureSet:
    """The validation pass's split (classifier.calibration: auto): validation classes that play the
    unseen ones, carved from the seen training images of the run's own split (`validation_view`).
    Under data.protocol test they are the dataset's validation classes (xlsa17 val_loc; the embedded
    set's cat and horse), or, where it names none, a seeded `fraction` of the seen classes; under
    data.protocol validation (whose unseen classes are already the dataset's validation classes) a
    seeded `fraction` of that split's training classes. No image of the run's evaluation classes, and
    no test image, is in it."""
    run_split = validation_view(fs, seed, classes=val_classes) if protocol == "validation" else fs
    own = fs.val_classes if protocol == "test" else np.zeros(0, np.int64)
    ids = own if own.size else holdout_classes(run_split.seen_classes, fraction, seed)
    return validation_view(run_split, seed + 1, class_ids=ids)


def subsample_per_class(labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Positions (into `labels`) keeping `ratio` of each class, at least one, drawn with a fixed seed."""
    if not 0 < ratio <= 1:
        raise ValueError(f"train.seen_ratio must be in (0, 1], got {ratio}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        k = max(1, int(round(ratio * len(pos))))
        keep.append(np.sort(rng.choice(pos, size=k, replace=False)) if k < len(pos) else pos)
    return np.sort(np.concatenate(keep))


class MinMax:
    """MinMax scaling to [0, 1] with statistics of the kept training subset only.

    Values outside the kept subset's range (test features, and training features of classes that
    were held out) are clipped to [0, 1], the range of the generators' sigmoid outputs. Without the
    clip a scarce subset can give a dimension a tiny range that blows a test value up: at
    seen_ratio 0.1, seed 2 of the embedded default, one test value scaled to 3,791 and dominated
    every distance and linear score on the test features."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.lo, self.scale = lo, np.where(hi - lo > 1e-12, hi - lo, 1.0)

    @classmethod
    def fit(cls, x: np.ndarray) -> "MinMax":
        return cls(x.min(axis=0), x.max(axis=0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.lo) / self.scale, 0.0, 1.0).astype(np.float32)


def prepare_split(fs: FeatureSet, seen_ratio: float, seed: int, protocol: str = "test",
                  val_classes: str = "") -> tuple[Prepared, MinMax]:
    """Keep `seen_ratio` of each seen class's training images, fit MinMax on them, scale everything.
    With protocol 'validation' the split is first replaced by `validation_view` (no test image used).
    SC features are filled in later by the pretrain stage (zeros of width 0 here unless supplied)."""
    if protocol == "validation":
        fs = validation_view(fs, seed, classes=val_classes)
    elif protocol != "test":
        raise ValueError(f"data.protocol must be 'test' or 'validation', got {protocol!r}")
    keep = fs.trainval[subsample_per_class(fs.labels[fs.trainval], seen_ratio, seed)]
    scaler = MinMax.fit(fs.x[keep])
    r_scaled = {}
    if fs.r.size:
        r_scaler = MinMax.fit(fs.r[keep])
        r_scaled = {k: r_scaler(fs.r[idx]) for k, idx in
                    (("train", keep), ("test_seen", fs.test_seen), ("test_unseen", fs.test_unseen))}
    empty = np.zeros((0, 0), np.float32)
    prep = Prepared(
        x_train=scaler(fs.x[keep]), y_train=fs.labels[keep],
        x_test_seen=scaler(fs.x[fs.test_seen]), y_test_seen=fs.labels[fs.test_seen],
        x_test_unseen=scaler(fs.x[fs.test_unseen]), y_test_unseen=fs.labels[fs.test_unseen],
        r_train=r_scaled.get("train", empty), r_test_seen=r_scaled.get("test_seen", empty),
        r_test_unseen=r_scaled.get("test_unseen", empty),
        att=fs.att.astype(np.float32), seen=fs.seen_classes, unseen=fs.unseen_classes,
        class_names=fs.class_names, train_index=keep, seen_ratio=float(seen_ratio))
    missing = np.setdiff1d(prep.seen, np.unique(prep.y_train))
    if missing.size:  # cannot happen with subsample_per_class; guards a future change
        raise DataError(f"seen classes {missing.tolist()} were left without training samples")
    return prep, scaler
