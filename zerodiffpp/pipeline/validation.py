"""The validation pass: calibrated stacking chosen on classes no model of the run trained on.

`classifier.calibration: auto` (and `tta.calibration: auto`, the value of DiffTTA's pseudo-labels)
are chosen as calibrated stacking's authors choose them: on validation classes that the whole
pipeline treats as unseen. The pass runs the run's own method (same params, same steps: SC encoder,
DRG, generator, DiffTTA, DiffGen, the final classifiers) on `splits.calibration_view` of the run's
split, whose unseen classes are validation classes carved from the seen training images. Two DVC
stages carry it, so that `dvc dag` shows where the value comes from and a sweep over test-time
settings does not retrain its generator:
  val_train  (`train_pass`): pretrain and train without the validation classes;
  calibrate  (`calibrate_pass`): DiffTTA, synthesis and classifiers on that split; the value of the
             best H of the final GZSL classifier's curve on the validation classes' real images, and
             for a transductive run the best H of DiffTTA's provisional classifier for its pseudo-labels.
The test pass reads the record (`value_for`); a number in params.yaml overrides either value, and
when both are numbers the pass trains nothing (`needed`).
"""
from __future__ import annotations

import numpy as np

from zerodiffpp.evaluation import calibration

from zerodiffpp.runtime import methods
from zerodiffpp.data.features import FeatureSet, Prepared
from zerodiffpp.runtime.errors import DataError
from zerodiffpp.evaluation.metrics import mean_per_class_accuracy
from zerodiffpp.pipeline import post_training, pretrain, train
from zerodiffpp.runtime.session import log, resolve_device, setup
from zerodiffpp.data.splits import calibration_view

SEED_OFFSET = 10  # added to each step's own offset: the pass draws from random streams of its own


def needed(p) -> dict:
    """What the pass must choose: {'classifier': bool, 'pseudo_labels': bool, 'gate': bool}."""
    transductive = methods.is_transductive(p["method"])
    return {"classifier": calibration.is_auto(p["classifier"]["calibration"]),
            "pseudo_labels": transductive and calibration.is_auto(p["tta"]["calibration"]),
            "gate": transductive and p["tta"]["gate"] == "validation"}


def split_record(fs: FeatureSet, view: FeatureSet, prep: Prepared) -> dict:
    """What the pass was chosen on, and the two leak counts, computed from the indices: images of the
    validation classes in its training set, and images of the dataset's test splits it holds."""
    val_ids = np.unique(view.labels[view.test_unseen])
    used = np.concatenate([view.trainval, view.test_seen, view.test_unseen])
    record = {"classes": [str(fs.class_names[c]) for c in val_ids], "class_ids": val_ids.tolist(),
              "n_seen_classes": int(len(prep.seen)), "n_train_images": int(len(prep.train_index)),
              "validation_images_in_training": int(np.isin(fs.labels[prep.train_index], val_ids).sum()),
              "test_images_read": int(np.isin(used, np.concatenate([fs.test_seen, fs.test_unseen])).sum())}
    if record["validation_images_in_training"] or record["test_images_read"]:
        raise DataError(f"validation pass: {record['validation_images_in_training']} images of its validation classes "
                        f"in its training set and {record['test_images_read']} test images in its split (both must be 0)")
    return record


def pass_params(p) -> dict:
    """The run's params for the pass's split: it is built by `calibration_view`, so the steps see the test protocol."""
    return dict(p, data=dict(p["data"], protocol="test", val_classes=""))


def train_pass(p, fs: FeatureSet, ckpts=None, live=None) -> tuple[Prepared, dict, dict, dict, dict]:
    """pretrain and train on the validation split: -> (its prepared split, SC encoder, DRG and generator
    checkpoints, `split_record`). `ckpts` (a checkpoints.Checkpoints) makes it resumable; `live` gets
    the generator's curve."""
    view = calibration_view(fs, p["data"]["protocol"], p["data"]["val_classes"], p["train"]["seed"],
                            p["classifier"]["calibration_holdout"])
    q = pass_params(p)
    device = setup(p["train"], SEED_OFFSET + pretrain.SEED_OFFSET)
    prep, sc_ckpt, drg_ckpt, _, _ = pretrain.run(q, view, device, ckpts)
    record = split_record(fs, view, prep)
    log.info("validation pass: %d validation classes (%s) against %d seen; %d training images, none of them theirs",
             len(record["class_ids"]), ", ".join(record["classes"][:8]), record["n_seen_classes"],
             record["n_train_images"])
    setup(p["train"], SEED_OFFSET + train.SEED_OFFSET)
    gen_ckpt, _ = train.run(q, prep, device, drg_ckpt, ckpts, live)
    return prep, sc_ckpt, drg_ckpt, gen_ckpt, record


