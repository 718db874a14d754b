"""The report stage's diagnostics: the seen-spuriousness probe's inputs and its size bound."""
import numpy as np
import pytest
import torch

from tests.tiny import tiny_params
from zerodiffpp.data.features import Prepared
from zerodiffpp.nn.networks import build_feature_generator
from zerodiffpp.evaluation.report import seen_probe_features
from zerodiffpp.generators.synth import KIND_FULL, Synthesizer
from zerodiffpp.nn.ridge import ridge_class_means


def _prep(n_seen=4, per_class=15, att_dim=3, x_dim=6):
    y = np.repeat(np.arange(n_seen), per_class)
    att = np.eye(n_seen + 2, att_dim, dtype=np.float32) + 0.1
    empty = np.zeros((0, 0), np.float32)
    return Prepared(x_train=np.random.default_rng(0).random((len(y), x_dim), dtype=np.float32), y_train=y,
                    x_test_seen=empty, y_test_seen=np.zeros(0, np.int64), x_test_unseen=empty,
                    y_test_unseen=np.zeros(0, np.int64), r_train=empty, r_test_seen=empty, r_test_unseen=empty,
                    att=att, seen=np.arange(n_seen), unseen=np.array([n_seen, n_seen + 1]),
                    class_names=np.array([f"c{i}" for i in range(n_seen + 2)]), train_index=np.arange(len(y)))


def _generator(seed, use_r=False):
    cfg = dict(kind="zerodiff", x_dim=6, att_dim=3, rep_dim=4 if use_r else 0, noise_dim=2, hidden=8, cond_dim=4,
               time_dim=4, use_r=use_r, timesteps=4, beta_min=0.1, beta_max=20.0)
    torch.manual_seed(seed)
    return {"config": cfg, "state": build_feature_generator(cfg).state_dict()}


@pytest.mark.parametrize("per_class, expected", [(300, 15), (5, 5)])
def test_the_seen_probe_is_never_larger_than_the_real_training_set(per_class, expected):
    """report.seen_per_class is capped at the real training set's mean count per seen class (here
    60 samples / 4 classes = 15), so the probe costs no more than the classifier at any class count."""
    x, y = seen_probe_features(_generator(0), None, _prep(), per_class, "progressive", "cpu")
    assert np.bincount(y).tolist() == [expected] * 4 and x.shape == (4 * expected, 6)


def test_the_seen_probe_reads_the_generator_it_is_given():
    """The report stage passes the trained generator (models/generator), never the adapted one: the
    features are exactly that checkpoint's samples."""
    prep, trained, adapted = _prep(), _generator(0), _generator(1)
    torch.manual_seed(7)
    x, _ = seen_probe_features(trained, None, prep, 5, "progressive", "cpu")
    torch.manual_seed(7)
    expected, _ = Synthesizer(trained, None, prep.att, "cpu").full(prep.seen, 5, "progressive")
    torch.manual_seed(7)
    other, _ = seen_probe_features(adapted, None, prep, 5, "progressive", "cpu")
    np.testing.assert_array_equal(x, expected)
    assert not np.allclose(x, other)


@pytest.mark.parametrize("sampler", ["one_step", "progressive"])
def test_the_seen_probe_uses_the_sampler_and_the_drg_it_is_given(sampler):
    """synth.sampler reaches the probe's synthesis, and a generator conditioned on r gets it from the DRG
    checkpoint passed in."""
    from zerodiffpp.generators.drg import build_drg
    prep, gen = _prep(), _generator(0, use_r=True)
    drg_cfg = dict(noise_dim=2, att_dim=3, rep_dim=4, hidden=8, time_dim=4, input_step="current", timesteps=4,
                   beta_min=0.1, beta_max=20.0)
    torch.manual_seed(1)
    drg = {"config": drg_cfg, "state": build_drg(drg_cfg).state_dict()}
    torch.manual_seed(7)
    x, y = seen_probe_features(gen, drg, prep, 5, sampler, "cpu")
    torch.manual_seed(7)
    expected, _ = Synthesizer(gen, drg, prep.att, "cpu").full(prep.seen, 5, sampler)
    np.testing.assert_array_equal(x, expected)
    torch.manual_seed(7)
    other, _ = Synthesizer(gen, drg, prep.att, "cpu").full(
        prep.seen, 5, "progressive" if sampler == "one_step" else "one_step")
    assert not np.allclose(x, other)


