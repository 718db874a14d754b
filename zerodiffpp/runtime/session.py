"""Seeds, devices, threads and logging: what every stage sets up before it works."""
from __future__ import annotations

import logging
import os
import random
import sys
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from zerodiffpp.runtime import paths
from zerodiffpp.runtime.errors import InputError, ParamsError
from zerodiffpp.runtime.params import declared_keys, load_stage_params, lookup

log = logging.getLogger("zerodiffpp")
LOG_DIR = Path("logs")  # per-stage debug logs (git-ignored; not DVC outputs)
DVC_LOCK = Path("dvc.lock")
PARALLEL = "parallel runs in one workspace need `dvc exp run --temp` or `--queue`"


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's `main`. Everything the package logs, DEBUG included, also goes to
    logs/<name>.log. A bad input the user can fix (DataError, ParamsError) is printed as one line
    (what, where, what was expected) and the stage exits 1, its traceback in that log only; any
    other exception is a bug and propagates with its traceback.

    A second `dvc exp run -S ...` in the same workspace rewrites params.yaml before DVC refuses it, under
    the run already going. So the stage fails, naming the keys, if the params it reads differ from what
    its upstream stages ran with (dvc.lock, under DVC) or changed while it ran: its outputs would
    belong to neither setting."""
    setup_logging()
    LOG_DIR.mkdir(exist_ok=True)
    debug_log = LOG_DIR / f"{name}.log"
    handler = logging.FileHandler(debug_log, mode="w")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    for console in logging.getLogger().handlers:  # the console keeps INFO
        console.setLevel(logging.INFO)
    try:
        started = load_stage_params(name)
        check_upstream(name)
        main()
        changed = changes(started, load_stage_params(name))
        if changed:
            raise ParamsError(f"{paths.PARAMS} changed while the stage ran: {changed}; its outputs mix both "
                              f"settings ({PARALLEL})")
        if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
            log.info("peak GPU memory %.0f MiB", torch.cuda.max_memory_allocated() / 2 ** 20)
    except InputError as e:
        log.debug("stage %s failed:\n%s", name, traceback.format_exc())
        print(f"ERROR: stage {name}: {e}  (traceback: {debug_log})", file=sys.stderr)
        sys.exit(1)


def flat(params: dict, prefix: str = "") -> dict:
    """Nested sections as dotted leaf keys: {'train': {'seed': 3}} -> {'train.seed': 3}."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changes(before: dict, after: dict) -> str:
    """'key old -> new' for each leaf key whose value differs ('' if none)."""
    b, a = flat(before), flat(after)
    return ", ".join(f"{k} {b.get(k)!r} -> {a.get(k)!r}" for k in sorted(b.keys() | a.keys()) if b.get(k) != a.get(k))


def upstream(stage: str, stages: dict) -> set[str]:
    """The stages whose outputs `stage` reads, directly or through others (dvc.yaml's `stages`)."""
    def outs(spec):
        return [next(iter(o)) if isinstance(o, dict) else o
                for kind in ("outs", "metrics", "plots") for o in spec.get(kind, [])]

    def feeds(out: str, dep: str) -> bool:
        return out == dep or dep.startswith(out + "/") or out.startswith(dep + "/")

    found, todo = set(), [stage]
    while todo:
        deps = stages[todo.pop()].get("deps", [])
        for other, spec in stages.items():
            if other not in found and any(feeds(o, d) for o in outs(spec) for d in deps):
                found.add(other)
                todo.append(other)
    return found - {stage}


def check_upstream(stage: str) -> None:
    """Under DVC, the params this stage shares with its upstream stages must be the values dvc.lock
    records for them. `dvc repro` brings every upstream stage up to date before this one, so a
    difference means params.yaml changed during the run. Outside DVC a dvc.lock may belong to other
    params (a copied repository), so it is not read. Raw params.yaml values: dvc.lock holds them so."""
    if "DVC_STAGE" not in os.environ or not DVC_LOCK.exists():
        return
    raw = yaml.safe_load(paths.PARAMS.read_text())
    mine = flat({key: lookup(raw, key) for key in declared_keys(stage)})
    locked = (yaml.safe_load(DVC_LOCK.read_text()) or {}).get("stages", {})
    for other in sorted(upstream(stage, yaml.safe_load(paths.DVC_YAML.read_text())["stages"])):
        ran = flat(locked.get(other, {}).get("params", {}).get(str(paths.PARAMS), {}))
        shared = {k: v for k, v in mine.items() if k in ran}
        changed = changes({k: ran[k] for k in shared}, shared)
        if changed:
            raise ParamsError(f"{paths.PARAMS} differs from what upstream stage {other} ran with ({DVC_LOCK}): "
                              f"{changed}; it changed during this run ({PARALLEL}), or {other} is out of date "
                              f"(dvc repro without -s)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamsError("train.device is 'cuda' but torch sees no CUDA device (a CPU build of torch, or no "
                          "GPU visible); use 'auto' or 'cpu', or install a CUDA build (README, Install)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(train_params: dict, seed_offset: int = 0) -> torch.device:
    """Logging, threads, seed and device from the `train` params section.

    `seed_offset` gives each stage its own random stream from the one `train.seed`, so that
    re-running one stage does not depend on how many numbers an earlier stage drew."""
    setup_logging()
    torch.set_num_threads(int(train_params["threads"]))
    seed_everything(int(train_params["seed"]) * 1000 + seed_offset)
    device = resolve_device(train_params["device"])
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:  # TF32 matrix products on Ampere and later: about 2x the float32 rate, 10-bit mantissa inputs
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(train_params["tf32"])
    log.info("device %s, %d threads, seed %d%s", device, torch.get_num_threads(), train_params["seed"],
             f", tf32 {'on' if train_params['tf32'] else 'off'}" if device.type == "cuda" else "")
    return device


def compile_networks(networks, enabled: bool) -> None:
    """train.compile: torch.compile each network in place, as nanoGPT compiles its model. A module is
    compiled through its forward (`Module.compile`: the state dict keeps its keys); a module that is
    called through other methods names them in `compiled_methods` (the critics: judge, condition,
    input_gradient), and those are compiled on the instance. zero_grad, backward, the optimiser
    step and the requires_grad toggles stay outside the compiled graphs, in eager Python. Compilation
    costs tens of seconds up front, so it pays on long GPU runs, not on the CPU default."""
    if not enabled:
        return
    for net in networks:
        names = getattr(net, "compiled_methods", ())
        for name in names:
            setattr(net, name, torch.compile(getattr(net, name)))
        if not names:
            net.compile()
