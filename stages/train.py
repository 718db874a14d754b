"""Stage train: the feature generator (ZeroDiff DFG, or the f-CLSWGAN baseline) -> models/generator."""
from zerodiffpp import paths
from zerodiffpp.data import Prepared
from zerodiffpp.dfg import ZeroDiffTrainer
from zerodiffpp.fclswgan import train_fclswgan
from zerodiffpp.io import save_csv, save_torch
from zerodiffpp.params import load_stage_params
from zerodiffpp.runtime import log, run_stage, setup

SEED_OFFSET = 2


def run(p, prep: Prepared, device):
    """-> (generator checkpoint, training curve)."""
    if p["method"] == "fclswgan":
        return train_fclswgan(prep.x_train, prep.y_train, prep.att, prep.seen, p["fclswgan"], device)
    trainer = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], device,
                              compile=p["train"]["compile"])
    log.info("train: critics %s", sorted(trainer.critics))
    rows = trainer.train(p["gen"]["epochs"])
    return trainer.checkpoint(), rows


def main():
    p = load_stage_params("train")
    device = setup(p["train"], SEED_OFFSET)
    ckpt, rows = run(p, Prepared.load(paths.PREPARED), device)
    save_torch(paths.GENERATOR, ckpt)
    save_csv(paths.TRAIN_CURVE, rows or [{"step": 0}])


if __name__ == "__main__":
    run_stage("train", main)
