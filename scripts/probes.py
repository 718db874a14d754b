"""What the diagnostic probes on a fixture share: their command line and the split they evaluate."""
from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parser(doc: str, ratio: float) -> argparse.ArgumentParser:
    """--root, --name, --ratio, --seed, --protocol (validation by default: no test image read), --preset."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="an xlsa17 folder")
    ap.add_argument("--name", default="CUB")
    ap.add_argument("--ratio", type=float, default=ratio)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protocol", choices=("validation", "test"), default="validation")
    ap.add_argument("--preset", type=Path, default=ROOT / "presets" / "cub-cpu.yaml")
    return ap


def load(a: argparse.Namespace) -> tuple[dict, object, object]:
    """-> (params.yaml with --preset merged and train.seen_ratio set, the choice split, the evaluated split)
    of zerodiffpp.baselines.panel.splits; one thread, as the studies run."""
    if not a.preset.exists():
        raise SystemExit(f"--preset {a.preset}: not found")
    if not (a.root / "att_splits.mat").exists():
        raise SystemExit(f"--root {a.root}: no att_splits.mat (an xlsa17 folder)")
    import torch
    import yaml

    from zerodiffpp.baselines.panel import splits
    from zerodiffpp.data.xlsa17 import load_xlsa17
    from zerodiffpp.runtime.params import load_params, merge_preset

    torch.set_num_threads(1)
    p = load_params(ROOT / "params.yaml")
    merge_preset(p, yaml.safe_load(a.preset.read_text()), str(a.preset))
    p["train"]["seen_ratio"] = a.ratio
    val, test = splits(load_xlsa17(a.root, a.name), a.ratio, a.seed, a.protocol)
    return p, val, test
