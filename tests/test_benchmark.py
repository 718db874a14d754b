"""The benchmarks run and print their figures (times are measured, never asserted; the counts of host
syncs and schedule copies are structural, and pinned)."""
import pytest
import torch

from benchmarks import generation_step, train_step


@pytest.mark.parametrize("model", ["dfg", "drg"])
def test_train_step_benchmark_prints_its_figures(capsys, model):
    train_step.main(["--model", model, "--shape", "cub", "--width", "32", "--iters", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert f"model {model}" in out and "shape cub, widths 32" in out and "fraction of GEMM rate" in out
    flops = float(out.split("model FLOPs / iteration")[1].split("GFLOP")[0])
    assert flops > 0
    # the training loops keep their statistics on the device: no host sync in an iteration
    assert "host syncs / iteration  0" in out and "(0 copied to the device)" in out


def _generation_rows(out: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in out.splitlines() if line.startswith("| ") and "workload" not in line]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows}


def test_the_generation_chain_makes_no_host_sync_and_no_schedule_copy(capsys):
    """Synthesis, DiffGen and DiffTTA read their schedule from the generator's own buffers (it moves
    with the generator to a GPU) and keep every value on the device."""
    generation_step.main(["--shape", "cub", "--width", "32", "--batch", "64", "--reps", "1", "--device", "cpu"])
    rows = _generation_rows(capsys.readouterr().out)
    assert sorted(rows) == sorted(generation_step.WORKLOADS)
    for name, (steps, _, _, syncs, lookups, copies) in rows.items():
        assert int(lookups) > 0, name  # the counter saw the chain
        assert (syncs, copies) == ("0", "0"), (name, syncs, copies)


def test_the_benchmark_counts_a_schedule_that_does_not_travel_with_the_generator(monkeypatch):
    from zerodiffpp.nn import diffusion
    from zerodiffpp.generators.synth import Synthesizer
    stray = diffusion.vp_schedule(4, 0.1, 20.0)  # a schedule of its own, as synth.py built before
    monkeypatch.setattr(Synthesizer, "sched", property(lambda self: stray))
    synth = generation_step.make_synthesizer("cub", 32, torch.device("cpu"), 16)
    for name in generation_step.WORKLOADS:
        m = generation_step.measure(name, synth, 16, 2, 1, torch.device("cpu"))
        assert m["copies"] == m["lookups"] > 0, name
