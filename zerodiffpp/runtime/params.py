"""Reading params.yaml: validated against a schema, and narrowed to what a stage declares in dvc.yaml.

A stage asks for `load_stage_params("train")` and gets only the keys that dvc.yaml lists under that
stage's `params:`. Reading anything else raises, so a stage cannot silently depend on a param that
DVC does not track for it. Values given per seen ratio (`PER_RATIO`) are resolved here, once
(`for_ratio`): every step sees plain numbers, and only pretrain reads train.seen_ratio itself (a
stage whose per-ratio value changes with the ratio reruns anyway: its inputs come from pretrain).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from zerodiffpp.runtime import paths
from zerodiffpp.runtime.errors import ParamsError
from zerodiffpp.runtime.methods import METHODS


def _choice(*options):
    return ("choice", options)


def _num(lo=-math.inf, hi=math.inf, *, lo_open=False, integer=False):
    return ("num", lo, hi, lo_open, integer)


POS_INT = _num(1, integer=True)
NONNEG_INT = _num(0, integer=True)
POS = _num(0, lo_open=True)
NONNEG = _num(0)
BOOL = ("bool",)
STR = ("str",)
# 'auto' (chosen on held-out seen classes) or a number in [-1, 1], or one per train.seen_ratio (values
# chosen on validation classes: scripts/study.py --protocol validation)
CALIBRATION = ("calibration",)
FRACTION_PER_RATIO = ("per_ratio", _num(0, 1))  # a number in [0, 1], or one per train.seen_ratio
BOOL_PER_RATIO = ("per_ratio", BOOL)  # true or false, or one per train.seen_ratio
COUNT = ("per_ratio", POS_INT)  # a positive integer, or one per train.seen_ratio: {1.0: 5400, 0.3: 1800, 0.1: 600}
COUNT_OR_ZERO = ("per_ratio", NONNEG_INT)  # the same, 0 allowed

SCHEMA: dict[str, Any] = {
    "method": _choice(*METHODS),
    "data": {
        "name": _choice("embedded", "folder", "AWA2", "CUB", "SUN"),
        "root": STR, "x_file": STR, "r_file": STR,
        "embedding": _choice("att", "sent", "text"),
        "class_table": STR, "unseen": STR, "text_model": STR, "backbone": STR, "backbone_weights": STR,
        "image_size": _num(32, integer=True), "extract_batch_size": POS_INT,
        "test_fraction": _num(0, 1, lo_open=True), "split_seed": NONNEG_INT,
        "protocol": _choice("test", "validation"), "val_classes": STR,
    },
    "train": {
        "seen_ratio": _num(0, 1, lo_open=True), "seed": NONNEG_INT,
        "device": _choice("auto", "cpu", "cuda"), "threads": POS_INT, "tf32": BOOL, "compile": BOOL,
    },
    "diffusion": {"timesteps": _num(2, integer=True), "beta_min": POS, "beta_max": POS, "time_dim": POS_INT},
    "sc": {
        "epochs": NONNEG_INT, "batch_size": _num(2, integer=True), "lr": POS, "temperature": POS,
        "hidden": POS_INT, "rep_dim": POS_INT, "proj_dim": POS_INT, "noise_std": NONNEG,
        "drop_prob": _num(0, 1),
    },
    "drg": {
        "epochs": NONNEG_INT, "batch_size": POS_INT, "lr": POS, "hidden": POS_INT, "critic_hidden": POS_INT,
        "critic_iter": POS_INT, "lambda_gp": NONNEG, "noise_dim": POS_INT, "input_step": _choice("current", "next"),
    },
    "gen": {
        "epochs": COUNT, "batch_size": POS_INT, "lr": POS, "encoder_lr": POS, "dec_lr": POS,
        "hidden": POS_INT, "critic_hidden": POS_INT, "dec_hidden": POS_INT, "noise_dim": POS_INT,
        "cond_dim": POS_INT, "critic_iter": POS_INT, "lambda_gp": NONNEG, "adaptive_gp": BOOL,
        "adaptive_gp_input": _choice("sum", "mean"),
        "gamma_adv": NONNEG, "gamma_vae": NONNEG, "gamma_rec": NONNEG, "gamma_x0": NONNEG, "gamma_xt": NONNEG,
        "gamma_ml": NONNEG, "ml_factor": NONNEG,
        "diffusion_critic": BOOL, "sc_view": BOOL, "mutual_learning": BOOL,
        "fake_latent": _choice("prior", "posterior"), "prototype_base": BOOL,
    },
    "fclswgan": {
        "epochs": COUNT, "batch_size": POS_INT, "lr": POS, "hidden": POS_INT, "critic_hidden": POS_INT,
        "noise_dim": POS_INT, "critic_iter": POS_INT, "lambda_gp": NONNEG, "cls_weight": NONNEG,
        "cls_epochs": POS_INT,
    },
    "diagnostics": {"every": NONNEG_INT, "per_class": POS_INT, "ridge": POS},
    "checkpoint": {"every_epochs": NONNEG_INT, "every_minutes": POS, "keep": BOOL},
    "synth": {"unseen_per_class": COUNT, "seen_per_class": COUNT_OR_ZERO, "recentre": FRACTION_PER_RATIO,
              "sampler": _choice("one_step", "progressive")},
    "tta": {
        "rounds": POS_INT, "keep_fraction": _num(0, 1, lo_open=True), "min_confidence": _num(0, 1),
        "epochs": NONNEG_INT, "batch_size": POS_INT, "lr": POS, "anchor_weight": NONNEG,
        "unseen_labels": _choice("classifier", "decoder"), "decoder_temperature": POS,
        "latent": _choice("posterior", "prior", "both"), "calibration": CALIBRATION,
        "gate": _choice("validation", "always"), "gate_margin": _num(0, 1), "base_refit": BOOL,
    },
    "diffgen": {"start_step": POS_INT, "per_feature": POS_INT, "max_per_class": POS_INT,
                "classes": _choice("all", "unseen")},
    "classifier": {"epochs": POS_INT, "batch_size": COUNT, "lr": POS, "features": _choice("V", "VS", "S"),
                   "normalise": BOOL_PER_RATIO, "calibration": CALIBRATION, "calibration_holdout": _num(0, 1, lo_open=True)},
    "report": {"oracle_folds": _num(2, integer=True), "probe_epochs": POS_INT, "seen_per_class": POS_INT},
}


def _check_value(spec, value, where: str):
    kind = spec[0]
    if kind == "choice":
        if value not in spec[1]:
            raise ParamsError(f"{where}: expected one of {list(spec[1])}, got {value!r}")
    elif kind == "per_ratio":
        values = value if isinstance(value, dict) else {1.0: value}
        for ratio, v in values.items():
            _check_value(spec[1], v, where)
            _check_value(_num(0, 1, lo_open=True), ratio, f"{where} (a train.seen_ratio key)")
    elif kind == "calibration":
        values = value if isinstance(value, dict) else {1.0: value}
        for ratio, v in values.items():
            if v != "auto":
                try:
                    _check_value(_num(-1, 1), v, where)
                except ParamsError as e:
                    raise ParamsError(f"{where}: expected 'auto' or a number in [-1, 1] (or one per "
                                      f"train.seen_ratio), got {value!r}") from e
            _check_value(_num(0, 1, lo_open=True), ratio, f"{where} (a train.seen_ratio key)")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
    elif kind == "str":
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
    elif kind == "num":
        _, lo, hi, lo_open, integer = spec
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (write decimals like 0.001: PyYAML reads 1e-3 as a string)" if isinstance(value, str) else ""
            raise ParamsError(f"{where}: expected a number, got {value!r}{hint}")
        if integer and not float(value).is_integer():
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
            lo_b = "(" if lo_open else "["
            raise ParamsError(f"{where}: expected a value in {lo_b}{lo}, {hi}], got {value!r}")


def validate(params: dict, source: str = str(paths.PARAMS), schema: dict = SCHEMA, prefix: str = "") -> None:
    """Raise ParamsError for unknown keys, missing keys or bad values, naming the file and key."""
    if not isinstance(params, dict):
        raise ParamsError(f"{source}: {prefix or 'top level'} must be a mapping, got {type(params).__name__}")
    for key in params:
        if key not in schema:
            raise ParamsError(f"{source}: unknown key '{prefix}{key}'; known keys here: {sorted(schema)}")
    for key, spec in schema.items():
        where = f"{source}: {prefix}{key}"
        if key not in params:
            raise ParamsError(f"{where} is missing")
        if isinstance(spec, dict):
            validate(params[key], source, spec, f"{prefix}{key}.")
        else:
            _check_value(spec, params[key], where)
    if not prefix:
        _check_cross(params, source)


def _check_cross(p: dict, source: str) -> None:
    T = p["diffusion"]["timesteps"]
    if p["diffgen"]["start_step"] >= T:
        raise ParamsError(f"{source}: diffgen.start_step must be < diffusion.timesteps ({T}), "
                          f"got {p['diffgen']['start_step']}")
    for_ratio(p, source)  # a per-ratio value without the run's ratio
    if p["diffusion"]["beta_max"] <= p["diffusion"]["beta_min"]:
        raise ParamsError(f"{source}: diffusion.beta_max must exceed diffusion.beta_min")
    if p["data"]["val_classes"].strip() and p["data"]["protocol"] != "validation":
        raise ParamsError(f"{source}: data.val_classes ({p['data']['val_classes']!r}) applies only under "
                          f"data.protocol: validation, got protocol {p['data']['protocol']!r}")
    if p["tta"]["base_refit"] and not p["gen"]["prototype_base"]:
        raise ParamsError(f"{source}: tta.base_refit refits the generator's prototype base; it needs "
                          f"gen.prototype_base: true, got false")
    _check_folder(p["data"], source)
    if not p["data"]["root"].strip():
        what = {"embedded": "zerodiffpp/assets (the embedded default)",
                "folder": "your image folder (one subfolder per class) when data.name is folder"}.get(
            p["data"]["name"], f"an xlsa17 folder when data.name is {p['data']['name']}")
        raise ParamsError(f"{source}: data.root must name the dataset's folder: {what}; it is a dependency of the "
                          f"extract stage, so DVC notices a replaced input file")


def _check_folder(d: dict, source: str) -> None:
    """The keys of `data.name: folder` (your own image folder) against the other datasets'."""
    folder = d["name"] == "folder"
    if folder and d["embedding"] not in ("att", "text"):
        raise ParamsError(f"{source}: data.embedding for data.name 'folder' is att (an attribute table) or text "
                          f"(descriptions), got {d['embedding']!r}")
    if d["embedding"] == "text" and not folder:
        raise ParamsError(f"{source}: data.embedding 'text' applies to data.name 'folder' (a class table of "
                          f"descriptions), got data.name {d['name']!r}")
    if folder and not d["class_table"].strip():
        raise ParamsError(f"{source}: data.class_table must name the class table (a CSV in data.root) for "
                          f"data.name 'folder'")
    for key in ("unseen", "backbone_weights"):
        if d[key].strip() and not folder:
            raise ParamsError(f"{source}: data.{key} ({d[key]!r}) applies only to data.name 'folder'")
    if d["backbone"] != "efficientnet-lite0":
        if not folder:
            raise ParamsError(f"{source}: data.backbone {d['backbone']!r} applies only to data.name 'folder' "
                              f"(the embedded set's features are EfficientNet-Lite0's)")
        if not d["backbone_weights"].strip():
            raise ParamsError(f"{source}: data.backbone {d['backbone']!r} (torchvision) needs data.backbone_weights, "
                              f"a local state-dict file")


