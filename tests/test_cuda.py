"""The CUDA path: skipped without a GPU; `python -m benchmarks.gpu_check` runs these on one.

Every training loop must run without a host sync (a read of a device value that waits for the
queued work): under torch.cuda.set_sync_debug_mode("error") any such read in a step raises. The
same seeded step must agree with the CPU's, and a tiny pipeline must run end to end on the GPU."""
import numpy as np
import pytest
import torch

from tests.tiny import tiny_params

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _data(n=128, x_dim=16, r_dim=8, att_dim=6, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    att = rng.random((n_classes, att_dim)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    return (rng.random((n, x_dim), dtype=np.float32), rng.random((n, r_dim), dtype=np.float32),
            np.repeat(np.arange(n_classes), n // n_classes), att)


class _NoSync:
    """Any host sync inside the block raises (CUDA's sync debug mode)."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")


def _gen_params():
    p = tiny_params()
    return dict(p["gen"], batch_size=32, critic_iter=2), dict(p["diffusion"])


def test_dfg_iterations_make_no_host_sync():
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    g, d = _gen_params()
    tr = ZeroDiffTrainer(*_data(), g, d, "cuda")
    tr.train(1, desc=None)  # warm-up: first calls may allocate and initialise
    with _NoSync():
        for _ in range(3):
            gps = []
            for _ in range(g["critic_iter"]):
                stats, last = tr.critic_step()
                gps.append(stats["gp_sum"])
            tr.adapt_gp_weight(sum(gps) / len(gps))
            tr.generator_step(*last)


def test_drg_iterations_make_no_host_sync():
    from zerodiffpp.generators.drg import DRGTrainer
    p = tiny_params()
    x, r, y, att = _data()
    tr = DRGTrainer(r, y, att, dict(p["drg"], batch_size=32), p["diffusion"], "cuda")
    tr.train(1, desc=None)
    with _NoSync():
        for _ in range(3):
            _, last = tr.critic_step()
            tr.generator_step(*last)


def test_the_generation_chain_makes_no_host_sync():
    """Synthesis's reverse chain, DiffGen's partial chain and a DiffTTA update on the GPU: the
    schedule is the generator's buffer (moved with it), and nothing is read back inside."""
    from benchmarks.generation_step import make_synthesizer, workload
    from zerodiffpp.nn import diffusion as dfn
    synth = make_synthesizer("embedded", None, torch.device("cuda"), 64)
    assert synth.sched.betas.is_cuda
    a = synth.att[torch.zeros(64, dtype=torch.long, device="cuda")]
    z = torch.randn(64, synth.cfg["noise_dim"], device="cuda")
    x0 = torch.rand(64, synth.cfg["x_dim"], device="cuda")
    update, _ = workload("difftta", synth, 64, 2)
    update()  # warm-up
    with _NoSync():
        synth.reverse_chain(z, a, None, torch.randn_like(x0), synth.cfg["timesteps"])
        k = torch.full((64,), 2, dtype=torch.long, device="cuda")
        synth.reverse_chain(z, a, None, dfn.q_sample(x0, k, synth.sched), 2)
        update()


def test_the_critic_step_computes_the_same_on_cpu_and_gpu(monkeypatch):
    """The same weights and the same batch and noise (drawn on the CPU, then moved), TF32 off: one
    critic step's losses agree to float precision on both devices."""
    from zerodiffpp.generators.dfg import ZeroDiffTrainer
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    g, d = _gen_params()
    torch.manual_seed(0)
    cpu = ZeroDiffTrainer(*_data(), g, d, "cpu")
    gpu = ZeroDiffTrainer(*_data(), g, d, "cuda")
    for net in ("gen", "dec"):
        getattr(gpu, net).load_state_dict(getattr(cpu, net).state_dict())
    for name in cpu.critics:
        gpu.critics[name].load_state_dict(cpu.critics[name].state_dict())
    torch.manual_seed(1)
    batch = cpu.batch()
    with torch.no_grad():
        fake = cpu.adversarial_fake(*batch)
    stats = {}
    for tr, device in ((cpu, "cpu"), (gpu, "cuda")):
        tr.batch = lambda b=batch, dev=device: tuple(t.to(dev) for t in b)
        tr.adversarial_fake = lambda *args, dev=device, **kw: {k: v.to(dev) for k, v in fake.items()}
        torch.manual_seed(2)  # the penalty's interpolation weights: drawn per device, so fixed here
        real_rand = torch.rand
        monkeypatch.setattr(torch, "rand", lambda *shape, device=None, dtype=None, **kw:
                            real_rand(*shape, dtype=dtype).to(device))
        stats[device] = {k: float(v) for k, v in tr.critic_step()[0].items()}
        monkeypatch.setattr(torch, "rand", real_rand)
    for key, value in stats["cpu"].items():
        assert stats["cuda"][key] == pytest.approx(value, rel=1e-3, abs=1e-6), key


def test_a_tiny_pipeline_runs_end_to_end_on_the_gpu(tmp_path):
    from zerodiffpp.pipeline.in_process import run_pipeline
    from tests.conftest import make_xlsa17
    from zerodiffpp.data.xlsa17 import load_xlsa17
    fs = load_xlsa17(make_xlsa17(tmp_path / "TOY", n_seen=6, n_unseen=3, att_dim=8, x_dim=16, per_class=12,
                                 learnable=True), "TOY")
    p = tiny_params()
    p["train"].update(device="cuda", threads=1)
    m = run_pipeline(p, fs)
    assert m["n_unseen_classes"] == 3 and np.isfinite(m["zsl"]["T1"])
