"""Stage report: metrics/eval.json, metrics/report.md and the plots. The only reader of test labels."""
from zerodiffpp import methods, paths
from zerodiffpp.calibration import gzsl_curve
from zerodiffpp.data import Prepared
from zerodiffpp.io import load_json, load_npz, load_torch, save_csv, save_json, save_text
from zerodiffpp.params import load_stage_params
from zerodiffpp.report import (confusion_rows, curves_png, evaluate, per_class_png, per_class_rows, report_markdown,
                               seen_probe_features)
from zerodiffpp.runtime import log, run_stage, setup

SEED_OFFSET = 6


def run(p, prep: Prepared, syn: dict, preds: dict, pseudo: dict, gen_ckpt: dict, drg_ckpt: dict, calib: dict,
        device, clf_states: dict, adapted_ckpt: dict) -> dict:
    """-> the metrics of eval.json. `gen_ckpt` is the trained (not the adapted) generator; `calib` the
    adapt stage's calibration record; `clf_states` the classify stage's classifiers (under
    data.protocol: validation their GZSL curve chooses calibrated stacking's value for the test run)."""
    ctx = {"seen_ratio": p["train"]["seen_ratio"], "seed": p["train"]["seed"], **p["report"],
           "validation": p["data"]["protocol"] == "validation",
           "transductive": methods.is_transductive(p["method"], p["tta"]["enabled"], p["diffgen"]["enabled"]),
           "self_training_seen": methods.self_trains_on_test_seen(p["method"], p["diffgen"]["enabled"],
                                                                  p["diffgen"]["classes"])}
    seen_probe = seen_probe_features(gen_ckpt, drg_ckpt, prep, p["report"]["seen_per_class"], p["synth"]["sampler"],
                                     device)
    if ctx["validation"]:
        ctx["validation_curve"] = gzsl_curve(clf_states, adapted_ckpt, prep, device)
    return evaluate(prep, syn, seen_probe, preds, pseudo, dict(ctx, calibration=calib), device)


def main():
    p = load_stage_params("report")
    device = setup(p["train"], SEED_OFFSET)
    prep, preds = Prepared.load(paths.PREPARED), load_npz(paths.PREDICTIONS)
    m = run(p, prep, load_npz(paths.SYNTHETIC), preds, load_npz(paths.PSEUDO_LABELS), load_torch(paths.GENERATOR, device),
            load_torch(paths.DRG, device), load_json(paths.CALIBRATION), device, load_torch(paths.CLASSIFIERS, device),
            load_torch(paths.ADAPTED_GENERATOR, device))
    rows = per_class_rows(prep, preds)
    save_json(paths.EVAL_METRICS, m)
    save_text(paths.REPORT_MD, report_markdown(m, p))
    save_csv(paths.PER_CLASS_CSV, rows)
    save_csv(paths.CONFUSION_CSV, confusion_rows(prep, preds))
    per_class_png(rows, paths.PER_CLASS_PNG)
    curves_png([paths.SC_LIVE, paths.DRG_LIVE, paths.TRAIN_LIVE, paths.ADAPT_LIVE], paths.CURVES_PNG)
    log.info("report: T1 %.3f  U %.3f  S %.3f  H %.3f  spurious seen %+.3f unseen %+.3f", m["zsl"]["T1"],
             m["gzsl"]["U"], m["gzsl"]["S"], m["gzsl"]["H"], m["spurious"]["seen"], m["spurious"]["unseen"])


if __name__ == "__main__":
    run_stage("report", main)
