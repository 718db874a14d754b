"""The learning diagnostics of the train stage: known values of the probe and the bias-corrected gap,
when they run, and that they never change what training computes."""
import math

import numpy as np
import pytest
import torch

from tests.tiny import tiny_params, tiny_prepared
from zerodiffpp.evaluation.diagnostics import (GenerationCheck, Schedule, class_moments, generation_scores, mean_per_class,
                                    probe_predict, ridge_probe)


def blobs(n_per_class, means, std, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(len(means)).repeat_interleave(n_per_class)
    x = means[y] + std * torch.randn(len(y), means.shape[1], generator=g)
    return x, y


def test_ridge_probe_is_least_squares_with_an_unpenalised_bias():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([0, 0, 1, 1])
    w = ridge_probe(x, y, 2, ridge=1e-9)
    # one-hot column 1 regressed on [x, 1]: slope 0.4, intercept -0.1 (ordinary least squares)
    assert w[:, 1].tolist() == pytest.approx([0.4, -0.1], abs=1e-6)
    assert probe_predict(w, x).tolist() == [0, 0, 1, 1]
    # a huge penalty flattens the slope but not the bias: every row gets the majority-free mean 0.5
    w_big = ridge_probe(x, y, 2, ridge=1e9)
    assert w_big[0].abs().max() < 1e-6 and w_big[1].tolist() == pytest.approx([0.5, 0.5])


def test_mean_per_class_weights_each_class_once():
    y_true = torch.tensor([0, 0, 0, 1])
    y_pred = torch.tensor([0, 0, 0, 0])
    assert mean_per_class(y_true, y_pred, 3) == pytest.approx(0.5)  # class 2 absent: left out


def test_class_moments_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])
    y = torch.tensor([0, 0, 1])
    means, mean_var, counts = class_moments(x, y, 2)
    assert means.tolist() == [[1.0, 0.0], [1.0, 3.0]]
    # class 0: unbiased variances (2, 0) summed = 2, divided by n = 2 -> 1; class 1 (one sample): 0
    assert mean_var.tolist() == pytest.approx([1.0, 0.0])
    assert counts.tolist() == [2.0, 1.0]


def test_a_perfect_generator_scores_like_real_data_and_a_label_blind_one_at_chance():
    means = 3 * torch.randn(6, 20, generator=torch.Generator().manual_seed(1))
    x_real, y_real = blobs(50, means, 1.0, seed=2)
    x_good, y_good = blobs(50, means, 1.0, seed=3)  # same distribution, new draws
    good = generation_scores(x_good, y_good, x_real, y_real, 6, ridge=1.0)
    assert good["gen_seen_acc"] > 0.95
    assert good["gen_mean_gap"] < 0.1  # bias-corrected: finite samples alone do not open a gap
    blind = generation_scores(x_good, y_good[torch.randperm(len(y_good), generator=torch.Generator().manual_seed(4))],
                              x_real, y_real, 6, ridge=1.0)
    assert blind["gen_seen_acc"] < 0.4
    assert blind["gen_mean_gap"] > 0.8
    shifted = generation_scores(x_good + 3.0, y_good, x_real, y_real, 6, ridge=1.0)
    assert shifted["gen_mean_gap"] > good["gen_mean_gap"] + 0.5  # a global offset is a real gap


def test_gap_is_the_distance_between_true_means_relative_to_their_spread():
    # two classes at -1 and +1 (spread 1); generated means at -1 and +1.5: RMS gap sqrt((0 + 0.25) / 2)
    real = torch.tensor([[-1.0], [-1.0], [1.0], [1.0]])
    y = torch.tensor([0, 0, 1, 1])
    gen = torch.tensor([[-1.0], [-1.0], [1.5], [1.5]])
    s = generation_scores(gen, y, real, y, 2, ridge=1.0)
    assert s["gen_mean_gap"] == pytest.approx(math.sqrt(0.125), rel=1e-9)


def test_the_spread_of_the_real_means_is_unbiased_at_few_classes_and_few_samples():
    """Three classes, four noisy samples each: averaged over many draws, the estimated squared spread of
    the class means equals the true one. Subtracting the whole estimation variance (ignoring that the
    grand mean is estimated from the same samples) biases it low by mean_var / C; with a perfect
    generator (true means), the gap's expectation is then inflated."""
    from zerodiffpp.evaluation.diagnostics import class_moments
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    true2 = ((mu - mu.mean(0)) ** 2).sum(1).mean()
    y = torch.arange(3).repeat_interleave(4)
    est, naive = [], []
    for _ in range(4000):
        x = mu[y] + 2.0 * torch.randn(len(y), 2, generator=gen, dtype=torch.float64)
        means, var, _ = class_moments(x, y, 3)
        raw = ((means - means.mean(0)) ** 2).sum(1).mean()
        est.append(raw - (1 - 1 / 3) * var.mean())
        naive.append(raw - var.mean())
    assert float(torch.stack(est).mean()) == pytest.approx(float(true2), rel=0.05)
    assert float(torch.stack(naive).mean()) < 0.8 * float(true2)  # the old correction: biased low
    # generation_scores by hand: classes at -2, 2, 0 (raw spread 8/3), two samples each at +-0.5 (estimation
    # variance of each mean 0.25); generated means exact but class 0's moved by 2
    real = torch.tensor([[-2.5], [-1.5], [1.5], [2.5], [-0.5], [0.5]])
    y_real = torch.tensor([0, 0, 1, 1, 2, 2])
    x_gen = torch.tensor([[0.0], [0.0], [2.0], [2.0], [0.0], [0.0]])
    gap2 = ((4.0 - 0.25) + (0.0 - 0.25) + (0.0 - 0.25)) / 3
    spread2 = 8 / 3 - (1 - 1 / 3) * 0.25
    got = generation_scores(x_gen, y_real, real, y_real, 3, ridge=1.0)["gen_mean_gap"]
    assert got == pytest.approx(math.sqrt(gap2 / spread2), rel=1e-9)


