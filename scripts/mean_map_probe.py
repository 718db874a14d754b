"""Diagnostic: how well does a neural attribute -> class-mean map carry to unseen classes, against the ridge regression?

    python -m scripts.mean_map_probe --root /tmp/fx-new/cub --name CUB --ratio 1.0

A generator of class-conditional features learns, among the rest, a map from a class's attributes to
its mean feature, fitted on the seen classes only. This probe fits that map alone: an MLP of the
generator's shape (`gen.hidden` of params.yaml and --preset, LeakyReLU 0.2) trained by squared error
on the seen training classes' real mean features, with an L2 penalty lambda on its weights in the
ridge regression's units (sum over classes of squared errors + lambda * sum of squared weights;
lambda 0 is how the generators train), beside the ridge regression (the panel's linear map, one
row per alpha). Each map's predicted unseen means file the evaluated split's test-unseen images by
nearest mean (the panel's linear space): T1. A penalty is chosen by T1 on the validation split of
`baselines.panel.splits` (seen classes only); the evaluated split is the validation classes under
`--protocol validation` (the default). Nothing here chooses a setting of the pipeline.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import probes  # noqa: E402


def fit_mlp(att, means, hidden: int, penalty: float, steps: int, lr: float, seed: int):
    """-> f(att) of an MLP att -> mean fitted by Adam on sum of squared errors + penalty * |weights|^2."""
    import torch
    torch.manual_seed(seed)
    a, m = torch.as_tensor(att), torch.as_tensor(means)
    net = torch.nn.Sequential(torch.nn.Linear(a.shape[1], hidden), torch.nn.LeakyReLU(0.2),
                              torch.nn.Linear(hidden, m.shape[1])).double()
    with torch.no_grad():
        net[2].bias.copy_(m.mean(0))  # start at the mean class mean, as the ridge intercept does
    weights = [net[0].weight, net[2].weight]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(a) - m) ** 2).sum() + penalty * sum((w ** 2).sum() for w in weights)
        loss.backward()
        opt.step()
    return lambda x: net(torch.as_tensor(x)).detach().numpy()


def main(argv=None):
    ap = probes.parser(__doc__, ratio=1.0)
    ap.add_argument("--penalties", type=float, nargs="+", default=[0.0, 0.01, 0.1, 1.0])
    ap.add_argument("--steps", type=int, default=1000)
    a = ap.parse_args(argv)
    p, val, test = probes.load(a)
    from zerodiffpp.baselines import prototypes
    hidden = p["gen"]["hidden"]
    print(f"{a.name} {a.protocol} protocol, seen ratio {a.ratio}, seed {a.seed}: {len(test.seen)} seen / "
          f"{len(test.unseen)} unseen classes; nearest predicted mean, linear space, T1 in percent "
          f"(on the choice split / on the evaluated split)")
    print("| map | penalty | T1 (choice split) | T1 (evaluated split) |\n|---|---|---|---|")
    protos = [prototypes.Prototypes(s, "linear") for s in (val, test)]  # the choice split, the evaluated one
    for name, fit in (("ridge", lambda pr, pen: pr.unseen_means(pen)),
                      (f"MLP, {hidden} hidden", lambda pr, pen: fit_mlp(
                          pr.prep.att[pr.prep.seen].astype(np.float64), pr.seen_means, hidden, pen, a.steps, 0.001,
                          a.seed)(pr.prep.att[pr.prep.unseen].astype(np.float64)))):
        pens = prototypes.ALPHAS if name == "ridge" else a.penalties
        t1 = {pen: [pr.zsl_t1(np.nan, fit(pr, pen)) for pr in protos] for pen in pens}
        chosen = max(pens, key=lambda pen: (t1[pen][0], -pen))
        for pen in pens:
            mark = " (chosen)" if pen == chosen else ""
            print(f"| {name} | {pen:g}{mark} | {100 * t1[pen][0]:.1f} | {100 * t1[pen][1]:.1f} |")


if __name__ == "__main__":
    main()
