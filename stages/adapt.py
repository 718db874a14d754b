"""Stage adapt: DiffTTA (ZeroDiff++): pseudo-labels the test features, fine-tunes the generator (else passes it on)."""
import numpy as np

from zerodiffpp import calibration, methods, paths
from zerodiffpp.checkpoints import Checkpoints
from zerodiffpp.data import Prepared
from zerodiffpp.difftta import run_difftta
from zerodiffpp.io import load_torch, save_json, save_npz, save_torch
from zerodiffpp.live import LiveLog
from zerodiffpp.params import load_stage_params, per_ratio, per_ratio_value
from zerodiffpp.pseudo_labels import tie_ranks
from zerodiffpp.runtime import log, run_stage, setup
from zerodiffpp.synth import Synthesizer

SEED_OFFSET = 3


def run(p, prep: Prepared, gen_ckpt: dict, drg_ckpt: dict, device, live: LiveLog | None = None,
        ckpts: Checkpoints | None = None):
    """-> (adapted generator, pseudo-labels, adaptation curve, calibration record: calibration.resolve_run)."""
    synth = Synthesizer(gen_ckpt, drg_ckpt, prep.att, device)
    tta_on = methods.uses_tta(p["method"], p["tta"]["enabled"])
    ratio, c = p["train"]["seen_ratio"], p["classifier"]  # values given per seen ratio (presets), for this run
    p_synth = dict(p["synth"], unseen_per_class=per_ratio(p["synth"]["unseen_per_class"], ratio))
    p_clf = dict(c, batch_size=per_ratio(c["batch_size"], ratio), calibration=per_ratio_value(c["calibration"], ratio))
    transductive = tta_on or methods.uses_diffgen(p["method"], p["diffgen"]["enabled"])
    calib = calibration.resolve_run(synth, prep, p_clf, per_ratio_value(p["tta"]["calibration"], ratio), transductive,
                                    p_synth["unseen_per_class"], p_synth["sampler"], device, p["train"]["seed"])
    pseudo, rows = {"pred": np.zeros(0, np.int64), "conf": np.zeros(0, np.float32), "kept": np.zeros(0, np.int64),
                    "rank": np.zeros(0, np.int64), "rec_before": np.zeros(0), "rec_after": np.zeros(0)}, []
    if transductive:
        rank = tie_ranks(len(prep.y_test_seen) + len(prep.y_test_unseen), p["train"]["seed"])
        p_pl = dict(p_clf, calibration=calib["pseudo_labels"]["calibration"])
        pred, conf, kept, rounds, rows = run_difftta(synth, prep, p["tta"], p_synth, p_pl, device, tta_on, rank,
                                                     live, ckpts and ckpts.part("difftta"))
        pseudo = {"pred": pred, "conf": conf.astype(np.float32), "kept": kept, "rank": rank,
                  "rec_before": np.array([r["rec_before"] for r in rounds]),
                  "rec_after": np.array([r["rec_after"] for r in rounds])}
        log.info("adapt: kept %d of %d pseudo-labelled test features", len(kept), len(pred))
    else:
        log.info("adapt: method %s with tta.enabled=%s: generator passed through", p["method"], p["tta"]["enabled"])
    return synth.checkpoint(), pseudo, rows, calib


def main():
    p = load_stage_params("adapt")
    device = setup(p["train"], SEED_OFFSET)
    live, ckpts = LiveLog(paths.ADAPT_LIVE), Checkpoints("adapt", p, p["checkpoint"])
    adapted, pseudo, _, calib = run(p, Prepared.load(paths.PREPARED), load_torch(paths.GENERATOR, device),
                                    load_torch(paths.DRG, device), device, live, ckpts)
    save_torch(paths.ADAPTED_GENERATOR, adapted)
    save_npz(paths.PSEUDO_LABELS, **pseudo)
    save_json(paths.CALIBRATION, calib)
    live.end("reconstruction", "anchor")
    ckpts.finish()


if __name__ == "__main__":
    run_stage("adapt", main)
