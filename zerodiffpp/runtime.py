"""Seeds, devices, threads and logging: what every stage sets up before it works."""
from __future__ import annotations

import logging
import random

import numpy as np
import torch

log = logging.getLogger("zerodiffpp")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
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
    log.info("device %s, %d threads, seed %d", device, torch.get_num_threads(), train_params["seed"])
    return device


def generator_for(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
