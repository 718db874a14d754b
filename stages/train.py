"""Stage train: the feature generator (ZeroDiff DFG, or the f-CLSWGAN baseline) -> models/generator."""
from zerodiffpp import paths
from zerodiffpp.data import Prepared
from zerodiffpp.fclswgan import train_fclswgan
from zerodiffpp.io import save_csv, save_torch
from zerodiffpp.params import load_stage_params
from zerodiffpp.runtime import log, setup
from zerodiffpp.zerodiff import ZeroDiffTrainer


def main():
    p = load_stage_params("train")
    device = setup(p["train"], seed_offset=2)
    prep = Prepared.load(paths.PREPARED)
    if p["method"] == "fclswgan":
        ckpt, rows = train_fclswgan(prep.x_train, prep.y_train, prep.att, prep.seen, p["fclswgan"], device)
    else:
        trainer = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], device)
        log.info("train: critics %s", sorted(trainer.critics))
        rows = trainer.train(p["gen"]["epochs"])
        ckpt = trainer.checkpoint()
    save_torch(paths.GENERATOR, ckpt)
    save_csv(paths.TRAIN_CURVE, rows or [{"step": 0}])


if __name__ == "__main__":
    main()
