"""A benchmark-difficulty fixture: an xlsa17 folder with the real split files and features on which a
panel of simple reference methods falls where it falls on the real ResNet-101 features (docs/fixture.md).

The real xlsa17 split files (../shared/data/xlsa17/<DATASET>/att_splits.mat and the class lists) give
the classes, their attribute vectors and the image index lists; res101.mat, which cannot be had here,
is generated. An image of class c in sub-mode j is, in a 1024-d latent (scales in `Difficulty`):

  z = m_c + r_c + o_cj + nuisance + noise,   x = relu(P z + pixel noise + 0.5)   (2048-d, post-ReLU)

  m_c   attribute part: a random two-layer network of the class's attributes (plus a little annotation
        noise), unit spread. Its top `class_rank` principal directions are the class directions: they
        hold 90 % or more of its variance.
  r_c   class residual: what the attributes do not explain. Drawn independently of them, it lives in
        the class directions only, with `residual_scale` times m_c's spread along each. A regression
        onto class means (even within-class whitened) predicts an unseen class's mean off by it; a
        discriminative model trained on the seen classes (ESZSL, whose inverse covariance counts the
        residual's variance) learns to discount those directions. On real features ESZSL beats the
        attribute -> feature regressions; a residual spread over all directions hurts every method alike.
  o_cj  sub-modes (poses, backgrounds, sub-types): `submodes` offsets per class, centred over its modes,
        in the class directions with `submode_scale` times m_c's spread; half (`submode_specific`) a
        function of the attributes (another random network), half class-specific. A model of p(x | a)
        can learn them; a nearest-mean rule cannot.
  nuisance  `nuisance` high-variance directions (std `nuisance_scale`) shared by every class, each
        class bending them its own way;  noise  isotropic (`noise_scale`), `residual_noise` times that
        along the class directions.

Each part has its own random stream (a knob does not redraw the others). The defaults are calibrated
per shape (`DIFFICULTIES`) so that the panel (`difficulty_report`: ESZSL, ridge prototype regression
linear and whitened, the supervised ceiling, a linear seen classifier; `zerodiffpp.baselines.panel`)
falls where the published res101 panel falls; docs/fixture.md has the numbers.

Images are assigned to classes in contiguous blocks of their index order, honouring the real lists:
test_unseen_loc images go to the unseen classes, train_loc / val_loc images to the training /
validation classes (AWA2, SUN); CUB's seen images are spread over its 150 seen classes.

    python -m benchmarks.fixture --shape cub --out /tmp/cub-hard       # writes it and prints its panel
    python -m benchmarks.fixture --shape cub --out /tmp/cub-small --small

`--small` keeps a subset of the classes (20 training + 10 validation seen, 10 unseen of CUB) and
512-d features, for tests. Without the real split files, `--synthetic-splits` (small only) first
writes CUB-format split files of its own (`synthetic_splits`: 40 invented classes whose 312 attributes
come from a random low-rank model, CUB's images per class); the tests' learning check runs on it, so
it never depends on ../shared.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

SHARED_XLSA17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "xlsa17"
DATASETS = {"awa2": "AWA2", "cub": "CUB", "sun": "SUN"}


@dataclass(frozen=True)
class Difficulty:
    """The knobs of the generated features (module docstring). Scales are relative: the attribute part
    of the class means has unit spread (standard deviation per latent coordinate over the classes);
    the residual and the sub-modes are multiples of its spread along each class direction. The field
    defaults are CUB's calibrated ones; `DIFFICULTIES` holds each shape's."""
    x_dim: int = 2048
    latent: int = 1024             # dimension of the latent space before the projection to x
    hidden: int = 512              # width of the random networks attributes -> latent
    gain: float = 1.0              # scale of their first layer: larger saturates tanh more (more non-linear)
    attribute_noise: float = 0.05  # annotation noise, in standard deviations of each attribute
    class_rank: int = 64           # class directions: the attribute part's top principal directions
    residual_scale: float = 0.5    # class residual along each class direction, times the attribute part's spread
    residual_noise: float = 1.5    # within-class noise along the class directions, times noise_scale
    submodes: int = 4              # sub-modes per class (1: none)
    submode_scale: float = 1.0     # sub-mode offsets along each class direction, times the attribute part's spread
    submode_specific: float = 0.5  # share of the offsets' variance that is class-specific (the rest: attributes)
    nuisance: int = 32             # nuisance directions shared by all classes (each class bends them)
    nuisance_scale: float = 8.0    # standard deviation along each of them
    noise_scale: float = 2.8       # isotropic within-class noise per latent coordinate
    seed: int = 0


# calibrated against the published res101 panel of each dataset (docs/fixture.md)
DIFFICULTIES = {
    "cub": Difficulty(),
    "sun": Difficulty(residual_scale=0.9, residual_noise=2.5, submode_scale=0.6, nuisance_scale=4.0, noise_scale=2.0),
    "awa2": Difficulty(gain=0.5, class_rank=32, residual_scale=0.3, residual_noise=1.85, submode_scale=1.25,
                       nuisance_scale=10.0),
}
DIFFICULTY = DIFFICULTIES["cub"]
PIXEL_NOISE = 0.3  # per-feature noise after the projection (a feature's std is about 3.5 before the relu)


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


def _streams(seed: int) -> list[np.random.Generator]:
    """Six independent random streams: attributes -> means, residual, sub-modes, nuisance, projection, images."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]