def load_params(path: Path | str = paths.PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: file not found")
    with open(path) as f:
        params = yaml.safe_load(f)
    validate(params, str(path))
    return params


class StageParams(dict):
    """A nested dict that names the stage and dvc.yaml when code reads an undeclared key."""

    def __init__(self, data: dict, stage: str, prefix: str = ""):
        super().__init__({k: StageParams(v, stage, f"{prefix}{k}.") if isinstance(v, dict) else v
                          for k, v in data.items()})
        self._stage, self._prefix = stage, prefix

    def __missing__(self, key):
        raise KeyError(f"stage '{self._stage}' reads param '{self._prefix}{key}' but dvc.yaml does not declare it "
                       f"under stages.{self._stage}.params")


PER_RATIO = ("gen.epochs", "fclswgan.epochs", "synth.unseen_per_class", "synth.seen_per_class", "synth.recentre",
             "classifier.batch_size", "classifier.normalise",
             "classifier.calibration", "tta.calibration")  # keys that may be {seen ratio: value}


COUNT_KEYS = ("epochs", "unseen_per_class", "seen_per_class", "batch_size")


def for_ratio(params: dict, source: str = str(paths.PARAMS)) -> dict:
    """`params` with every PER_RATIO value resolved for its train.seen_ratio: what the steps read."""
    ratio = params["train"]["seen_ratio"]
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in params.items()}
    for key in PER_RATIO:
        section, leaf = key.split(".")
        count = leaf in COUNT_KEYS
        value = per_ratio_value(out[section][leaf], ratio, f"{source}: {key}", "count" if count else "value")
        out[section][leaf] = int(value) if count else value
    return out


