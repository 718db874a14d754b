"""Seeds, devices, threads and logging: what every stage sets up before it works."""
from __future__ import annotations

import logging
import random
import sys
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from zerodiffpp.runtime.errors import InputError, ParamsError

log = logging.getLogger("zerodiffpp")
LOG_DIR = Path("logs")  # per-stage debug logs (git-ignored; not DVC outputs)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's `main`. Everything the package logs, DEBUG included, also goes to
    logs/<name>.log. A bad input the user can fix (DataError, ParamsError) is printed as one line
    (what, where, what was expected) and the stage exits 1, its traceback in that log only; any
    other exception is a bug and propagates with its traceback."""
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
        main()
        if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
            log.info("peak GPU memory %.0f MiB", torch.cuda.max_memory_allocated() / 2 ** 20)
    except InputError as e:
        log.debug("stage %s failed:\n%s", name, traceback.format_exc())
        print(f"ERROR: stage {name}: {e}  (traceback: {debug_log})", file=sys.stderr)
        sys.exit(1)


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
