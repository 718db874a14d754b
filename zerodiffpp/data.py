"""Datasets: the xlsa17 benchmark loader, the shared in-memory structures, data scarcity and scaling.

After `extract`, the embedded default and the real benchmarks are the same `FeatureSet`; after
`pretrain`, every later stage sees a `Prepared` split. Nothing downstream knows which dataset it is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from zerodiffpp import io

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Malformed input data; the message names the file, the key and what was expected."""


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
        io.save_npz(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path) -> "FeatureSet":
        z = io.load_npz(path)
        return cls(**{f.name: z[f.name] for f in fields(cls)})

    def validation_view(self, seed: int, held_out_fraction: float = 0.2, classes: str = "") -> "FeatureSet":
        """The validation protocol: a class-disjoint split carved from the seen training images only.
        The validation classes play the unseen classes: `classes` (data.val_classes, comma-separated
        seen class names) or, when empty, the dataset's own (`val_classes`). The other seen classes
        keep (1 - fraction) of their training images for training and the rest as test-seen. The
        real test splits are not used. Attribute columns that take one value in every training
        class of the fold are removed (`without_constant_columns`)."""
        val_classes = self.named_seen_classes(classes) if classes.strip() else self.val_classes
        if val_classes.size == 0:
            raise DataError("data.protocol is 'validation' but this dataset defines no validation classes "
                            "(xlsa17 train_loc/val_loc or valclasses1.txt); name them in data.val_classes")
        y = self.labels[self.trainval]
        is_val = np.isin(y, val_classes)
        if is_val.all():
            raise DataError(f"data.val_classes {classes!r}: at least one seen class must stay a training class")
        train_classes = np.unique(y[~is_val])
        att, removed = without_constant_columns(self.att, train_classes)
        if removed.size:
            log.info("validation protocol: attribute columns %s take one value in every training class of this "
                     "fold (%s); removed for this fold", removed.tolist(),
                     ", ".join(map(str, self.class_names[val_classes])))
        rng = np.random.default_rng(seed)
        train, held = [], []
        for c in train_classes:
            pos = rng.permutation(self.trainval[y == c])
            n_held = int(round(held_out_fraction * len(pos)))
            held.append(pos[:n_held])
            train.append(pos[n_held:])
        return FeatureSet(x=self.x, labels=self.labels, att=att, class_names=self.class_names,
                          trainval=np.sort(np.concatenate(train)), test_seen=np.sort(np.concatenate(held)),
                          test_unseen=self.trainval[is_val], r=self.r)

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
        if np.intersect1d(seen, unseen).size:
            raise DataError(f"{source}: classes {np.intersect1d(seen, unseen).tolist()} are both seen "
                            f"(trainval) and unseen (test_unseen)")
        extra = np.setdiff1d(np.unique(self.labels[self.test_seen]), seen)
        if extra.size:
            raise DataError(f"{source}: test_seen holds classes {extra.tolist()} that have no training samples")
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


# ---------------------------------------------------------------------------------------------
# xlsa17 ("proposed split") loader
# ---------------------------------------------------------------------------------------------
EXPECTED_CLASSES = {"AWA2": (40, 10), "CUB": (150, 50), "SUN": (645, 72)}


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        return loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save with -v7") from e
    except Exception as e:  # noqa: BLE001 - scipy raises many types for corrupt files
        raise DataError(f"{path}: not a readable .mat file ({e})") from e


