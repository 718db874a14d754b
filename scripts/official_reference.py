"""Inputs for running the official ZeroDiff code as a reference on our data, made by our own pipeline.

    python -m scripts.official_reference --root /tmp/fx-new/cub --ratio 0.1 --seed 0 --out /tmp/official/data/r0.1
    python -m scripts.official_reference ... --r x        # r = x instead of our SC representation

Writes `<out>/<name>/` in the layout the official loader (FouriYe/ZeroDiff_ICLR25, datasets/image_util.py)
reads, with nothing of that code in here:
- res101.mat, att_splits.mat: links to the dataset's own files (labels, class semantics, splits);
- ce_ce.mat: key features, N x D, the dataset's x as our loader reads it (res101.mat transposed, or data.x_file);
- con_paco.mat: key features, N x R, our SC representation r for every image: the pretrain step's
  supervised-contrastive encoder (zerodiffpp.generators.sc), trained exactly as pretrain trains it (same
  seed offset, same kept subset, same params), applied to every image's x scaled as pretrain scales it; the
  encoder's raw output (the official loader min-max scales it itself). `--r x` writes x instead;
- split_<P>percent.mat: key trainval_loc, 1-based positions INTO the trainval subset (not into the N images)
  of exactly the images our prepare_split keeps at this seen ratio and seed.
Then prints the two commands (DRG, then DFG) with our settings mapped onto the official flags. The flags
--conSize, --threads and --results_jsonl exist only in the CPU-patched copy described in
docs/notebook/official-reference.md. Params: params.yaml, then --preset, then data / seed / ratio, resolved per
ratio as scripts.study resolves them (method zerodiff, test protocol).
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np

from zerodiffpp.data.splits import prepare_split, subsample_per_class
from zerodiffpp.data.xlsa17 import load_xlsa17
from zerodiffpp.generators.sc import encode, sc_representations, train_sc_encoder
from zerodiffpp.pipeline import pretrain
from zerodiffpp.runtime import paths
from zerodiffpp.runtime.session import setup


def resolved_params(preset: Path | None, root: str, name: str, ratio: float, seed: int) -> dict:
    """ZeroDiff's params at one point, test protocol, on the CPU: the study runner's own resolution."""
    from scripts.study import base_params, point_params
    return point_params(base_params(paths.PARAMS, preset), {"train.device": "cpu"}, "zerodiff", seed, ratio,
                        "test", "", {"name": name, "root": root})


def sc_features(p: dict, fs, prep, scaler) -> np.ndarray:
    """Our r for all N images: the pretrain step's SC encoder (seeded as pretrain seeds it), applied to
    every x scaled by the kept subset's MinMax, raw (before the MinMax pretrain fits on the training r)."""
    device = setup(p["train"], pretrain.SEED_OFFSET)
    enc, _ = train_sc_encoder(prep.x_train, prep.y_train, p["sc"], device)
    r_scaler, r_prep = sc_representations(enc, prep, device)
    r_all = encode(enc, scaler(fs.x), device)
    # the same r as pretrain hands the DRG: our MinMax of the raw r at the kept training rows
    assert np.allclose(r_scaler(r_all[prep.train_index]), r_prep["train"], atol=1e-5)
    assert np.allclose(r_scaler(r_all[fs.test_unseen]), r_prep["test_unseen"], atol=1e-5)
    return r_all


