"""Stage adapt: DiffTTA (ZeroDiff++): pseudo-labels the test features, fine-tunes the generator (else passes it on)."""
from zerodiffpp.runtime import paths
from zerodiffpp.evaluation.calibration import pseudo_labels_value
from zerodiffpp.runtime.checkpoints import Checkpoints
from zerodiffpp.data.features import Prepared
from zerodiffpp.runtime.files import load_json, load_torch, save_npz, save_torch
from zerodiffpp.runtime.live import LiveLog
from zerodiffpp.runtime.methods import with_components
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import adapt
from zerodiffpp.runtime.session import run_stage, setup


def main():
    p = load_stage_params("adapt")
    device = setup(p["train"], adapt.SEED_OFFSET)
    live, ckpts = LiveLog(paths.ADAPT_LIVE), Checkpoints("adapt", p, p["checkpoint"])
    calib = load_json(paths.CALIBRATION)
    adapted, pseudo, _ = adapt.run(with_components(p, calib["components"]), Prepared.load(paths.PREPARED),
                                   load_torch(paths.GENERATOR, device), load_torch(paths.DRG, device),
                                   pseudo_labels_value(calib), device, live, ckpts)
    save_torch(paths.ADAPTED_GENERATOR, adapted)
    save_npz(paths.PSEUDO_LABELS, **pseudo)
    live.end("reconstruction", "anchor")
    ckpts.finish()


if __name__ == "__main__":
    run_stage("adapt", main)
