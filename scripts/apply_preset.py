"""Merge a preset (presets/<name>.yaml) into params.yaml, keeping its comments, then validate.

    python -m scripts.apply_preset cub --root /data/xlsa17/CUB
"""
import argparse
from pathlib import Path

import yaml
from ruamel.yaml import YAML  # ships with dvc; round-trips comments

from zerodiffpp.runtime import paths
from zerodiffpp.runtime.errors import ParamsError
from zerodiffpp.runtime.params import load_params, merge_preset

PRESETS = Path(__file__).resolve().parents[1] / "presets"
EMBEDDED_ROOT = "zerodiffpp/assets"  # params.yaml's data.root for the embedded default


def apply(name: str, root: str | None, params_path: Path = paths.PARAMS) -> None:
    preset_path = PRESETS / f"{name}.yaml"
    if not preset_path.exists():
        raise SystemExit(f"{preset_path}: no such preset (have {sorted(p.stem for p in PRESETS.glob('*.yaml'))})")
    preset = yaml.safe_load(preset_path.read_text())
    if root:
        preset.setdefault("data", {})["root"] = root
    rt = YAML()
    rt.preserve_quotes = True
    params = rt.load(params_path.read_text())
    before = params_path.read_text()
    try:
        merge_preset(params, preset, str(preset_path))  # the merge scripts/study.py --preset makes
    except ParamsError as e:
        raise SystemExit(str(e)) from e
    data = params.get("data", {})
    if data.get("name") not in (None, "embedded", "folder") and data.get("root") == EMBEDDED_ROOT:
        # the embedded default's folder would pass validation and fail only in extract
        raise SystemExit(f"{preset_path}: sets data.name {data['name']} but data.root is still the embedded "
                         f"default's folder ({EMBEDDED_ROOT}); pass --root with the xlsa17 {data['name']} folder")
    with open(params_path, "w") as f:
        rt.dump(params, f)
    try:
        load_params(params_path)
    except ParamsError:
        params_path.write_text(before)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="awa2 | cub | sun")
    ap.add_argument("--root", help="xlsa17 dataset folder (sets data.root)")
    a = ap.parse_args()
    apply(a.name, a.root)
    print(f"params.yaml: applied presets/{a.name}.yaml")


if __name__ == "__main__":
    main()