def test_synthesize_writes_seen_features_only_when_asked_and_report_reads_the_trained_generator():
    """synth.seen_per_class 0 (the paper): no generated seen feature; N: N per seen class after the
    unseen ones, which are drawn from the same stream either way (the seen ones come after them)."""
    import yaml
    from tests.conftest import ROOT
    from zerodiffpp.pipeline import synthesize
    stages = yaml.safe_load(open(ROOT / "dvc.yaml"))["stages"]
    assert "models/generator" in stages["report"]["deps"] and "models/adapted" in stages["report"]["deps"]
    assert "report.seen_per_class" not in str(stages["synthesize"]) and "seen_per_class" in tiny_params()["report"]
    assert "synth" in stages["synthesize"]["params"] and tiny_params()["synth"]["seen_per_class"] == 0
    prep = _prep()
    syns = {}
    for seen in (0, 2):
        p = {"method": "zerodiff", "synth": {"unseen_per_class": 3, "seen_per_class": seen, "sampler": "one_step",
                                             "recentre": 0.0}, "train": {"seen_ratio": 1.0}}
        torch.manual_seed(3)
        syns[seen] = synthesize.run(p, prep, _generator(0), None, {}, "cpu")
    assert set(syns[0]) == {"x", "y", "kind", "src"} and np.bincount(syns[0]["y"]).tolist() == [0, 0, 0, 0, 3, 3]
    assert np.bincount(syns[2]["y"]).tolist() == [2, 2, 2, 2, 3, 3] and (syns[2]["kind"] == KIND_FULL).all()
    np.testing.assert_array_equal(syns[2]["x"][:6], syns[0]["x"])  # the unseen features do not move
    assert not np.allclose(syns[2]["x"][6:8], syns[2]["x"][8:10])  # each seen class its own condition
    p["synth"]["recentre"] = 1.0  # synth.recentre reaches the stage's synthesis: every class mean on its target
    x, y = synthesize.run(p, prep, _generator(0), None, {}, "cpu")["x"], syns[2]["y"]
    targets = ridge_class_means(prep)
    for c in np.unique(y):
        np.testing.assert_allclose(x[y == c].mean(0), targets[c], atol=1e-5)


def test_self_training_on_test_seen_is_flagged_and_comparability_is_stated():
    from zerodiffpp.runtime import methods
    from zerodiffpp.evaluation.report import comparability, setting
    assert methods.self_trains_on_test_seen("zerodiffpp", "all")
    assert methods.self_trains_on_test_seen("zerodiff+diffgen", "all")
    assert not methods.self_trains_on_test_seen("zerodiffpp", "unseen")
    assert not methods.self_trains_on_test_seen("zerodiff", "all")
    assert not methods.self_trains_on_test_seen("zerodiff+difftta", "all")
    assert "self-training on the test-seen set" in setting({"transductive": 1, "self_training_seen": 1})
    assert "self-training" not in setting({"transductive": 1, "self_training_seen": 0})
    assert setting({"transductive": 0, "self_training_seen": 0}).startswith("inductive")
    res101 = comparability({"name": "CUB", "x_file": "res101.mat", "r_file": ""})
    assert "NOT comparable" in res101 and "ce_ce.mat" in res101
    assert "not a benchmark" in comparability({"name": "embedded", "x_file": "res101.mat", "r_file": ""})
    assert comparability({"name": "AWA2", "x_file": "ce_ce.mat", "r_file": "con_paco.mat"}) == \
        "features ce_ce.mat, SC representations con_paco.mat"


