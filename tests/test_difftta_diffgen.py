import numpy as np
import pytest
import torch

from tests.tiny import tiny_prepared
from zerodiffpp.transductive.diffgen import diffgen_sources, partial_synthesis, synthetic_set
from zerodiffpp.generators.synth import Synthesizer
from zerodiffpp.generators.drg import train_drg
from zerodiffpp.transductive.difftta import decoder_shares_unseen, run_difftta, select_confident
from zerodiffpp.transductive.pseudo_labels import tie_ranks
from zerodiffpp.generators.synth import KIND_FULL, KIND_PARTIAL
from zerodiffpp.generators.dfg import ZeroDiffTrainer


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
    assert select_confident(pred, conf, 0.5, 0.7).tolist() == [0, 2, 5]  # exactly min_confidence is kept
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
    # the shift that keeps exp() finite is each row's own maximum: a row far from every unseen class
    # (cosines 0, 0) beside a row at cosine 1 still gets a proper share, not 0 / 0
    far = decoder_shares_unseen(probs, classes, unseen, np.array([[0.6, 0, 0.8], [0, 1.0, 0]]), att, 1e-4)
    np.testing.assert_allclose(far[:, 2:], [[0.0, 0.4], [0.4, 0.4]], atol=1e-12)


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
    from zerodiffpp.transductive.difftta import reconstruction_loss
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
    from zerodiffpp.transductive.difftta import reconstruction_loss
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
    """docs/method.md, DiffTTA step 3: the pull is toward the trained generator, taken once: round 2
    is not pulled toward round 1's weights."""
    from zerodiffpp.transductive import difftta
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


@pytest.mark.parametrize("latent", ["posterior", "prior", "both"])
def test_the_reconstruction_check_leaves_every_global_random_stream_alone(trained, monkeypatch, latent):
    """The before/after reconstruction check draws its fixed noise from a generator of its own: it
    never reseeds torch's global streams (torch.manual_seed would reseed CUDA's too, and only the
    CPU stream was put back), the CPU stream is where it was, and two checks agree, whichever z
    tta.latent chooses (the prior's z comes from the same generator)."""
    from functools import partial
    from zerodiffpp.transductive.difftta import evaluate_reconstruction as check
    evaluate_reconstruction = partial(check, latent=latent)
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
    from zerodiffpp.transductive import difftta
    prep = trained[0]
    with_check = _run_tta(trained, prep, rounds=1)[0].checkpoint()["state"]
    monkeypatch.setattr(difftta, "evaluate_reconstruction", lambda *args, **kw: 0.0)
    without = _run_tta(trained, prep, rounds=1)[0].checkpoint()["state"]
    for k in with_check:
        assert torch.equal(with_check[k], without[k]), k


def test_no_stage_builds_the_classifier_view_of_a_whole_set(trained, monkeypatch):
    """adapt (DiffTTA's pseudo-labels) and classify train and predict through the
    per-batch view: the whole-set numpy path of InputView is never called."""
    from zerodiffpp.pipeline import adapt, classify
    from zerodiffpp.nn.classifier import InputView
    prep, p, gen, drg = trained
    monkeypatch.setattr(InputView, "__call__", lambda self, x: pytest.fail("a whole-set view was built"))
    p = dict(p, method="zerodiffpp")
    torch.manual_seed(0)
    chosen = []
    adapted, pseudo, _ = adapt.run(p, prep, gen, drg, lambda clf: chosen.append(clf) or 0.0, "cpu")
    assert len(chosen) == 1 and len(pseudo["kept"]) > 0  # the provisional classifier was built and calibrated
    syn = {"x": np.concatenate([prep.x_train[:40], prep.x_test_unseen[:30]]),  # stands in for a synthetic set
           "y": np.concatenate([prep.y_train[:40], prep.y_test_unseen[:30]])}
    states, preds, _ = classify.run(p, prep, syn, adapted, 0.0, "cpu")
    assert states["view"] == "VS" and len(preds["gzsl_test_unseen"]) == len(prep.y_test_unseen)


