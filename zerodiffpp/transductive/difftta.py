"""DiffTTA (ZeroDiff++ iv; params section `tta`): test-time adaptation of the generator by pseudo-label
reconstruction.

The paper's procedure is not public; this is the project's definition (docs/method.md, "DiffTTA",
whose steps 1-3 are a-c here):
 a. generate unseen features from pure noise; train a provisional GZSL classifier on real seen
    training features plus these;
 b. pseudo-label the pooled, unlabelled test features; keep the most confident per predicted class;
 c. fine-tune G and E to reconstruct the kept features through the diffusion process, conditioned on
    the pseudo-class semantics and each sample's own SC representation, confidence-weighted, with a
    pull toward the trained weights. Rounds repeat a-c.
With tta.base_refit (not in the paper; needs gen.prototype_base) each round first refits G's prototype
base on the seen classes' real means and the kept test features' pseudo-class means (`refit_base`).
Test labels are never an input here.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

from zerodiffpp.nn import diffusion as dfn
from zerodiffpp.nn.classifier import InputView, calibrated, load_decoder, train_softmax
from zerodiffpp.nn.losses import reparameterize
from zerodiffpp.transductive.pseudo_labels import most_confident_first
from zerodiffpp.nn.ridge import prototype_map
from zerodiffpp.generators.synth import Synthesizer
from zerodiffpp.runtime.errors import ParamsError
from zerodiffpp.nn.training import Curve, adam, to_tensor

log = logging.getLogger(__name__)


def select_confident(pred: np.ndarray, conf: np.ndarray, keep_fraction: float, min_confidence: float,
                     rank: np.ndarray | None = None) -> np.ndarray:
    """Positions kept: per predicted class, the ceil(keep_fraction * n) most confident, and only those
    at least `min_confidence` confident. Ties are broken by `rank` (`tie_ranks`; None: by position),
    so the result is deterministic."""
    kept = []
    for c in np.unique(pred):
        pos = np.flatnonzero(pred == c)
        order = most_confident_first(pos, conf, rank)
        top = order[:int(np.ceil(keep_fraction * len(pos)))]
        kept.append(top[conf[top] >= min_confidence])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def decoder_shares_unseen(probs: np.ndarray, classes: np.ndarray, unseen: np.ndarray, a_hat: np.ndarray,
                          att: np.ndarray, temperature: float) -> np.ndarray:
    """The class posterior with the unseen classes ranked by the attribute decoder: each seen class
    keeps its probability, and the total probability of the unseen classes is shared among them by
    softmax(cos(Dec(x), a_c) / temperature). Rows of `a_hat` (Dec(x)) and `att` are unit vectors.
    The classifier still says whether x looks unseen; the decoder, fitted on real seen features
    only, says which unseen class it resembles, without going through generated features."""
    is_unseen = np.isin(classes, unseen)
    logits = a_hat @ att[classes[is_unseen]].T / temperature
    share = np.exp(logits - logits.max(1, keepdims=True))
    out = probs.copy()
    out[:, is_unseen] = probs[:, is_unseen].sum(1, keepdims=True) * share / share.sum(1, keepdims=True)
    return out


def pseudo_label(synth: Synthesizer, prep, x_test: np.ndarray, p_tta: dict, p_synth: dict, p_clf: dict, device):
    """Steps a and b: (predicted class, confidence) for every pooled test feature. The provisional
    classifier trains as the final GZSL classifier does (real seen features, generated unseen ones and
    synth.seen_per_class generated seen ones), reads the same input view (classifier.features) and
    predicts with calibrated stacking p_clf['calibration'] (tta.calibration as resolved: a number, or
    in the validation pass a function of the classifier that chooses it); with tta.unseen_labels 'decoder'
    the attribute decoder ranks the unseen classes (`decoder_shares_unseen`). The confidence is the
    predicted class's probability."""
    view = InputView.from_generator(p_clf["features"], synth.checkpoint(), device)
    x_gen, y_gen = synth.gzsl_set(prep, p_synth["unseen_per_class"], p_synth["seen_per_class"], p_synth["sampler"],
                                  recentre=p_synth["recentre"])
    clf = train_softmax(np.concatenate([prep.x_train, x_gen]), np.concatenate([prep.y_train, y_gen]),
                        prep.classes, p_clf["epochs"], p_clf["batch_size"], p_clf["lr"], device,
                        desc="adapt: provisional GZSL classifier", view=view, normalise=p_clf["normalise"])
    probs = clf.probabilities(x_test, device)
    gamma = p_clf["calibration"]
    if callable(gamma):  # the validation pass chooses it on its own split's curve (pipeline/validation.py)
        gamma = gamma(clf)
    pos = calibrated(probs, clf.classes, prep.seen, gamma).argmax(1)
    if p_tta["unseen_labels"] == "decoder":
        dec = view.dec if view.dec is not None else load_decoder(synth.checkpoint(), device)
        with torch.no_grad():
            a_hat = dec(to_tensor(x_test, device)).cpu().numpy()
        probs = decoder_shares_unseen(probs, clf.classes, prep.unseen, a_hat, prep.att,
                                      p_tta["decoder_temperature"])
        unseen_cols = np.flatnonzero(np.isin(clf.classes, prep.unseen))
        to_unseen = np.isin(pos, unseen_cols)  # the classifier's seen / unseen decision stands
        pos[to_unseen] = unseen_cols[probs[to_unseen][:, unseen_cols].argmax(1)]
    return clf.classes[pos], probs[np.arange(len(pos)), pos]