def test_schedule_checks_every_k_epochs_and_after_the_last():
    calls = []

    class Fake:
        seen = np.arange(4)

        def __call__(self, ckpt):
            calls.append(ckpt)
            return {"gen_seen_acc": 0.5, "gen_mean_gap": 0.1}

    sched = Schedule(Fake(), every=3)
    rows = [sched(e, 7, lambda e=e: e) for e in range(7)]
    assert calls == [2, 5, 6]
    assert math.isnan(rows[0]["gen_seen_acc"]) and rows[2]["gen_seen_acc"] == 0.5
    assert all(math.isnan(v) for v in Schedule(Fake(), every=0)(0, 1, lambda: 0).values())
    assert len(calls) == 3  # every 0: never


@pytest.mark.parametrize("method", ["zerodiff", "fclswgan"])
def test_checks_leave_training_bit_identical(tmp_path, method):
    """The checks draw their noise inside fork_rng: weights equal a run without them."""
    from zerodiffpp.pipeline import train
    from zerodiffpp.generators.drg import train_drg
    prep, _ = tiny_prepared(tmp_path)
    p = tiny_params(method=method, gen={"epochs": 2}, fclswgan={"epochs": 2})
    drg, cfg, _ = train_drg(prep.r_train, prep.y_train, prep.att, p["drg"], p["diffusion"], "cpu")
    drg_ckpt = {"config": cfg, "state": drg.state_dict()}
    states, rows = [], []
    for every in (0, 1):
        torch.manual_seed(0)
        ckpt, r = train.run(dict(p, diagnostics=dict(p["diagnostics"], every=every)), prep, torch.device("cpu"),
                            drg_ckpt)
        states.append(ckpt["state"])
        rows.append(r)
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    assert all(math.isnan(r["gen_seen_acc"]) for r in rows[0])
    assert all(0.0 <= r["gen_seen_acc"] <= 1.0 for r in rows[1])


def test_check_generates_through_the_synthesis_path(tmp_path, monkeypatch):
    """The check scores what Synthesizer.full makes for the seen classes with synth.sampler."""
    from zerodiffpp.evaluation import diagnostics
    prep, p = tiny_prepared(tmp_path)
    seen_calls = []

    class FakeSynth:
        def __init__(self, gen_ckpt, drg_ckpt, att, device):
            pass

        def full(self, classes, per_class, sampler):
            seen_calls.append((list(classes), per_class, sampler))
            y = np.repeat(classes, per_class)
            return prep.x_train[np.searchsorted(prep.y_train, y, sorter=np.argsort(prep.y_train, kind="stable"))
                                .clip(0, len(prep.y_train) - 1)], y

    monkeypatch.setattr(diagnostics, "Synthesizer", FakeSynth)
    chk = GenerationCheck(prep.x_train, prep.y_train, prep.seen, prep.att, None, {"per_class": 7, "ridge": 1.0},
                          "one_step", "cpu")
    chk({})
    assert seen_calls == [(prep.seen.tolist(), 7, "one_step")]


def test_epochs_may_be_given_per_seen_ratio(tmp_path):
    """gen.epochs / fclswgan.epochs per train.seen_ratio (presets/cub-cpu.yaml): the run's ratio picks
    the count, and a ratio without one is refused before any work, naming the key."""
    from zerodiffpp.pipeline import train
    from zerodiffpp.runtime.errors import ParamsError
    from zerodiffpp.runtime.params import for_ratio, validate
    prep, _ = tiny_prepared(tmp_path)
    for method, section in (("zerodiff", "gen"), ("fclswgan", "fclswgan")):
        p = tiny_params(method=method, **{section: {"epochs": {1.0: 1, 0.5: 3}}}, diagnostics={"every": 0})
        _, rows = train.run(for_ratio(p), prep, torch.device("cpu"))  # resolved where params are loaded
        assert len(rows) == 1
        p["train"]["seen_ratio"] = 0.5
        _, rows = train.run(for_ratio(p), prep, torch.device("cpu"))
        assert len(rows) == 3
        p["train"]["seen_ratio"] = 0.3
        with pytest.raises(ParamsError, match=f"{section}.epochs gives counts for seen ratios"):
            validate(p)
