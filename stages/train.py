"""Stage train: the feature generator (ZeroDiff DFG, or the f-CLSWGAN baseline) -> models/generator."""
from zerodiffpp.runtime import paths
from zerodiffpp.runtime.checkpoints import Checkpoints
from zerodiffpp.data.features import Prepared
from zerodiffpp.runtime.files import load_torch, save_torch
from zerodiffpp.runtime.live import LiveLog
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import train
from zerodiffpp.runtime.session import run_stage, setup


def main():
    p = load_stage_params("train")
    device = setup(p["train"], train.SEED_OFFSET)
    ckpts = Checkpoints("train", p, p["checkpoint"])
    live = LiveLog(paths.TRAIN_LIVE)
    ckpt, _ = train.run(p, Prepared.load(paths.PREPARED), device, load_torch(paths.DRG, device), ckpts, live)
    save_torch(paths.GENERATOR, ckpt)
    live.end()
    ckpts.finish()


if __name__ == "__main__":
    run_stage("train", main)
