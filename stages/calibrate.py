"""Stage calibrate: the validation pass's DiffTTA, synthesis and classifiers; calibrated stacking's
values chosen on its validation classes (or params.yaml's numbers) -> models/calibration."""
from zerodiffpp.runtime import paths
from zerodiffpp.data.features import Prepared
from zerodiffpp.runtime.files import load_json, load_torch, save_json
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import validation
from zerodiffpp.runtime.session import log, resolve_device, run_stage


def main():
    p = load_stage_params("calibrate")
    split = load_json(paths.VAL_SPLIT)
    if not split:  # val_train found every value fixed in params.yaml
        record = validation.fixed_record(p)
    else:
        device = resolve_device(p["train"]["device"])
        record = validation.calibrate_pass(p, Prepared.load(paths.VAL_PREPARED), load_torch(paths.VAL_DRG, device),
                                           load_torch(paths.VAL_GENERATOR, device), split)
    save_json(paths.CALIBRATION, record)
    log.info("calibrate: calibrated stacking %+.2f (%s)", record["classifier"]["value"], record["classifier"]["source"])


if __name__ == "__main__":
    run_stage("calibrate", main)
