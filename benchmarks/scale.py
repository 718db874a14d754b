"""Benchmark: every stage at benchmark scale (CUB, SUN or AWA2 shapes) on a generated dataset.

Writes a learnable xlsa17 folder of the chosen shape (the real class counts, split sizes and
attribute width, 2048-d features: binary class attributes through a fixed random linear map plus
noise), copies the repository's tracked files into a scratch workspace, and runs each stage script
there in turn, as `dvc repro` would, with the widths and epoch caps given. Prints per stage the
wall time and the peak resident memory of its process, and the size of what it writes (what the
DVC cache stores per experiment). No file from ../shared is needed.

    python -m benchmarks.scale --shape sun                       # default widths, 1 epoch per trainer
    python -m benchmarks.scale --shape awa2 --preset             # the preset's widths and synthetic counts
    python -m benchmarks.scale --shape cub --width 512 --epochs 2 --keep /tmp/cub-run
    python -m benchmarks.scale --shape cub --preset --iters 2       # paper widths on CPU: memory, not speed

Each stage runs in a process of its own (`python -m benchmarks.scale STAGE --stage-only`), which
reads its peak resident memory (VmHWM in /proc/self/status) when the stage ends: the stage's own
peak, not one inherited across fork and exec. `--iters N` caps the iterations of every GAN and
encoder epoch at N (a benchmark-only patch of `iters_per_epoch` in that process) and every
classifier, probe and DiffTTA run at one epoch, so paper widths with the presets' synthetic counts
run on a CPU: the arrays each stage holds are the full-size ones.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["extract", "pretrain", "train", "adapt", "synthesize", "classify", "report"]
# seen / unseen classes, attributes, trainval / test-seen / test-unseen images (xlsa17 proposed split)
SHAPES = {"awa2": ("AWA2", 40, 10, 85, 23527, 5882, 7913),
          "cub": ("CUB", 150, 50, 312, 7057, 1764, 2967),
          "sun": ("SUN", 645, 72, 102, 10320, 2580, 1440)}
OUTPUTS = {"extract": ["data/features"], "pretrain": ["data/prepared", "models/pretrain"],
           "train": ["models/generator"], "adapt": ["models/adapted"], "synthesize": ["data/synthetic"],
           "classify": ["models/classifier"], "report": ["metrics"]}


def write_dataset(folder: Path, shape: str, x_dim: int = 2048, seed: int = 0) -> None:
    """res101.mat + att_splits.mat of `shape`, 1-based as xlsa17 stores them."""
    from scipy.io import savemat
    _, n_seen, n_unseen, att_dim, n_trainval, n_test_seen, n_test_unseen = SHAPES[shape]
    rng = np.random.default_rng(seed)
    c = n_seen + n_unseen
    att = (rng.random((c, att_dim)) < 0.5) + 0.05
    att = att / np.linalg.norm(att, axis=1, keepdims=True)
    seen_labels = np.arange(n_trainval + n_test_seen) % n_seen
    unseen_labels = n_seen + np.arange(n_test_unseen) % n_unseen
    labels = np.concatenate([seen_labels, unseen_labels])
    x = (att[labels] @ rng.normal(size=(att_dim, x_dim)) + 0.1 * rng.normal(size=(len(labels), x_dim)))
    x = np.maximum(x, 0).astype(np.float32)  # ResNet features are post-ReLU
    order = rng.permutation(n_trainval + n_test_seen)
    loc = lambda idx: (np.asarray(idx) + 1).reshape(-1, 1)  # noqa: E731
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "res101.mat", {"features": x.T, "labels": (labels + 1).reshape(-1, 1)})
    savemat(folder / "att_splits.mat", {
        "att": att.T, "trainval_loc": loc(order[:n_trainval]), "test_seen_loc": loc(order[n_trainval:]),
        "test_unseen_loc": loc(np.arange(n_trainval + n_test_seen, len(labels))),
        "allclasses_names": np.array([[f"class{k:03d}"] for k in range(c)], dtype=object)})


def scaled_params(shape: str, root: Path, width: int | None, epochs: int, preset: bool,
                  iters: int | None = None) -> dict:
    """params.yaml with the dataset, the preset (when asked) and every trainer capped at `epochs`."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"].update(name=SHAPES[shape][0], root=str(root))
    if preset:
        for section, values in yaml.safe_load((ROOT / "presets" / f"{shape}.yaml").read_text()).items():
            p[section].update(values)
        p["data"]["root"] = str(root)
    if width:
        for section, keys in {"sc": ["hidden"], "drg": ["hidden", "critic_hidden"], "fclswgan": ["hidden", "critic_hidden"],
                              "gen": ["hidden", "critic_hidden", "dec_hidden"]}.items():
            p[section].update({k: width for k in keys})
    for section in ("sc", "drg", "gen", "fclswgan"):
        p[section]["epochs"] = min(p[section]["epochs"], epochs)
    p["tta"]["epochs"] = min(p["tta"]["epochs"], epochs)
    if iters:  # classifiers and probes: one epoch (their arrays are full size whatever the epochs)
        p["tta"]["epochs"] = p["classifier"]["epochs"] = p["report"]["probe_epochs"] = 1
        p["fclswgan"]["cls_epochs"] = 1
    return p