def _unit_attributes(att_raw: np.ndarray) -> np.ndarray:
    # unit rows (as att_splits.mat's att), centred, one global scale: per-column standardising would
    # blow rare attributes' near-zero columns up to the weight of the defining ones
    a = att_raw / np.linalg.norm(att_raw, axis=1, keepdims=True)
    return (a - a.mean(0)) / a.std()


def _network(rng: np.random.Generator, s: np.ndarray, d: "Difficulty", out: int) -> np.ndarray:
    """A random two-layer network s -> tanh(s W1 + b1) W2, (C, out), centred over the classes, unit
    spread (one global scale)."""
    w1 = d.gain * rng.normal(size=(s.shape[1], d.hidden)) / np.sqrt(s.shape[1])
    b1 = rng.normal(size=d.hidden) * 0.5
    w2 = rng.normal(size=(d.hidden, out)) / np.sqrt(d.hidden)
    m = np.tanh(s @ w1 + b1) @ w2
    m -= m.mean(0)
    return m / m.std()


def class_structure(att_raw: np.ndarray, d: "Difficulty") -> dict:
    """The class-level parts of the latent (module docstring), from the raw class attributes (C, A):
    {'means' (C, L) attribute part, 'residual' (C, L), 'basis' (k, L) the orthonormal class directions,
    'offsets' (C, M, L) sub-mode offsets (centred over each class's modes), 'offsets_attribute' (C, M, L)
    their part that is a function of the attributes (unscaled), 'nuisance' (C, n, L) unit nuisance
    directions (float32)}. Each part has its own random stream, so one knob does not redraw another."""
    r_att, r_res, r_mode, r_nuis = _streams(d.seed)[:4]
    a = _unit_attributes(att_raw)
    c, lat = len(a), d.latent
    s = a + d.attribute_noise * r_att.normal(size=a.shape)
    means = _network(r_att, s, d, lat)
    # the residual lives in the k directions where the classes differ most (the attribute part's top
    # principal directions), with the attribute part's spread along each times residual_scale
    _, sv, vt = np.linalg.svd(means, full_matrices=False)
    k = min(d.class_rank, len(sv))
    basis, spread = vt[:k], sv[:k] / np.sqrt(c)
    z = r_res.normal(size=(c, k))
    z = (z - z.mean(0)) / z.std(0)
    residual = d.residual_scale * (z * spread) @ basis
    # sub-modes: offsets in the same directions, a function of the attributes plus a class-specific
    # part, centred over each class's modes, with the attribute part's spread times submode_scale
    m = d.submodes
    g = _network(r_mode, s, d, m * k).reshape(c, m, k)
    spec = r_mode.normal(size=(c, m, k))
    g -= g.mean(1, keepdims=True)
    spec -= spec.mean(1, keepdims=True)
    g /= max(g.std(), 1e-12)
    spec /= max(spec.std(), 1e-12)
    f = d.submode_specific
    offsets = d.submode_scale * ((np.sqrt(1 - f) * g + np.sqrt(f) * spec) * spread) @ basis
    shared = r_nuis.normal(size=(d.nuisance, lat))
    nuis = (shared + r_nuis.normal(size=(c, d.nuisance, lat))).astype(np.float32)
    nuis /= np.linalg.norm(nuis, axis=2, keepdims=True)
    return {"means": means, "residual": residual, "basis": basis, "offsets": offsets,
            "offsets_attribute": g @ basis, "nuisance": nuis}