def _key(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: missing key '{key}' (found {found})")
    return np.asarray(mat[key])


def _one_based(mat: dict, key: str, path: Path, upper: int) -> np.ndarray:
    v = _key(mat, key, path).astype(np.int64).ravel()
    if v.size == 0:
        raise DataError(f"{path}: '{key}' is empty")
    if v.min() < 1:
        raise DataError(f"{path}: '{key}' must hold 1-based indices (MATLAB), found {v.min()}")
    if v.max() > upper:
        raise DataError(f"{path}: '{key}' indexes up to {v.max()} but there are only {upper} entries")
    return v - 1


def load_xlsa17(root: Path | str, name: str, x_file: str = "res101.mat", r_file: str = "",
                embedding: str = "att") -> FeatureSet:
    """Read an xlsa17 folder: res101.mat (features D x N, labels 1-based) and <embedding>_splits.mat
    (att A x C, *_loc 1-based). `x_file` other than res101.mat and `r_file` are N x D files with key
    'features' in the same image order (ZeroDiff's ce_ce.mat / con_paco.mat)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root: {root} is not a folder (expected an xlsa17 dataset folder)")
    res_path = root / "res101.mat"
    res = _loadmat(res_path)
    labels_raw = _key(res, "labels", res_path).astype(np.int64).ravel()
    n = labels_raw.size
    split_path = root / f"{embedding}_splits.mat"
    split = _loadmat(split_path)
    att = _key(split, "att", split_path).astype(np.float32)
    if att.ndim != 2:
        raise DataError(f"{split_path}: 'att' must be a matrix (A x C), got shape {att.shape}")
    att = att.T  # (C, A)
    c = att.shape[0]
    if labels_raw.min() < 1:
        raise DataError(f"{res_path}: 'labels' must be 1-based class ids, found {labels_raw.min()}")
    if labels_raw.max() > c:
        raise DataError(f"{res_path}: 'labels' go up to {labels_raw.max()} but {split_path} 'att' has {c} classes "
                        f"(att must be A x C)")
    if x_file == "res101.mat":
        feats = _key(res, "features", res_path)
        if feats.ndim != 2 or feats.shape[1] != n:
            raise DataError(f"{res_path}: 'features' must be D x N with N={n} (one column per label), "
                            f"got {feats.shape}")
        x = feats.T
    else:
        x = _load_row_features(root / x_file, n)
    r = _load_row_features(root / r_file, n) if r_file else np.zeros((0, 0), np.float32)
    names = _key(split, "allclasses_names", split_path).ravel() if "allclasses_names" in split else []
    names = np.array([str(np.asarray(v).ravel()[0]) if np.asarray(v).size else f"class{i}"
                      for i, v in enumerate(names)] or [f"class{i}" for i in range(c)])
    if len(names) != c:
        raise DataError(f"{split_path}: 'allclasses_names' has {len(names)} names for {c} classes")
    fs = FeatureSet(
        x=np.ascontiguousarray(x, dtype=np.float32), labels=labels_raw - 1, att=att, class_names=names,
        trainval=_one_based(split, "trainval_loc", split_path, n),
        test_seen=_one_based(split, "test_seen_loc", split_path, n),
        test_unseen=_one_based(split, "test_unseen_loc", split_path, n),
        r=np.ascontiguousarray(r, dtype=np.float32))
    fs.val_classes = _validation_classes(split, split_path, fs, names, root)
    fs.check(str(root))
    if name in EXPECTED_CLASSES:
        got = (len(fs.seen_classes), len(fs.unseen_classes))
        if got != EXPECTED_CLASSES[name]:
            raise DataError(f"{split_path}: {name} should have {EXPECTED_CLASSES[name]} seen/unseen classes, got {got}")
    return fs


def _validation_classes(split: dict, split_path: Path, fs: FeatureSet, names: np.ndarray, root: Path) -> np.ndarray:
    """Class ids of xlsa17's class-disjoint validation split: the classes of val_loc, else the names in
    valclasses1.txt, else none (then data.protocol 'validation' is refused)."""
    if "val_loc" in split:
        val = _one_based(split, "val_loc", split_path, len(fs.labels))
        classes = np.unique(fs.labels[val])
    elif (root / "valclasses1.txt").exists():
        wanted = (root / "valclasses1.txt").read_text().split()
        missing = [w for w in wanted if w not in set(names.tolist())]
        if missing:
            raise DataError(f"{root / 'valclasses1.txt'}: classes {missing[:5]} are not in allclasses_names")
        classes = np.array([names.tolist().index(w) for w in wanted], np.int64)
    else:
        return np.zeros(0, np.int64)
    if np.setdiff1d(classes, fs.seen_classes).size:
        raise DataError(f"{split_path}: validation classes must be seen (trainval) classes")
    return classes.astype(np.int64)


def _load_row_features(path: Path, n: int) -> np.ndarray:
    mat = _loadmat(path)
    feats = _key(mat, "features", path)
    if feats.ndim != 2 or feats.shape[0] != n:
        raise DataError(f"{path}: 'features' must be N x D with N={n} rows in res101.mat image order, "
                        f"got {feats.shape}")
    return feats


# ---------------------------------------------------------------------------------------------
# Data scarcity and scaling
# ---------------------------------------------------------------------------------------------
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

    def save(self, path) -> None:
        io.save_npz(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path) -> "Prepared":
        z = io.load_npz(path)
        return cls(**{f.name: z[f.name] for f in fields(cls)})

    @property
    def n_classes(self) -> int:
        return self.att.shape[0]

    def test_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Test-seen and test-unseen pooled, unlabelled (the transductive input): x, r."""
        return (np.concatenate([self.x_test_seen, self.x_test_unseen]),
                np.concatenate([self.r_test_seen, self.r_test_unseen]))


def prepare_split(fs: FeatureSet, seen_ratio: float, seed: int, protocol: str = "test",
                  val_classes: str = "") -> tuple[Prepared, MinMax]:
    """Keep `seen_ratio` of each seen class's training images, fit MinMax on them, scale everything.
    With protocol 'validation' the split is first replaced by `fs.validation_view` (no test image used).
    SC features are filled in later by the pretrain stage (zeros of width 0 here unless supplied)."""
    if protocol == "validation":
        fs = fs.validation_view(seed, classes=val_classes)
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
        class_names=fs.class_names, train_index=keep)
    missing = np.setdiff1d(prep.seen, np.unique(prep.y_train))
    if missing.size:  # cannot happen with subsample_per_class; guards a future change
        raise DataError(f"seen classes {missing.tolist()} were left without training samples")
    return prep, scaler
