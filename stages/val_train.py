"""Stage val_train: the validation pass's pretrain and train, without its validation classes
(zerodiffpp/pipeline/validation.py) -> models/validation. Nothing to train when params.yaml fixes
every calibrated-stacking value the run needs."""
from zerodiffpp.runtime import paths
from zerodiffpp.runtime.checkpoints import Checkpoints
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.runtime.files import save_json, save_torch
from zerodiffpp.runtime.live import LiveLog
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import validation
from zerodiffpp.runtime.session import log, run_stage


def main():
    p = load_stage_params("val_train")
    live = LiveLog(paths.VAL_TRAIN_LIVE)
    paths.VALIDATION_DIR.mkdir(parents=True, exist_ok=True)
    if not any(validation.needed(p).values()):
        log.info("val_train: classifier.calibration and tta.calibration are numbers; no validation pass")
        save_json(paths.VAL_SPLIT, {})
        live.end("gen_seen_acc")
        return
    ckpts = Checkpoints("val_train", p, p["checkpoint"])
    prep, _, drg_ckpt, gen_ckpt, split = validation.train_pass(p, FeatureSet.load(paths.FEATURES), ckpts, live)
    prep.save(paths.VAL_PREPARED)
    save_torch(paths.VAL_DRG, drg_ckpt)
    save_torch(paths.VAL_GENERATOR, gen_ckpt)
    save_json(paths.VAL_SPLIT, split)
    live.end()
    ckpts.finish()


if __name__ == "__main__":
    run_stage("val_train", main)