def _handmade():
    """Two seen classes (0, 1), two unseen (2, 3); features are 10 x one-hot of a chosen class, so every
    linear probe fits exactly what it is given, and each number below is known in advance."""
    onehot = lambda labels: 10 * np.eye(4, dtype=np.float32)[np.asarray(labels)]  # noqa: E731
    y_train, y_ts, y_tu = np.repeat([0, 1], 5), np.array([0, 0, 1, 1]), np.repeat([2, 3], 6)
    empty = np.zeros((0, 0), np.float32)
    prep = Prepared(x_train=onehot(y_train), y_train=y_train,
                    x_test_seen=onehot([0, 0, 1, 0]), y_test_seen=y_ts,  # the last class-1 image looks like class 0
                    x_test_unseen=onehot(y_tu), y_test_unseen=y_tu, r_train=empty, r_test_seen=empty,
                    r_test_unseen=empty, att=np.eye(4, 3, dtype=np.float32) + 0.1, seen=np.array([0, 1]),
                    unseen=np.array([2, 3]), class_names=np.array(["a", "b", "c", "d"]), train_index=np.arange(10))
    preds = {"gzsl_test_seen": np.array([0, 1, 1, 1]),                     # S = (1/2 + 2/2) / 2 = 0.75
             "gzsl_test_unseen": np.array([2, 2, 2, 0, 0, 0, 3, 3, 3, 3, 3, 2]),  # U = (3/6 + 5/6) / 2 = 2/3
             "zsl_test_unseen": np.array([2] * 6 + [2, 2, 2, 3, 3, 3])}      # T1 = (6/6 + 3/6) / 2 = 0.75
    # synthetic set: fully generated unseen features with classes 2 and 3 swapped (the generated-only
    # probe scores 0), plus partial syntheses that would rescue it if they were wrongly counted
    syn = {"x": np.concatenate([onehot([3] * 6 + [2] * 6), onehot([2] * 10 + [3] * 10)]),
           "y": np.concatenate([np.repeat([2, 3], 6), np.repeat([2, 3], 10)]),
           "kind": np.concatenate([np.zeros(12, np.int64), np.ones(20, np.int64)])}
    seen_probe = (onehot(np.repeat([0, 1], 5)), np.repeat([0, 1], 5))   # train acc 1, test-seen acc 0.75
    pred = np.concatenate([y_ts, y_tu])
    pred[[0, 5]] = [1, 3]                                                    # 14 of 16 pseudo-labels right
    pseudo = {"pred": pred, "conf": np.ones(16, np.float32), "kept": np.array([1, 2, 3, 5]),  # 3 of 4 kept right
              "rec_before": np.array([5.0, 3.0]), "rec_after": np.array([4.0, 2.0])}
    calib = {"classifier": {"value": 0.2, "source": "validation pass", "U": 0.3, "S": 0.6, "H": 0.4},
             "pseudo_labels": None,
             "validation_pass": {"classes": ["c1"], "class_ids": [1], "n_seen_classes": 1, "n_train_images": 4,
                                 "validation_images_in_training": 0, "test_images_read": 0}, "curve": []}
    ctx = {"seen_ratio": 0.3, "seed": 2, "probe_epochs": 300, "oracle_folds": 2, "transductive": True,
           "self_training_seen": False, "validation": False, "calibration": calib}
    return prep, syn, seen_probe, preds, pseudo, ctx