@pytest.mark.parametrize("normalise", [False, True])
def test_classifier_normalise_reaches_every_classifier_of_classify_and_adapt(trained, monkeypatch, normalise):
    """classifier.normalise reaches DiffTTA's provisional classifier and classify's GZSL and ZSL ones:
    their states hold a centre exactly when it is on."""
    from zerodiffpp.pipeline import classify
    from zerodiffpp.transductive import difftta
    prep, p, gen, drg = trained
    seen, real_train = [], difftta.train_softmax
    monkeypatch.setattr(difftta, "train_softmax",
                        lambda *a, **kw: seen.append(kw["normalise"]) or real_train(*a, **kw))
    _pseudo_label(trained, clf={"normalise": normalise})
    assert seen == [normalise]
    p = dict(p, classifier={**p["classifier"], "normalise": normalise})
    syn = {"x": np.concatenate([prep.x_train[:40], prep.x_test_unseen[:30]]),  # stands in for a synthetic set
           "y": np.concatenate([prep.y_train[:40], prep.y_test_unseen[:30]])}
    states, _, _ = classify.run(p, prep, syn, _synth(trained).checkpoint(), 0.0, "cpu")
    assert [("centre" in states[k]["state"]) for k in ("gzsl", "zsl")] == [normalise, normalise]


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


def _pseudo_label(trained, monkeypatch=None, tta=None, clf=None, synth=None):
    """Steps a and b as run_difftta calls them (the toy's provisional classifier, a few epochs)."""
    from zerodiffpp.transductive.difftta import pseudo_label
    prep, p, _, _ = trained
    s = _synth(trained)
    x_test, _ = prep.test_features()
    torch.manual_seed(3)
    pred, conf = pseudo_label(s, prep, x_test, {**p["tta"], **(tta or {})}, {**p["synth"], **(synth or {})},
                              {**p["classifier"], "calibration": 0.0, **(clf or {})}, "cpu")
    return s, pred, conf


def test_pseudo_labels_apply_calibrated_stacking_to_the_seen_classes(trained):
    """tta.calibration (as resolved) reaches step b: subtracting 1 from every seen probability sends every
    test feature to an unseen class, adding 1 (calibration -1) to a seen one."""
    prep = trained[0]
    _, pred, conf = _pseudo_label(trained, tta={"unseen_labels": "classifier"}, clf={"calibration": 1.0})
    assert np.isin(pred, prep.unseen).all() and ((conf > 0) & (conf <= 1)).all()
    _, pred, _ = _pseudo_label(trained, tta={"unseen_labels": "classifier"}, clf={"calibration": -1.0})
    assert np.isin(pred, prep.seen).all()
    # the validation pass gives a function that chooses the value from the provisional classifier
    asked = []
    _, pred, _ = _pseudo_label(trained, tta={"unseen_labels": "classifier"},
                               clf={"calibration": lambda clf: asked.append(clf.classes) or -1.0})
    assert np.isin(pred, prep.seen).all() and np.array_equal(asked[0], prep.classes)


@pytest.mark.parametrize("features", ["VS", "V"])
def test_decoder_pseudo_labels_are_the_nearest_unseen_class_to_dec_x(trained, features):
    """tta.unseen_labels decoder: a test feature the classifier sends to an unseen class gets the unseen
    class whose attributes are nearest (cosine) to Dec(x), the decoder stored with the generator, whichever
    view the classifier reads (with V the decoder is loaded from the checkpoint); 'classifier' does not."""
    from zerodiffpp.nn.classifier import load_decoder
    prep = trained[0]
    s, pred, conf = _pseudo_label(trained, tta={"unseen_labels": "decoder"}, clf={"calibration": 1.0, "features": features})
    assert np.isin(pred, prep.unseen).all()  # calibration 1: every feature goes to the unseen side
    with torch.no_grad():
        a_hat = load_decoder(s.checkpoint(), "cpu")(torch.as_tensor(prep.test_features()[0])).numpy()
    nearest = prep.unseen[(a_hat @ prep.att[prep.unseen].T).argmax(1)]
    np.testing.assert_array_equal(pred, nearest)
    _, by_classifier, _ = _pseudo_label(trained, tta={"unseen_labels": "classifier"},
                                        clf={"calibration": 1.0, "features": features})
    assert not np.array_equal(by_classifier, nearest)


