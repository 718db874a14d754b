"""Ordering the pseudo-labelled test features by confidence, shared by DiffTTA's selection (`difftta`)
and DiffGen's sources (`diffgen`), so that both break ties the same way."""
from __future__ import annotations

import numpy as np


def tie_ranks(n: int, seed: int) -> np.ndarray:
    """A seeded random rank for each of the n pooled test features, to break ties in confidence. The
    pool lists test-seen before test-unseen features; by position, ties (common where the softmax
    saturates at 1.0) would always favour test-seen ones."""
    return np.random.default_rng([seed, n]).permutation(n)


def most_confident_first(pos: np.ndarray, conf: np.ndarray, rank: np.ndarray | None) -> np.ndarray:
    """`pos` ordered by decreasing confidence, ties by `rank` (None: by position)."""
    tiebreak = pos if rank is None else rank[pos]
    return pos[np.lexsort((tiebreak, -conf[pos]))]
