"""ESZSL on the pipeline's own features and splits: a linear reference for the generative T1.

    python -m scripts.eszsl_reference                      # the dataset's validation classes
    python -m scripts.eszsl_reference --folds cat,horse dog,horse   # the two folds the attribute table allows

Needs `data/features/features.npz` (the extract stage). Reads data.* and train.seen_ratio / seed
from params.yaml. The regularisers are chosen on the validation folds (seen classes held out, no
test image read); the test split is scored once, with that choice. Prints a markdown table.
"""
import argparse

import numpy as np

from zerodiffpp.runtime import paths
from zerodiffpp.baselines.eszsl import eszsl_t1, select_on_validation
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.runtime.params import load_params
from zerodiffpp.data.splits import prepare_split


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", nargs="*", default=[""],
                    help="validation folds, each a comma-separated list of seen classes ('' = the dataset's own)")
    args = ap.parse_args(argv)
    p = load_params(paths.PARAMS)
    if not paths.FEATURES.exists():
        raise SystemExit(f"{paths.FEATURES}: not found; run `dvc repro extract` first")
    fs = FeatureSet.load(paths.FEATURES)
    ratio, seed = p["train"]["seen_ratio"], p["train"]["seed"]
    folds = [prepare_split(fs, ratio, seed, "validation", classes)[0] for classes in args.folds]
    (gamma, lam), scores = select_on_validation(folds)
    test_t1 = eszsl_t1(prepare_split(fs, ratio, seed, "test")[0], gamma, lam)
    print(f"ESZSL on {p['data']['name']}, seen_ratio {ratio}, seed {seed}; gamma {gamma:g}, lambda {lam:g} "
          f"chosen on validation (mean T1 over the folds)\n")
    print("| split | held-out classes | chance T1 | T1 (chosen) | T1 range over the grid |")
    print("|---|---|---|---|---|")
    for i, f in enumerate(folds):
        fold_scores = [s[i] for s in scores.values()]
        print(f"| validation | {', '.join(map(str, f.class_names[f.unseen]))} | {1 / len(f.unseen):.3f} | "
              f"{scores[(gamma, lam)][i]:.3f} | {min(fold_scores):.3f}-{max(fold_scores):.3f} |")
    print(f"| test | {', '.join(map(str, fs.class_names[fs.unseen_classes]))} | {1 / len(fs.unseen_classes):.3f} | "
          f"{test_t1:.3f} | (not searched) |")
    return {"gamma": gamma, "lambda": lam, "validation": scores[(gamma, lam)], "test": test_t1,
            "validation_mean": float(np.mean(scores[(gamma, lam)]))}


if __name__ == "__main__":
    main()
