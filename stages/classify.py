"""Stage classify: the final linear softmax classifiers (GZSL over all classes, ZSL over unseen)."""
import numpy as np

from zerodiffpp import paths
from zerodiffpp.classifier import train_softmax
from zerodiffpp.data import Prepared
from zerodiffpp.io import load_npz, save_csv, save_npz, save_torch
from zerodiffpp.params import load_stage_params
from zerodiffpp.runtime import setup


def main():
    p = load_stage_params("classify")
    device = setup(p["train"], seed_offset=5)
    c = p["classifier"]
    prep, syn = Prepared.load(paths.PREPARED), load_npz(paths.SYNTHETIC)
    gzsl = train_softmax(np.concatenate([prep.x_train, syn["x"]]), np.concatenate([prep.y_train, syn["y"]]),
                         np.arange(prep.n_classes), c["epochs"], c["batch_size"], c["lr"], device,
                         desc="classify: GZSL classifier")
    unseen_rows = np.isin(syn["y"], prep.unseen)
    zsl = train_softmax(syn["x"][unseen_rows], syn["y"][unseen_rows], prep.unseen, c["epochs"], c["batch_size"],
                        c["lr"], device, desc="classify: ZSL classifier")
    save_torch(paths.CLASSIFIERS, {"gzsl": gzsl.state(), "zsl": zsl.state()})
    save_npz(paths.PREDICTIONS, gzsl_test_seen=gzsl.predict(prep.x_test_seen, device),
             gzsl_test_unseen=gzsl.predict(prep.x_test_unseen, device),
             zsl_test_unseen=zsl.predict(prep.x_test_unseen, device))
    save_csv(paths.CLASSIFY_CURVE, [{"step": a["step"], "gzsl_loss": a["loss"], "zsl_loss": b["loss"]}
                                    for a, b in zip(gzsl.curve, zsl.curve)])


if __name__ == "__main__":
    main()
