"""Which dataset `extract` reads: the embedded default or an xlsa17 benchmark folder."""
from __future__ import annotations

from zerodiffpp.data import FeatureSet, load_xlsa17


def load_source(p: dict) -> FeatureSet:
    if p["name"] == "embedded":
        from zerodiffpp.embedded import load_embedded
        return load_embedded(p["image_size"], p["extract_batch_size"], p["test_fraction"], p["split_seed"])
    return load_xlsa17(p["root"], p["name"], x_file=p["x_file"], r_file=p["r_file"], embedding=p["embedding"])
