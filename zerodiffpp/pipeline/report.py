"""Step report: the metrics of eval.json. The only reader of test labels."""
from zerodiffpp.runtime import methods
from zerodiffpp.evaluation.calibration import gzsl_curve
from zerodiffpp.data.features import Prepared
from zerodiffpp.evaluation.report import evaluate, seen_probe_features

SEED_OFFSET = 6


def run(p, prep: Prepared, syn: dict, preds: dict, pseudo: dict, gen_ckpt: dict, drg_ckpt: dict, calib: dict,
        device, clf_states: dict, adapted_ckpt: dict) -> dict:
    """-> the metrics of eval.json. `gen_ckpt` is the trained (not the adapted) generator; `calib` the
    calibrate stage's record; `clf_states` the classify stage's classifiers (under data.protocol:
    validation their GZSL curve names calibrated stacking's best value on these validation classes)."""
    ctx = {"seen_ratio": prep.seen_ratio, "seed": p["train"]["seed"], **p["report"],
           "validation": p["data"]["protocol"] == "validation",
           "transductive": methods.is_transductive(p["method"]),
           "self_training_seen": methods.self_trains_on_test_seen(p["method"], p["diffgen"]["classes"])}
    seen_probe = seen_probe_features(gen_ckpt, drg_ckpt, prep, p["report"]["seen_per_class"], p["synth"]["sampler"],
                                     device)
    if ctx["validation"]:
        ctx["validation_curve"] = gzsl_curve(clf_states, adapted_ckpt, prep, device)
    return evaluate(prep, syn, seen_probe, preds, pseudo, dict(ctx, calibration=calib), device)
