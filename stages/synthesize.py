"""Stage synthesize: fully generated unseen features, plus DiffGen's partially synthesised ones
(ZeroDiff++)."""
import numpy as np

from zerodiffpp import methods, paths
from zerodiffpp.data import Prepared
from zerodiffpp.diffgen import diffgen_sources, partial_synthesis
from zerodiffpp.io import load_npz, load_torch, save_npz
from zerodiffpp.params import load_stage_params, per_ratio
from zerodiffpp.runtime import log, run_stage, setup
from zerodiffpp.synth import Synthesizer

SEED_OFFSET = 4
KIND_FULL, KIND_PARTIAL = 0, 1


def run(p, prep: Prepared, adapted_ckpt: dict, drg_ckpt: dict, pseudo: dict, device) -> dict:
    """-> the synthetic set: x, y, kind (full or partial)."""
    synth = Synthesizer(adapted_ckpt, drg_ckpt, prep.att, device)
    g, diffgen = p["diffgen"], methods.uses_diffgen(p["method"], p["diffgen"]["enabled"])
    src = diffgen_sources(pseudo["pred"], pseudo["conf"], pseudo["kept"], g["per_feature"], g["max_per_class"],
                          prep.unseen if g["classes"] == "unseen" else None) if diffgen else np.zeros(0, np.int64)
    per_class = per_ratio(p["synth"]["unseen_per_class"], p["train"]["seen_ratio"])
    n_full = len(prep.unseen) * per_class
    x = np.empty((n_full + len(src), prep.x_train.shape[1]), np.float32)  # the one copy of the output
    _, y = synth.full(prep.unseen, per_class, p["synth"]["sampler"], out=x[:n_full])
    if diffgen:
        x_test, r_test = prep.test_features()
        partial_synthesis(synth, x_test[src], r_test[src] if synth.uses_r else None, pseudo["pred"][src],
                          g["start_step"], out=x[n_full:])
        y = np.concatenate([y, pseudo["pred"][src]])
        log.info("synthesize: %d partially synthesised features from step k=%d", len(src), g["start_step"])
    kind = np.concatenate([np.full(n_full, KIND_FULL), np.full(len(src), KIND_PARTIAL)])
    log.info("synthesize: %d synthetic features (%d fully generated)", len(y), n_full)
    return dict(x=x, y=y, kind=kind)


def main():
    p = load_stage_params("synthesize")
    device = setup(p["train"], SEED_OFFSET)
    syn = run(p, Prepared.load(paths.PREPARED), load_torch(paths.ADAPTED_GENERATOR, device),
              load_torch(paths.DRG, device), load_npz(paths.PSEUDO_LABELS), device)
    save_npz(paths.SYNTHETIC, **syn)


if __name__ == "__main__":
    run_stage("synthesize", main)
