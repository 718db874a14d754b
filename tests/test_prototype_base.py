"""gen.prototype_base: the ZeroDiff generator starting from a ridge map attributes -> class means.
Known answers: the penalty chosen on held-out training classes, the base the trainer fits (the ridge
map of the seen classes' means, nothing else read), the generator's output at a zero network (the
base itself, whatever the noise), the base surviving a checkpoint, and the switch off leaving the
network as the paper's (no buffers, the golden numbers of tests/test_golden.py)."""
import numpy as np
import pytest
import torch

from tests.tiny import tiny_params, tiny_prepared
from zerodiffpp.generators.dfg import ZeroDiffTrainer
from zerodiffpp.nn.ridge import prototype_map
from zerodiffpp.nn import ridge
from zerodiffpp.nn.networks import build_feature_generator


def reload(ckpt: dict):
    gen = build_feature_generator(ckpt["config"])
    gen.load_state_dict(ckpt["state"])
    return gen


def _toy_classes(rng, n_classes=40, noise=0.05, sizes=(3, 9)):
    att = rng.random((n_classes, 6))
    means = att @ rng.normal(size=(6, 5)) + 0.3
    y = np.concatenate([np.full(rng.integers(*sizes), c) for c in range(n_classes)])  # classes of unequal size
    return att, means, y, means[y] + noise * rng.normal(size=(len(y), 5))


def test_the_penalty_is_the_best_at_classifying_held_out_classes_images():
    """held_out_class_accuracy against a loop written out: seeded folds of the classes, the ridge map of
    the other classes' means, each image of a fold to its nearest predicted mean among the fold's classes,
    mean per-class accuracy per fold, folds averaged; the penalty is its arg-max (ties: the smaller)."""
    rng = np.random.default_rng(0)
    att, means, y, x = _toy_classes(rng, noise=1.0)
    x = x + 2.0 * rng.normal(size=(40, 5))[y]  # class-level residual: the attributes do not give the means
    got = ridge.held_out_class_accuracy(x, y, att)
    classes = np.arange(40)
    parts = np.array_split(np.random.default_rng(0).permutation(40), 5)
    for a in ridge.ALPHAS:
        fold_scores = []
        for part in parts:
            rest = np.setdiff1d(classes, part)
            fit_means = np.stack([x[y == c].mean(0) for c in rest])
            pred = ridge.ridge_means(att[rest], fit_means, att[part], a)
            accs = []
            for c in part:
                d = ((x[y == c][:, None, :] - pred[None]) ** 2).sum(-1)
                accs.append(np.mean(part[d.argmin(1)] == c))
            fold_scores.append(np.mean(accs))
        assert got[a] == pytest.approx(np.mean(fold_scores)), a
    assert len(set(got.values())) > 2  # the penalties do differ here
    best = ridge.alpha_by_held_out_classes(x, y, att)
    assert got[best] == max(got.values()) and best == min(a for a in got if got[a] == max(got.values()))


def test_linear_means_want_no_shrinkage():
    rng = np.random.default_rng(0)
    att, _, y, x = _toy_classes(rng, noise=0.01)
    assert ridge.alpha_by_held_out_classes(x, y, att) == min(ridge.ALPHAS)  # exact: no shrinkage wanted


def test_ridge_fit_and_ridge_means_agree():
    rng = np.random.default_rng(1)
    att, means = rng.random((7, 3)), rng.random((7, 4))
    w, b = ridge.ridge_fit(att, means, 0.5)
    new = rng.random((2, 3))
    assert np.allclose(b + new @ w, ridge.ridge_means(att, means, new, 0.5))


