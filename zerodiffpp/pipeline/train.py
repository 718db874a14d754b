"""Step train: the feature generator (ZeroDiff DFG, or the f-CLSWGAN baseline) -> models/generator."""
from zerodiffpp.runtime.checkpoints import Checkpoints
from zerodiffpp.data.features import Prepared
from zerodiffpp.generators.dfg import ZeroDiffTrainer
from zerodiffpp.evaluation.diagnostics import GenerationCheck, Schedule
from zerodiffpp.generators.fclswgan import train_fclswgan
from zerodiffpp.runtime.live import LiveLog
from zerodiffpp.runtime import methods
from zerodiffpp.runtime.session import log

SEED_OFFSET = 2


def run(p, prep: Prepared, device, drg_ckpt: dict | None = None, ckpts: Checkpoints | None = None,
        live: LiveLog | None = None):
    """-> (generator checkpoint, training curve). `drg_ckpt` (the pretrain stage's DRG) lets the
    learning diagnostics generate as the synthesize stage does; without it they are off. `ckpts`
    makes the training resumable (a rerun after a kill continues it); `live` receives the curve epoch
    by epoch."""
    d = p["diagnostics"]
    check = Schedule(GenerationCheck(prep.x_train, prep.y_train, prep.seen, prep.att, drg_ckpt, d,
                                     p["synth"]["sampler"], device, seed=p["train"]["seed"])
                     if drg_ckpt is not None and d["every"] > 0 else None, d["every"])
    if methods.generator(p["method"]) == "fclswgan":
        return train_fclswgan(prep.x_train, prep.y_train, prep.att, prep.seen, p["fclswgan"], device, check,
                              ckpts.part("fclswgan") if ckpts else None, live)
    trainer = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], device,
                              compile=p["train"]["compile"])
    log.info("train: critics %s", sorted(trainer.critics))
    rows = trainer.train(p["gen"]["epochs"], check=check, part=ckpts.part("generator") if ckpts else None,
                         live=live)
    return trainer.checkpoint(), rows
