import numpy as np
import pytest
import torch

from tests.tiny import tiny_prepared
from zerodiffpp.diffgen import diffgen_sources, partial_synthesis, synthetic_set
from zerodiffpp.synth import Synthesizer
from zerodiffpp.drg import train_drg
from zerodiffpp.difftta import decoder_shares_unseen, run_difftta, select_confident
from zerodiffpp.pseudo_labels import tie_ranks
from zerodiffpp.synth import KIND_FULL, KIND_PARTIAL
from zerodiffpp.dfg import ZeroDiffTrainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    prep, p = tiny_prepared(tmp_path_factory.mktemp("tta"))
    drg, cfg, _ = train_drg(prep.r_train, prep.y_train, prep.att, p["drg"], p["diffusion"], "cpu")
    tr = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    tr.train(2, desc=None)
    return prep, p, tr.checkpoint(), {"config": cfg, "state": drg.state_dict()}


def _synth(trained):
    prep, _, gen, drg = trained
    return Synthesizer(gen, drg, prep.att, "cpu")


def test_partial_synthesis_from_k0_returns_the_real_feature(trained):
    prep = trained[0]
    x, r, y = prep.x_test_seen[:10], prep.r_test_seen[:10], prep.y_test_seen[:10]
    np.testing.assert_array_equal(partial_synthesis(_synth(trained), x, r, y, 0), x)


def test_larger_k_lands_farther_from_the_input(trained):
    prep = trained[0]
    x, r, y = prep.x_test_seen, prep.r_test_seen, prep.y_test_seen
    s = _synth(trained)
    torch.manual_seed(0)
    dist = [np.linalg.norm(partial_synthesis(s, x, r, y, k) - x, axis=1).mean() for k in (0, 1, 2, 3)]
    assert dist[0] == 0.0
    assert dist[1] < dist[3] and dist[2] < dist[3]


def test_select_confident_per_class():
    pred = np.array([0, 0, 0, 0, 1, 1, 2])
    conf = np.array([0.9, 0.5, 0.7, 0.2, 0.6, 0.8, 0.3])
    assert select_confident(pred, conf, 0.5, 0.0).tolist() == [0, 2, 5, 6]
    assert select_confident(pred, conf, 0.5, 0.65).tolist() == [0, 2, 5]
    assert select_confident(pred, conf, 1.0, 0.95).tolist() == []
    empty = select_confident(pred[:0], conf[:0], 0.5, 0.0)  # no test feature at all
    assert empty.dtype == np.int64 and empty.size == 0


def _run_tta(trained, prep, **tta):
    _, p, gen, drg = trained
    s = Synthesizer(gen, drg, prep.att, "cpu")
    torch.manual_seed(3)
    # the adapt stage resolves classifier.calibration ('auto') before DiffTTA; these tests fix the toy's 0.6
    pred, conf, kept, rounds, _ = run_difftta(s, prep, {**p["tta"], **tta}, p["synth"],
                                              dict(p["classifier"], calibration=0.6), "cpu")
    return s, pred, conf, kept, rounds


def test_decoder_shares_the_unseen_mass_by_attribute_similarity():
    classes, unseen = np.arange(4), np.array([2, 3])
    att = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0, 0.8]])
    probs = np.array([[0.5, 0.1, 0.3, 0.1],
                      [0.1, 0.1, 0.1, 0.7]])
    a_hat = np.array([[0.6, 0, 0.8],    # exactly class 3's attributes
                      [0, 0, 1.0]])     # exactly class 2's
    out = decoder_shares_unseen(probs, classes, unseen, a_hat, att, temperature=0.1)
    np.testing.assert_allclose(out[:, :2], probs[:, :2])               # seen classes untouched
    np.testing.assert_allclose(out[:, 2:].sum(1), probs[:, 2:].sum(1))  # unseen total kept
    # cosines (0.8, 1.0) and (1.0, 0.8): softmax at temperature 0.1 gives 1 / (1 + e^2) to the lesser
    lesser = 1 / (1 + np.exp(2.0))
    np.testing.assert_allclose(out[0, 2:], 0.4 * np.array([lesser, 1 - lesser]))
    np.testing.assert_allclose(out[1, 2:], 0.8 * np.array([1 - lesser, lesser]))
    # a very low temperature hands the whole unseen mass to the nearest class
    np.testing.assert_allclose(decoder_shares_unseen(probs, classes, unseen, a_hat, att, 1e-4)[:, 2:],
                               [[0.0, 0.4], [0.8, 0.0]], atol=1e-12)


