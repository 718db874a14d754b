"""Benchmark: feature extraction of the embedded default, by batch size and number of worker threads.

Prints milliseconds per image for each (batch size, workers) pair on the first `--images` images,
and the largest feature difference from the first pair (0 means bit-identical).

    python -m benchmarks.extract [--images 2000] [--batch-sizes 250 64 32 16] [--workers 1 2]
"""
import argparse
import itertools
import time

import numpy as np
import torch

from zerodiffpp.data import embedded
from zerodiffpp.runtime.params import load_params


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[250, 64, 32, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args(argv)
    size = load_params()["data"]["image_size"]
    images = embedded.load_images()[0][:a.images]
    model = embedded.build_backbone()
    embedded.extract_features(images[:64], size, 32, model=model)  # warm-up
    print(f"{len(images)} images at {size} px, torch threads {torch.get_num_threads()}")
    print("| batch size | workers | ms per image | max difference from the first row |")
    print("|---|---|---|---|")
    ref = None
    for batch_size, workers in itertools.product(a.batch_sizes, a.workers):
        t = time.perf_counter()
        x = embedded.extract_features(images, size, batch_size, model=model, workers=workers)
        ms = (time.perf_counter() - t) / len(images) * 1000
        ref = x if ref is None else ref
        print(f"| {batch_size} | {workers} | {ms:.2f} | {np.abs(x - ref).max():.1e} |", flush=True)


if __name__ == "__main__":
    main()
