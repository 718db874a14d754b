"""Your own classes (`data.name: folder`): an image folder and a class table -> a `FeatureSet`.

    data.root/                  one subfolder per class, named as the class in the table
      zebra/001.jpg ...
      classes.csv               data.class_table: the class table
                                  attributes (data.embedding: att): class, then one number per attribute
                                  descriptions (data.embedding: text): class, description
                                  either may have an `unseen` column (1 / yes / true / unseen)

Unseen classes: `data.unseen` (comma-separated names), else the table's `unseen` column. Their images
are the test-unseen split; each seen class keeps `data.test_fraction` of its images as test-seen
(seeded by `data.split_seed`, as the embedded set). Everything is checked before any feature is
computed, and a problem is one DataError line naming the file. Features: `zerodiffpp.data.backbone`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from zerodiffpp.data.backbone import IMAGE_SUFFIXES, ImageFiles, check_readable, extract
from zerodiffpp.data.features import FeatureSet, unlearnable_attributes
from zerodiffpp.runtime.errors import DataError

log = logging.getLogger(__name__)

UNSEEN_COLUMN = "unseen"
DESCRIPTION_COLUMN = "description"
_TRUE, _FALSE = {"1", "true", "yes", "y", "unseen"}, {"0", "false", "no", "n", "seen", ""}


def scan_classes(root: Path, table: Path | None = None) -> dict[str, list[Path]]:
    """{class folder name: its image files, sorted}. Hidden entries are skipped, and so are files that
    are not images by their suffix (a README in a class folder); an empty class folder is an error."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root: {root} is not a folder; for data.name 'folder' it holds one subfolder of images "
                        f"per class and the class table")
    classes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.iterdir() if f.is_file() and not f.name.startswith(".")
                       and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{sub}: class folder without images (expected files ending in "
                            f"{', '.join(IMAGE_SUFFIXES)})")
        classes[sub.name] = files
    if not classes:
        raise DataError(f"data.root: {root} has no class subfolders; expected one folder of images per class")
    return classes


