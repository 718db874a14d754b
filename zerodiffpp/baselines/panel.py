"""The simple-baseline panel on one split: `panel(fs, seen_ratio, seed, protocol)`.

Every baseline is scored once on the evaluated split (`prepare_split(fs, seen_ratio, seed,
protocol)`), with every choice made on a validation split of the same seen ratio and seed: the
validation pass's split (`splits.calibration_view`, the one calibrated stacking is chosen on):
  protocol 'test'        the dataset's validation classes (or a seeded fraction of the seen ones);
  protocol 'validation'  the evaluated classes already are the validation classes, so the choices
                         are made on classes carved from that split's own training classes: the
                         evaluated classes are never used to choose.
"""
from __future__ import annotations

import numpy as np

from zerodiffpp.baselines import ceiling, eszsl, kmeans, prototypes
from zerodiffpp.data.features import FeatureSet, Prepared
from zerodiffpp.data.splits import calibration_view, prepare_split

HELD_OUT_FRACTION = 0.2  # of the seen classes, held out for choosing where the dataset names no validation classes


def splits(fs: FeatureSet, seen_ratio: float, seed: int, protocol: str = "test", val_classes: str = "",
           fraction: float = HELD_OUT_FRACTION) -> tuple[Prepared, Prepared]:
    """(validation split for the choices, evaluated split); `val_classes` is data.val_classes."""
    evaluated = prepare_split(fs, seen_ratio, seed, protocol, val_classes)[0]
    val = prepare_split(calibration_view(fs, protocol, val_classes, seed, fraction), seen_ratio, seed)[0]
    return val, evaluated


def _plain(d: dict) -> dict:
    return {k: v if isinstance(v, str) else (int(v) if isinstance(v, (int, np.integer)) else float(v))
            for k, v in d.items()}


def panel(fs: FeatureSet, seen_ratio: float, seed: int, protocol: str = "test", val_classes: str = "",
          fraction: float = HELD_OUT_FRACTION) -> dict:
    """Every baseline on the evaluated split. {'eszsl', 'ridge_linear', 'ridge_whitened', 'ridge' (the
    variant chosen on validation, with 'variant'), 'ridge_kmeans' {'T1', 'iterations', 'val_T1'}
    (transductive: reads the unlabelled test-unseen features), 'ceiling' {'T1'}, 'nearest_true_mean'
    {'T1'} (oracles: real unseen labels), 'linear_seen' {'acc', 'alpha', 'val_acc'}, 'strongest' (eszsl or
    ridge: the higher T1), 'split' {...}}; accuracies are fractions."""
    val, test = splits(fs, seen_ratio, seed, protocol, val_classes, fraction)
    ridge = prototypes.evaluate(val, test)
    out = {"eszsl": _plain(eszsl.evaluate(val, test)),
           "ridge_linear": _plain(ridge["linear"]), "ridge_whitened": _plain(ridge["whitened"]),
           "ridge": _plain({**ridge[ridge["variant"]], "variant": ridge["variant"]}),
           "ridge_kmeans": _plain(kmeans.evaluate(val, test, ridge["variant"], ridge[ridge["variant"]]["alpha"])),
           "ceiling": {"T1": float(ceiling.ceiling_t1(test))},
           "nearest_true_mean": {"T1": float(ceiling.nearest_true_mean_t1(test))},
           "linear_seen": _plain(ceiling.linear_seen(val, test))}
    out["strongest"] = max(("eszsl", "ridge"), key=lambda k: out[k]["T1"])
    out["split"] = {"protocol": protocol, "seen_ratio": float(seen_ratio), "seed": int(seed),
                    "n_seen": int(len(test.seen)), "n_unseen": int(len(test.unseen)),
                    "chance_T1": 1 / len(test.unseen), "n_val_unseen": int(len(val.unseen))}
    return out


def panel_metrics(result: dict) -> dict:
    """The numbers of a `panel` result (a DVC metrics file holds numbers only): every baseline's
    accuracies and choices, and 'strongest' {'T1', 'H'}: the best of ESZSL and the ridge regression (its
    variant chosen on validation) on each metric, the bar a claim must clear."""
    out = {k: {m: v for m, v in result[k].items() if not isinstance(v, str)}
           for k in ("eszsl", "ridge_linear", "ridge_whitened", "ridge", "ridge_kmeans", "ceiling", "nearest_true_mean",
                     "linear_seen")}
    out["strongest"] = {m: max(result["eszsl"][m], result["ridge"][m]) for m in ("T1", "H")}
    return out


def panel_markdown(result: dict) -> str:
    """A markdown table of a `panel` result, accuracies in percent."""
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    rows = ["| baseline | T1 | U | S | H | chosen on validation |", "|---|---|---|---|---|---|"]
    for name in ("eszsl", "ridge_linear", "ridge_whitened"):
        r = result[name]
        chosen = (f"gamma {r['gamma']:g}, lambda {r['lambda']:g}" if name == "eszsl" else f"alpha {r['alpha']:g}")
        chosen += f", temperature {r['temperature']:g}, calibration {r['calibration']:g}"
        mark = " (chosen variant)" if name == f"ridge_{result['ridge']['variant']}" else ""
        rows.append(f"| {name}{mark} | {pct(r['T1'])} | {pct(r['U'])} | {pct(r['S'])} | {pct(r['H'])} | {chosen} |")
    rk = result["ridge_kmeans"]
    rows.append(f"| ridge_kmeans (transductive: unlabelled test-unseen features) | {pct(rk['T1'])} | | | | "
                f"k-means iterations {rk['iterations']} |")
    rows.append(f"| ceiling (linear, real unseen, {ceiling.FOLDS}-fold) | {pct(result['ceiling']['T1'])} | | | | |")
    rows.append(f"| nearest_true_mean (real unseen means, {ceiling.FOLDS}-fold) | "
                f"{pct(result['nearest_true_mean']['T1'])} | | | | |")
    ls = result["linear_seen"]
    rows.append(f"| linear_seen (ridge, test-seen) | | | {pct(ls['acc'])} | | alpha {ls['alpha']:g} |")
    s = result["split"]
    head = (f"Simple-baseline panel: protocol {s['protocol']}, seen ratio {s['seen_ratio']:g}, seed {s['seed']}, "
            f"{s['n_seen']} seen / {s['n_unseen']} unseen classes (chance T1 {pct(s['chance_T1'])}); "
            f"strongest on T1: {result['strongest']}.")
    return head + "\n\n" + "\n".join(rows) + "\n"
