"""Every step, in order, in one process: what `dvc repro` computes, without its files.

Each step is seeded exactly as its stage script is (`runtime.setup` with the step's SEED_OFFSET), so
with `train.threads: 1` the metrics equal those of `dvc repro` / `dvc exp run` on the same params
(tests/test_pipeline.py checks it through scripts/study.py). Used by the study runner and the end-to-end
tests; training and post-training are apart, so that variants can share a generator. `p` is resolved
(zerodiffpp.runtime.params.for_ratio)."""
from typing import NamedTuple

from zerodiffpp.baselines.prototypes import nearest_generated_mean_t1
from zerodiffpp.evaluation.calibration import gzsl_curve, pseudo_labels_value
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.evaluation.report import full_unseen
from zerodiffpp.runtime.methods import with_components
from zerodiffpp.pipeline import post_training, pretrain, report, train, validation
from zerodiffpp.runtime.session import setup


class Trained(NamedTuple):
    """What pretrain and train give the later steps."""
    prep: object      # the prepared split (zerodiffpp.data.features.Prepared)
    drg: dict         # the DRG checkpoint
    generator: dict   # the trained generator's checkpoint
    curve: list       # the train step's curve, epoch by epoch (losses and learning diagnostics)


def train_generators(p: dict, fs: FeatureSet) -> Trained:
    """pretrain and train."""
    device = setup(p["train"], pretrain.SEED_OFFSET)
    prep, _, drg_ckpt, _, _ = pretrain.run(p, fs, device)
    setup(p["train"], train.SEED_OFFSET)
    return Trained(prep, drg_ckpt, *train.run(p, prep, device, drg_ckpt))


def train_validation(p: dict, fs: FeatureSet) -> tuple | None:
    """The stage val_train: -> (its prepared split, DRG, generator, split record), or None when
    params.yaml fixes every calibrated-stacking value the run needs."""
    if not any(validation.needed(p).values()):
        return None
    prep, _, drg_ckpt, gen_ckpt, split = validation.train_pass(p, fs)
    return prep, drg_ckpt, gen_ckpt, split


def calibrate(p: dict, trained_validation: tuple | None) -> dict:
    """The stage calibrate on `train_validation`'s output: -> the calibration record. Methods that share
    a generator (ZeroDiff, ZeroDiff++) share the validation pass's too, and each calibrates its own."""
    if not any(validation.needed(p).values()):
        return validation.fixed_record(p)
    return validation.calibrate_pass(p, *trained_validation)


def evaluate_generators(p: dict, trained: Trained, calib: dict, curve: bool = False) -> dict:
    """adapt, synthesize, classify and report on trained generators, with the calibration record
    `calib`: -> the metrics of eval.json; with `curve`, also 'calibration_curve': the split's U, S,
    H at every calibration value (zerodiffpp.evaluation.calibration.split_curve), from the same GZSL classifier,
    and 'nearest_generated_mean': T1 of the nearest mean of the classifier's generated unseen features
    (zerodiffpp.baselines.prototypes.nearest_generated_mean_t1)."""
    p = with_components(p, calib["components"])  # DiffTTA / DiffGen as the validation pass's gate chose
    prep, drg_ckpt, gen_ckpt = trained.prep, trained.drg, trained.generator
    out = post_training.run(p, prep, drg_ckpt, gen_ckpt, pseudo_labels_value(calib), calib["classifier"]["value"])
    device = setup(p["train"], report.SEED_OFFSET)
    metrics = report.run(p, prep, out["syn"], out["preds"], out["pseudo"], gen_ckpt, drg_ckpt, calib, device,
                         out["states"], out["adapted"])
    if curve:
        metrics["calibration_curve"] = gzsl_curve(out["states"], out["adapted"], prep, device)
        rows = full_unseen(out["syn"], prep)
        metrics["nearest_generated_mean"] = nearest_generated_mean_t1(prep, out["syn"]["x"][rows],
                                                                      out["syn"]["y"][rows])
    return metrics


def run_pipeline(p: dict, fs: FeatureSet) -> dict:
    """Every stage after extract: -> the metrics of eval.json."""
    return evaluate_generators(p, train_generators(p, fs), calibrate(p, train_validation(p, fs)))