def refit_base(synth: Synthesizer, prep, x_test: np.ndarray, pred: np.ndarray, kept: np.ndarray) -> float:
    """tta.base_refit: G's prototype base (gen.prototype_base) refitted as the trainer fits it (ridge,
    penalty chosen on held-out classes), on the seen classes' real training means and, for each unseen
    class, the mean of the kept test features pseudo-labelled with it: one k-means step on the base's
    means, through the attribute map. Rounds repeat it from fresh pseudo-labels. Returns the mean
    distance the unseen classes' base means moved."""
    g = synth.gen["G"]
    if not g.prototype_base:
        raise ParamsError("tta.base_refit: the generator has no prototype base (train with gen.prototype_base: true)")
    to_unseen = kept[np.isin(pred[kept], prep.unseen)]
    before = g.base_means(prep.att[prep.unseen])  # buffers: a new tensor, no graph
    g.set_prototypes(*prototype_map(np.concatenate([prep.x_train, x_test[to_unseen]]),
                                    np.concatenate([prep.y_train, pred[to_unseen]]), prep.att,
                                    "seen training classes and pseudo-labelled unseen ones"))
    moved = float((g.base_means(prep.att[prep.unseen]) - before).norm(dim=1).mean())
    log.info("DiffTTA: prototype base refitted on %d pseudo-labelled test features of %d unseen classes; the "
             "unseen base means moved %.4f on average", len(to_unseen), len(np.unique(pred[to_unseen])), moved)
    return moved


def reconstruction_loss(synth: Synthesizer, x, r, a, w, t=None, latent: str = "posterior",
                        generator: torch.Generator | None = None):
    """Confidence-weighted squared error of G's one-step reconstruction of x_0 from x_{t+1}.

    `latent` (tta.latent) is the z given to G: 'posterior' z = E(x, a) (the sample's own latent),
    'prior' z ~ N(0, I) (the path full synthesis takes), 'both' the mean of the two losses on the
    same (t, x_{t+1}). Noise comes from `generator` (None: torch's global stream)."""
    t = dfn.sample_timesteps(len(x), synth.sched, x.device, generator) if t is None else t
    _, x_next = dfn.q_sample_pairs(x, t, synth.sched, generator)

    def weighted_error(z):
        x0_hat = synth.gen["G"](z, a, r, x_next, t)
        return (w * ((x0_hat - x) ** 2).sum(1)).sum() / w.sum()

    losses = []
    if latent in ("posterior", "both"):
        losses.append(weighted_error(reparameterize(*synth.gen["E"](x, a), generator=generator)))
    if latent in ("prior", "both"):
        losses.append(weighted_error(torch.randn(len(x), synth.cfg["noise_dim"], device=x.device,
                                                 generator=generator)))
    return losses[0] if len(losses) == 1 else sum(losses) / len(losses)


def evaluate_reconstruction(synth: Synthesizer, x, r, a, w, latent: str = "posterior", seed: int = 12345) -> float:
    """The reconstruction loss at every step on fixed noise (the same before and after adaptation).
    The noise comes from a generator of its own, so the check leaves torch's global random streams
    (CPU and CUDA) exactly where they were: adapting gives the same weights with or without it."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    with torch.no_grad():
        losses = [reconstruction_loss(synth, x, r, a, w, torch.full((len(x),), s, device=x.device), latent, generator)
                  for s in range(synth.sched.timesteps)]
    return float(torch.stack(losses).mean())


def adaptation_step(synth: Synthesizer, x, r, a, w, p: dict, params: list[torch.Tensor], anchor: list[torch.Tensor],
                    opt: torch.optim.Optimizer) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of step c on a batch: confidence-weighted reconstruction plus tta.anchor_weight
    times the squared distance to `anchor`. Returns both terms, detached and on the device (no host sync)."""
    rec = reconstruction_loss(synth, x, r, a, w, latent=p["latent"])
    pull = sum(((q - q0) ** 2).sum() for q, q0 in zip(params, anchor))
    loss = rec + p["anchor_weight"] * pull
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return rec.detach(), pull.detach()


