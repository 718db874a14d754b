"""Diagnostic: how far would a generator get that had learned the ridge regression exactly?

    python -m scripts.ideal_generator_probe --root /tmp/fx-new/cub --name CUB --ratio 0.1 --per-class 30 100 300

The "ideal ridge generator" draws each unseen class's features as the ridge regression's predicted
mean (the panel's linear map, alpha chosen on validation) plus a within-class residual resampled from
the real seen training features. The pipeline's ZSL softmax classifier (zerodiffpp.nn.classifier,
`classifier.epochs`, `classifier.lr` of params.yaml and --preset; batch = per-class count, as the
CUB preset sets it) is trained on them and scored on the evaluated split's unseen classes, beside
the nearest predicted mean (the ridge baseline) and the nearest true mean (an oracle), reading the
features raw and normalised (classifier.normalise). What it
separates: the part of a generative method's gap to the ridge regression that its classifier stage
costs even when the generated means are the ridge's, from the part its generator's means cost.
Choices are made on validation classes only (`--protocol validation`, the default); nothing here
chooses a setting of the pipeline.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import probes  # noqa: E402


def main(argv=None):
    ap = probes.parser(__doc__, ratio=0.1)
    ap.add_argument("--per-class", type=int, nargs="+", default=[30, 100, 300])
    ap.add_argument("--penalty", type=float, default=None,
                    help="the ridge penalty of the means (default: the panel's, chosen on the choice split's T1)")
    a = ap.parse_args(argv)
    p, val, test = probes.load(a)

    import torch

    from zerodiffpp.baselines import ceiling, prototypes
    from zerodiffpp.evaluation.metrics import mean_per_class_accuracy
    from zerodiffpp.nn.classifier import train_softmax
    from zerodiffpp.runtime.params import for_ratio

    clf = for_ratio(p, "probe")["classifier"]
    ridge = prototypes.evaluate(val, test, variants=("linear",))["linear"]
    protos = prototypes.Prototypes(test, "linear")
    alpha = ridge["alpha"] if a.penalty is None else a.penalty
    means = protos.unseen_means(alpha)
    x = test.x_train.astype(np.float64)
    residuals = x - protos.seen_means[np.searchsorted(test.seen, test.y_train)]
    print(f"{a.name} {a.protocol} protocol, seen ratio {a.ratio}, seed {a.seed}: {len(test.unseen)} unseen classes; "
          f"classifier {clf['epochs']} epochs, lr {clf['lr']}")
    print(f"  nearest predicted mean (ridge, alpha {alpha:g}): T1 {100 * protos.zsl_t1(alpha):.1f}")
    print(f"  nearest true mean (oracle): T1 {100 * ceiling.nearest_true_mean_t1(test):.1f}")
    rng = np.random.default_rng(a.seed)
    for n in a.per_class:
        xs = np.concatenate([m + residuals[rng.integers(len(residuals), size=n)] for m in means]).astype(np.float32)
        t1 = {}
        for normalise in (False, True):  # classifier.normalise
            torch.manual_seed(a.seed)
            model = train_softmax(xs, np.repeat(test.unseen, n), test.unseen, clf["epochs"], n, clf["lr"], "cpu",
                                  normalise=normalise)
            t1[normalise] = mean_per_class_accuracy(test.y_test_unseen, model.predict(test.x_test_unseen, "cpu"),
                                                    test.unseen)
        print(f"  ideal ridge generator, {n} per class -> softmax classifier: T1 {100 * t1[False]:.1f}, "
              f"reading normalised features {100 * t1[True]:.1f}")


if __name__ == "__main__":
    main()
