"""Resumable long stages (params section `checkpoint`): a killed or preempted `dvc repro` resumes
where it stopped when the same command is run again.

DVC 3 has no checkpoints, and it removes a stage's outputs before running it, so a stage keeps its
own: `.checkpoints/<stage>/<key>/<part>.pt` (git-ignored, never a DVC output). The key is a digest
of everything the stage's result depends on: its params as dvc.yaml declares them, the device type
`train.device` resolves to, and the bytes of every dependency (code and data) dvc.yaml lists for it.
A changed param, device type, input file or module gives another key, so a stale checkpoint is never
resumed (and is removed). A part (the SC encoder, the DRG, the generator) is saved atomically and
durably (files.atomic_path) every `checkpoint.every_epochs` epochs or `checkpoint.every_minutes`
minutes, and at its end, with its networks, optimisers, every random stream of the process (torch CPU
and CUDA, numpy, Python), its epoch and its curve; resuming restores all of them, so on a CPU a
resumed run ends bit-identical to an uninterrupted one. A checkpoint that cannot be read anyway (one
cut short before writes were flushed, or by a failing disk) is reported and its part starts afresh.
When the stage has written its outputs the checkpoints go (`checkpoint.keep: true` keeps them).
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import yaml

from zerodiffpp.runtime import files, paths
from zerodiffpp.runtime.session import resolve_device

log = logging.getLogger(__name__)
CHECKPOINT_DIR = Path(".checkpoints")  # git-ignored, never a DVC output (DVC removes outputs before a stage runs)


def rng_state() -> dict:
    """Every random stream the training loops draw from."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _digest_path(h, path: Path) -> None:
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    if not files:
        h.update(f"missing:{path}".encode())
    for f in files:
        h.update(str(f).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)


def stage_key(stage: str, params: dict, dvc_yaml: Path | str = paths.DVC_YAML) -> str:
    """A digest of the stage's params and of every dependency dvc.yaml lists for it."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for dep in yaml.safe_load(Path(dvc_yaml).read_text())["stages"][stage].get("deps", []):
        _digest_path(h, Path(dep))
    return h.hexdigest()[:16]


class Checkpoints:
    """The checkpoints of one run of one stage. `part(name)` gives each resumable loop its own file."""

    def __init__(self, stage: str, params: dict, settings: dict, root: Path | str = CHECKPOINT_DIR):
        self.stage, self.settings = stage, settings
        self.stage_dir = Path(root) / stage
        # the checkpoint settings themselves do not change what the stage computes; the device type does,
        # and `train.device: auto` names both: a run resumed on a GPU must not load a CPU run's state
        keyed = {k: v for k, v in params.items() if k != "checkpoint"}
        keyed["device_type"] = resolve_device(params["train"]["device"]).type
        self.dir = self.stage_dir / stage_key(stage, keyed)
        for stale in (d for d in self.stage_dir.glob("*") if d != self.dir):
            log.info("%s: removing a checkpoint of other params, inputs or device type (%s)", stage, stale)
            shutil.rmtree(stale, ignore_errors=True)

    def part(self, name: str) -> "Part":
        return Part(self, name)

    def finish(self) -> None:
        """The stage wrote its outputs: its checkpoints are no longer needed."""
        if not self.settings["keep"]:
            shutil.rmtree(self.stage_dir, ignore_errors=True)


class Part:
    """One resumable loop (`every_epochs` / `every_minutes` apart, and at its end)."""

    def __init__(self, owner: Checkpoints, name: str):
        self.owner, self.name = owner, name
        self.path = owner.dir / f"{name}.pt"
        self.last_save = time.monotonic()

    def load(self) -> dict | None:
        """The saved state (with the random streams restored), or None to start from scratch."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as e:  # e.g. cut short by a crash: crashing here would stop every rerun too
            log.warning("%s (%s): cannot read the checkpoint %s (%s: %s); starting this part afresh",
                        self.owner.stage, self.name, self.path, type(e).__name__, e)
            return None
        set_rng_state(state["rng"])
        stamp = datetime.fromtimestamp(self.path.stat().st_mtime).strftime("%H:%M")
        log.info("resuming %s (%s) at epoch %d of %d, checkpoint of %s (%s)", self.owner.stage, self.name,
                 state["epoch"], state["epochs"], stamp, self.path)
        return state

    def due(self, epoch_done: int, epochs: int) -> bool:
        s = self.owner.settings
        return (epoch_done == epochs or (s["every_epochs"] > 0 and epoch_done % s["every_epochs"] == 0)
                or time.monotonic() - self.last_save >= 60 * s["every_minutes"])

    def save(self, epoch_done: int, epochs: int, state: dict) -> None:
        """`state`: the loop's networks and optimisers (state dicts) and anything else it needs."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        files.save_torch(self.path, {**state, "epoch": epoch_done, "epochs": epochs, "rng": rng_state()})
        self.last_save = time.monotonic()
        log.debug("%s (%s): checkpoint at epoch %d -> %s", self.owner.stage, self.name, epoch_done, self.path)

    @staticmethod
    def restore(state: dict, **objects) -> None:
        """Load the state dicts of networks and optimisers saved under these names."""
        for name, obj in objects.items():
            obj.load_state_dict(state[name])

    def maybe_save(self, epoch_done: int, epochs: int, objects: dict, **extra) -> None:
        """Save when due: the state dicts of `objects` (networks, optimisers) by name, and `extra`."""
        if self.due(epoch_done, epochs):
            self.save(epoch_done, epochs, {**{k: v.state_dict() for k, v in objects.items()}, **extra})
