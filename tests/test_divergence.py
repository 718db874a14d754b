"""A diverged generator stops the run with a DivergedError naming the stage and what was not finite:
NaN features would train every classifier after it, which would still report finite, meaningless
metrics (the arg-max of a NaN row is class 0)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.tiny import tiny_params
from zerodiffpp.nn.training import require_finite
from zerodiffpp.runtime.errors import DivergedError, InputError


def _data():
    rng = np.random.default_rng(0)
    att = rng.random((4, 5)).astype(np.float32)
    y = np.repeat(np.arange(4), 16)
    x = (att[y] @ rng.random((5, 10)) + 0.1 * rng.random((64, 10))).astype(np.float32)
    return x, rng.random((64, 6)).astype(np.float32), y, att


def _diverge(epoch, epochs, checkpoint):
    """A learning-diagnostics hook that makes the generator diverge in its last epoch (the state
    dict's tensors share the weights' storage)."""
    if epoch == epochs - 1:
        next(iter(checkpoint()["state"].values())).fill_(float("nan"))
    return {}


def _train(method: str, check=None):
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    from zerodiffpp.generators.fclswgan import train_fclswgan
    p, (x, r, y, att) = tiny_params(), _data()
    torch.manual_seed(0)
    if method == "fclswgan":
        return train_fclswgan(x, y, att, np.arange(4), dict(p["fclswgan"], batch_size=32), "cpu", check)
    trainer = ZeroDiffTrainer(x, r, y, att, dict(p["gen"], batch_size=64), p["diffusion"], "cpu")
    return trainer.train(1, desc=None, check=check)


@pytest.mark.parametrize("method", ["fclswgan", "zerodiff"])
def test_a_generator_that_ends_with_nan_weights_stops_the_train_step(method):
    _train(method)  # a sound run passes the check
    with pytest.raises(DivergedError, match=r"^train: the .* generator diverged, not finite: generator weights; "
                                            r"lower .*lr"):
        _train(method, _diverge)
    assert issubclass(DivergedError, InputError)  # run_stage prints it as one line and exits 1


def test_a_non_finite_loss_alone_stops_it():
    net = torch.nn.Linear(2, 2)
    require_finite("train: g", {"generator": net}, {"critic": 1.0}, "")
    with pytest.raises(DivergedError, match=r"not finite: critic loss \(inf\)"):
        require_finite("train: g", {"generator": net}, {"critic": float("inf"), "cls": 0.5}, "")


def test_nan_synthetic_features_stop_the_synthesize_step():
    from zerodiffpp.generators.synth import Synthesizer
    from zerodiffpp.nn.networks import build_feature_generator
    from zerodiffpp.transductive.diffgen import synthetic_set
    _, _, _, att = _data()
    cfg = dict(kind="fclswgan", x_dim=10, att_dim=5, noise_dim=4, hidden=8)
    gen = build_feature_generator(cfg)
    prep = SimpleNamespace(seen=np.array([0, 1]), unseen=np.array([2, 3]), x_train=np.zeros((1, 10), np.float32))
    synth = Synthesizer({"config": cfg, "state": gen.state_dict()}, None, att, "cpu")
    assert np.isfinite(synthetic_set(synth, prep, 5, "progressive")["x"]).all()
    with torch.no_grad():
        next(gen.parameters())[0, 0] = float("nan")  # one diverged weight: every feature is NaN
    synth = Synthesizer({"config": cfg, "state": gen.state_dict()}, None, att, "cpu")
    with pytest.raises(DivergedError, match=r"^synthesize: 10 of 10 synthetic features are not finite"):
        synthetic_set(synth, prep, 5, "progressive")
