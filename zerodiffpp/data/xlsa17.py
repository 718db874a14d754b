"""The xlsa17 ("proposed split") loader for AWA2, CUB and SUN folders (the extract stage only)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from zerodiffpp.data.features import FeatureSet
from zerodiffpp.runtime.errors import DataError

log = logging.getLogger(__name__)

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


def _finite(feats: np.ndarray, path: Path, image_axis: int) -> None:
    """NaN or inf in a file's 'features', named by the file, how many and the first (0-based, as stored);
    FeatureSet.check would name only the folder."""
    bad = ~np.isfinite(feats)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        images = int(bad.any(axis=1 - image_axis).sum())
        raise DataError(f"{path}: 'features' holds {int(bad.sum())} NaN or inf values in {images} images, the first "
                        f"at features[{first[0]}, {first[1]}] (0-based: image {first[image_axis]})")


def _one_based(mat: dict, key: str, path: Path, upper: int) -> np.ndarray:
    v = _key(mat, key, path).astype(np.int64).ravel()
    if v.size == 0:
        raise DataError(f"{path}: '{key}' is empty")
    if v.min() < 1:
        raise DataError(f"{path}: '{key}' must hold 1-based indices (MATLAB), found {v.min()}")
    if v.max() > upper:
        raise DataError(f"{path}: '{key}' indexes up to {v.max()} but there are only {upper} entries")
    return v - 1


def unit_rows(att: np.ndarray, path: Path) -> np.ndarray:
    """Class embeddings L2-normalised per class, as float32. att_splits.mat's 'att' already is (this
    changes nothing there); sent_splits.mat's CNN-RNN sentence embeddings are not (norms about 17-23
    on CUB), while the attribute decoder's output is unit length and DiffTTA's decoder ranking
    compares cosines, so every embedding is brought to the unit sphere the same way."""
    norms = np.linalg.norm(att, axis=1, keepdims=True)
    if not (norms > 0).all():
        raise DataError(f"{path}: 'att' has all-zero class embeddings (classes {np.flatnonzero(norms == 0).tolist()})")
    if np.abs(norms - 1).max() > 1e-3:
        log.info("%s: class embeddings have L2 norms %.2f-%.2f; normalised to unit length per class (as "
                 "att_splits.mat's att)", path, norms.min(), norms.max())
    return (att / norms).astype(np.float32)


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
    att = _key(split, "att", split_path).astype(np.float64)
    if att.ndim != 2:
        raise DataError(f"{split_path}: 'att' must be a matrix (A x C), got shape {att.shape}")
    att = unit_rows(att.T, split_path)  # (C, A)
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
        _finite(feats, res_path, image_axis=1)
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
    _finite(feats, path, image_axis=0)
    return feats
