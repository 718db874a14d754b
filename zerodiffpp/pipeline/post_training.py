"""adapt, synthesize and classify in one process, each seeded as its stage script seeds it: the chain
the test pass (`in_process`) and the validation pass (`validation`) run on a trained generator."""
from zerodiffpp.pipeline import adapt, classify, synthesize
from zerodiffpp.runtime.session import setup


def run(p, prep, drg_ckpt: dict, gen_ckpt: dict, pseudo_label_calibration, calibration: float,
        seed_offset: int = 0) -> dict:
    """-> {'adapted', 'pseudo', 'syn', 'states', 'preds', 'device'}. `seed_offset` is added to each
    stage's own (the validation pass draws from streams of its own); `pseudo_label_calibration` is a
    number or, in the validation pass, a function of DiffTTA's provisional classifier."""
    device = setup(p["train"], seed_offset + adapt.SEED_OFFSET)
    adapted, pseudo, _ = adapt.run(p, prep, gen_ckpt, drg_ckpt, pseudo_label_calibration, device)
    setup(p["train"], seed_offset + synthesize.SEED_OFFSET)
    syn = synthesize.run(p, prep, adapted, drg_ckpt, pseudo, device)
    setup(p["train"], seed_offset + classify.SEED_OFFSET)
    states, preds, _ = classify.run(p, prep, syn, adapted, calibration, device)
    return {"adapted": adapted, "pseudo": pseudo, "syn": syn, "states": states, "preds": preds, "device": device}
