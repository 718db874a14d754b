"""Step pretrain: data scarcity + scaling, SC encoder r = E_sc(x), and the DRG p(r | a)."""
from zerodiffpp.runtime.checkpoints import Checkpoints
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.generators.drg import train_drg
from zerodiffpp.runtime.session import log
from zerodiffpp.generators.sc import sc_representations, train_sc_encoder
from zerodiffpp.data.splits import prepare_split

SEED_OFFSET = 1


def run(p, fs: FeatureSet, device, ckpts: Checkpoints | None = None, live: dict | None = None):
    """-> (prepared split with its r, SC encoder checkpoint, DRG checkpoint, SC curve, DRG curve).
    `ckpts` makes the SC encoder and the DRG resumable (a rerun after a kill continues them); `live`
    ({"sc": LiveLog, "drg": LiveLog}) receives their curves epoch by epoch."""
    live = live or {}
    prep, _ = prepare_split(fs, p["train"]["seen_ratio"], p["train"]["seed"], p["data"]["protocol"],
                            p["data"]["val_classes"])
    log.info("pretrain: %s protocol; %d seen / %d unseen classes", p["data"]["protocol"], len(prep.seen), len(prep.unseen))
    log.info("pretrain: seen_ratio %.3f keeps %d of %d training samples", p["train"]["seen_ratio"],
             len(prep.y_train), len(fs.trainval))
    if fs.r.size:  # a user-supplied SC representation (con_paco.mat style) replaces the encoder
        sc_ckpt, sc_rows = {"external": True}, []
        log.info("pretrain: using the supplied SC features (%d-d); no encoder is trained", fs.r.shape[1])
    else:
        enc, sc_rows = train_sc_encoder(prep.x_train, prep.y_train, p["sc"], device,
                                        ckpts.part("sc_encoder") if ckpts else None, live.get("sc"))
        scaler, r = sc_representations(enc, prep, device)
        prep.r_train, prep.r_test_seen, prep.r_test_unseen = r["train"], r["test_seen"], r["test_unseen"]
        sc_ckpt = {"external": False, "state": enc.state_dict(), "r_min": scaler.lo, "r_scale": scaler.scale}
    drg, drg_cfg, drg_rows = train_drg(prep.r_train, prep.y_train, prep.att, p["drg"], p["diffusion"], device,
                                       compile=p["train"]["compile"], part=ckpts.part("drg") if ckpts else None,
                                       live=live.get("drg"))
    return prep, sc_ckpt, {"config": drg_cfg, "state": drg.state_dict()}, sc_rows, drg_rows
