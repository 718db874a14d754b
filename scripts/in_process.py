"""Every stage's `run`, in order, in one process: what `dvc repro` computes, without its files.

Each stage is seeded exactly as its script is (`runtime.setup` with the stage's SEED_OFFSET), so
with `train.threads: 1` the metrics equal those of `dvc repro` / `dvc exp run` on the same params
(tests/test_pipeline.py checks it through the fold study). Used by `scripts/fold_study.py` and the
end-to-end tests; training and post-training are apart, so that variants can share a generator."""
from stages import adapt, classify, pretrain, report, synthesize, train
from zerodiffpp.calibration import gzsl_curve
from zerodiffpp.data import FeatureSet
from zerodiffpp.runtime import setup


def train_generators(p: dict, fs: FeatureSet) -> tuple:
    """pretrain and train: -> (prepared split, DRG checkpoint, trained generator checkpoint)."""
    device = setup(p["train"], pretrain.SEED_OFFSET)
    prep, _, drg_ckpt, _, _ = pretrain.run(p, fs, device)
    setup(p["train"], train.SEED_OFFSET)
    return prep, drg_ckpt, train.run(p, prep, device, drg_ckpt)[0]


def evaluate_generators(p: dict, prep, drg_ckpt: dict, gen_ckpt: dict, curve: bool = False) -> dict:
    """adapt, synthesize, classify and report on trained generators: -> the metrics of eval.json;
    with `curve`, also 'calibration_curve': the split's U, S, H at every calibration value
    (zerodiffpp.calibration.split_curve), from the same GZSL classifier."""
    device = setup(p["train"], adapt.SEED_OFFSET)
    adapted, pseudo, _, calib = adapt.run(p, prep, gen_ckpt, drg_ckpt, device)
    setup(p["train"], synthesize.SEED_OFFSET)
    syn = synthesize.run(p, prep, adapted, drg_ckpt, pseudo, device)
    setup(p["train"], classify.SEED_OFFSET)
    states, preds, _ = classify.run(p, prep, syn, adapted, calib["calibration"], device)
    setup(p["train"], report.SEED_OFFSET)
    metrics = report.run(p, prep, syn, preds, pseudo, gen_ckpt, drg_ckpt, calib, device, states, adapted)
    if curve:
        metrics["calibration_curve"] = gzsl_curve(states, adapted, prep, device)
    return metrics


def run_pipeline(p: dict, fs: FeatureSet) -> dict:
    """Every stage after extract: -> the metrics of eval.json."""
    return evaluate_generators(p, *train_generators(p, fs))
