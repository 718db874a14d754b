"""Step synthesize: fully generated unseen features (and seen ones with synth.seen_per_class), plus
DiffGen's partially synthesised ones (ZeroDiff++)."""
from zerodiffpp.runtime import methods
from zerodiffpp.data.features import Prepared
from zerodiffpp.transductive.diffgen import synthetic_set
from zerodiffpp.runtime.session import log
from zerodiffpp.generators.synth import Synthesizer

SEED_OFFSET = 4


def run(p, prep: Prepared, adapted_ckpt: dict, drg_ckpt: dict, pseudo: dict, device) -> dict:
    """-> the synthetic set: x, y, kind (full or partial), src (DiffGen's source test positions)."""
    synth = Synthesizer(adapted_ckpt, drg_ckpt, prep.att, device)
    diffgen = methods.uses_diffgen(p["method"])
    syn = synthetic_set(synth, prep, p["synth"]["unseen_per_class"], p["synth"]["sampler"], pseudo,
                        p["diffgen"] if diffgen else None, p["synth"]["seen_per_class"], p["synth"]["recentre"])
    if diffgen:
        log.info("synthesize: %d partially synthesised features from step k=%d", len(syn["src"]),
                 p["diffgen"]["start_step"])
    log.info("synthesize: %d synthetic features (%d fully generated)", len(syn["y"]), len(syn["y"]) - len(syn["src"]))
    return syn
