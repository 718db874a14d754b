"""Step classify: the final linear softmax classifiers (GZSL over the split's classes, ZSL over unseen)."""
import numpy as np

from zerodiffpp.nn.classifier import InputView, train_softmax
from zerodiffpp.data.features import Prepared
from zerodiffpp.runtime.session import log

SEED_OFFSET = 5


def run(p, prep: Prepared, syn: dict, adapted_ckpt: dict, calibration: float, device):
    """-> (classifier states, test predictions, loss curve). `calibration` is calibrated stacking's
    value (the calibrate stage's: chosen by the validation pass, or params.yaml's number)."""
    c = p["classifier"]
    batch = c["batch_size"]
    view = InputView.from_generator(c["features"], adapted_ckpt, device)
    log.info("classify: classifiers read view %s%s", view.name, ", centred and normalised" if c["normalise"] else "")
    gzsl = train_softmax(np.concatenate([prep.x_train, syn["x"]]), np.concatenate([prep.y_train, syn["y"]]),
                         prep.classes, c["epochs"], batch, c["lr"], device, desc="classify: GZSL classifier", view=view,
                         normalise=c["normalise"])
    unseen_rows = np.isin(syn["y"], prep.unseen)
    zsl = train_softmax(syn["x"][unseen_rows], syn["y"][unseen_rows], prep.unseen, c["epochs"],
                        batch, c["lr"], device, desc="classify: ZSL classifier", view=view, normalise=c["normalise"])
    log.info("classify: calibrated stacking %.2f", calibration)
    preds = dict(gzsl_test_seen=gzsl.predict(prep.x_test_seen, device, prep.seen, calibration),
                 gzsl_test_unseen=gzsl.predict(prep.x_test_unseen, device, prep.seen, calibration),
                 zsl_test_unseen=zsl.predict(prep.x_test_unseen, device))
    curve = [{"step": a["step"], "gzsl_loss": a["loss"], "zsl_loss": b["loss"]} for a, b in zip(gzsl.curve, zsl.curve)]
    return {"gzsl": gzsl.state(), "zsl": zsl.state(), "view": view.name, "calibration": calibration}, preds, curve