@pytest.mark.parametrize("seen_per_class", [0, 2])
def test_the_provisional_classifier_reads_the_sampler_and_the_view_it_is_given(trained, monkeypatch, seen_per_class):
    """Step a trains on the real seen features plus synth.sampler's unseen features (and, with
    synth.seen_per_class, that many generated per seen class, as the final GZSL classifier) and reads
    classifier.features' view of them."""
    from zerodiffpp.transductive import difftta
    samplers, views, labels, real_train = [], [], [], difftta.train_softmax

    def recording(x, y, *args, **kw):
        views.append(kw["view"])
        labels.append(y)
        return real_train(x, y, *args, **kw)
    monkeypatch.setattr(difftta, "train_softmax", recording)
    real_full = Synthesizer.full
    monkeypatch.setattr(Synthesizer, "full", lambda self, c, n, sampler="progressive", out=None:
                        samplers.append(sampler) or real_full(self, c, n, sampler, out))
    _pseudo_label(trained, synth={"sampler": "one_step", "unseen_per_class": 4, "seen_per_class": seen_per_class},
                  clf={"features": "VS"})
    assert samplers == ["one_step"] * (1 + bool(seen_per_class)) and len(views) == 1
    assert views[0].name == "VS" and views[0].dec is not None
    prep = trained[0]
    counts = np.bincount(labels[0], minlength=len(prep.att))
    np.testing.assert_array_equal(counts[prep.seen], np.bincount(prep.y_train, minlength=len(prep.att))[prep.seen]
                                  + seen_per_class)
    assert (counts[prep.unseen] == 4).all()


def _fixed_pseudo_labels(monkeypatch, prep, conf_value):
    """Replaces steps a and b: every even test feature pseudo-labelled unseen[0], every odd one seen[0]."""
    from zerodiffpp.transductive import difftta
    n = len(prep.test_features()[0])
    pred = np.where(np.arange(n) % 2 == 0, prep.unseen[0], prep.seen[0])
    conf = np.full(n, conf_value, np.float32)
    monkeypatch.setattr(difftta, "pseudo_label", lambda *args, **kw: (pred, conf))
    return pred, conf


def test_run_difftta_keeps_the_ranked_selection_and_adapts_nothing_without_a_kept_feature(trained, monkeypatch):
    """The kept set is select_confident of the pseudo-labels with tta.keep_fraction, tta.min_confidence
    and the tie rank; without adaptation (DiffGen alone) or when no feature is confident enough, no
    round runs and the generator is left as trained."""
    prep, p, gen, _ = trained
    pred, conf = _fixed_pseudo_labels(monkeypatch, prep, 0.6)  # every confidence tied
    rank = np.random.default_rng(2).permutation(len(pred))
    tta = dict(p["tta"], keep_fraction=0.25, min_confidence=0.5)
    for adapt, min_confidence, expected in ((False, 0.5, select_confident(pred, conf, 0.25, 0.5, rank)),
                                            (True, 0.9, np.zeros(0, np.int64))):
        s = _synth(trained)
        out = run_difftta(s, prep, dict(tta, min_confidence=min_confidence), p["synth"], p["classifier"], "cpu",
                          adapt=adapt, rank=rank)
        got_pred, got_conf, kept, rounds, rows = out
        assert got_pred is pred and got_conf is conf and rounds == [] and rows == []
        assert kept.tolist() == expected.tolist()
        for k, v in s.checkpoint()["state"].items():
            assert torch.equal(v, gen["state"][k]), k
    assert len(expected := select_confident(pred, conf, 0.25, 0.5, rank)) > 0
    assert expected.tolist() != select_confident(pred, conf, 0.25, 0.5).tolist()  # the rank decides the ties


