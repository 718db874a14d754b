"""A benchmark-difficulty fixture: an xlsa17 folder with the real split files and features that are as
hard to learn as ResNet-101 features of the real benchmark (docs/fixture.md).

The real xlsa17 split files (../shared/data/xlsa17/<DATASET>/att_splits.mat and the class lists) give
the classes, their attribute vectors and the image index lists; res101.mat, which cannot be had here,
is generated:

  true semantics   s_c  = the class's original attributes (unit row, centred) + annotation noise
                          (the published attribute vector is only a noisy reading of what a class
                          looks like: `attribute_noise` standard deviations per entry)
  class structure  m_c  = W2 tanh(W1 s_c + b1): a random two-layer network, so the class means are
                          a non-linear function of the attributes (no linear map reaches them)
  images           x_i  = relu(P (m_c + N u_i) + noise_i + bias): u_i ~ N(0, I) is a within-class
                          nuisance (pose, background: `nuisance` directions shared by every class),
                          noise_i isotropic; the relu makes the 2048-d features non-negative and
                          sparse, as post-ReLU ResNet features are

Images are assigned to classes in contiguous blocks of their index order, honouring the real lists:
test_unseen_loc images go to the unseen classes, train_loc / val_loc images to the training /
validation classes (AWA2, SUN); CUB's seen images are spread over its 150 seen classes.

    python -m benchmarks.fixture --shape cub --out /tmp/cub-hard       # writes and prints its difficulty
    python -m benchmarks.fixture --shape cub --out /tmp/cub-small --small

Difficulty is printed as the closed-form ESZSL's ZSL T1 (regularisers chosen on the validation
classes) and a linear seen classifier's accuracy (ridge, test-seen images): the real res101 range is
ESZSL 0.35-0.55 (Xian et al. 2019: CUB 53.9, SUN 54.5, AWA2 58.6) and 0.6-0.8 for a linear classifier
on the seen classes. The defaults (`DIFFICULTY`) sit in that range on CUB. `--small` keeps a subset of
the classes (30 seen, 10 unseen of CUB) and 512-d features, for tests.

Without the real split files, `--synthetic-splits` (small only) first writes CUB-format split files of
its own (`synthetic_splits`: 40 invented classes whose 312 attributes come from a random low-rank model,
CUB's images per class); the tests' learning check runs on it, so it never depends on ../shared.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SHARED_XLSA17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "xlsa17"
DATASETS = {"awa2": "AWA2", "cub": "CUB", "sun": "SUN"}


@dataclass(frozen=True)
class Difficulty:
    """The knobs of the generated features; `DIFFICULTY` holds the calibrated defaults."""
    x_dim: int = 2048
    latent: int = 1024           # dimension of the class structure m_c before the projection to x
    hidden: int = 512            # width of the random network s_c -> m_c
    gain: float = 1.0            # scale of its first layer: larger saturates tanh more (more non-linear)
    attribute_noise: float = 0.05 # annotation noise, in standard deviations of each attribute
    nuisance: int = 32           # within-class nuisance directions shared by all classes
    nuisance_scale: float = 0.5  # nuisance amplitude, relative to the spread of the class means
    noise_scale: float = 2.8     # isotropic per-image noise in the latent, relative to the class means' spread
    seed: int = 0


DIFFICULTY = Difficulty()
PIXEL_NOISE = 0.3  # per-feature noise after the projection (std of a feature is about 1)


def _names(path: Path) -> list[str]:
    return path.read_text().split()


def _blocks(images: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> None:
    """Assign sorted `images` to `classes` in contiguous, nearly equal blocks (in place)."""
    for chunk, c in zip(np.array_split(np.sort(images), len(classes)), classes):
        labels[chunk] = c


def class_labels(split: dict, source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(0-based label per image, seen class ids, unseen class ids) consistent with the real lists."""
    names = [str(np.asarray(v).ravel()[0]) for v in split["allclasses_names"].ravel()]
    index = {n: i for i, n in enumerate(names)}
    ids = lambda f: np.array(sorted(index[n] for n in _names(source / f)), np.int64)  # noqa: E731
    seen, unseen = ids("trainvalclasses.txt"), ids("testclasses.txt")
    loc = lambda k: split[k].ravel().astype(np.int64) - 1  # noqa: E731
    n = int(max(loc(k).max() for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc"))) + 1
    labels = np.full(n, -1, np.int64)
    _blocks(loc("test_unseen_loc"), unseen, labels)
    if "val_loc" in split:
        val = ids("valclasses1.txt")
        _blocks(loc("train_loc"), np.setdiff1d(seen, val), labels)
        _blocks(loc("val_loc"), val, labels)
    else:
        _blocks(np.concatenate([loc("trainval_loc"), loc("test_seen_loc")]), seen, labels)
    if (labels < 0).any():
        raise ValueError(f"{source}: {int((labels < 0).sum())} images are in no split list")
    return labels, seen, unseen


def features(att_raw: np.ndarray, labels: np.ndarray, d: Difficulty) -> np.ndarray:
    """(N, x_dim) float32 features of the images `labels` from the raw class attributes (C, A)."""
    rng = np.random.default_rng(d.seed)
    # unit rows (as att_splits.mat's att), centred, one global scale: per-column standardising would
    # blow rare attributes' near-zero columns up to the weight of the defining ones
    a = att_raw / np.linalg.norm(att_raw, axis=1, keepdims=True)
    a = (a - a.mean(0)) / a.std()
    s = a + d.attribute_noise * rng.normal(size=a.shape)
    w1 = d.gain * rng.normal(size=(a.shape[1], d.hidden)) / np.sqrt(a.shape[1])
    b1 = rng.normal(size=d.hidden) * 0.5
    w2 = rng.normal(size=(d.hidden, d.latent)) / np.sqrt(d.hidden)
    means = np.tanh(s @ w1 + b1) @ w2
    means = (means - means.mean(0)) / means.std()  # unit spread of the class means
    # nuisance directions: shared by every class, each class bending them its own way
    shared = rng.normal(size=(d.nuisance, d.latent))
    nuis = (shared + rng.normal(size=(len(means), d.nuisance, d.latent))) / np.sqrt(2 * d.nuisance)
    proj = rng.normal(size=(d.latent, d.x_dim)) / np.sqrt(d.latent)
    x = np.empty((len(labels), d.x_dim), np.float32)
    for i in range(0, len(labels), 4096):  # bounded memory at AWA2's 37k images
        y = labels[i:i + 4096]
        u = rng.normal(size=(len(y), 1, d.nuisance))
        z = (means[y] + d.nuisance_scale * (u @ nuis[y])[:, 0]
             + d.noise_scale * rng.normal(size=(len(y), d.latent)))
        x[i:i + len(y)] = np.maximum(z @ proj + PIXEL_NOISE * rng.normal(size=(len(y), d.x_dim)) + 0.5, 0)
    return x


def _subset(split: dict, labels: np.ndarray, seen: np.ndarray, unseen: np.ndarray,
            n_seen: int, n_unseen: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """The split restricted to the first n_seen seen and n_unseen unseen classes (images renumbered)."""
    keep_classes = np.sort(np.concatenate([seen[:n_seen], unseen[:n_unseen]]))
    keep = np.flatnonzero(np.isin(labels, keep_classes))
    new_pos = np.full(len(labels), -1, np.int64)
    new_pos[keep] = np.arange(len(keep))
    out = {k: split[k][:, keep_classes] for k in ("att", "original_att")}
    out["allclasses_names"] = split["allclasses_names"][keep_classes]
    for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc"):
        if k in split:
            pos = new_pos[split[k].ravel().astype(np.int64) - 1]
            out[k] = (pos[pos >= 0] + 1).reshape(-1, 1)
    relabel = np.searchsorted(keep_classes, labels[keep])
    return out, relabel, keep_classes


def synthetic_splits(out: Path, seed: int = 0, spread: float = 0.18, rank: int = 16) -> Path:
    """Write `out`/CUB: att_splits.mat and class lists in CUB's xlsa17 format for 40 invented classes
    (20 training + 10 validation seen, 10 unseen; 60 images each, 48 trainval / 12 test-seen per seen
    class): the source `write_fixture(..., small=True)` needs when the real files are absent. The 312
    attributes are percentages from a random rank-`rank` model (a sigmoid of class factors scaled by
    `spread`), correlated and mostly small, as CUB's are; `spread` 0.18 puts the small fixture's linear
    seen classifier at 0.83 (0.71 at 0.12, 0.90 at 0.25). Returns `out` (the `source` argument of
    `write_fixture`)."""
    rng = np.random.default_rng(seed)
    n_att, n_seen, n_unseen, per_class = 312, 30, 10, 60
    n_classes = n_seen + n_unseen
    factors = rng.normal(size=(n_classes, rank))
    logits = spread * factors @ rng.normal(size=(rank, n_att)) + rng.normal(-1.5, 1.0, n_att)
    original = 100 / (1 + np.exp(-logits))
    names = [f"{k + 1:03d}.Synthetic_class_{k + 1}" for k in range(n_classes)]
    perm = rng.permutation(n_classes)
    seen, unseen = np.sort(perm[:n_seen]), np.sort(perm[n_seen:])
    # image positions (0-based here, 1-based in the file); `class_labels` gives classes blocks of them
    order = rng.permutation(n_classes * per_class)
    test_unseen = np.sort(order[:n_unseen * per_class])
    rest = order[n_unseen * per_class:]
    test_seen, trainval = np.sort(rest[:n_seen * 12]), np.sort(rest[n_seen * 12:])
    names_cell = np.empty((n_classes, 1), dtype=object)
    names_cell[:, 0] = [np.array([n]) for n in names]
    split = {"att": (original / np.linalg.norm(original, axis=1, keepdims=True)).T, "original_att": original.T,
             "allclasses_names": names_cell, "trainval_loc": (trainval + 1).reshape(-1, 1),
             "test_seen_loc": (test_seen + 1).reshape(-1, 1), "test_unseen_loc": (test_unseen + 1).reshape(-1, 1)}
    folder = out / "CUB"
    folder.mkdir(parents=True, exist_ok=True)
    _savemat(folder / "att_splits.mat", split)
    val = np.sort(seen[rng.permutation(n_seen)[:10]])
    for f, ids in (("trainvalclasses.txt", seen), ("testclasses.txt", unseen), ("valclasses1.txt", val)):
        (folder / f).write_text("".join(f"{names[i]}\n" for i in ids))
    return out


def _savemat(path: Path, arrays: dict) -> None:
    """scipy's savemat with a fixed header text: it stamps the creation time into the first 116 bytes,
    and the same fixture must give the same bytes (data.root is a DVC dependency: a new timestamp
    would rerun the pipeline)."""
    from scipy.io import savemat
    savemat(path, arrays)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 5.0 MAT-file, zerodiffpp benchmark fixture".ljust(116))


def write_fixture(out: Path, shape: str = "cub", difficulty: Difficulty = DIFFICULTY, small: bool = False,
                  source: Path | None = None) -> Path:
    """Write res101.mat, att_splits.mat and the class lists of `shape` into `out`; returns `out`."""
    from scipy.io import loadmat
    source = (source or SHARED_XLSA17) / DATASETS[shape]
    if not (source / "att_splits.mat").exists():
        raise FileNotFoundError(f"{source / 'att_splits.mat'}: the real xlsa17 split files are needed "
                                "(../shared/data/xlsa17, see docs/fixture.md)")
    split = {k: v for k, v in loadmat(str(source / "att_splits.mat")).items() if not k.startswith("__")}
    labels, seen, unseen = class_labels(split, source)
    names = [str(np.asarray(v).ravel()[0]) for v in split["allclasses_names"].ravel()]
    if small:
        if "val_loc" in split:
            raise ValueError("--small is made from CUB (its validation classes are named, not indexed)")
        val = [names.index(n) for n in _names(source / "valclasses1.txt")]
        seen = np.concatenate([np.setdiff1d(seen, val)[:20], np.array(val[:10])])  # 20 training + 10 validation
        split, labels, kept = _subset(split, labels, seen, unseen, len(seen), 10)
        names = [names[k] for k in kept]
        difficulty = replace(difficulty, x_dim=min(difficulty.x_dim, 512))
    x = features(split["original_att"].T.astype(np.float64), labels, difficulty)
    out.mkdir(parents=True, exist_ok=True)
    _savemat(out / "res101.mat", {"features": x.T, "labels": (labels + 1).reshape(-1, 1)})
    _savemat(out / "att_splits.mat", split)
    seen_ids = np.unique(labels[split["trainval_loc"].ravel() - 1])
    for f, ids in (("trainvalclasses.txt", seen_ids), ("testclasses.txt", np.setdiff1d(np.arange(len(names)), seen_ids))):
        (out / f).write_text("".join(f"{names[i]}\n" for i in ids))
    val_names = [n for n in _names(source / "valclasses1.txt") if n in set(names)]
    (out / "valclasses1.txt").write_text("".join(f"{n}\n" for n in val_names))
    return out


def difficulty_report(folder: Path, name: str) -> dict:
    """ESZSL ZSL T1 (regularisers chosen on the validation classes) and a linear seen classifier's
    test-seen accuracy on the fixture in `folder`, as the pipeline prepares it (MinMax on trainval)."""
    from sklearn.linear_model import RidgeClassifier

    from zerodiffpp.baselines.eszsl import eszsl_t1, select_on_validation
    from zerodiffpp.metrics import mean_per_class_accuracy
    from zerodiffpp.splits import prepare_split
    from zerodiffpp.xlsa17 import load_xlsa17
    fs = load_xlsa17(folder, name)
    val = prepare_split(fs, 1.0, 0, "validation")[0]
    (gamma, lam), scores = select_on_validation([val])
    test = prepare_split(fs, 1.0, 0, "test")[0]
    # the ridge penalty is chosen on the validation view's held-out images of its training classes
    held = lambda alpha, s: mean_per_class_accuracy(  # noqa: E731
        s.y_test_seen, RidgeClassifier(alpha=alpha).fit(s.x_train, s.y_train).predict(s.x_test_seen), s.seen)
    alpha = max((1.0, 10.0, 100.0, 1000.0), key=lambda al: held(al, val))
    seen_acc = held(alpha, test)
    return {"eszsl_t1": eszsl_t1(test, gamma, lam), "eszsl_val_t1": float(np.mean(scores[(gamma, lam)])),
            "eszsl_gamma": gamma, "eszsl_lambda": lam, "linear_seen_acc": seen_acc, "ridge_alpha": alpha,
            "chance_t1": 1 / len(test.unseen), "n_seen": len(test.seen), "n_unseen": len(test.unseen)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(DATASETS), default="cub")
    ap.add_argument("--out", type=Path, required=True, help="folder to write (data.root of the run)")
    ap.add_argument("--small", action="store_true", help="30 seen / 10 unseen CUB classes, 512-d features")
    ap.add_argument("--source", type=Path, default=None, help=f"xlsa17 split files (default {SHARED_XLSA17})")
    ap.add_argument("--synthetic-splits", action="store_true",
                    help="with --small: invented CUB-format split files instead of the real ones")
    for f in ("attribute_noise", "nuisance_scale", "noise_scale", "latent", "gain"):
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(getattr(DIFFICULTY, f)), default=getattr(DIFFICULTY, f))
    ap.add_argument("--seed", type=int, default=DIFFICULTY.seed)
    a = ap.parse_args(argv)
    d = replace(DIFFICULTY, attribute_noise=a.attribute_noise, nuisance_scale=a.nuisance_scale,
                noise_scale=a.noise_scale, latent=a.latent, gain=a.gain, seed=a.seed)
    if a.synthetic_splits:
        if not a.small or a.shape != "cub":
            raise SystemExit("--synthetic-splits: only with --small (and --shape cub)")
        a.source = synthetic_splits(a.out / "splits", a.seed)
    write_fixture(a.out, a.shape, d, a.small, a.source)
    r = difficulty_report(a.out, DATASETS[a.shape] + ("-small" if a.small else ""))
    print(f"{a.out}: {DATASETS[a.shape]}-shaped fixture{' (small)' if a.small else ''}, {r['n_seen']} seen / "
          f"{r['n_unseen']} unseen classes, {d}")
    print(f"difficulty: closed-form ESZSL ZSL T1 {r['eszsl_t1']:.3f} (chance {r['chance_t1']:.3f}; gamma "
          f"{r['eszsl_gamma']:g}, lambda {r['eszsl_lambda']:g} chosen on validation, T1 {r['eszsl_val_t1']:.3f} "
          f"there); linear seen classifier {r['linear_seen_acc']:.3f} (ridge, alpha {r['ridge_alpha']:g} chosen on "
          "validation)")
    return r


if __name__ == "__main__":
    main()
