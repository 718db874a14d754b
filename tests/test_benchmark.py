"""The train-step benchmark runs and prints its figures (its numbers are measured, never asserted)."""
from benchmarks import train_step


def test_train_step_benchmark_prints_its_figures(capsys):
    train_step.main(["--shape", "cub", "--width", "32", "--iters", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "shape cub, widths 32" in out and "fraction of GEMM rate" in out
    flops = float(out.split("model FLOPs / iteration")[1].split("GFLOP")[0])
    assert flops > 0