def test_every_key_of_eval_json_from_handmade_predictions():
    from zerodiffpp.evaluation.report import evaluate
    torch.manual_seed(0)
    m = evaluate(*_handmade(), "cpu")
    u, s = 2 / 3, 0.75
    assert m == {
        "zsl": {"T1": pytest.approx(0.75)},
        "gzsl": {"U": pytest.approx(u), "S": pytest.approx(s), "H": pytest.approx(2 * u * s / (u + s))},
        "spurious": {"seen": pytest.approx(0.25), "seen_train_acc": 1.0, "seen_test_acc": 0.75,
                     "unseen": pytest.approx(1.0), "unseen_gen_acc": 0.0, "unseen_oracle_acc": 1.0},
        "seen_ratio": 0.3, "seed": 2, "transductive": 1, "self_training_seen": 0, "validation": 0,
        "n_train": 10, "n_seen_classes": 2, "n_unseen_classes": 2,
        "synthetic": {"n_full": 12, "n_partial": 20},
        "calibration": {"value": 0.2, "auto": 1, "validation_U": 0.3, "validation_S": 0.6, "validation_H": 0.4,
                        "n_validation_classes": 1, "validation_images_in_training": 0, "test_images_read": 0},
        # the reconstruction pair of one round (the last), on the same kept features
        "tta": {"n_kept": 4, "n_test": 16, "pseudo_label_acc_all": 14 / 16, "pseudo_label_acc_kept": 0.75,
                "rounds": 2, "rec_before": 3.0, "rec_after": 2.0},
    }


def test_the_report_states_its_setting_and_comparability_word_for_word():
    """report.md's two statements, exactly (a reader compares runs by them)."""
    from zerodiffpp.evaluation.report import comparability, setting
    assert setting({'transductive': 1, 'self_training_seen': 1}) == (
        "transductive (unlabelled test features used by DiffTTA/DiffGen); with diffgen.classes all the GZSL "
        "classifier also trains its seen classes on features partially synthesised from test-seen features "
        "(self-training on the test-seen set)")
    assert setting({'transductive': 1, 'self_training_seen': 0}) == (
        'transductive (unlabelled test features used by DiffTTA/DiffGen)')
    assert comparability({'name': 'embedded', 'x_file': 'res101.mat', 'r_file': ''}) == (
        'the embedded 10-class toy (CPU demo and smoke test), not a benchmark')
    assert comparability({'name': 'CUB', 'x_file': 'res101.mat', 'r_file': ''}) == (
        "xlsa17 res101.mat features (ImageNet ResNet-101, not fine-tuned): NOT comparable with the ZeroDiff / "
        "ZeroDiff++ papers, which use fine-tuned features (ce_ce.mat as data.x_file, con_paco.mat as data.r_file)")
    assert comparability({'name': 'CUB', 'x_file': 'ce_ce.mat', 'r_file': ''}) == (
        'features ce_ce.mat')


def test_eval_json_wiring_flags_a_fixed_calibration_an_empty_selection_and_the_last_round(monkeypatch):
    """evaluate with the probes replaced by recorders: the unseen probe gets exactly the fully generated
    unseen features (never the partial syntheses) with report.probe_epochs, report.oracle_folds and the
    run's seed; the two flags are copied when set; a calibration fixed in params has no held-out score;
    an empty DiffTTA selection scores 0; the reconstruction pair is the last of three rounds."""
    from zerodiffpp.evaluation import report
    prep, syn, seen_probe, preds, pseudo, ctx = _handmade()
    calls = {}
    monkeypatch.setattr(report.M, "seen_spuriousness", lambda *args: calls.update(seen=args) or {"seen": 0.5})
    monkeypatch.setattr(report.M, "unseen_spuriousness", lambda *args: calls.update(unseen=args) or {"unseen": 0.25})
    ctx = dict(ctx, self_training_seen=True, validation=True, probe_epochs=7, oracle_folds=3, seed=11,
               calibration={"classifier": {"value": 0.6, "source": "params"}, "pseudo_labels": None,
                            "validation_pass": None, "curve": []})
    pseudo = dict(pseudo, kept=np.zeros(0, np.int64), rec_before=np.array([5.0, 3.0, 2.5]),
                  rec_after=np.array([4.0, 2.0, 1.5]))
    m = report.evaluate(prep, syn, seen_probe, preds, pseudo, ctx, "cpu")
    x_gen, y_gen, x_tu, y_tu, unseen, epochs, folds, device, seed = calls["unseen"]
    np.testing.assert_array_equal(x_gen, syn["x"][:12])
    np.testing.assert_array_equal(y_gen, syn["y"][:12])
    assert (x_tu is prep.x_test_unseen and y_tu is prep.y_test_unseen and unseen is prep.unseen
            and (epochs, folds, device, seed) == (7, 3, "cpu", 11))
    assert calls["seen"][:2] == seen_probe and calls["seen"][-2:] == (7, "cpu")
    assert m["spurious"] == {"seen": 0.5, "unseen": 0.25}
    assert m["self_training_seen"] == 1 and m["validation"] == 1
    assert m["calibration"] == {"value": 0.6, "auto": 0}
    assert m["tta"] == {"n_kept": 0, "n_test": 16, "pseudo_label_acc_all": 14 / 16, "pseudo_label_acc_kept": 0.0,
                        "rounds": 3, "rec_before": 2.5, "rec_after": 1.5}


