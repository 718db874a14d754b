"""Step adapt: DiffTTA (ZeroDiff++): pseudo-labels the test features, fine-tunes the generator (else passes it on)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from zerodiffpp.runtime import methods
from zerodiffpp.runtime.checkpoints import Checkpoints
from zerodiffpp.data.features import Prepared
from zerodiffpp.transductive.difftta import run_difftta
from zerodiffpp.runtime.live import LiveLog
from zerodiffpp.transductive.pseudo_labels import tie_ranks
from zerodiffpp.runtime.session import log
from zerodiffpp.generators.synth import Synthesizer

SEED_OFFSET = 3


def run(p, prep: Prepared, gen_ckpt: dict, drg_ckpt: dict, pseudo_label_calibration: float | Callable, device,
        live: LiveLog | None = None, ckpts: Checkpoints | None = None):
    """-> (adapted generator, pseudo-labels, adaptation curve). `pseudo_label_calibration` is the
    calibrated stacking of DiffTTA's pseudo-labels (tta.calibration as the calibrate stage resolved
    it; in the validation pass, a function choosing it from the provisional classifier)."""
    synth = Synthesizer(gen_ckpt, drg_ckpt, prep.att, device)
    tta_on = methods.uses_tta(p["method"])
    p_pl = dict(p["classifier"], calibration=pseudo_label_calibration)
    pseudo, rows = {"pred": np.zeros(0, np.int64), "conf": np.zeros(0, np.float32), "kept": np.zeros(0, np.int64),
                    "rank": np.zeros(0, np.int64), "rec_before": np.zeros(0), "rec_after": np.zeros(0)}, []
    if methods.is_transductive(p["method"]):
        rank = tie_ranks(len(prep.y_test_seen) + len(prep.y_test_unseen), p["train"]["seed"])
        pred, conf, kept, rounds, rows = run_difftta(synth, prep, p["tta"], p["synth"], p_pl, device, tta_on, rank,
                                                     live, ckpts and ckpts.part("difftta"))
        pseudo = {"pred": pred, "conf": conf.astype(np.float32), "kept": kept, "rank": rank,
                  "rec_before": np.array([r["rec_before"] for r in rounds]),
                  "rec_after": np.array([r["rec_after"] for r in rounds])}
        log.info("adapt: kept %d of %d pseudo-labelled test features", len(kept), len(pred))
    else:
        log.info("adapt: method %s: generator passed through", p["method"])
    return synth.checkpoint(), pseudo, rows
