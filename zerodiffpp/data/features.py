"""The in-memory datasets every stage shares, and the class-semantics checks of the splits.

After `extract`, the embedded default and the real benchmarks are the same `FeatureSet`; after
`pretrain`, every later stage sees a `Prepared` split. Nothing downstream knows which dataset it is.
Reading them: `xlsa17` (benchmark folders) and `embedded`; splitting and scaling them: `splits`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from zerodiffpp.runtime import files
from zerodiffpp.runtime.errors import DataError


@dataclass
class FeatureSet:
    """All images of a dataset with the standard splits. Labels and indices are 0-based here."""
    x: np.ndarray              # (N, D) float32 visual features
    labels: np.ndarray         # (N,) int64 class ids in [0, C)
    att: np.ndarray            # (C, A) float32 class semantics, L2-normalised per class
    class_names: np.ndarray    # (C,) str
    trainval: np.ndarray       # indices of seen-class training images
    test_seen: np.ndarray
    test_unseen: np.ndarray
    r: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # optional (N, R) SC features
    # seen classes held out as pseudo-unseen by the validation protocol (xlsa17 val_loc classes)
    val_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def save(self, path) -> None:
        files.save_npz(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path) -> "FeatureSet":
        z = files.load_npz(path)
        return cls(**{f.name: z[f.name] for f in fields(cls)})

    def named_seen_classes(self, names: str) -> np.ndarray:
        """Class ids of comma-separated seen class names (data.val_classes)."""
        ids = []
        for name in (n.strip() for n in names.split(",")):
            hits = np.flatnonzero(self.class_names == name)
            if hits.size == 0:
                raise DataError(f"data.val_classes: unknown class {name!r}; expected seen class names "
                                f"such as {', '.join(map(str, self.class_names[self.seen_classes][:5]))}")
            if hits[0] not in self.seen_classes:
                raise DataError(f"data.val_classes: {name!r} is an unseen class; validation classes must be seen")
            ids.append(int(hits[0]))
        return np.unique(ids)

    @property
    def seen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.trainval])

    @property
    def unseen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.test_unseen])

    def check(self, source: str) -> None:
        """Structural checks shared by every dataset; raise DataError naming `source`."""
        n, c = len(self.labels), self.att.shape[0]
        if self.x.ndim != 2 or self.x.shape[0] != n:
            raise DataError(f"{source}: features must be (N={n}, D), got {self.x.shape}")
        if not np.isfinite(self.x).all():
            bad = int((~np.isfinite(self.x)).any(axis=1).sum())
            raise DataError(f"{source}: features contain NaN or inf in {bad} samples")
        if not np.isfinite(self.att).all():
            raise DataError(f"{source}: class semantics contain NaN or inf")
        if self.labels.min() < 0 or self.labels.max() >= c:
            raise DataError(f"{source}: labels must lie in [0, {c}) after 1-based conversion, "
                            f"got range [{self.labels.min()}, {self.labels.max()}]")
        for name in ("trainval", "test_seen", "test_unseen"):
            idx = getattr(self, name)
            if len(idx) == 0:
                raise DataError(f"{source}: split '{name}' is empty")
            if idx.min() < 0 or idx.max() >= n:
                raise DataError(f"{source}: split '{name}' indexes outside [0, {n})")
        seen, unseen = self.seen_classes, self.unseen_classes
        both = np.intersect1d(seen, unseen)
        if both.size:
            raise DataError(f"{source}: classes {self.class_names[both].tolist()} are both seen (trainval) and "
                            f"unseen (test_unseen)")
        extra = np.setdiff1d(np.unique(self.labels[self.test_seen]), seen)
        if extra.size:
            raise DataError(f"{source}: test_seen holds classes {self.class_names[extra].tolist()} that have no "
                            f"training samples")
        if self.r.size and self.r.shape[0] != n:
            raise DataError(f"{source}: SC features must have one row per image (N={n}), got {self.r.shape}")
        if self.r.size and not np.isfinite(self.r).all():
            raise DataError(f"{source}: SC features contain NaN or inf")


def without_constant_columns(att: np.ndarray, train_classes) -> tuple[np.ndarray, np.ndarray]:
    """(att with every column that takes one value across `train_classes` set to 0 and each row
    re-normalised to unit L2 norm, the removed column indices). Such a column is a constant input to
    everything fitted on those classes, so its value for a held-out class (typically 1 where every
    training class has 0: only the held-out class has wings) has no learned effect and would only
    shift the inputs arbitrarily. The validation folds remove these columns instead of being ruled
    out; the test splits need none (`unlearnable_attributes`)."""
    removed = _constant_columns(att, train_classes)
    if removed.size == 0:
        return att, removed
    if removed.size == att.shape[1]:
        raise DataError(f"validation protocol: the training classes {np.asarray(train_classes).tolist()} share one "
                        f"attribute vector; nothing can be learned from them (choose other data.val_classes)")
    out = att.copy()
    out[:, removed] = 0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1)).astype(att.dtype), removed


def unlearnable_attributes(att: np.ndarray, train_classes, held_out) -> list[tuple[int, int]]:
    """(class, attribute column) pairs where a held-out class has an attribute (> 0) that takes one
    single value across the training classes (typically 0: none of them has it): a model fitted on
    the training classes has no example of its effect. The embedded test split must have none
    (`extract` checks it); validation folds remove such columns instead (`without_constant_columns`)."""
    constant = _constant_columns(att, train_classes)
    return [(int(c), int(j)) for c in np.asarray(held_out) for j in constant if att[c, j] > 0]


def _constant_columns(att: np.ndarray, train_classes) -> np.ndarray:
    """Indices of the attribute columns that take one value across `train_classes`."""
    train = att[np.asarray(train_classes)]
    return np.flatnonzero((train == train[:1]).all(axis=0))


@dataclass
class Prepared:
    """The scaled, scarcity-subsampled split every stage after `pretrain` works on.

    Test labels are stored for the `report` stage only; the test-time stages read test features
    through `test_features()`, which returns no labels."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test_seen: np.ndarray
    y_test_seen: np.ndarray
    x_test_unseen: np.ndarray
    y_test_unseen: np.ndarray
    r_train: np.ndarray
    r_test_seen: np.ndarray
    r_test_unseen: np.ndarray
    att: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray
    class_names: np.ndarray
    train_index: np.ndarray     # positions of the kept training images in the full dataset
    seen_ratio: float = 1.0     # the part of each seen class's training images kept (train.seen_ratio)

    def save(self, path) -> None:
        files.save_npz(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path) -> "Prepared":
        z = files.load_npz(path)
        return cls(**{f.name: z[f.name] for f in fields(cls) if f.name != "seen_ratio"}, seen_ratio=float(z["seen_ratio"]))

    @property
    def n_classes(self) -> int:
        return self.att.shape[0]

    @property
    def classes(self) -> np.ndarray:
        """The GZSL classifiers' classes: seen and unseen (a validation split leaves the real unseen
        classes out: they have no training data there and are not part of its task)."""
        return np.union1d(self.seen, self.unseen)

    def test_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Test-seen and test-unseen pooled, unlabelled (the transductive input): x, r."""
        return (np.concatenate([self.x_test_seen, self.x_test_unseen]),
                np.concatenate([self.r_test_seen, self.r_test_unseen]))
