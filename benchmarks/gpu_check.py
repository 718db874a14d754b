"""The GPU check: one command, on a CUDA machine, about 5-8 minutes.

    python -m benchmarks.gpu_check            # or: make gpu-check

1. the CUDA tests (tests/test_cuda.py): no host sync in any training iteration (under
   torch.cuda.set_sync_debug_mode("error")), CPU and GPU agree on a critic step, a tiny pipeline
   runs end to end on the GPU;
2. the train-step benchmark on CUDA at paper widths (4096, CUB shapes) for the DFG and the DRG,
   with TF32 off and on, and with torch.compile (train.compile: the networks compiled); then the
   generation-chain benchmark (synthesis, DiffGen, a DiffTTA update) at width 4096: time per step,
   host syncs and schedule copies per step (both must be 0);
3. a CUB-shaped pipeline at the CUB preset's widths and synthetic counts with every trainer's epochs
   cut to 1 and 2 (benchmarks/scale.py), giving per-stage times and peak GPU memory, and from
   their difference the time of one epoch and an extrapolated full-preset time.

Prints everything as it goes; paste the output into docs/performance.md. Exits at once, saying so,
on a machine without CUDA.
"""
import argparse
import re
import subprocess
import sys
import time

import torch
import yaml

from benchmarks.scale import ROOT


def section(title: str) -> None:
    print(f"\n## {title}\n", flush=True)


def run(args: list[str], timeout: int) -> str:
    print("$ " + " ".join(args), flush=True)
    start = time.perf_counter()
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    text = out.stdout + (out.stderr if out.returncode else "")
    print(text.rstrip(), f"\n({time.perf_counter() - start:.0f} s, exit {out.returncode})", flush=True)
    return text


def stage_times(text: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\| (\w+) \| ([\d.]+) \|", text, re.M)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations of the train-step benchmark")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device (torch.cuda.is_available() is False; "
                         f"torch {torch.__version__}, CUDA build {torch.version.cuda}); run it on a GPU machine")
    props = torch.cuda.get_device_properties(0)
    print(f"# GPU check: {props.name}, {props.total_memory / 2 ** 30:.0f} GiB, compute capability "
          f"{props.major}.{props.minor}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    if not a.skip_tests:
        section("CUDA tests (no host sync in the training loops; CPU = GPU; tiny pipeline)")
        run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_cuda.py", "tests/test_golden.py",
             "tests/test_dfg_wiring.py"], timeout=300)
    section("Train step on CUDA, paper widths (4096), CUB shapes")
    for model in ("dfg", "drg"):
        for flags in (["--no-tf32"], [], ["--compile"]):
            run([sys.executable, "-m", "benchmarks.train_step", "--device", "cuda", "--model", model,
                 "--iters", str(a.iters), *flags], timeout=300)
    section("Generation chain on CUDA, width 4096, CUB shapes")
    run([sys.executable, "-m", "benchmarks.generation_step", "--device", "cuda", "--width", "4096",
         "--batch", "4096", "--reps", "5"], timeout=300)
    section("CUB-shaped pipeline, CUB preset widths and counts, epochs cut to 1 and 2")
    times = {}
    for epochs in (1, 2):
        text = run([sys.executable, "-m", "benchmarks.scale", "--shape", "cub", "--preset", "--device", "cuda",
                    "--epochs", str(epochs)], timeout=600)
        times[epochs] = stage_times(text)
    preset = yaml.safe_load((ROOT / "presets" / "cub.yaml").read_text())
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    # pretrain's epochs are the DRG's (the SC encoder's 100 cheaper epochs are counted as DRG ones: an
    # overestimate); adapt's are DiffTTA's
    full = {"pretrain": preset["drg"]["epochs"], "train": preset["gen"]["epochs"],
            "adapt": preset.get("tta", {}).get("epochs", defaults["tta"]["epochs"])}
    section("Extrapolated full-preset time (fixed part + per-epoch part x the preset's epochs)")
    print("| stage | 1 epoch s | 2 epochs s | per epoch s | full preset s |")
    print("|---|---|---|---|---|")
    total = 0.0
    for stage, t1 in times[1].items():
        if stage == "all":
            continue
        t2 = times[2].get(stage, t1)
        per_epoch = max(t2 - t1, 0.0) if stage in full else 0.0
        estimate = t1 - per_epoch + per_epoch * full.get(stage, 1)
        total += estimate
        print(f"| {stage} | {t1:.1f} | {t2:.1f} | {per_epoch:.1f} | {estimate:.0f} |")
    print(f"| all | | | | {total:.0f} (= {total / 60:.1f} min) |")


if __name__ == "__main__":
    main()
