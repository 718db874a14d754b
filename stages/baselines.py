"""Stage baselines: the simple-baseline panel on the run's split (ESZSL, ridge prototype regression,
the supervised ceiling; zerodiffpp/baselines/) -> metrics/baselines.json and metrics/baselines.md."""
from zerodiffpp.runtime import paths
from zerodiffpp.baselines.panel import panel, panel_markdown, panel_metrics
from zerodiffpp.data.features import FeatureSet, Prepared
from zerodiffpp.runtime.files import save_json, save_text
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.runtime.session import log, run_stage


def main():
    p = load_stage_params("baselines")
    d, seed = p["data"], p["train"]["seed"]
    ratio = Prepared.load(paths.PREPARED).seen_ratio  # pretrain's: the panel scores the run's own split
    result = panel(FeatureSet.load(paths.FEATURES), ratio, seed, d["protocol"], d["val_classes"],
                   p["classifier"]["calibration_holdout"])
    save_json(paths.BASELINES, panel_metrics(result))
    save_text(paths.BASELINES_MD, panel_markdown(result))
    log.info("baselines: strongest simple baseline %s, ZSL T1 %.3f, GZSL H %.3f", result["strongest"],
             result[result["strongest"]]["T1"], result[result["strongest"]]["H"])


if __name__ == "__main__":
    run_stage("baselines", main)
