"""Stage synthesize: fully generated unseen features, plus DiffGen's partially synthesised ones
(ZeroDiff++)."""
import numpy as np

from zerodiffpp import methods, paths
from zerodiffpp.data import Prepared
from zerodiffpp.diffgen import diffgen_set
from zerodiffpp.io import load_npz, load_torch, save_npz
from zerodiffpp.params import load_stage_params
from zerodiffpp.runtime import log, run_stage, setup
from zerodiffpp.synth import Synthesizer

SEED_OFFSET = 4
KIND_FULL, KIND_PARTIAL = 0, 1


def run(p, prep: Prepared, adapted_ckpt: dict, drg_ckpt: dict, pseudo: dict, device) -> dict:
    """-> the synthetic set: x, y, kind (full or partial)."""
    synth = Synthesizer(adapted_ckpt, drg_ckpt, prep.att, device)
    x, y = synth.full(prep.unseen, p["synth"]["unseen_per_class"], p["synth"]["sampler"])
    kind = np.full(len(y), KIND_FULL)
    if methods.uses_diffgen(p["method"], p["diffgen"]["enabled"]):
        x_test, r_test = prep.test_features()
        g = p["diffgen"]
        x_p, y_p, _ = diffgen_set(synth, x_test, r_test, pseudo["pred"], pseudo["conf"], pseudo["kept"],
                                  g["start_step"], g["per_feature"], g["max_per_class"],
                                  prep.unseen if g["classes"] == "unseen" else None)
        x, y = np.concatenate([x, x_p]), np.concatenate([y, y_p])
        kind = np.concatenate([kind, np.full(len(y_p), KIND_PARTIAL)])
        log.info("synthesize: %d partially synthesised features from step k=%d", len(y_p), g["start_step"])
    log.info("synthesize: %d synthetic features (%d fully generated)", len(y), int((kind == KIND_FULL).sum()))
    return dict(x=x, y=y, kind=kind)


def main():
    p = load_stage_params("synthesize")
    device = setup(p["train"], SEED_OFFSET)
    syn = run(p, Prepared.load(paths.PREPARED), load_torch(paths.ADAPTED_GENERATOR, device),
              load_torch(paths.DRG, device), load_npz(paths.PSEUDO_LABELS), device)
    save_npz(paths.SYNTHETIC, **syn)


if __name__ == "__main__":
    run_stage("synthesize", main)
