"""Stage synthesize: fully generated unseen features, plus DiffGen's partially synthesised ones
(ZeroDiff++)."""
from zerodiffpp.runtime import paths
from zerodiffpp.data.features import Prepared
from zerodiffpp.runtime.files import load_json, load_npz, load_torch, save_npz
from zerodiffpp.runtime.methods import with_components
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import synthesize
from zerodiffpp.runtime.session import run_stage, setup


def main():
    p = load_stage_params("synthesize")
    device = setup(p["train"], synthesize.SEED_OFFSET)
    p = with_components(p, load_json(paths.CALIBRATION)["components"])  # DiffGen as the validation pass's gate chose
    syn = synthesize.run(p, Prepared.load(paths.PREPARED), load_torch(paths.ADAPTED_GENERATOR, device),
                         load_torch(paths.DRG, device), load_npz(paths.PSEUDO_LABELS), device)
    save_npz(paths.SYNTHETIC, **syn)


if __name__ == "__main__":
    run_stage("synthesize", main)