def test_decoder_unseen_labels_change_only_unseen_pseudo_labels(trained):
    prep = trained[0]
    _, pred_c, _, _, _ = _run_tta(trained, prep, rounds=1, unseen_labels="classifier")
    _, pred_d, conf_d, kept_d, rounds = _run_tta(trained, prep, rounds=1, unseen_labels="decoder")
    assert len(kept_d) > 0 and rounds[0]["rec_after"] < rounds[0]["rec_before"]
    assert ((conf_d > 0) & (conf_d <= 1)).all()
    # the classifier still decides seen against unseen; only the choice among unseen classes moves
    np.testing.assert_array_equal(np.isin(pred_c, prep.unseen), np.isin(pred_d, prep.unseen))
    seen_pos = ~np.isin(pred_c, prep.unseen)
    np.testing.assert_array_equal(pred_c[seen_pos], pred_d[seen_pos])


def test_difftta_lowers_reconstruction_on_kept_samples(trained):
    _, _, _, kept, rounds = _run_tta(trained, trained[0])
    assert len(kept) > 0
    assert rounds[0]["rec_after"] < rounds[0]["rec_before"]


def test_shuffling_test_labels_changes_nothing(trained):
    import copy
    prep = trained[0]
    shuffled = copy.deepcopy(prep)
    rng = np.random.default_rng(0)
    shuffled.y_test_seen = rng.permutation(shuffled.y_test_seen)
    shuffled.y_test_unseen = rng.permutation(shuffled.y_test_unseen)[::-1].copy()
    a, b = _run_tta(trained, prep), _run_tta(trained, shuffled)
    for k in a[0].checkpoint()["state"]:
        assert torch.equal(a[0].checkpoint()["state"][k], b[0].checkpoint()["state"][k])
    np.testing.assert_array_equal(a[1], b[1])
    torch.manual_seed(5)
    sa = _diffgen(a[0], prep, a[1], a[2], a[3], 2, 1, 20)
    torch.manual_seed(5)
    sb = _diffgen(b[0], prep, b[1], b[2], b[3], 2, 1, 20)
    np.testing.assert_array_equal(sa["x"], sb["x"])


def _diffgen(s, prep, pred, conf, kept, k, per_feature, max_per_class, classes="all", per_class=3, rank=None):
    """The synthesize stage's own path (synthetic_set) with DiffGen on."""
    g = {"start_step": k, "per_feature": per_feature, "max_per_class": max_per_class, "classes": classes}
    pseudo = {"pred": pred, "conf": conf, "kept": kept, **({"rank": rank} if rank is not None else {})}
    return synthetic_set(s, prep, per_class, "progressive", pseudo, g)


def test_diffgen_caps_per_class(trained):
    prep = trained[0]
    s, pred, conf, kept, _ = _run_tta(trained, prep)
    syn = _diffgen(s, prep, pred, conf, kept, 2, 3, 5)
    partial = syn["kind"] == KIND_PARTIAL
    assert syn["x"].shape == (len(syn["y"]), prep.x_train.shape[1]) and partial.sum() == len(syn["src"]) > 0
    assert np.bincount(syn["y"][partial]).max() <= 5
    assert set(np.unique(syn["y"][partial])) == set(np.unique(pred[kept]))


