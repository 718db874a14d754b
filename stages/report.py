"""Stage report: metrics/eval.json, metrics/report.md and the plots. The only reader of test labels."""
from zerodiffpp.runtime import paths
from zerodiffpp.data.features import Prepared
from zerodiffpp.runtime.files import load_json, load_npz, load_torch, save_csv, save_json, save_text
from zerodiffpp.runtime.methods import with_components
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import report
from zerodiffpp.evaluation.report import confusion_rows, curves_png, per_class_png, per_class_rows, report_markdown
from zerodiffpp.runtime.session import log, run_stage, setup


def main():
    p = load_stage_params("report")
    device = setup(p["train"], report.SEED_OFFSET)
    prep, preds, calib = Prepared.load(paths.PREPARED), load_npz(paths.PREDICTIONS), load_json(paths.CALIBRATION)
    m = report.run(with_components(p, calib["components"]), prep, load_npz(paths.SYNTHETIC), preds,
                   load_npz(paths.PSEUDO_LABELS), load_torch(paths.GENERATOR, device), load_torch(paths.DRG, device), calib, device,
                   load_torch(paths.CLASSIFIERS, device), load_torch(paths.ADAPTED_GENERATOR, device))
    rows = per_class_rows(prep, preds)
    save_json(paths.EVAL_METRICS, m)
    save_text(paths.REPORT_MD, report_markdown(m, p, calib, load_json(paths.BASELINES),
                                               paths.BASELINES_MD.read_text()))
    save_csv(paths.PER_CLASS_CSV, rows)
    save_csv(paths.CONFUSION_CSV, confusion_rows(prep, preds))
    per_class_png(rows, paths.PER_CLASS_PNG)
    curves_png([paths.SC_LIVE, paths.DRG_LIVE, paths.TRAIN_LIVE, paths.ADAPT_LIVE], paths.CURVES_PNG)
    log.info("report: T1 %.3f  U %.3f  S %.3f  H %.3f  spurious seen %+.3f unseen %+.3f", m["zsl"]["T1"],
             m["gzsl"]["U"], m["gzsl"]["S"], m["gzsl"]["H"], m["spurious"]["seen"], m["spurious"]["unseen"])


if __name__ == "__main__":
    run_stage("report", main)
