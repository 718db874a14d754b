"""Stage classify: the final linear softmax classifiers (GZSL over all classes, ZSL over unseen)."""
from zerodiffpp.runtime import paths
from zerodiffpp.data.features import Prepared
from zerodiffpp.runtime.files import load_json, load_npz, load_torch, save_npz, save_torch
from zerodiffpp.runtime.live import LiveLog
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import classify
from zerodiffpp.runtime.session import run_stage, setup


def main():
    p = load_stage_params("classify")
    device = setup(p["train"], classify.SEED_OFFSET)
    states, preds, curve = classify.run(p, Prepared.load(paths.PREPARED), load_npz(paths.SYNTHETIC),
                                        load_torch(paths.ADAPTED_GENERATOR, device),
                                        load_json(paths.CALIBRATION)["classifier"]["value"], device)
    save_torch(paths.CLASSIFIERS, states)
    save_npz(paths.PREDICTIONS, **preds)
    live = LiveLog(paths.CLASSIFY_LIVE)  # the two classifiers' losses, written once both are trained
    live.rows(curve)
    live.end()


if __name__ == "__main__":
    run_stage("classify", main)
