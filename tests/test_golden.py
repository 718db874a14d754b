"""Golden numbers: seeded tiny runs of every trainer on fixed inputs, their first losses pinned.

Like diffusers' scheduler tests, these catch any unintended change to a training step (an operation
reordered, a detach moved, a weight applied twice): the failing entry names the trainer and the loss.
After an *intended* change, regenerate the numbers (`python -m tests.test_golden`) and say why in
the commit. One thread, CPU, so that the numbers do not depend on the machine's thread count."""
import json

import numpy as np
import pytest
import torch

from tests.tiny import tiny_params

RTOL = 1e-3


def _data(seed=0, n=64, x_dim=10, r_dim=6, att_dim=5, n_classes=4):
    rng = np.random.default_rng(seed)
    att = rng.random((n_classes, att_dim)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    y = np.repeat(np.arange(n_classes), n // n_classes)
    x = 1 / (1 + np.exp(-(att[y] @ rng.normal(size=(att_dim, x_dim)) + 0.3 * rng.normal(size=(n, x_dim)))))
    return x.astype(np.float32), rng.random((n, r_dim)).astype(np.float32), y, att


def _p():
    # The goldens pin their own settings: a change of params.yaml's defaults must not move them.
    p = tiny_params()
    p["gen"].update(fake_latent="prior", adaptive_gp_input="mean")
    p["gen"].update(noise_dim=4, cond_dim=4, hidden=16, critic_hidden=16, dec_hidden=16, batch_size=16, critic_iter=2)
    p["drg"].update(noise_dim=4, hidden=16, critic_hidden=16, batch_size=16, critic_iter=2, epochs=1)
    p["fclswgan"].update(noise_dim=4, hidden=16, critic_hidden=16, batch_size=16, critic_iter=2, epochs=1, cls_epochs=1)
    p["sc"].update(hidden=16, rep_dim=6, proj_dim=4, batch_size=16, epochs=1)
    p["diffusion"].update(time_dim=4)
    p["tta"].update(epochs=1, batch_size=16)
    return p


def _rounded(rows):
    return [{k: float(f"{float(v):.7g}") for k, v in row.items()} for row in rows]


def dfg_steps():
    """Two ZeroDiff (DFG) iterations, step by step: the last critic step's and the generator step's losses."""
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    p, (x, r, y, att) = _p(), _data()
    torch.manual_seed(0)
    tr = ZeroDiffTrainer(x, r, y, att, p["gen"], p["diffusion"], "cpu")
    rows = []
    for _ in range(2):
        for _ in range(p["gen"]["critic_iter"]):
            stats, last = tr.critic_step()
        rows.append({**stats, **tr.generator_step(*last)})
    return _rounded(rows)


def dfg_epoch():
    """One epoch of ZeroDiffTrainer.train: the curve row (per-epoch means) and the adapted lambda."""
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    p, (x, r, y, att) = _p(), _data()
    torch.manual_seed(0)
    tr = ZeroDiffTrainer(x, r, y, att, dict(p["gen"], adaptive_gp_input="sum"), p["diffusion"], "cpu")
    return _rounded(tr.train(1, desc=None))


def drg_epoch():
    from zerodiffpp.generators.drg import train_drg
    p, (_, r, y, att) = _p(), _data()
    torch.manual_seed(0)
    return _rounded(train_drg(r, y, att, p["drg"], p["diffusion"], "cpu")[2])


def fclswgan_epoch():
    from zerodiffpp.generators.fclswgan import train_fclswgan
    p, (x, _, y, att) = _p(), _data()
    torch.manual_seed(0)
    return _rounded(train_fclswgan(x, y, att, np.arange(4), p["fclswgan"], "cpu")[1])


def sc_epoch():
    from zerodiffpp.generators.sc import train_sc_encoder
    p, (x, _, y, _) = _p(), _data()
    torch.manual_seed(0)
    return _rounded(train_sc_encoder(x, y, p["sc"], "cpu")[1])


def difftta_round():
    """One DiffTTA fine-tuning round of a fresh ZeroDiff generator on fixed 'kept' samples: the loss
    curve and the reconstruction check before and after."""
    from zerodiffpp.transductive.difftta import finetune
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    from zerodiffpp.generators.synth import Synthesizer
    from zerodiffpp.nn.training import Curve, adam
    p, (x, r, y, att) = _p(), _data()
    torch.manual_seed(0)
    tr = ZeroDiffTrainer(x, r, y, att, dict(p["gen"], sc_view=False), p["diffusion"], "cpu")
    synth = Synthesizer(tr.checkpoint(), None, att, "cpu")
    anchor = [q.detach().clone() for q in synth.gen.parameters()]
    conf = np.linspace(0.2, 1.0, len(y)).astype(np.float32)
    curve = Curve()
    before, after = finetune(synth, x, None, y, conf, dict(p["tta"], lr=0.01), "cpu", curve, 0, anchor,
                             adam(synth.gen.parameters(), 0.01))
    return _rounded(curve.rows + [{"rec_before": before, "rec_after": after}])


def dfg_default_epoch():
    """One epoch on the default training path, as params.yaml sets it: posterior fakes (the official
    code), the adaptive GP rule on the weighted sum of the penalties, every critic and mutual learning."""
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    p, (x, r, y, att) = tiny_params(), _data()
    g = dict(_p()["gen"], fake_latent=p["gen"]["fake_latent"], adaptive_gp_input=p["gen"]["adaptive_gp_input"])
    assert (g["fake_latent"], g["adaptive_gp_input"]) == ("posterior", "sum")
    torch.manual_seed(0)
    tr = ZeroDiffTrainer(x, r, y, att, g, _p()["diffusion"], "cpu")
    return _rounded(tr.train(1, desc=None))


def _generator(use_r=True):
    """A ZeroDiff generator and DRG with seeded weights of std 0.3 (the 0.02 init would give outputs
    too flat to pin the chain), x 10-d, 5 attributes, r 6-d, T = 4."""
    from zerodiffpp.generators.drg import build_drg
    from zerodiffpp.nn.networks import build_feature_generator
    from zerodiffpp.generators.synth import Synthesizer
    p, (_, _, _, att) = _p(), _data()
    cfg = dict(kind="zerodiff", x_dim=10, att_dim=5, rep_dim=6 if use_r else 0, noise_dim=4, hidden=16, cond_dim=4,
               time_dim=4, use_r=use_r, timesteps=4, beta_min=0.1, beta_max=20.0)
    drg_cfg = dict(noise_dim=4, att_dim=5, rep_dim=6, hidden=16, time_dim=4, input_step="current", timesteps=4,
                   beta_min=0.1, beta_max=20.0)
    torch.manual_seed(0)
    gen, drg = build_feature_generator(cfg), build_drg(drg_cfg)
    for q in [*gen.parameters(), *drg.parameters()]:
        q.data.normal_(0.0, 0.3)
    return Synthesizer({"config": cfg, "state": gen.state_dict()}, {"config": drg_cfg, "state": drg.state_dict()},
                       att, "cpu")


def _summary(x: np.ndarray) -> list[dict]:
    """Per row of a small generated set: its mean, its spread and its first two values."""
    return _rounded([{"mean": r.mean(), "std": r.std(), "x0": r[0], "x1": r[1]} for r in x])


def _full_synthesis(sampler: str) -> list[dict]:
    """Two features per class for classes 0 and 3, r from the DRG, as the synthesize stage generates."""
    synth = _generator()
    torch.manual_seed(1)
    return _summary(synth.full(np.array([0, 3]), 2, sampler)[0])


def synthesis_one_step():
    """Full synthesis, one step from x_T ~ N(0, I) at t = T - 1."""
    return _full_synthesis("one_step")


def synthesis_progressive():
    """Full synthesis along the reverse chain T-1 .. 0 (posterior sampling between the steps)."""
    return _full_synthesis("progressive")


def diffgen_partial():
    """DiffGen: fixed real features noised to k = 2 and denoised 2 -> 0 under their (pseudo-)labels
    and their own r, with z from the encoder."""
    from zerodiffpp.transductive.diffgen import partial_synthesis
    synth = _generator()
    x, r, y, _ = _data()
    torch.manual_seed(1)
    return _summary(partial_synthesis(synth, x[:4], r[:4], y[:4], 2))


def drg_sample():
    """r from the DRG for the synthesis of two classes: one step from r_in ~ N(0, I) at t = T - 1."""
    from zerodiffpp.generators.drg import sample_r
    synth = _generator()
    torch.manual_seed(1)
    return _summary(sample_r(synth.drg, synth.drg_cfg, synth.att[torch.tensor([0, 3])]).numpy())


def runs():
    return {f.__name__: f for f in (dfg_steps, dfg_epoch, dfg_default_epoch, drg_epoch, fclswgan_epoch, sc_epoch,
                                    difftta_round, drg_sample, synthesis_one_step, synthesis_progressive,
                                    diffgen_partial)}


GOLDEN = {
    "dfg_steps": [
        {"critic": 298.8296, "dec": 1.708414, "ml": 2.42755e-06, "gp": 0.9960774, "gp_sum": 2.988232, "W_x0": -0.0006202828, "W_xc": 6.043316e-06, "W_xt": -2.240403e-05, "generator": 8.580586, "vae": 6.933559, "g_adv": 0.0006304928, "g_rec": 1.640723},
        {"critic": 298.5294, "dec": 1.656079, "ml": 2.300451e-05, "gp": 0.9950686, "gp_sum": 2.985206, "W_x0": -0.0007675792, "W_xc": 6.289849e-05, "W_xt": -0.0001624622, "generator": 8.530062, "vae": 6.93106, "g_adv": 0.003097085, "g_rec": 1.568031},
    ],
    "dfg_epoch": [
        {"step": 0.0, "critic": 346.0675, "dec": 1.558381, "ml": 1.930934e-05, "gp": 0.9943412, "gp_sum": 2.983024, "W_x0": -0.0009439996, "W_xc": 0.0001593638, "W_xt": -0.0003683632, "generator": 8.40085, "vae": 6.930633, "g_adv": 0.002543015, "g_rec": 1.444787, "lambda_gp": 12.76275},
    ],
    "drg_epoch": [
        {"step": 0.0, "drg_critic": 19.86161, "drg_wasserstein": -5.771205e-05, "drg_gp": 1.986155, "drg_generator": 0.001407345},
    ],
    "fclswgan_epoch": [
        {"step": 0.0, "critic": 9.891881, "W": 0.004473773, "gp": 0.9896354, "generator": 0.01298549, "cls": 1.386224},
    ],
    "sc_epoch": [
        {"step": 0.0, "sc_loss": 3.427454},
    ],
    "difftta_round": [
        {"step": 0.0, "reconstruction": 0.4179931, "anchor": 0.02930792},
        {"rec_before": 0.4343731, "rec_after": 0.4072102},
    ],
    "dfg_default_epoch": [
        {"step": 0.0, "critic": 346.0669, "dec": 1.514463, "ml": 9.987005e-06, "gp": 0.9943454, "gp_sum": 2.983036, "W_x0": -0.0008444806, "W_xc": 0.0001671889, "W_xt": -0.0001639912, "generator": 8.332807, "vae": 6.931075, "g_adv": 0.001900444, "g_rec": 1.382728, "lambda_gp": 12.76275},
    ],
    "drg_sample": [
        {"mean": 0.431894, "std": 0.1785285, "x0": 0.6927682, "x1": 0.4434876},
        {"mean": 0.4696936, "std": 0.2481462, "x0": 0.672489, "x1": 0.6666425},
    ],
    "synthesis_one_step": [
        {"mean": 0.4099155, "std": 0.1221586, "x0": 0.3395654, "x1": 0.4598713},
        {"mean": 0.5357649, "std": 0.1644795, "x0": 0.6105081, "x1": 0.6952782},
        {"mean": 0.5065984, "std": 0.2158626, "x0": 0.7079102, "x1": 0.8494138},
        {"mean": 0.5513037, "std": 0.2717563, "x0": 0.7907138, "x1": 0.8641943},
    ],
    "synthesis_progressive": [
        {"mean": 0.4519092, "std": 0.1170254, "x0": 0.3828787, "x1": 0.6463228},
        {"mean": 0.4155973, "std": 0.1152669, "x0": 0.4113067, "x1": 0.515711},
        {"mean": 0.4713297, "std": 0.1553489, "x0": 0.5341437, "x1": 0.6618867},
        {"mean": 0.571605, "std": 0.2030503, "x0": 0.7569034, "x1": 0.7094174},
    ],
    "diffgen_partial": [
        {"mean": 0.4246411, "std": 0.09802688, "x0": 0.3580318, "x1": 0.529344},
        {"mean": 0.5478507, "std": 0.1299201, "x0": 0.6550227, "x1": 0.7064505},
        {"mean": 0.531032, "std": 0.1924087, "x0": 0.7516597, "x1": 0.8207029},
        {"mean": 0.6030957, "std": 0.2761124, "x0": 0.8979918, "x1": 0.9355238},
    ]
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(runs()))
def test_first_losses_match_the_golden_numbers(name):
    got, expected = runs()[name](), GOLDEN[name]
    assert len(got) == len(expected), name
    for i, (row, ref) in enumerate(zip(got, expected)):
        assert sorted(row) == sorted(ref), (name, i)
        for key in ref:
            assert row[key] == pytest.approx(ref[key], rel=RTOL, abs=1e-9), f"{name}, row {i}: {key}"


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("GOLDEN = {")
    for name, fn in runs().items():
        print(f'    "{name}": [')
        for row in fn():
            print(f"        {json.dumps(row)},")
        print("    ],")
    print("}")
