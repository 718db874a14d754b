"""The train-step benchmark runs and prints its figures (its numbers are measured, never asserted)."""
from benchmarks import train_step


import pytest


@pytest.mark.parametrize("model", ["dfg", "drg"])
def test_train_step_benchmark_prints_its_figures(capsys, model):
    train_step.main(["--model", model, "--shape", "cub", "--width", "32", "--iters", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert f"model {model}" in out and "shape cub, widths 32" in out and "fraction of GEMM rate" in out
    flops = float(out.split("model FLOPs / iteration")[1].split("GFLOP")[0])
    assert flops > 0
    # the training loops keep their statistics on the device: no host sync in an iteration
    assert "host syncs / iteration  0" in out and "(0 copied to the device)" in out