def test_diffgen_can_be_restricted_to_unseen_pseudo_classes(trained):
    prep = trained[0]
    s, pred, conf, kept, _ = _run_tta(trained, prep)
    pred = pred.copy()
    pred[kept[: len(kept) // 2]] = prep.unseen[0]  # make sure some kept sources carry an unseen label
    syn = _diffgen(s, prep, pred, conf, kept, 2, 1, 50, classes="unseen")
    y = syn["y"][syn["kind"] == KIND_PARTIAL]
    assert len(y) > 0 and set(np.unique(y)) <= set(prep.unseen)


def test_the_synthetic_set_aligns_each_partial_synthesis_with_its_source_and_pseudo_label(trained):
    """Sources: kept features only, most confident first per pseudo-class, repeated per_feature times,
    capped per class; full features come first, each block under its own labels. With k = 0 DiffGen
    returns its source unchanged, so every partial row must equal the test feature it came from."""
    prep = trained[0]
    s = _synth(trained)
    x_test, _ = prep.test_features()
    n = len(x_test)
    pred = np.where(np.arange(n) % 2 == 0, prep.unseen[0], prep.seen[0])
    conf = np.linspace(0.1, 0.9, n).astype(np.float32)
    kept = np.arange(0, n, 3)  # a kept subset; the others must never be sources
    syn = _diffgen(s, prep, pred, conf, kept, 0, 2, 5, per_class=4)
    n_full = 4 * len(prep.unseen)
    assert syn["kind"].tolist() == [KIND_FULL] * n_full + [KIND_PARTIAL] * len(syn["src"])
    assert syn["y"][:n_full].tolist() == np.repeat(prep.unseen, 4).tolist()
    for c in (prep.seen[0], prep.unseen[0]):  # the 3 most confident kept sources of c, each twice, capped at 5
        top = kept[pred[kept] == c][::-1][:3]
        assert syn["src"][pred[syn["src"]] == c].tolist() == np.repeat(top, 2)[:5].tolist()
    np.testing.assert_array_equal(syn["x"][n_full:], x_test[syn["src"]])
    np.testing.assert_array_equal(syn["y"][n_full:], pred[syn["src"]])


def test_confidence_ties_are_broken_by_the_seeded_rank_not_by_position():
    """The pool lists test-seen first: by position every tie (a saturated softmax) would keep test-seen
    features. DiffTTA's selection and DiffGen's sources break ties by the same seeded rank."""
    n = 40
    pred, conf = np.zeros(n, np.int64), np.ones(n, np.float32)
    rank = tie_ranks(n, seed=0)
    assert sorted(rank.tolist()) == list(range(n)) and rank.tolist() != list(range(n))
    np.testing.assert_array_equal(rank, tie_ranks(n, seed=0))
    assert not np.array_equal(rank, tie_ranks(n, seed=1))
    kept = select_confident(pred, conf, 0.25, 0.0, rank)
    assert kept.tolist() == np.sort(np.argsort(rank)[:10]).tolist() != list(range(10))
    assert diffgen_sources(pred, conf, np.arange(n), 1, 10, rank=rank).tolist() == np.argsort(rank)[:10].tolist()
    assert select_confident(pred, conf, 0.25, 0.0).tolist() == list(range(10))  # without a rank: by position


@pytest.mark.parametrize("latent, encoder_moves", [("posterior", True), ("prior", False), ("both", True)])
def test_tta_latent_chooses_which_z_the_reconstruction_uses(trained, latent, encoder_moves):
    """tta.latent prior reconstructs from z ~ N(0, I), the path of full synthesis, so the encoder E
    gets no gradient; posterior and both go through E(x, a_y_hat)."""
    from zerodiffpp.difftta import reconstruction_loss
    prep = trained[0]
    s = _synth(trained)
    x, r = torch.as_tensor(prep.x_test_seen[:16]), torch.as_tensor(prep.r_test_seen[:16])
    a, w = s.att[torch.as_tensor(prep.y_test_seen[:16])], torch.ones(16)
    s.gen.zero_grad()
    reconstruction_loss(s, x, r, a, w, latent=latent).backward()
    e_grad = sum(float(q.grad.abs().sum()) for q in s.gen["E"].parameters() if q.grad is not None)
    g_grad = sum(float(q.grad.abs().sum()) for q in s.gen["G"].parameters() if q.grad is not None)
    assert g_grad > 0 and (e_grad > 0) == encoder_moves


def _kept_batch(trained, n=24):
    prep = trained[0]
    s = _synth(trained)
    x, r = torch.as_tensor(prep.x_test_seen[:n]), torch.as_tensor(prep.r_test_seen[:n])
    return s, x, r, s.att[torch.as_tensor(prep.y_test_seen[:n])]


def _g_grad(s, x, r, a, w, seed=4):
    from zerodiffpp.difftta import reconstruction_loss
    s.gen.zero_grad()
    torch.manual_seed(seed)
    reconstruction_loss(s, x, r, a, w).backward()
    return torch.cat([q.grad.flatten() for q in s.gen["G"].parameters()])


def test_a_sample_of_confidence_zero_does_not_change_the_update(trained):
    """The reconstruction loss is confidence-weighted: a kept sample with weight 0 contributes no
    gradient, whatever its features (dropping the weights would let it)."""
    s, x, r, a = _kept_batch(trained)
    w = torch.ones(len(x))
    w[3] = 0.0
    garbage = x.clone()
    garbage[3] = torch.rand_like(x[3])
    torch.testing.assert_close(_g_grad(s, x, r, a, w), _g_grad(s, garbage, r, a, w))
    w[3] = 1.0
    assert not torch.allclose(_g_grad(s, x, r, a, w), _g_grad(s, garbage, r, a, w))


def _distance_from_trained(trained, **tta):
    prep, _, gen, _ = trained
    s, _, _, _, _ = _run_tta(trained, prep, rounds=1, **tta)
    adapted = s.checkpoint()["state"]
    return sum(float(((adapted[k].float() - gen["state"][k].float()) ** 2).sum()) for k in gen["state"]) ** 0.5


def test_the_anchor_keeps_the_adapted_generator_near_the_trained_one(trained):
    """tta.anchor_weight pulls toward the trained weights: a large weight keeps the adapted
    generator much nearer to them than no pull at all (dropping the term makes the two equal)."""
    free = _distance_from_trained(trained, anchor_weight=0.0, lr=0.001)
    pulled = _distance_from_trained(trained, anchor_weight=100.0, lr=0.001)
    assert free > 0 and pulled < 0.5 * free


def test_every_round_is_anchored_to_the_trained_generator(trained, monkeypatch):
    """METHOD.md 4c: the pull is toward the trained generator, taken once: round 2 is not pulled
    toward round 1's weights."""
    from zerodiffpp import difftta
    prep, _, gen, _ = trained
    anchors, real_finetune = [], difftta.finetune

    def recording(synth, x, r, y, conf, p, device, curve, round_idx, anchor, opt, **resume):
        anchors.append([q.clone() for q in anchor])
        return real_finetune(synth, x, r, y, conf, p, device, curve, round_idx, anchor, opt, **resume)
    monkeypatch.setattr(difftta, "finetune", recording)
    s, _, _, _, rounds = _run_tta(trained, prep, rounds=2, lr=0.001)
    assert len(rounds) == 2 and len(anchors) == 2 and [r["round"] for r in rounds] == [1, 2]
    trained_weights = [gen["state"][k] for k in s.gen.state_dict()]
    for anchor in anchors:
        for q, q0 in zip(anchor, trained_weights):
            torch.testing.assert_close(q, q0, rtol=0, atol=0)


def test_the_reconstruction_check_leaves_every_global_random_stream_alone(trained, monkeypatch):
    """The before/after reconstruction check draws its fixed noise from a generator of its own: it
    never reseeds torch's global streams (torch.manual_seed would reseed CUDA's too, and only the
    CPU stream was put back), the CPU stream is where it was, and two checks agree."""
    from zerodiffpp.difftta import evaluate_reconstruction
    s, x, r, a = _kept_batch(trained)
    w = torch.rand(len(x))

    def forbidden(*_):
        raise AssertionError("the reconstruction check reseeded a global random stream")
    monkeypatch.setattr(torch, "manual_seed", forbidden)
    monkeypatch.setattr(torch.random, "manual_seed", forbidden)
    state = torch.random.get_rng_state()
    first = evaluate_reconstruction(s, x, r, a, w)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert evaluate_reconstruction(s, x, r, a, w) == first


def test_the_same_seed_gives_the_same_adapted_weights_with_or_without_the_check(trained, monkeypatch):
    from zerodiffpp import difftta
    prep = trained[0]
    with_check = _run_tta(trained, prep, rounds=1)[0].checkpoint()["state"]
    monkeypatch.setattr(difftta, "evaluate_reconstruction", lambda *args, **kw: 0.0)
    without = _run_tta(trained, prep, rounds=1)[0].checkpoint()["state"]
    for k in with_check:
        assert torch.equal(with_check[k], without[k]), k


def test_no_stage_builds_the_classifier_view_of_a_whole_set(trained, monkeypatch):
    """adapt (calibration, DiffTTA's pseudo-labels) and classify train and predict through the
    per-batch view: the whole-set numpy path of InputView is never called."""
    from stages import adapt, classify
    from zerodiffpp.classifier import InputView
    prep, p, gen, drg = trained
    monkeypatch.setattr(InputView, "__call__", lambda self, x: pytest.fail("a whole-set view was built"))
    p = dict(p, method="zerodiffpp")
    torch.manual_seed(0)
    adapted, pseudo, _, calib = adapt.run(p, prep, gen, drg, "cpu")
    assert calib["source"] == "auto" and len(pseudo["kept"]) > 0
    syn = {"x": np.concatenate([prep.x_train[:40], prep.x_test_unseen[:30]]),  # stands in for a synthetic set
           "y": np.concatenate([prep.y_train[:40], prep.y_test_unseen[:30]])}
    states, preds, _ = classify.run(p, prep, syn, adapted, calib["calibration"], "cpu")
    assert states["view"] == "VS" and len(preds["gzsl_test_unseen"]) == len(prep.y_test_unseen)


def test_the_synthetic_set_honours_its_settings_and_types(trained):
    """synthetic_set as the stage runs it: float32 features and int64 labels and sources; no partial row
    without sources; the sampler reaches full synthesis; diffgen.classes 'unseen' drops seen
    pseudo-classes; confidence ties among the sources follow pseudo['rank']."""
    prep = trained[0]
    s = _synth(trained)
    n = len(prep.test_features()[0])
    pred = np.where(np.arange(n) % 2 == 0, prep.unseen[0], prep.seen[0])
    conf = np.ones(n, np.float32)  # every confidence tied
    rank = np.random.default_rng(1).permutation(n)
    syn = _diffgen(s, prep, pred, conf, np.arange(n), 0, 1, 3, per_class=2, rank=rank)
    assert syn["x"].dtype == np.float32 and syn["y"].dtype == np.int64 and syn["src"].dtype == np.int64
    for c in (prep.seen[0], prep.unseen[0]):  # the 3 lowest-ranked sources of each pseudo-class
        pos = np.flatnonzero(pred == c)
        assert syn["src"][pred[syn["src"]] == c].tolist() == pos[np.argsort(rank[pos])][:3].tolist()
    only_unseen = _diffgen(s, prep, pred, conf, np.arange(n), 0, 1, 3, classes="unseen", per_class=2, rank=rank)
    assert set(pred[only_unseen["src"]]) == {prep.unseen[0]} and len(only_unseen["src"]) == 3
    none = _diffgen(s, prep, pred, conf, np.zeros(0, np.int64), 0, 1, 3, per_class=2)
    assert len(none["src"]) == 0 and len(none["y"]) == len(none["x"]) == 2 * len(prep.unseen)
    assert none["src"].dtype == np.int64 and synthetic_set(s, prep, 2, "one_step")["src"].dtype == np.int64
    for sampler in ("one_step", "progressive"):
        torch.manual_seed(9)
        got = synthetic_set(s, prep, 2, sampler)
        torch.manual_seed(9)
        np.testing.assert_array_equal(got["x"], s.full(prep.unseen, 2, sampler)[0])