def features(att_raw: np.ndarray, labels: np.ndarray, d: Difficulty) -> np.ndarray:
    """(N, x_dim) float32 features of the images `labels` from the raw class attributes (C, A)."""
    parts = class_structure(att_raw, d)
    centre = parts["means"] + parts["residual"]
    basis, offsets, nuis = parts["basis"], parts["offsets"], parts["nuisance"]
    rng_proj, rng_img = _streams(d.seed)[4:]
    proj = rng_proj.normal(size=(d.latent, d.x_dim)) / np.sqrt(d.latent)
    x = np.empty((len(labels), d.x_dim), np.float32)
    for i in range(0, len(labels), 1024):  # bounded memory at AWA2's 37k images
        y = labels[i:i + 1024]
        mode = rng_img.integers(d.submodes, size=len(y))
        u = rng_img.normal(size=(len(y), d.nuisance)).astype(np.float32)
        w = (d.nuisance_scale * np.einsum("in,inl->il", u, nuis[y])
             + d.noise_scale * rng_img.normal(size=(len(y), d.latent)))
        w -= (1 - d.residual_noise) * (w @ basis.T) @ basis  # the noise along the class directions
        z = centre[y] + offsets[y, mode] + w
        x[i:i + len(y)] = np.maximum(z @ proj + PIXEL_NOISE * rng_img.normal(size=(len(y), d.x_dim)) + 0.5, 0)
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


def write_fixture(out: Path, shape: str = "cub", difficulty: Difficulty | None = None, small: bool = False,
                  source: Path | None = None) -> Path:
    """Write res101.mat, att_splits.mat and the class lists of `shape` into `out`; returns `out`.
    `difficulty` defaults to the shape's calibrated one (`DIFFICULTIES`)."""
    from scipy.io import loadmat
    difficulty = difficulty or DIFFICULTIES[shape]
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


def difficulty_report(folder: Path, name: str, seen_ratio: float = 1.0, seed: int = 0) -> dict:
    """The simple-baseline panel (`zerodiffpp.baselines.panel`: ESZSL, ridge prototype regression in
    both variants, the supervised ceiling, a linear seen classifier; every choice made on the
    validation classes) on the fixture in `folder`, as the pipeline prepares it (MinMax on trainval)."""
    from zerodiffpp.baselines.panel import panel
    from zerodiffpp.xlsa17 import load_xlsa17
    return panel(load_xlsa17(folder, name), seen_ratio, seed, "test")


KNOBS = [f.name for f in fields(Difficulty) if f.name not in ("x_dim", "seed")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(DATASETS), default="cub")
    ap.add_argument("--out", type=Path, required=True, help="folder to write (data.root of the run)")
    ap.add_argument("--small", action="store_true", help="30 seen / 10 unseen CUB classes, 512-d features")
    ap.add_argument("--source", type=Path, default=None, help=f"xlsa17 split files (default {SHARED_XLSA17})")
    ap.add_argument("--synthetic-splits", action="store_true",
                    help="with --small: invented CUB-format split files instead of the real ones")
    for f in KNOBS:
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(getattr(DIFFICULTY, f)), default=None,
                        help=f"default: the shape's (CUB {getattr(DIFFICULTY, f)})")
    ap.add_argument("--seed", type=int, default=DIFFICULTY.seed)
    ap.add_argument("--seen-ratio", type=float, default=1.0, help="the panel's seen ratio (the fixture is the same)")
    ap.add_argument("--no-report", action="store_true", help="write the fixture only, without the panel")
    a = ap.parse_args(argv)
    d = replace(DIFFICULTIES[a.shape], seed=a.seed,
                **{f: getattr(a, f) for f in KNOBS if getattr(a, f) is not None})
    if a.synthetic_splits:
        if not a.small or a.shape != "cub":
            raise SystemExit("--synthetic-splits: only with --small (and --shape cub)")
        a.source = synthetic_splits(a.out / "splits", a.seed)
    write_fixture(a.out, a.shape, d, a.small, a.source)
    print(f"{a.out}: {DATASETS[a.shape]}-shaped fixture{' (small)' if a.small else ''}, {d}")
    if a.no_report:
        return None
    from zerodiffpp.baselines.panel import panel_markdown
    r = difficulty_report(a.out, DATASETS[a.shape] + ("-small" if a.small else ""), a.seen_ratio, 0)
    print(panel_markdown(r))
    return r


if __name__ == "__main__":
    main()