def per_ratio_value(value, seen_ratio: float, where: str = "value", what: str = "value"):
    """A setting that may be given per train.seen_ratio ({1.0: a, 0.3: b}): the one for `seen_ratio`.
    A plain value holds for every ratio."""
    if not isinstance(value, dict):
        return value
    for ratio, v in value.items():
        if math.isclose(float(ratio), seen_ratio):
            return v
    raise ParamsError(f"{where} gives {what}s for seen ratios {sorted(value)}, not for train.seen_ratio {seen_ratio}; "
                      f"add it or give one {'number' if what == 'count' else what}")


def merge_preset(params: dict, preset: dict, source: str) -> dict:
    """`params` with a preset's sections merged in (presets/*.yaml: {section: {key: value}} or a top-level
    value such as method); a key params.yaml does not have is refused. In place, and returned."""
    for section, values in preset.items():
        for key, value in (values.items() if isinstance(values, dict) else [(None, values)]):
            dotted = section if key is None else f"{section}.{key}"
            try:
                assign(params, dotted, value)
            except ParamsError:
                raise ParamsError(f"{source}: unknown key {dotted}") from None
    return params


def parse_assignment(text: str, flag: str = "--set") -> tuple[str, Any]:
    """'section.key=value' (a command line's override) -> ('section.key', value read as YAML, so that
    0.001, auto and {1.0: 20, 0.1: 150} come back typed)."""
    key, eq, value = text.partition("=")
    if not eq or not key or "" in key.split("."):
        raise ParamsError(f"{flag} {text!r}: expected KEY=VALUE with a params.yaml key such as gen.lr=0.001")
    return key, yaml.safe_load(value)


