"""Datasets to features: the xlsa17 benchmarks, the embedded default, your own image folder, the benchmark-difficulty fixture; the seen / unseen splits."""