def image_files(inputs) -> list[Path]:
    """Image files of `inputs` (files, or folders searched recursively), in order; none is an error."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(f for f in item.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(item).parts))
            if not found:
                raise DataError(f"{item}: no image files in this folder (expected {', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    return files


def _flag(value, table: Path, name: str) -> bool:
    text = str(value).strip().lower()
    if text in ("nan", "none"):
        text = ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{table}: column '{UNSEEN_COLUMN}' of class {name!r} is {value!r}; expected 1/0, yes/no, "
                    f"true/false or unseen/seen")


def read_class_table(table: Path, embedding: str):
    """-> (class names, attributes (C, A) float or descriptions (C,) str, unseen flags or None)."""
    import pandas as pd
    if not table.is_file():
        raise DataError(f"data.class_table: {table} not found; expected a CSV in data.root: class, then attribute "
                        f"columns (data.embedding att) or a description column (data.embedding text)")
    try:
        df = pd.read_csv(table, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as e:  # noqa: BLE001 - pandas raises many parser errors
        raise DataError(f"{table}: not a readable CSV ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if df.shape[1] < 2 or len(df) == 0:
        raise DataError(f"{table}: expected a header and one row per class with a class column and at least one "
                        f"more column, got {df.shape[1]} columns and {len(df)} rows")
    names = [n.strip() for n in df.iloc[:, 0]]
    if any(not n for n in names):
        raise DataError(f"{table}: row {names.index('') + 2} has an empty class name")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataError(f"{table}: classes listed more than once: {dups}")
    columns = [c.strip() for c in df.columns]
    df.columns = columns
    unseen = [_flag(v, table, n) for v, n in zip(df[UNSEEN_COLUMN], names)] if UNSEEN_COLUMN in columns else None
    rest = [c for c in columns[1:] if c != UNSEEN_COLUMN]
    if embedding == "text":
        if DESCRIPTION_COLUMN not in rest:
            raise DataError(f"{table}: data.embedding is 'text' but there is no '{DESCRIPTION_COLUMN}' column "
                            f"(found {rest}); expected columns class, {DESCRIPTION_COLUMN}")
        texts = [t.strip() for t in df[DESCRIPTION_COLUMN]]
        empty = [n for n, t in zip(names, texts) if not t]
        if empty:
            raise DataError(f"{table}: empty description for classes {empty}")
        return names, np.array(texts), unseen
    if DESCRIPTION_COLUMN in rest:
        raise DataError(f"{table}: has a '{DESCRIPTION_COLUMN}' column but data.embedding is 'att'; set "
                        f"data.embedding: text for descriptions, or keep only numeric attribute columns")
    if not rest:
        raise DataError(f"{table}: no attribute columns; expected class, then one number per attribute")
    values = np.zeros((len(names), len(rest)), np.float64)
    for j, col in enumerate(rest):
        try:
            values[:, j] = pd.to_numeric(df[col], errors="raise")
        except (ValueError, TypeError):
            bad = next(v for v in df[col] if pd.to_numeric(pd.Series([v]), errors="coerce").isna().all())
            raise DataError(f"{table}: attribute column {col!r} holds {bad!r}; expected numbers "
                            f"(for text descriptions set data.embedding: text)") from None
    if not np.isfinite(values).all():
        raise DataError(f"{table}: attribute values must be finite numbers")
    zero = [n for n, row in zip(names, values) if not np.any(row)]
    if zero:
        raise DataError(f"{table}: classes {zero} have all-zero attributes; each class needs a non-zero vector")
    return names, values.astype(np.float32), unseen


def unseen_classes(names: list[str], listed: str, column, table: Path) -> list[str]:
    """Unseen class names from data.unseen or the table's column; a class marked seen by one and unseen
    by the other is refused."""
    wanted = [n.strip() for n in listed.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise DataError(f"data.unseen: classes {unknown} are not in {table} (its classes: {names[:8]}"
                        f"{'...' if len(names) > 8 else ''})")
    if column is not None and wanted:
        clash = [n for n, u in zip(names, column) if u != (n in wanted)]
        if clash:
            raise DataError(f"{table}: classes {clash} are both seen and unseen: data.unseen and the table's "
                            f"'{UNSEEN_COLUMN}' column disagree; give one of them")
    if not wanted and column is not None:
        wanted = [n for n, u in zip(names, column) if u]
    if not wanted:
        raise DataError(f"{table}: no unseen classes; list them in data.unseen or mark them in an "
                        f"'{UNSEEN_COLUMN}' column of the table")
    if len(names) - len(set(wanted)) < 2:
        raise DataError(f"{table}: {len(names) - len(set(wanted))} seen classes; at least 2 are needed to learn "
                        f"anything that carries over to unseen ones")
    return [n for n in names if n in wanted]


def min_images(test_fraction: float) -> int:
    """Fewest images of a seen class that leave at least one for training and one for test-seen."""
    n = 2
    while int(round(test_fraction * n)) < 1 or n - int(round(test_fraction * n)) < 1:
        n += 1
    return n


def split(labels: np.ndarray, unseen_ids, test_fraction: float, seed: int):
    """Seen classes: a seeded per-class train / test-seen division (as `embedded.split_indices`);
    unseen classes: all test-unseen."""
    rng = np.random.default_rng(seed)
    trainval, test_seen = [], []
    for c in range(int(labels.max()) + 1):
        if c in unseen_ids:
            continue
        perm = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(perm)))
        test_seen.append(perm[:n_test])
        trainval.append(perm[n_test:])
    test_unseen = np.flatnonzero(np.isin(labels, list(unseen_ids)))
    return np.sort(np.concatenate(trainval)), np.sort(np.concatenate(test_seen)), test_unseen


def class_semantics(values: np.ndarray, embedding: str, text_model: str = "", encoder=None) -> np.ndarray:
    """(C, A) unit rows: attribute vectors L2-normalised per class (as xlsa17's att), or sentence
    embeddings of the descriptions (`zerodiffpp.data.text_encoder`; `encoder` is for tests)."""
    if embedding == "text":
        from zerodiffpp.data.text_encoder import encode
        return encode(values.tolist(), text_model, encoder=encoder)
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def load_folder(root, class_table: str = "classes.csv", unseen: str = "", embedding: str = "att",
                image_size: int = 112, batch_size: int = 16, test_fraction: float = 0.2, split_seed: int = 0,
                backbone: str = "efficientnet-lite0", backbone_weights: str = "", text_model: str = "",
                encoder=None, model=None) -> FeatureSet:
    """An image folder with its class table as a FeatureSet (the data.* params of the same names).
    Every check runs before the first feature is computed. `encoder` / `model`: a text encoder /
    image backbone already built (tests)."""
    root = Path(root)
    table = Path(class_table) if Path(class_table).is_absolute() else root / class_table
    names, values, column = read_class_table(table, embedding)
    folders = scan_classes(root)
    absent = [c for c in folders if c not in names]
    if absent:
        raise DataError(f"{table}: class folders {absent} of {root} are not in the table")
    no_folder = [n for n in names if n not in folders]
    if no_folder:
        raise DataError(f"data.root: {root} has no folder for the table's classes {no_folder} "
                        f"(every class, seen or unseen, needs its images)")
    unseen_names = unseen_classes(names, unseen, column, table)
    need = min_images(test_fraction)
    few = [f"{root / n} ({len(folders[n])})" for n in names if n not in unseen_names and len(folders[n]) < need]
    if few:
        raise DataError(f"too few images for the split: {', '.join(few)}; with data.test_fraction {test_fraction} "
                        f"a seen class needs at least {need} (one to train on, one test-seen)")
    files = [f for n in names for f in folders[n]]
    labels = np.concatenate([np.full(len(folders[n]), k, np.int64) for k, n in enumerate(names)])
    check_readable(files)
    att = class_semantics(values, embedding, text_model, encoder)
    unseen_ids = [names.index(n) for n in unseen_names]
    seen_ids = [k for k in range(len(names)) if k not in unseen_ids]
    if embedding == "att":
        bad = unlearnable_attributes(att, seen_ids, unseen_ids)
        if bad:  # a user's table may have such attributes on purpose; the embedded set refuses them
            log.warning("%s: unseen (class, attribute) pairs %s take one value across the seen classes; "
                        "their effect cannot be learned", table, [(names[c], j) for c, j in bad][:10])
    log.info("folder dataset: %d images, %d classes (%d unseen: %s), %s semantics %d-d", len(files), len(names),
             len(unseen_ids), ", ".join(unseen_names), embedding, att.shape[1])
    x = extract(ImageFiles(files), backbone, backbone_weights, image_size, batch_size, model=model)
    trainval, test_seen, test_unseen = split(labels, set(unseen_ids), test_fraction, split_seed)
    fs = FeatureSet(x=x, labels=labels, att=att, class_names=np.array(names),
                    trainval=trainval, test_seen=test_seen, test_unseen=test_unseen)
    fs.check(str(root))
    return fs