def test_the_trainer_fits_the_base_on_the_seen_class_means_only(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["prototype_base"] = True
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    G = t.gen["G"]
    seen = np.unique(prep.y_train)
    means = ridge.class_means(prep.x_train, prep.y_train, seen)
    alpha = ridge.alpha_by_held_out_classes(prep.x_train, prep.y_train, prep.att)
    expected = ridge.ridge_means(prep.att[seen], means, prep.att, alpha)  # every class, the unseen ones predicted
    got = G.base_means(prep.att).numpy()
    assert np.allclose(got, expected, atol=1e-5)
    w, b = prototype_map(prep.x_train, prep.y_train, prep.att)
    shuffled = prep.att.copy()
    shuffled[prep.unseen] = shuffled[prep.unseen][::-1]  # the unseen classes' attributes are not read
    assert np.allclose(prototype_map(prep.x_train, prep.y_train, shuffled)[0], w)


def test_a_zero_network_generates_the_base_itself_and_a_checkpoint_keeps_it(tmp_path):
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["prototype_base"] = True
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    G = t.gen["G"]
    with torch.no_grad():
        G.net[-1].weight.zero_()
        G.net[-1].bias.zero_()
    a = torch.as_tensor(prep.att[prep.unseen])
    base = G.base_means(a).clamp(0.01, 0.99)
    n, x_dim = len(a), prep.x_train.shape[1]
    for seed in (0, 1):
        torch.manual_seed(seed)
        out = G(torch.randn(n, G.noise_dim), a, torch.rand(n, prep.r_train.shape[1]), torch.rand(n, x_dim),
                torch.zeros(n, dtype=torch.long))
        assert torch.allclose(out, base, atol=1e-5)  # the noise moves nothing: only the learnt part would
    loaded = reload(t.checkpoint())["G"]  # as the later stages load it (zerodiffpp.generators.synth)
    assert torch.equal(loaded.proto_w, G.proto_w) and torch.equal(loaded.proto_b, G.proto_b)


def test_switched_off_the_generator_has_no_base():
    from zerodiffpp.nn.networks import FeatureGenerator
    G = FeatureGenerator(4, 3, 5, 2, 8, 4, 4)
    assert not any("proto" in k for k in G.state_dict())
    p = tiny_params()
    assert p["gen"]["prototype_base"] is False  # the paper's generator is the default


@pytest.mark.parametrize("flag", [False, True])
def test_synthesis_runs_either_way(tmp_path, flag):
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["prototype_base"] = flag
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    x = reload(t.checkpoint())["G"](
        torch.zeros(2, t.gen["G"].noise_dim), torch.as_tensor(prep.att[:2]), torch.zeros(2, prep.r_train.shape[1]),
        torch.zeros(2, prep.x_train.shape[1]), torch.zeros(2, dtype=torch.long))
    assert x.shape == (2, prep.x_train.shape[1]) and bool(((x > 0) & (x < 1)).all())


def _based_synth(tmp_path):
    """A Synthesizer whose generator has a prototype base (untrained: the refit reads only the base)."""
    from zerodiffpp.generators.synth import Synthesizer
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["prototype_base"], p["gen"]["sc_view"] = True, False
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    return prep, p, Synthesizer(t.checkpoint(), None, prep.att, "cpu")


def _unseen_base(synth, prep):
    G = synth.gen["G"]
    return G.base_means(prep.att[prep.unseen]).numpy()


def test_the_refit_is_the_ridge_map_of_seen_means_and_kept_pseudo_class_means(tmp_path):
    from zerodiffpp.transductive.difftta import refit_base
    prep, _, synth = _based_synth(tmp_path)
    x_test, _ = prep.test_features()
    n_seen = len(prep.y_test_seen)
    pred = np.concatenate([prep.y_test_seen, prep.y_test_unseen])  # oracle pseudo-labels
    kept = np.arange(0, len(pred), 2)  # every other test feature
    true_means = ridge.class_means(prep.x_test_unseen, prep.y_test_unseen, prep.unseen)
    far = np.linalg.norm(_unseen_base(synth, prep) - true_means, axis=1).mean()
    moved = refit_base(synth, prep, x_test, pred, kept)
    # the known answer: ridge (penalty on held-out classes) on the seen training means and the kept
    # test-unseen features' class means; kept test-seen features are not read
    un = kept[kept >= n_seen]
    x_fit, y_fit = np.concatenate([prep.x_train, x_test[un]]), np.concatenate([prep.y_train, pred[un]])
    classes = np.unique(y_fit)
    means = ridge.class_means(x_fit, y_fit, classes)
    alpha = ridge.alpha_by_held_out_classes(x_fit, y_fit, prep.att)
    expected = ridge.ridge_means(prep.att[classes], means, prep.att[prep.unseen], alpha)
    np.testing.assert_allclose(_unseen_base(synth, prep), expected, atol=1e-4)
    near = np.linalg.norm(_unseen_base(synth, prep) - true_means, axis=1).mean()
    assert moved > 0 and near < far  # right pseudo-labels pull the unseen base toward the true means


def test_the_refit_reads_neither_unkept_nor_seen_pseudo_labelled_test_features(tmp_path):
    from zerodiffpp.transductive.difftta import refit_base
    prep, _, synth = _based_synth(tmp_path)
    x_test, _ = prep.test_features()
    n_seen = len(prep.y_test_seen)
    pred = np.concatenate([prep.y_test_seen, prep.y_test_unseen])
    kept = np.arange(0, len(pred), 2)
    refit_base(synth, prep, x_test, pred, kept)
    first = _unseen_base(synth, prep)
    other = x_test.copy()
    unread = np.setdiff1d(np.arange(len(pred)), kept[kept >= n_seen])  # unkept, or kept with a seen label
    other[unread] = np.random.default_rng(0).random(other[unread].shape)
    refit_base(synth, prep, other, pred, kept)
    np.testing.assert_allclose(_unseen_base(synth, prep), first, atol=1e-6)


def test_the_refit_needs_a_base_and_the_params_say_so(tmp_path):
    from zerodiffpp.generators.synth import Synthesizer
    from zerodiffpp.runtime.errors import ParamsError
    from zerodiffpp.runtime.params import validate
    from zerodiffpp.transductive.difftta import refit_base
    prep, p = tiny_prepared(tmp_path)
    p["gen"]["sc_view"] = False
    t = ZeroDiffTrainer(prep.x_train, prep.r_train, prep.y_train, prep.att, p["gen"], p["diffusion"], "cpu")
    x_test, _ = prep.test_features()
    with pytest.raises(ParamsError, match="prototype base"):
        refit_base(Synthesizer(t.checkpoint(), None, prep.att, "cpu"), prep, x_test,
                   np.zeros(len(x_test), np.int64), np.arange(3))
    p["tta"]["base_refit"] = True
    with pytest.raises(ParamsError, match="tta.base_refit.*gen.prototype_base"):
        validate(p)


@pytest.mark.parametrize("refit", [False, True])
def test_difftta_refits_the_base_only_when_asked(tmp_path, refit):
    from zerodiffpp.transductive.difftta import run_difftta
    prep, p, synth = _based_synth(tmp_path)
    before = _unseen_base(synth, prep)
    torch.manual_seed(0)
    *_, rounds, _ = run_difftta(synth, prep, dict(p["tta"], base_refit=refit, epochs=0, rounds=2), p["synth"],
                                dict(p["classifier"], calibration=0.0), "cpu")
    changed = not np.allclose(_unseen_base(synth, prep), before)
    assert changed == refit and len(rounds) == 2
    assert all((r["base_moved"] is not None) == refit for r in rounds)
    after = _unseen_base(synth, prep)
    *_, rounds, _ = run_difftta(synth, prep, dict(p["tta"], base_refit=True, epochs=0), p["synth"],
                                dict(p["classifier"], calibration=0.0), "cpu", adapt=False)
    assert rounds == [] and np.array_equal(_unseen_base(synth, prep), after)  # DiffGen alone: the base stays