def evaluate_on_split(p, prep: Prepared, drg_ckpt: dict, gen_ckpt: dict) -> dict:
    """DiffTTA, synthesis and the final classifiers of `p`'s method on the validation split, as the
    test pass runs them: -> {'curve', 'choice' (best H of the final GZSL classifier), 'pseudo_labels'
    (best H of DiffTTA's provisional classifier, when it pseudo-labelled), 'T1' (its ZSL classifier on
    the validation classes)}. Labels read here are those of training images only."""
    q = pass_params(p)
    device = resolve_device(p["train"]["device"])
    pl_choices = []

    def choose_pseudo_label_value(clf) -> float:
        pl_choices.append(calibration.choice(calibration.split_curve(clf, prep, device)))
        return pl_choices[-1]["value"]

    pl_param = p["tta"]["calibration"]
    pl_value = choose_pseudo_label_value if calibration.is_auto(pl_param) else \
        calibration.value_for(pl_param, None, "tta.calibration")["value"]
    out = post_training.run(q, prep, drg_ckpt, gen_ckpt, pl_value, 0.0, seed_offset=SEED_OFFSET)
    curve = calibration.gzsl_curve(out["states"], out["adapted"], prep, device)
    return {"curve": curve, "choice": calibration.choice(curve), "pseudo_labels": pl_choices[-1] if pl_choices else None,
            "T1": mean_per_class_accuracy(prep.y_test_unseen, out["preds"]["zsl_test_unseen"], prep.unseen)}


def calibrate_pass(p, prep: Prepared, drg_ckpt: dict, gen_ckpt: dict, split: dict) -> dict:
    """The calibrate stage: `evaluate_on_split` of the run's method and, for ZeroDiff++ under
    tta.gate 'validation', of its lighter variants (`candidates`): the variant `gate_choice` keeps from
    their means of validation ZSL T1 and GZSL H is the one the test pass runs, so DiffTTA and DiffGen
    run only where they clearly help on classes no model of the run saw. -> the record
    {'classifier', 'pseudo_labels', 'components', 'validation_pass', 'curve'}."""
    results = {}
    for name, comps in candidates(p):  # one trained generator, the same random streams for each variant
        results[name] = evaluate_on_split(methods.with_components(p, comps), prep, drg_ckpt, gen_ckpt)
        r = results[name]
        log.info("validation pass, %s: ZSL T1 %.3f, GZSL H %.3f at calibrated stacking %+.2f (U %.3f, S %.3f; at 0: "
                 "H %.3f)", name, r["T1"], r["choice"]["H"], r["choice"]["value"], r["choice"]["U"],
                 r["choice"]["S"], calibration.at(r["curve"], 0.0)["H"])
    variants = dict(candidates(p))  # the configured method first, the lightest last
    names = list(variants)
    scores = {n: (results[n]["T1"] + results[n]["choice"]["H"]) / 2 for n in names}
    chosen = gate_choice(scores, p["tta"]["gate_margin"])
    comps = variants[chosen]
    if len(names) > 1:
        log.info("validation pass: tta.gate keeps %s (%s; margin %.3f)", chosen,
                 ", ".join(f"{n} {s:.3f}" for n, s in scores.items()), p["tta"]["gate_margin"])
    r = results[chosen]
    rec = record(methods.with_components(p, comps), r["choice"], r["pseudo_labels"], split, r["curve"])
    if len(names) > 1:  # tta.gate validation compared variants: the test pass runs the kept one
        rec["components"] = {**comps, "chosen": chosen,
                             "candidates": {n: {"T1": results[n]["T1"], "H": results[n]["choice"]["H"]} for n in names}}
    return rec


def gate_choice(scores: dict, margin: float) -> str:
    """The variant the gate keeps, from each one's validation score (the mean of ZSL T1 and GZSL H),
    ordered from the configured method to the inductive one. A transductive variant replaces the
    inductive one only when it beats it by more than `margin` (the pass's gains are noisy: on the CUB
    fixture, 10 of 31 gates opened on smaller gains lost on the classes that followed; docs/calibration.md,
    "The margin"); then the best of them wins, ties going to the lighter."""
    names = list(scores)
    best = max(reversed(names), key=scores.get)
    return best if scores[best] - scores[names[-1]] > margin else names[-1]


def candidates(p) -> list[tuple[str, dict]]:
    """[(name, {'method', 'tta': bool, 'diffgen': bool})] the validation pass compares: the configured method
    and, for ZeroDiff++ under tta.gate 'validation', the same without DiffTTA and without either."""
    m = p["method"]
    tta, diffgen = methods.uses_tta(m), methods.uses_diffgen(m)
    out = [("configured", m)]
    if p["tta"]["gate"] == "validation" and (tta or diffgen):
        if tta and diffgen:
            out.append(("without DiffTTA", methods.named(methods.generator(m), False, True)))
        out.append(("inductive", methods.named(methods.generator(m), False, False)))
    return [(name, {"method": v, "tta": methods.uses_tta(v), "diffgen": methods.uses_diffgen(v)}) for name, v in out]


def record(p, chosen: dict | None, pl_chosen: dict | None, split: dict | None, curve: list | None = None) -> dict:
    """The calibrate stage's record: each value as the test pass uses it (`calibration.value_for`)."""
    transductive = methods.is_transductive(p["method"])
    return {"classifier": calibration.value_for(p["classifier"]["calibration"], chosen, "classifier.calibration"),
            "pseudo_labels": calibration.value_for(p["tta"]["calibration"], pl_chosen, "tta.calibration")
            if transductive else None,
            "components": None, "validation_pass": split, "curve": curve or []}


def fixed_record(p) -> dict:
    """The record when params.yaml fixes every value the run needs (`needed` is all false)."""
    return record(p, None, None, None)