def assign(params: dict, key: str, value, flag: str = "--set") -> None:
    """params[section][...][leaf] = value for an existing dotted `key`; a key params.yaml does not
    have is refused (a typo would otherwise change nothing and go unnoticed)."""
    parent, _, leaf = key.rpartition(".")
    try:
        node = lookup(params, parent) if parent else params
        lookup(node, leaf)
    except KeyError:
        node = None
    if not isinstance(node, dict):
        raise ParamsError(f"{flag} {key}: params.yaml has no such key (expected KEY=VALUE with a params.yaml key)")
    node[leaf] = value


def apply_assignment(params: dict, text: str, flag: str = "--set") -> None:
    """`parse_assignment` then `assign`; an unknown key is reported with the whole assignment."""
    key, value = parse_assignment(text, flag)
    try:
        assign(params, key, value, flag)
    except ParamsError as e:
        raise ParamsError(f"{flag} {text!r}: params.yaml has no key {key} (expected KEY=VALUE with a params.yaml "
                          f"key)") from e


def lookup(params: dict, key: str):
    """The value at dotted `key` ("tta.rounds"); KeyError(key) if any part is missing."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def declared_keys(stage: str, dvc_yaml: Path | str = paths.DVC_YAML) -> list[str]:
    with open(dvc_yaml) as f:
        spec = yaml.safe_load(f)
    try:
        declared = spec["stages"][stage].get("params", [])
    except KeyError as e:
        raise ParamsError(f"{dvc_yaml}: no stage named '{stage}'") from e
    keys = []
    for item in declared:
        if isinstance(item, dict):  # {file: [keys]}: only params.yaml is used by this project
            for file, ks in item.items():
                if Path(file) != paths.PARAMS:
                    raise ParamsError(f"{dvc_yaml}: stage '{stage}' reads params from {file}; use params.yaml")
                keys.extend(ks)
        else:
            keys.append(item)
    return keys


def load_stage_params(stage: str, params_path: Path | str = paths.PARAMS,
                      dvc_yaml: Path | str = paths.DVC_YAML) -> StageParams:
    """Validated params, per-ratio values resolved (`for_ratio`), narrowed to the keys `stage` declares in dvc.yaml."""
    full = for_ratio(load_params(params_path))
    out: dict = {}
    for key in declared_keys(stage, dvc_yaml):
        try:
            node = lookup(full, key)
        except KeyError:
            raise ParamsError(f"{dvc_yaml}: stage '{stage}' declares '{key}', which {params_path} lacks") from None
        parts, target = key.split("."), out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = node
    return StageParams(out, stage)