def finetune(synth: Synthesizer, x: np.ndarray, r: np.ndarray | None, y: np.ndarray, conf: np.ndarray,
             p: dict, device, curve: Curve, round_idx: int, anchor: list[torch.Tensor],
             opt: torch.optim.Optimizer, start: int = 0, before: float | None = None,
             on_epoch=None) -> tuple[float, float]:
    """Step c: fine-tune G and E on the kept samples, pulled toward `anchor` (the trained weights).
    Returns the reconstruction loss on the kept samples before and after. A resumed round passes the
    epoch to `start` from and the `before` it measured; `on_epoch(epoch_done, before)` follows each epoch."""
    xt, at, wt = to_tensor(x, device), synth.att[torch.as_tensor(y, device=device)], to_tensor(conf, device)
    rt = to_tensor(r, device) if synth.uses_r else None
    before = evaluate_reconstruction(synth, xt, rt, at, wt, p["latent"]) if before is None else before
    params = list(synth.gen.parameters())
    synth.gen.train()
    for epoch in tqdm(range(start, p["epochs"]), desc=f"adapt: DiffTTA round {round_idx + 1}", unit="epoch",
                      initial=start, total=p["epochs"]):
        perm = torch.randperm(len(xt), device=device)
        for i in range(0, len(xt), p["batch_size"]):
            idx = perm[i:i + p["batch_size"]]
            rec, pull = adaptation_step(synth, xt[idx], rt[idx] if rt is not None else None, at[idx], wt[idx],
                                        p, params, anchor, opt)
            curve.add(reconstruction=rec, anchor=pull)
        curve.end_epoch(len(curve.rows))
        if on_epoch is not None:
            on_epoch(epoch + 1, before)
    synth.gen.eval()
    after = evaluate_reconstruction(synth, xt, rt, at, wt, p["latent"])
    log.info("DiffTTA round %d: reconstruction on %d kept samples %.4f -> %.4f", round_idx + 1, len(x), before, after)
    return before, after


def run_difftta(synth: Synthesizer, prep, p_tta: dict, p_synth: dict, p_clf: dict, device, adapt: bool = True,
                rank: np.ndarray | None = None, live=None, part=None):
    """All rounds. With `adapt` false (DiffGen without DiffTTA) only one pseudo-labelling pass runs
    and the generator is left as trained. `rank` breaks confidence ties (`pseudo_labels.tie_ranks`);
    `live` (a live.LiveLog) gets each fine-tuning epoch's row; `part` (a checkpoints.Part) saves the
    adaptation after its epochs and resumes it, inside its round, with that round's pseudo-labels.
    Returns the last pseudo-labels and per-round diagnostics."""
    x_test, r_test = prep.test_features()
    curve, rounds = Curve(live=live), []
    pred = conf = kept = None
    # docs/method.md, DiffTTA step 3: every round is pulled toward the trained generator, taken once
    # here, and one optimiser runs through all rounds (later rounds refresh the pseudo-labels, not the
    # reference)
    anchor = [q.detach().clone() for q in synth.gen.parameters()]
    opt = adam(synth.gen.parameters(), p_tta["lr"])
    n_rounds, epochs = (p_tta["rounds"] if adapt else 1), p_tta["epochs"]
    state = part.load() if part is not None and adapt else None
    first = 0
    if state is not None:  # inside round state["round"], after state["epoch"] of all its epochs
        part.restore(state, gen=synth.gen, opt=opt)
        curve.restore(state["rows"])
        rounds, first = state["rounds"], state["round"]
    for k in range(first, n_rounds):
        resumed = state is not None and k == first
        if resumed:
            pred, conf, kept = state["pred"], state["conf"], state["kept"]
        else:
            pred, conf = pseudo_label(synth, prep, x_test, p_tta, p_synth, p_clf, device)
            kept = select_confident(pred, conf, p_tta["keep_fraction"], p_tta["min_confidence"], rank)
        if not adapt:
            break
        if len(kept) == 0:
            log.warning("DiffTTA: no test feature passed tta.min_confidence=%s; generator left unchanged",
                        p_tta["min_confidence"])
            break
        moved = refit_base(synth, prep, x_test, pred, kept) if p_tta["base_refit"] and not resumed else None

        def save(epoch_done, before, k=k, pred=pred, conf=conf, kept=kept):
            if part is not None:
                part.maybe_save(k * epochs + epoch_done, n_rounds * epochs, dict(gen=synth.gen, opt=opt),
                                round=k, epoch_in_round=epoch_done, before=before, pred=pred, conf=conf, kept=kept,
                                rounds=list(rounds), rows=curve.rows)
        before, after = finetune(synth, x_test[kept], r_test[kept] if synth.uses_r else None, pred[kept],
                                 conf[kept], p_tta, device, curve, k, anchor, opt,
                                 start=state["epoch_in_round"] if resumed else 0,
                                 before=state["before"] if resumed else None, on_epoch=save)
        rounds.append({"round": k + 1, "kept": int(len(kept)), "rec_before": before, "rec_after": after,
                       "base_moved": moved})
    return pred, conf, kept, rounds, curve.rows
