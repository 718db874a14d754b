"""Diagnostic: which real class do generated features look like?

    python -m scripts.generated_features_probe [--per-class 200]

Fits a logistic regression on *real* features of every class (training features and test-unseen
features: an oracle, as in the unseen-spuriousness metric, so a diagnosis only, never a way to
choose anything), then files features generated from pure noise for each class by the trained
and by the DiffTTA-adapted generator. Prints one row per generated class: how many of its
features land in each real class. Needs the pipeline's outputs (`dvc repro`).
"""
import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from zerodiffpp.runtime import paths
from zerodiffpp.data.features import Prepared
from zerodiffpp.generators.synth import Synthesizer
from zerodiffpp.runtime.files import load_torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for path in (paths.PREPARED, paths.GENERATOR, paths.DRG):
        if not path.exists():
            raise SystemExit(f"{path}: not found; run `dvc repro` first")
    prep = Prepared.load(paths.PREPARED)
    x_real = np.concatenate([prep.x_train, prep.x_test_unseen])
    y_real = np.concatenate([prep.y_train, prep.y_test_unseen])
    oracle = LogisticRegression(max_iter=300).fit(x_real, y_real)
    names = [str(n) for n in prep.class_names]
    classes = np.arange(prep.n_classes)
    for label, path in (("trained", paths.GENERATOR), ("adapted (DiffTTA)", paths.ADAPTED_GENERATOR)):
        if not path.exists():
            continue
        torch.manual_seed(a.seed)
        synth = Synthesizer(load_torch(path), load_torch(paths.DRG), prep.att, "cpu")
        x, y = synth.full(classes, a.per_class)
        filed = oracle.predict(x)
        print(f"\n{label} generator: {a.per_class} generated features per class, filed by the real-feature probe\n")
        print("| generated as | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for c in classes:
            kind = "unseen" if c in prep.unseen else "seen"
            counts = np.bincount(filed[y == c], minlength=len(classes))
            print(f"| {names[c]} ({kind}) | " + " | ".join(str(n) for n in counts) + " |")


if __name__ == "__main__":
    main()
