"""Stage pretrain: data scarcity + scaling, SC encoder r = E_sc(x), and the DRG p(r | a)."""
from zerodiffpp.runtime import paths
from zerodiffpp.runtime.checkpoints import Checkpoints
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.runtime.files import save_torch
from zerodiffpp.runtime.live import LiveLog
from zerodiffpp.runtime.params import load_stage_params
from zerodiffpp.pipeline import pretrain
from zerodiffpp.runtime.session import run_stage, setup


def main():
    p = load_stage_params("pretrain")
    device = setup(p["train"], pretrain.SEED_OFFSET)
    ckpts = Checkpoints("pretrain", p, p["checkpoint"])
    live = {"sc": LiveLog(paths.SC_LIVE), "drg": LiveLog(paths.DRG_LIVE)}
    prep, sc_ckpt, drg_ckpt, _, _ = pretrain.run(p, FeatureSet.load(paths.FEATURES), device, ckpts, live)
    prep.save(paths.PREPARED)
    save_torch(paths.SC_ENCODER, sc_ckpt)
    save_torch(paths.DRG, drg_ckpt)
    live["sc"].end("sc_loss")  # supplied SC features: no encoder was trained
    live["drg"].end()
    ckpts.finish()


if __name__ == "__main__":
    run_stage("pretrain", main)