def test_a_round_runs_tta_epochs_on_tta_latent(trained, monkeypatch):
    """Each round fine-tunes for tta.epochs epochs (one curve row each) with the z of tta.latent, in the
    update and in the before/after check: with 'prior' the encoder gets no reconstruction gradient, so
    the pull toward the trained weights leaves it exactly where it was."""
    from zerodiffpp.transductive.difftta import evaluate_reconstruction
    prep, p, gen, _ = trained
    pred, conf = _fixed_pseudo_labels(monkeypatch, prep, 0.9)
    tta = dict(p["tta"], epochs=3, rounds=1, latent="prior", lr=0.01, keep_fraction=0.5, min_confidence=0.0)
    kept = select_confident(pred, conf, 0.5, 0.0)
    x_test, r_test = prep.test_features()
    s = _synth(trained)
    batch = (torch.as_tensor(x_test[kept]), torch.as_tensor(r_test[kept]), s.att[torch.as_tensor(pred[kept])],
             torch.as_tensor(conf[kept]))
    before = evaluate_reconstruction(s, *batch, "prior")
    assert before != evaluate_reconstruction(s, *batch, "posterior")
    torch.manual_seed(3)
    _, _, got_kept, rounds, rows = run_difftta(s, prep, tta, p["synth"], p["classifier"], "cpu")
    assert got_kept.tolist() == kept.tolist() and len(rows) == 3
    assert rounds == [{"round": 1, "kept": len(kept), "rec_before": before,
                       "rec_after": evaluate_reconstruction(s, *batch, "prior"), "base_moved": None}]
    state = s.checkpoint()["state"]
    assert all(torch.equal(state[k], gen["state"][k]) for k in state if k.startswith("E."))
    assert not all(torch.equal(state[k], gen["state"][k]) for k in state if k.startswith("G."))


def test_the_reconstruction_check_runs_every_step_once_in_order(trained):
    """evaluate_reconstruction is the mean of the reconstruction loss at t = 0, 1, ..., T - 1, every
    sample of a call at the same step (a t drawn at random would not be the same check twice)."""
    from zerodiffpp.transductive.difftta import evaluate_reconstruction
    s, x, r, a = _kept_batch(trained)
    steps = []
    hook = s.gen["G"].register_forward_pre_hook(lambda mod, args: steps.append(args[4].tolist()))
    evaluate_reconstruction(s, x, r, a, torch.ones(len(x)))
    hook.remove()
    assert steps == [[t] * len(x) for t in range(s.sched.timesteps)]


def test_latent_both_is_the_mean_of_the_posterior_and_prior_errors(trained):
    """tta.latent both: G runs twice on the same (t, x_{t+1}) with two different z, and the loss is the mean of the two confidence-weighted errors."""
    from zerodiffpp.transductive.difftta import reconstruction_loss
    s, x, r, a = _kept_batch(trained)
    w = torch.linspace(0.2, 1.0, len(x))
    calls = []
    hook = s.gen["G"].register_forward_hook(lambda mod, args, out: calls.append((args, out)))
    with torch.no_grad():
        loss = reconstruction_loss(s, x, r, a, w, latent="both")
    hook.remove()
    assert len(calls) == 2
    (args0, out0), (args1, out1) = calls
    assert torch.equal(args0[3], args1[3]) and torch.equal(args0[4], args1[4])  # same x_{t+1}, same t
    assert not torch.equal(args0[0], args1[0])
    errors = [(w * ((out - x) ** 2).sum(1)).sum() / w.sum() for out in (out0, out1)]
    torch.testing.assert_close(loss, (errors[0] + errors[1]) / 2)