def test_validation_runs_report_the_calibration_their_classes_choose_and_test_runs_do_not(monkeypatch):
    """Under data.protocol: validation the report stage scores the GZSL classifier's curve on the
    validation classes and eval.json names the best value (ties: nearest 0) for the test run; on the
    test split no curve is computed, so nothing can be chosen there."""
    from zerodiffpp.pipeline import report as stage
    from zerodiffpp.evaluation.report import calibration_lines, evaluate
    prep, syn, seen_probe, preds, pseudo, ctx = _handmade()
    curve = [{"calibration": g, "U": 0.0, "S": 0.0, "H": h} for g, h in ((-0.3, 0.5), (-0.1, 0.2), (0.2, 0.5), (0.4, 0.1))]
    calls = []
    monkeypatch.setattr(stage, "gzsl_curve", lambda *args: calls.append(args) or curve)
    monkeypatch.setattr(stage, "seen_probe_features", lambda *args: seen_probe)
    monkeypatch.setattr(stage, "evaluate", lambda prep_, syn_, sp, pr, ps, c, device: c)
    p = {"train": {"seen_ratio": 0.3, "seed": 2}, "report": {"seen_per_class": 5}, "synth": {"sampler": "one_step"},
         "method": "zerodiff", "diffgen": {"classes": "unseen"},
         "data": {"protocol": "test"}}
    got = stage.run(p, prep, syn, preds, pseudo, {}, {}, ctx["calibration"], "cpu", {"gzsl": "states"}, {"adapted": 1})
    assert not calls and "validation_curve" not in got
    p["data"]["protocol"] = "validation"
    got = stage.run(p, prep, syn, preds, pseudo, {}, {}, ctx["calibration"], "cpu", {"gzsl": "states"}, {"adapted": 1})
    assert calls == [({"gzsl": "states"}, {"adapted": 1}, prep, "cpu")] and got["validation_curve"] is curve
    torch.manual_seed(0)
    m = evaluate(prep, syn, seen_probe, preds, pseudo, dict(ctx, validation=True, validation_curve=curve), "cpu")
    assert m["calibration"] == {"value": 0.2, "auto": 1, "validation_U": 0.3, "validation_S": 0.6, "validation_H": 0.4,
                                "n_validation_classes": 1, "validation_images_in_training": 0, "test_images_read": 0,
                                "validation_best": 0.2, "validation_best_H": 0.5}
    assert calibration_lines(m["calibration"], ctx["calibration"]) == [
        "- calibrated stacking: +0.20, chosen by the validation pass on 1 validation classes (c1; their U 30.0, S 60.0, "
        "H 40.0; images of them in its training: 0, test images read: 0)",
        "- calibrated stacking chosen on these validation classes: +0.20 (H 50.0); for the test run set "
        "classifier.calibration to it (per seen ratio: {1.0: ..., 0.3: ...})"]
    assert calibration_lines({"value": -0.1, "auto": 0}) == [
        "- calibrated stacking: -0.10, classifier.calibration"]