def official_commands(p: dict, data_root: Path, name: str, n_classes: int, x_size: int, att_size: int,
                      r_size: int, percent: int, code: Path, work: Path,
                      eval_every: int) -> tuple[str, str, Path]:
    """(DRG command, DFG command, DRG checkpoint the DFG loads): our settings on the official flags."""
    g, d, dif = p["gen"], p["drg"], p["diffusion"]
    syn = int(p["synth"]["unseen_per_class"])
    common = [
        "--gzsl", "--preprocessing", "--class_embedding", "att", "--class_embedding_norm", "--embed_type", "VA",
        "--dataroot", str(data_root), "--dataset", name, "--split_percent", str(percent),
        "--manualSeed", str(p["train"]["seed"]), "--nclass_all", str(n_classes),
        "--resSize", str(x_size), "--conSize", str(r_size),
        # the official scripts set noiseSize = attSize = dim_t (D_xt / D_rt only build with dim_t = attSize)
        "--attSize", str(att_size), "--noiseSize", str(att_size), "--dim_t", str(att_size),
        "--n_T", str(dif["timesteps"]), "--ddpmbeta1", str(dif["beta_min"]), "--ddpmbeta2", str(dif["beta_max"]),
        "--classifier_lr", str(p["classifier"]["lr"]), "--syn_num", str(syn), "--threads", "1",
        "--gamma_x0", str(g["gamma_x0"]), "--gamma_xt", str(g["gamma_xt"]),
    ]
    drg = common + [
        "--nepoch", str(d["epochs"]), "--batch_size", str(d["batch_size"]), "--lr", str(d["lr"]),
        "--ngh", str(d["hidden"]), "--ndh", str(d["critic_hidden"]), "--critic_iter", str(d["critic_iter"]),
        "--lambda1", str(d["lambda_gp"]), "--eval_interval", str(max(1, d["epochs"])),
        "--results_jsonl", str(work / "drg.jsonl"),
    ]
    if d["hidden"] != g["hidden"]:
        raise SystemExit("the patched official DFG builds its frozen netR with --ngh: drg.hidden must equal gen.hidden")
    netr = work / "drg_last.tar"
    drg += ["--netR_last_path", str(netr)]
    dfg = common + [
        "--nepoch", str(g["epochs"]), "--batch_size", str(g["batch_size"]), "--lr", str(g["lr"]),
        "--dec_lr", str(g["dec_lr"]), "--ngh", str(g["hidden"]), "--ndh", str(g["critic_hidden"]),
        "--critic_iter", str(g["critic_iter"]), "--lambda1", str(g["lambda_gp"]), "--freeze_dec",
        "--gamma_ADV", str(g["gamma_adv"]), "--gamma_VAE", str(g["gamma_vae"]), "--gamma_recons", str(g["gamma_rec"]),
        "--gamma_dist", str(g["gamma_ml"]), "--factor_dist", str(g["ml_factor"]),
        "--eval_interval", str(eval_every), "--netR_model_path", str(netr),
        "--results_jsonl", str(work / "dfg.jsonl"),
    ]
    env = "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 5"
    run = lambda script, args: (f"cd {shlex.quote(str(code))} && {env} python {script} "  # noqa: E731
                                + " ".join(shlex.quote(a) for a in args))
    return run("zerodiff_DRG_train.py", drg), run("zerodiff_DFG_train.py", dfg), netr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="the xlsa17 folder (e.g. /tmp/fx-new/cub)")
    ap.add_argument("--name", default="CUB")
    ap.add_argument("--preset", type=Path, default=Path("presets/cub-cpu.yaml"))
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--r", choices=("sc", "x"), default="sc", help="con_paco.mat: our SC representation, or x")
    ap.add_argument("--out", type=Path, required=True, help="folder for <name>/ (official --dataroot)")
    ap.add_argument("--code", type=Path, default=Path("/tmp/official/code"), help="the patched official checkout")
    ap.add_argument("--eval-every", type=int, default=10, help="DFG evaluation interval in epochs")
    a = ap.parse_args(argv)
    from scipy.io import savemat

    if a.preset is not None and not a.preset.exists():
        raise SystemExit(f"--preset {a.preset}: not found")
    p = resolved_params(a.preset, a.root, a.name, a.ratio, a.seed)
    d = p["data"]
    fs = load_xlsa17(d["root"], d["name"], d["x_file"], d["r_file"], d["embedding"])
    prep, scaler = prepare_split(fs, a.ratio, a.seed, "test")
    positions = subsample_per_class(fs.labels[fs.trainval], a.ratio, a.seed)  # into the trainval subset
    assert np.array_equal(fs.trainval[positions], prep.train_index)
    r = fs.r if fs.r.size else (sc_features(p, fs, prep, scaler) if a.r == "sc" else fs.x)  # before any file is written
    folder = a.out / a.name
    folder.mkdir(parents=True, exist_ok=True)
    for f in ("res101.mat", f"{d['embedding']}_splits.mat"):
        link = folder / f
        if not link.exists():
            link.symlink_to(Path(d["root"]).resolve() / f)
    savemat(folder / "ce_ce.mat", {"features": fs.x.astype(np.float32)})
    savemat(folder / "con_paco.mat", {"features": r.astype(np.float32)})
    percent = int(round(a.ratio * 100))
    savemat(folder / f"split_{percent}percent.mat", {"trainval_loc": (positions + 1).astype(np.int64)[:, None]})
    print(f"{folder}: ce_ce.mat {fs.x.shape}, con_paco.mat {r.shape} (r = {'x' if a.r == 'x' else 'our SC encoder'}), "
          f"split_{percent}percent.mat {len(positions)} of {len(fs.trainval)} trainval images "
          f"({len(np.unique(prep.y_train))} seen classes)")
    drg, dfg, _ = official_commands(p, a.out.resolve(), a.name, fs.att.shape[0], fs.x.shape[1], fs.att.shape[1],
                                    r.shape[1], percent, a.code, a.out.resolve(), a.eval_every)
    print("\n# 1. DRG\n" + drg + "\n\n# 2. DFG (loads the DRG's last-epoch netR)\n" + dfg)


if __name__ == "__main__":
    main()
