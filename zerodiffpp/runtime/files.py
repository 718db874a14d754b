"""Atomic writers: every output is written to a temporary file beside it, flushed to disk, then
renamed into place, so an interrupted or failed stage (or a power cut, or a hard preemption) never
leaves a half-written file behind."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from zerodiffpp.runtime.errors import DataError


_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str):
    """Yield a temporary path in the target's folder; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give outputs the usual mode
        # without the fsync the rename can reach the disk before the data: a machine that dies then
        # leaves a truncated file under the final name (a checkpoint every rerun would fail to load)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself, so the new file is there after a crash
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_npz(path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npz(path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run the stage that produces it (dvc repro)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_torch(path, obj) -> None:
    """torch.save names the zip archive's root folder after the file it writes to, so saving to the
    random temporary name directly would give every run different bytes (and DVC a different hash)
    for the same weights. Serialised in memory first, the bytes depend on the object only."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())


def load_torch(path, device="cpu"):
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run the stage that produces it (dvc repro)")
    return torch.load(path, map_location=device, weights_only=False)


def load_json(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run the stage that produces it (dvc repro)")
    return json.loads(path.read_text())


def save_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")


def save_csv(path, rows: list[dict], fieldnames: list[str] | None = None) -> None:
    fieldnames = fieldnames or (list(rows[0]) if rows else [])
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fieldnames)
            w.writeheader()
            w.writerows(rows)


def save_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