PEAK_LINE = "scale: stage peak resident (VmHWM) {} MiB"


def stage_only(stage: str, iters: int | None) -> None:
    """Run one stage in this process (in the workspace), with `iters` capping every epoch of the
    iteration-counted trainers, then print this process's own resident high-water mark."""
    import importlib

    from zerodiffpp.generators import dfg, drg, fclswgan, sc
    if iters:
        for module in (dfg, drg, fclswgan, sc):
            real = module.iters_per_epoch
            module.iters_per_epoch = lambda n, batch, real=real: min(iters, real(n, batch))
    module = importlib.import_module(f"stages.{stage}")
    from zerodiffpp.runtime.session import run_stage as run
    run(stage, module.main)
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(PEAK_LINE.format(kib // 1024), file=sys.stderr)


def run_stage(stage: str, workspace: Path, iters: int | None = None) -> tuple[float, float, str]:
    """(seconds, peak resident MiB, peak GPU MiB or '-') of the stage in a process of its own in `workspace`."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "benchmarks.scale", "--stage-only", stage] + (["--iters", str(iters)] if iters else [])
    proc = subprocess.run(cmd, cwd=workspace, env=dict(os.environ, TQDM_DISABLE="1"), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
    peak = re.search(re.escape(PEAK_LINE.split("{}")[0]) + r"(\d+)", proc.stderr)
    gpu = re.search(r"peak GPU memory (\d+) MiB", proc.stderr)
    return time.perf_counter() - start, float(peak.group(1)), gpu.group(1) if gpu else "-"


def size_mib(paths: list[Path]) -> float:
    total = 0
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total / 2 ** 20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage-only", metavar="STAGE", help=argparse.SUPPRESS)  # internal: one stage, this process
    ap.add_argument("--shape", choices=sorted(SHAPES))
    ap.add_argument("--width", type=int, default=None, help="every hidden width (default: params.yaml or the preset)")
    ap.add_argument("--epochs", type=int, default=1, help="cap on every trainer's epochs")
    ap.add_argument("--preset", action="store_true", help="apply presets/<shape>.yaml (widths, synthetic counts)")
    ap.add_argument("--threads", type=int, default=None, help="train.threads (default: params.yaml)")
    ap.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="train.device")
    ap.add_argument("--keep", type=Path, default=None, help="keep the workspace here instead of a temp folder")
    ap.add_argument("--iters", type=int, default=None,
                    help="cap every GAN / encoder epoch at N iterations and classifiers at 1 epoch (paper widths on CPU)")
    a = ap.parse_args(argv)
    if a.stage_only:
        return stage_only(a.stage_only, a.iters)
    if a.shape is None:
        ap.error("--shape is required")
    scratch = Path(tempfile.mkdtemp(prefix=f"scale-{a.shape}-")) if a.keep is None else a.keep
    try:
        data, workspace = scratch / "xlsa17" / SHAPES[a.shape][0], scratch / "repo"
        t = time.perf_counter()
        write_dataset(data, a.shape)
        print(f"{a.shape}: generated xlsa17 folder in {time.perf_counter() - t:.0f} s ({size_mib([data]):.0f} MiB)")
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for f in files:
            if (ROOT / f).is_file() and not f.startswith(("results/", "metrics/", "plots/", "dvclive/")):
                (workspace / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, workspace / f)
        p = scaled_params(a.shape, data, a.width, a.epochs, a.preset, a.iters)
        if a.threads:
            p["train"]["threads"] = a.threads
        p["train"]["device"] = a.device
        (workspace / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        print(f"widths: gen {p['gen']['hidden']} / critics {p['gen']['critic_hidden']} / dec {p['gen']['dec_hidden']}, "
              f"epochs capped at {a.epochs}, unseen_per_class {p['synth']['unseen_per_class']}, "
              f"train.threads {p['train']['threads']}"
              + (f", {a.iters} iterations per GAN / encoder epoch, classifiers 1 epoch" if a.iters else "") + "\n")
        print("| stage | seconds | peak resident MiB | peak GPU MiB | writes MiB |")
        print("|---|---|---|---|---|")
        total = 0.0
        for stage in STAGES:
            seconds, peak, gpu = run_stage(stage, workspace, a.iters)
            total += seconds
            writes = size_mib([workspace / o for o in OUTPUTS[stage]])
            print(f"| {stage} | {seconds:.1f} | {peak:.0f} | {gpu} | {writes:.0f} |", flush=True)
        cached = size_mib([workspace / o for outs in OUTPUTS.values() for o in outs if o != "metrics"])
        print(f"| all | {total:.1f} | | | {cached:.0f} (DVC-cached outputs) |")
    finally:
        if a.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