def test_a_transductive_run_reports_its_pseudo_labels_calibration():
    from zerodiffpp.evaluation.report import calibration_lines, evaluate
    prep, syn, seen_probe, preds, pseudo, ctx = _handmade()
    calib = dict(ctx["calibration"], classifier={"value": 0.1, "source": "params"}, validation_pass=None,
                 pseudo_labels={"value": -0.4, "source": "validation pass", "U": 0.1, "S": 0.2, "H": 0.3})
    torch.manual_seed(0)
    m = evaluate(prep, syn, seen_probe, preds, pseudo, dict(ctx, calibration=calib), "cpu")
    assert m["calibration"] == {"value": 0.1, "auto": 0, "pseudo_labels": -0.4,
                                "pseudo_labels_auto": 1}
    assert calibration_lines(m["calibration"]) == [
        "- calibrated stacking: +0.10, classifier.calibration",
        "- DiffTTA's pseudo-labels: calibrated stacking -0.40 (tta.calibration: auto, chosen by the validation pass)"]
    assert calibration_lines(dict(m["calibration"], pseudo_labels_auto=0))[1] == \
        "- DiffTTA's pseudo-labels: calibrated stacking -0.40 (tta.calibration)"


def test_the_report_sets_the_run_against_the_strongest_simple_baseline():
    from zerodiffpp.evaluation.report import baseline_lines
    m = {"zsl": {"T1": 0.5}, "gzsl": {"H": 0.4}, "transductive": 1}
    lines = baseline_lines(m, {"strongest": {"T1": 0.55, "H": 0.3}}, "TABLE\n")
    assert lines[3] == ("Against the strongest simple baseline on each metric (ESZSL or ridge; metrics/baselines.json): "
                        "ZSL T1 -5.0 points "
                        "(50.0 vs 55.0), GZSL H +10.0 points (40.0 vs 30.0); this run reads unlabelled test features, "
                        "the baselines do not.")
    assert lines[-1] == "TABLE" and baseline_lines(m, None, None) == []
    # a transductive run is also set against the transductive baseline; an inductive one is not
    both = {"strongest": {"T1": 0.55, "H": 0.3}, "ridge_kmeans": {"T1": 0.6, "iterations": 5}}
    lines = baseline_lines(m, both, "TABLE\n")
    assert lines[5].startswith("Against the simple transductive baseline") and lines[5].endswith(
        "ZSL T1 -10.0 points (50.0 vs 60.0).")
    assert not any("transductive baseline" in line for line in baseline_lines(dict(m, transductive=0), both, "T\n"))


def test_t1_u_and_s_are_means_of_per_class_accuracies_on_classes_of_unequal_size():
    """eval.json's T1, U and S weight each class once: with 2 test images of class 2 and 10 of class 3 (and
    1 / 3 test-seen images of classes 0 / 1) the image-level accuracies differ, and are not what is reported."""
    from zerodiffpp.evaluation.report import evaluate
    prep, syn, seen_probe, preds, pseudo, ctx = _handmade()
    onehot = lambda labels: 10 * np.eye(4, dtype=np.float32)[np.asarray(labels)]  # noqa: E731
    prep.y_test_unseen = np.array([2] * 2 + [3] * 10)
    prep.x_test_unseen = onehot(prep.y_test_unseen)
    prep.y_test_seen, prep.x_test_seen = np.array([0, 1, 1, 1]), onehot([0, 1, 1, 1])
    preds = {"gzsl_test_seen": np.array([1, 1, 1, 1]),                   # S = (0/1 + 3/3) / 2 = 0.5 (images 0.75)
             "gzsl_test_unseen": np.array([2, 2] + [2] * 5 + [3] * 5),   # U = (2/2 + 5/10) / 2 = 0.75 (images 7/12)
             "zsl_test_unseen": np.array([3, 2] + [3] * 10)}              # T1 = (1/2 + 10/10) / 2 = 0.75 (images 11/12)
    pseudo = dict(pseudo, pred=np.zeros(0, np.int64), kept=np.zeros(0, np.int64))
    torch.manual_seed(0)
    m = evaluate(prep, syn, seen_probe, preds, pseudo, ctx, "cpu")
    assert m["zsl"]["T1"] == pytest.approx(0.75) and m["gzsl"]["U"] == pytest.approx(0.75)
    assert m["gzsl"]["S"] == pytest.approx(0.5) and m["gzsl"]["H"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)


