"""Full synthesis from pure noise: which timesteps the generator is called at."""
import numpy as np
import pytest
import torch

from zerodiffpp.nn.networks import build_feature_generator
from zerodiffpp.generators.synth import Synthesizer


def _synth(T=4):
    cfg = dict(kind="zerodiff", x_dim=6, att_dim=3, rep_dim=0, noise_dim=2, hidden=8, cond_dim=4, time_dim=4,
               use_r=False, timesteps=T, beta_min=0.1, beta_max=20.0)
    torch.manual_seed(0)
    gen = build_feature_generator(cfg)
    return Synthesizer({"config": cfg, "state": gen.state_dict()}, None, np.eye(3, dtype=np.float32), "cpu")


def _steps_called(s, sampler):
    seen = []
    hook = s.gen["G"].register_forward_pre_hook(lambda mod, args: seen.append(args[4].unique().tolist()))
    x, y = s.full(np.array([0, 2]), 5, sampler)
    hook.remove()
    assert x.shape == (10, 6) and y.tolist() == [0] * 5 + [2] * 5
    return seen


@pytest.mark.parametrize("T", [4, 6])
def test_one_step_synthesis_starts_from_the_last_step(T):
    """x_hat = G(z, a, r, x_T ~ N(0, I), t = T - 1): one call, at the noisiest step."""
    assert _steps_called(_synth(T), "one_step") == [[T - 1]]


@pytest.mark.parametrize("T", [4, 6])
def test_the_progressive_chain_runs_from_the_last_step_down_to_zero(T):
    assert _steps_called(_synth(T), "progressive") == [[t] for t in range(T - 1, -1, -1)]


def test_the_schedule_moves_with_the_generator_and_is_not_in_its_checkpoint():
    s = _synth()
    assert s.sched is s.gen["sched"]
    assert not any(k.startswith("sched") for k in s.checkpoint()["state"])
    s.gen.to("meta")  # any device: the schedule goes where the generator goes
    assert {b.device.type for b in s.sched.buffers()} == {"meta"}
    assert s.sched.timesteps == 4


@pytest.mark.parametrize("T", [4, 6])
def test_the_drg_samples_r_in_one_step_from_pure_noise_at_the_last_step(T):
    """sample_r: R(z, a, r_in ~ N(0, I), t = T - 1), as full synthesis starts the feature chain."""
    from zerodiffpp.generators.drg import build_drg, sample_r
    cfg = dict(noise_dim=3, att_dim=3, rep_dim=5, hidden=8, time_dim=4, input_step="current", timesteps=T,
               beta_min=0.1, beta_max=20.0)
    drg, calls = build_drg(cfg), []
    drg.register_forward_pre_hook(lambda mod, args: calls.append(args))
    torch.manual_seed(0)
    r = sample_r(drg, cfg, torch.eye(3)[[0, 1] * 200])
    (z, a, r_in, t), = calls
    assert t.tolist() == [T - 1] * 400 and r.shape == (400, 5)
    assert abs(float(r_in.mean())) < 0.1 and float(r_in.std()) == pytest.approx(1.0, abs=0.1)
    assert float(z.std()) == pytest.approx(1.0, abs=0.1)