def test_training_curves_draw_the_diagnostics_apart_from_the_losses():
    """plots/training_curves.png: gen_seen_acc (logged every few epochs, NaN between) shares no axis with a
    loss (a VAE term of ~250 would flatten it) and shows every logged point; each loss panel holds curves
    of one scale (typical sizes within 10x), every loss drawn once."""
    import matplotlib.pyplot as plt
    from zerodiffpp.evaluation.report import curves_figure
    steps = np.arange(20.0)
    decay = np.exp(-steps / 5)
    sparse = np.where(steps % 5 == 4, 0.3 + 0.02 * steps, np.nan)
    losses = {"vae": 250 + 100 * decay, "generator": 260 + 100 * decay, "critic": -10 - 40 * decay,
              "ml": 5 + decay, "gp": 0.3 + decay, "dec": 1e-3 + 0.04 * decay, "g_rec": 0.02 + 0.2 * decay}
    train = {**losses, "gen_seen_acc": sparse, "gen_mean_gap": sparse + 0.4, "lambda_gp": 10 * decay}
    fig = curves_figure({"sc": {"sc_loss": (steps, 4 + decay)},
                         "train": {k: (list(steps), list(v)) for k, v in train.items()}})
    try:
        labels = {ax: [ln.get_label() for ln in ax.lines] for ax in fig.axes}
        (acc_ax,) = [ax for ax, names in labels.items() if "gen_seen_acc" in names]
        beside = acc_ax.get_shared_x_axes().get_siblings(acc_ax)  # itself and the GP weight's twin axis
        assert set().union(*(labels[ax] for ax in beside)) == {"gen_seen_acc", "gen_mean_gap", "lambda_gp"}
        (acc,) = [ln for ln in acc_ax.lines if ln.get_label() == "gen_seen_acc"]
        assert list(acc.get_xdata()) == [4, 9, 14, 19] and np.isfinite(acc.get_ydata()).all()
        drawn = [name for ax in fig.axes if ax not in beside for name in labels[ax]]
        assert sorted(drawn) == sorted([*losses, "sc_loss"])
        for ax in fig.axes:
            if ax not in beside and ax.lines:
                sizes = [np.median(np.abs(ln.get_ydata())) for ln in ax.lines]
                assert max(sizes) <= 10 * min(sizes), labels[ax]
    finally:
        plt.close(fig)


def test_the_gate_line_names_what_the_gate_kept_its_scores_and_its_margin():
    from zerodiffpp.evaluation.report import gate_lines
    comps = {"tta": False, "diffgen": False, "chosen": "inductive",
             "candidates": {"configured": {"T1": 0.531, "H": 0.527}, "inductive": {"T1": 0.52, "H": 0.526}}}
    assert gate_lines(None, 0.02) == []
    assert gate_lines(comps, 0.02) == [
        "- tta.gate: the validation pass kept inductive (DiffTTA off, DiffGen off; validation configured: T1 53.1, "
        "H 52.7; inductive: T1 52.0, H 52.6; a transductive variant must beat the inductive one by more than "
        "tta.gate_margin 0.02 on the mean of T1 and H)"]
