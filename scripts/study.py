"""One study runner: methods x seeds x seen ratios x folds x variants, in-process, resumable.

    python -m scripts.study --root /tmp/cub-fixture --name CUB --preset presets/cub-cpu.yaml \\
        --methods zerodiffpp zerodiff fclswgan panel --seeds 0 1 2 --ratios 1.0 0.3 0.1 --protocol validation --jobs 2
    python -m scripts.study --folds subsets:3 --variant decoder tta.unseen_labels=decoder --jobs 2   # embedded folds
    python -m scripts.study --show results/fixture-study/newcub-val.jsonl         # tabulate rows, run nothing
    python -m scripts.study <a file's command> --seeds 0 --ratios 0.1 --out /tmp/again.jsonl \\
        --compare results/fixture-study/newcub-val.jsonl                      # reproduce one of its rows

Data: `--root` (an xlsa17 folder: a real benchmark or `python -m zerodiffpp.fixtures.realistic`), else the
extract stage's data/features/features.npz (the embedded default after `dvc repro extract`).
Params of a point: params.yaml, then `--preset` (the merge `python -m scripts.apply_preset` makes), then
`--set`, then the variant's changes, then method, seed, seen ratio, protocol and fold; per-ratio values
resolved (zerodiffpp.runtime.params.for_ratio). Each point runs the stages' own steps in one process
(zerodiffpp/pipeline/in_process.py), seeded as `dvc repro` seeds them.
Sharing: the evaluations of one seed, ratio and fold whose pretrain and train params agree (ZeroDiff and
ZeroDiff++ share a generator; a variant of post-training settings shares it too) are one job: the
generator is trained once, the validation pass once per its own params, and every evaluation runs on
them. A variant that changes what training reads gets its own generator.
`--folds` (validation protocol): comma-separated seen class names per fold, `subsets:K` (every K-class
subset of the seen classes) or `own` (the dataset's validation classes); without it, the protocol's own split.
Rows: one JSON line per method, seed, ratio, fold and variant, appended to --out as each job ends; its
`params` is a digest of the point's full params, and a rerun skips the points whose digest is there.
`--methods panel` adds the simple baselines (ESZSL, ridge prototype regression and its transductive k-means
refinement, the supervised ceiling, the nearest true mean).
Prints (and writes beside --out as .md) means ± sample standard deviations over seeds and folds, and each
variant against the base paired by fold and seed. `--calibration-from` validation studies' rows (files) adds U,
S, H at the calibration value chosen on them, and a table per seed: each row's own value against its seed's
(a test row pairs with the validation rows of the same settings, `set`, whatever their variants are named).
Test-protocol runs are appended to results/test-log.jsonl, one entry per finished job. Stop a study with
`kill <pid>` (SIGTERM) or Ctrl-C: its workers end with it and a test study logs the stop as a failure.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zerodiffpp.runtime import methods as M  # noqa: E402
from zerodiffpp.runtime import paths  # noqa: E402
from zerodiffpp.runtime.errors import DataError, ParamsError  # noqa: E402
from zerodiffpp.runtime.params import (declared_keys, for_ratio, load_params, lookup, merge_preset,  # noqa: E402
                                       parse_assignment, assign, validate)

BASELINES = ("eszsl", "ridge", "ridge_linear", "ridge_whitened", "ridge_kmeans", "ceiling", "nearest_true_mean")  # --methods panel
BASE = "base"
MAX_FOLDS = 100


# ---- params of a point --------------------------------------------------------------------------------
def parse_changes(items: list[str], flag: str) -> dict:
    """["gen.lr=0.001", ...] -> {"gen.lr": 0.001} (values read as YAML)."""
    try:
        return dict(parse_assignment(s, flag) for s in items)
    except ParamsError as e:
        raise SystemExit(str(e)) from e


def parse_variants(args: list[list[str]], sets: dict) -> list[tuple[str, dict]]:
    """[(name, full set)]: the base (`sets`) first, then each --variant NAME KEY=VALUE... over it."""
    out = [(BASE, dict(sets))]
    for name, *changes in args:
        if name in {n for n, _ in out} or "=" in name or not changes:
            raise SystemExit(f"--variant {' '.join([name, *changes])}: expected a new NAME then KEY=VALUE changes")
        out.append((name, {**sets, **parse_changes(changes, "--variant")}))
    return out


def base_params(params_path: Path, preset: Path | None) -> dict:
    p = load_params(params_path)
    if preset is not None:
        try:
            merge_preset(p, yaml.safe_load(preset.read_text()), str(preset))
        except ParamsError as e:
            raise SystemExit(str(e)) from e
    return p


def point_params(base: dict, sets: dict, method: str, seed: int, ratio: float, protocol: str, fold: str,
                 data: dict) -> dict:
    """The resolved params of one point; a bad key or value exits naming it, before any work."""
    p = copy.deepcopy(base)
    p["method"] = method if method in M.METHODS else p["method"]  # a variant may set another method
    try:
        for key, value in sets.items():
            assign(p, key, value, "--set/--variant")
        p["data"].update(data, protocol=protocol, val_classes=fold)
        p["train"].update(seed=seed, seen_ratio=ratio, threads=1)
        validate(p, "study")
        return for_ratio(p, "study")
    except ParamsError as e:
        raise SystemExit(str(e)) from e


def digest(p: dict) -> str:
    return hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:12]


def signature(p: dict, keys: list[str]) -> str:
    """What training reads (the generator's kind for the method): evaluations that agree share generators."""
    values = {k: lookup(p, k) for k in keys if k != "method"}
    return json.dumps({**values, "generator": M.generator(p["method"])}, sort_keys=True, default=str)


TRAIN_KEYS = ("pretrain", "train")


def training_keys(stages=TRAIN_KEYS) -> list[str]:
    return sorted({k for s in stages for k in declared_keys(s)})


# ---- folds ---------------------------------------------------------------------------------------------
def fold_list(spec: list[str], fs) -> list[str]:
    names = [str(n) for n in fs.class_names[fs.seen_classes]]
    folds = []
    for item in spec:
        if item == "own":
            folds.append("")
        elif item.startswith("subsets:"):
            k = int(item.split(":", 1)[1])
            if not 0 < k < len(names):
                raise SystemExit(f"--folds {item}: K must lie in [1, {len(names) - 1}] ({len(names)} seen classes)")
            if len(folds) + math.comb(len(names), k) > MAX_FOLDS:  # counted before any is built (SUN: 44.5 M)
                raise SystemExit(f"--folds gives {len(folds) + math.comb(len(names), k)} folds (more than "
                                 f"{MAX_FOLDS}); name folds or use `own`")
            folds += [",".join(c) for c in itertools.combinations(names, k)]
        else:
            fs.named_seen_classes(item)  # an unknown or unseen class name fails here, before any training
            folds.append(item)
    if len(folds) > MAX_FOLDS:
        raise SystemExit(f"--folds gives {len(folds)} folds (more than {MAX_FOLDS}); name folds or use `own`")
    return folds


# ---- jobs ----------------------------------------------------------------------------------------------
_DATA: dict = {}


def load_data(source: tuple):
    """(root, name) of an xlsa17 folder, or (None, features.npz): the FeatureSet, once per process."""
    if source not in _DATA:
        root, name = source
        if root is None:
            from zerodiffpp.data.features import FeatureSet
            _DATA[source] = FeatureSet.load(name)
        else:
            from zerodiffpp.data.xlsa17 import load_xlsa17
            _DATA[source] = load_xlsa17(root, name)
    return _DATA[source]


def plan(base: dict, methods: list[str], seeds: list[int], ratios: list[float], folds: list[str], protocol: str,
         variants: list[tuple[str, dict]], data: dict, have: set[str]) -> list[dict]:
    """The jobs still to run: {'seed', 'ratio', 'fold', 'evaluations': [(method, variant, sets, params)]},
    one per seed, ratio, fold and training signature (the panel: one job of its own)."""
    keys = training_keys()
    jobs: dict = {}
    for ratio, seed, fold in itertools.product(ratios, seeds, folds):
        for method in methods:
            for name, sets in (variants if method != "panel" else variants[:1]):
                p = point_params(base, sets, method, seed, ratio, protocol, fold, data)
                method_run = "panel" if method == "panel" else p["method"]  # a variant's method=... wins
                if digest(dict(p, method=method_run)) in have:
                    continue
                sig = "panel" if method == "panel" else signature(p, keys)
                jobs.setdefault((ratio, seed, fold, sig), []).append((method_run, name, sets, p))
    return [{"seed": s, "ratio": r, "fold": f, "evaluations": ev} for (r, s, f, _), ev in jobs.items()]


def run_job(args: tuple) -> list[dict]:
    """One job: train once, evaluate each (method, variant) on it -> rows."""
    source, job = args
    os.environ.setdefault("TQDM_DISABLE", "1")  # one line per job, not progress bars from several workers
    from zerodiffpp.pipeline.in_process import calibrate, evaluate_generators, train_generators, train_validation
    from zerodiffpp.pipeline.validation import needed
    start = time.time()
    fs = load_data(source)
    rows, trained, validation, trained_minutes = [], None, {}, 0.0
    val_keys = training_keys(("val_train",))  # read from dvc.yaml once per job
    for method, variant, sets, p in job["evaluations"]:
        base = {"method": method, "seed": job["seed"], "seen_ratio": job["ratio"],
                "protocol": p["data"]["protocol"], "fold": job["fold"], "variant": variant, "set": sets,
                "params": digest(dict(p, method=method))}
        if method == "panel":
            rows += panel_rows(fs, p, base, start)
            continue
        t0 = time.time()
        trained = trained or train_generators(p, fs)
        vsig = signature(p, val_keys) + str(any(needed(p).values()))  # trained only if needed
        if vsig not in validation:
            validation[vsig] = train_validation(p, fs)
        trained_minutes += (time.time() - t0) / 60
        t0 = time.time()
        m = evaluate_generators(p, trained, calibrate(p, validation[vsig]), curve=True)
        checked = [r for r in trained.curve if np.isfinite(r.get("gen_seen_acc", np.nan))]
        rows.append(dict(base, T1=m["zsl"]["T1"], **m["gzsl"], calibration=m["calibration"]["value"],
                         calibration_record=m["calibration"], gate=m.get("gate"), transductive=m["transductive"],
                         gen_seen_acc=checked[-1]["gen_seen_acc"] if checked else None,
                         gen_mean_gap=checked[-1]["gen_mean_gap"] if checked else None,
                         pseudo_label_acc=m.get("tta", {}).get("pseudo_label_acc_all"), spurious=m["spurious"],
                         nearest_generated_mean=m["nearest_generated_mean"],
                         minutes=trained_minutes + (time.time() - t0) / 60,  # the shared training and its own
                         calibration_curve=[[c["calibration"], round(c["U"], 5), round(c["S"], 5), round(c["H"], 5)]
                                            for c in m["calibration_curve"]]))
    return rows


def panel_rows(fs, p: dict, base: dict, start: float) -> list[dict]:
    """The simple baselines on the point's split, every choice made on its validation classes."""
    from zerodiffpp.baselines.panel import panel
    d = p["data"]
    result = panel(fs, p["train"]["seen_ratio"], p["train"]["seed"], d["protocol"], d["val_classes"],
                   p["classifier"]["calibration_holdout"])
    minutes = (time.time() - start) / 60
    return [dict(base, method=name, **{k: v for k, v in result[name].items() if k in ("T1", "U", "S", "H")},
                 choices={k: v for k, v in result[name].items() if k not in ("T1", "U", "S", "H")}, minutes=minutes)
            for name in BASELINES]


# ---- rows and tables -----------------------------------------------------------------------------------
def load_rows(path: Path) -> list[dict]:
    """Rows of this runner and of the earlier fixture_study / fold_study files, in one shape: the fold
    study's rows (no method, ratio or protocol) were ZeroDiff++ at seen ratio 1.0 on validation folds."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if "method" not in r:  # scripts/fold_study.py (its first rounds wrote no seed: seed 0)
            r.update(method="zerodiffpp", seen_ratio=1.0, protocol="validation", set=r.pop("changes", r.get("set", [])))
            r.setdefault("seed", 0)
        r["fold"] = "" if r.get("fold") in (None, "own") else r["fold"]
        r["variant"] = r.get("variant") or BASE
        r.setdefault("protocol", "test")
        r.setdefault("set", {})
        rows.append(r)
    return rows


def curve_at(row: dict, gamma: float) -> dict:
    """U, S, H of a row's split at calibration value `gamma`, read from the row's curve."""
    for g, u, s, h in row["calibration_curve"]:
        if np.isclose(g, gamma):
            return {"U": u, "S": s, "H": h}
    raise KeyError(f"calibration {gamma} is not on the curve of {row['method']} seed {row['seed']}")


def chosen_on_validation(val_rows: list[dict], method: str, ratio: float, sets: dict | None = None) -> float | None:
    """Calibrated stacking's value as its authors choose it: the best mean validation H of `method` at
    `ratio`, from validation-protocol rows only, at the same settings `sets` (a row's `set`: its study's
    --set and variant changes, so a test run's --set pairs with a validation run's --variant of the same
    changes, whatever either is named); None if there are none."""
    from zerodiffpp.evaluation.calibration import best
    rs = [r for r in val_rows if r.get("protocol") == "validation" and r["method"] == method
          and np.isclose(r["seen_ratio"], ratio) and r.get("set", {}) == (sets or {}) and r.get("calibration_curve")]
    if not rs:
        return None
    grid = [g for g, *_ in rs[0]["calibration_curve"]]
    return best([{"calibration": g, "H": float(np.mean([curve_at(r, g)["H"] for r in rs]))} for g in grid])


def label(method: str, variant: str) -> str:
    transductive = method == "ridge_kmeans" or (method in M.METHODS and M.is_transductive(method))
    out = method + (" (transductive: reads the unlabelled test features)" if transductive else "")
    return out + (f" ({variant})" if variant != BASE else "")


def table(rows: list[dict], val_rows: list[dict] | None = None) -> str:
    """Means ± sample standard deviations over seeds and folds, a line per method, ratio and variant."""
    head = ("| method | seen ratio | seeds | folds | ZSL T1 | GZSL U | GZSL S | GZSL H | generated-seen acc | "
            "T1, nearest generated mean | calibration | minutes |")
    if val_rows is not None:
        head += " validation-chosen calibration | U | S | H |"
    out = [head, "|" + "---|" * head.count(" |")]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["seen_ratio"], r["variant"]), []).append(r)
    for (method, ratio, variant), rs in sorted(groups.items(), key=lambda kv: (-kv[0][1], kv[0][0], kv[0][2] != BASE,
                                                                             kv[0][2])):
        def cell(k, scale=100.0, fmt="{:.1f}", rs=rs):
            get = (lambda r: (r.get(k[0]) or {}).get(k[1])) if isinstance(k, tuple) else (lambda r: r.get(k))
            v = [get(r) for r in rs if get(r) is not None]
            if not v:
                return ""
            return fmt.format(scale * np.mean(v)) + (f" ± {fmt.format(scale * np.std(v, ddof=1))}" if len(v) > 1 else "")
        line = (f"| {label(method, variant)} | {ratio} | {','.join(str(s) for s in sorted({r['seed'] for r in rs}))} | "
                f"{len({r['fold'] for r in rs})} | {cell('T1')} | {cell('U')} | {cell('S')} | {cell('H')} | "
                f"{cell('gen_seen_acc')} | {cell(('nearest_generated_mean', 'linear'))} | "
                f"{cell('calibration', 1.0, '{:.2f}')} | {cell('minutes', 1.0, '{:.0f}')} |")
        if val_rows is not None:
            gamma = chosen_on_validation(val_rows, method, ratio, rs[0].get("set"))
            with_curve = [r for r in rs if r.get("calibration_curve")]
            if gamma is None or not with_curve:
                line += " | | | |"
            else:
                read = [dict(curve_at(r, gamma), seed=r["seed"]) for r in with_curve]
                line += f" {gamma:.2f} | {cell('U', rs=read)} | {cell('S', rs=read)} | {cell('H', rs=read)} |"
        out.append(line)
    return "\n".join(out)


def paired(rows: list[dict]) -> str:
    """Each variant against the base of its method and ratio, paired by fold and seed: mean differences
    of T1 and H (percentage points) and the pairs it wins (a tie is no win)."""
    by = {(r["method"], r["seen_ratio"], r["fold"], r["seed"], r["variant"]): r for r in rows}
    lines = ["| method | seen ratio | variant | pairs | T1 - base | H - base | T1 won | H won |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(m, ratio, v) for (m, ratio, _, _, v) in by if v != BASE})
    for m, ratio, v in keys:
        pairs = [(r, by[(m, ratio, f, s, BASE)]) for (m2, r2, f, s, v2), r in by.items()
                 if (m2, r2, v2) == (m, ratio, v) and (m, ratio, f, s, BASE) in by]
        if not pairs:
            continue
        d = {k: 100 * np.array([a[k] - b[k] for a, b in pairs]) for k in ("T1", "H")}
        lines.append(f"| {m} | {ratio} | {v} | {len(pairs)} | {d['T1'].mean():+.1f} | {d['H'].mean():+.1f} | "
                     f"{(d['T1'] > 0).sum()} | {(d['H'] > 0).sum()} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def compare(rows: list[dict], committed: list[dict], tol: float = 1e-6) -> tuple[str, bool]:
    """Each new row against the committed row of the same point (method, seed, ratio, protocol, fold,
    variant): the largest difference of T1, U, S, H, and whether the params digests agree (rows of an
    earlier runner or of earlier defaults carry another digest). True only if some row has a committed
    twin and every twin is within `tol` (a row without one, a new variant say, is listed, not judged)."""
    def point(r):
        return r["method"], r["seed"], float(r["seen_ratio"]), r["protocol"], r["fold"], r["variant"]
    by = {point(r): r for r in committed}
    lines = ["| method | seed | seen ratio | variant | committed T1 / H | new T1 / H | largest difference | same params |",
             "|---|---|---|---|---|---|---|---|"]
    ok, twins = True, 0
    for r in rows:
        twin = by.get(point(r))
        new = f"{r['T1']:.4f} / {r.get('H', float('nan')):.4f}"
        if twin is None:
            lines.append(f"| {r['method']} | {r['seed']} | {r['seen_ratio']} | {r['variant']} | no such row | {new} | | |")
            continue
        diff = max(abs(r[k] - twin[k]) for k in ("T1", "U", "S", "H") if k in r and k in twin)
        ok &= diff <= tol
        twins += 1
        lines.append(f"| {r['method']} | {r['seed']} | {r['seen_ratio']} | {r['variant']} | {twin['T1']:.4f} / "
                     f"{twin.get('H', float('nan')):.4f} | {new} | {diff:.2g} | "
                     f"{'yes' if twin.get('params') == r.get('params') else 'no'} |")
    ok &= twins > 0
    verdict = "reproduced" if ok else "NOT reproduced"
    return "\n".join(lines) + f"\n\n{verdict}: {twins} of {len(rows)} rows have a committed twin (tolerance {tol:g})\n", ok


def per_seed_calibration(rows: list[dict], val_rows: list[dict]) -> str:
    """Each row's calibration value (the pipeline's, `auto`) against the value its own seed's validation
    row chooses, both read on the row's curve: value, U, H at each, H relative and U ratio (issue 37's
    condition is per seed). Rows without a curve or a same-seed validation row are left out."""
    lines = ["| method | seen ratio | seed | settings | own value, U, H | seed's validation value, U, H | H, relative | U ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (-r["seen_ratio"], r["method"], r["variant"], r["seed"])):
        same_seed = [v for v in val_rows if v["seed"] == r["seed"]]
        gamma = chosen_on_validation(same_seed, r["method"], r["seen_ratio"], r.get("set"))
        if gamma is None or not r.get("calibration_curve") or r.get("calibration") is None:
            continue
        own, val = curve_at(r, r["calibration"]), curve_at(r, gamma)
        rel = f"{100 * (own['H'] / val['H'] - 1):+.0f} %" if val["H"] else ""
        ratio = f"{own['U'] / val['U']:.2f}" if val["U"] else ""
        settings = ", ".join(f"{k}={v}" for k, v in (r.get("set") or {}).items()) or "the study's params"
        lines.append(f"| {r['method']} | {r['seen_ratio']} | {r['seed']} | {settings} | {r['calibration']:+.2f}, "
                     f"{100 * own['U']:.1f}, {100 * own['H']:.1f} | {gamma:+.2f}, {100 * val['U']:.1f}, "
                     f"{100 * val['H']:.1f} | {rel} | {ratio} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def summary(rows: list[dict], val_rows: list[dict] | None = None) -> str:
    text = table(rows, val_rows)
    pairs = paired(rows)
    text += "\n\nEach variant against the base, paired by fold and seed:\n\n" + pairs if pairs else ""
    per_seed = per_seed_calibration(rows, val_rows) if val_rows is not None else ""
    return text + ("\n\nCalibration per seed, against the same seed's validation row:\n\n" + per_seed if per_seed else "") + "\n"


# ---- main ----------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="an xlsa17 folder (default: the extract stage's features)")
    ap.add_argument("--name", default="CUB", help="data.name of --root (CUB, SUN, AWA2)")
    ap.add_argument("--features", type=Path, default=paths.FEATURES, help="features.npz when --root is not given")
    ap.add_argument("--params", type=Path, default=paths.PARAMS)
    ap.add_argument("--preset", type=Path, default=None, help="a presets/*.yaml merged over params.yaml")
    ap.add_argument("--methods", nargs="+", default=None, choices=[*M.METHODS, "panel"],
                    help="methods, and panel: the simple baselines (default: params.yaml's method)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--ratios", nargs="+", type=float, default=None, help="seen ratios (default: params.yaml's)")
    ap.add_argument("--protocol", choices=("test", "validation"), default=None,
                    help="the test split, or validation classes to choose settings on (default: validation "
                         "with --folds, else params.yaml's data.protocol)")
    ap.add_argument("--folds", nargs="+", default=None, help="validation folds: class names a,b,c | subsets:K | own")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--variant", dest="variants", nargs="+", action="append", default=[], metavar="NAME KEY=VALUE")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes, one thread each")
    ap.add_argument("--out", type=Path, default=Path("runs/study/rows.jsonl"))
    ap.add_argument("--calibration-from", nargs="+", type=Path, default=None, metavar="VALIDATION.jsonl")
    ap.add_argument("--compare", type=Path, default=None, metavar="COMMITTED.jsonl",
                    help="after the run, set each row beside the committed row of the same point (method, seed, ratio, "
                         "protocol, fold, variant); exit 1 unless every such row agrees")
    ap.add_argument("--show", nargs="+", type=Path, default=None, metavar="ROWS.jsonl",
                    help="tabulate these rows files and run nothing")
    a = ap.parse_args(argv)
    val_rows = None
    if a.calibration_from is not None:
        for f in a.calibration_from:
            if not f.exists():
                raise SystemExit(f"--calibration-from {f}: not found")
        val_rows = [r for f in a.calibration_from for r in load_rows(f)]
    if a.show:
        rows = [r for f in a.show for r in load_rows(f)]
        print(summary(rows, val_rows))
        return rows
    if a.jobs < 1:
        raise SystemExit(f"--jobs {a.jobs}: expected at least 1")
    if a.compare is not None and not a.compare.exists():
        raise SystemExit(f"--compare {a.compare}: not found")
    if a.compare is not None and a.compare.resolve() == a.out.resolve():
        raise SystemExit(f"--compare {a.compare}: the same file as --out (a rerun would skip every point); "
                         "give another --out")
    if a.preset is not None and not a.preset.exists():
        raise SystemExit(f"--preset {a.preset}: not found")
    if a.root is not None and not (a.root / "att_splits.mat").exists():
        raise SystemExit(f"--root {a.root}: no att_splits.mat (an xlsa17 folder; python -m zerodiffpp.fixtures.realistic)")
    if a.root is None and not a.features.exists():
        raise SystemExit(f"{a.features}: not found; run `dvc repro extract` first (or give --root)")
    base = base_params(a.params, a.preset)
    methods = a.methods or [base["method"]]
    ratios = a.ratios or [base["train"]["seen_ratio"]]
    protocol = a.protocol or ("validation" if a.folds else base["data"]["protocol"])
    if a.folds and protocol != "validation":
        raise SystemExit("--folds: folds are validation classes; use --protocol validation")
    source = (None, str(a.features)) if a.root is None else (str(a.root), a.name)
    data = {} if a.root is None else {"name": a.name, "root": str(a.root)}
    try:
        folds = fold_list(a.folds, load_data(source)) if a.folds else [base["data"]["val_classes"]]
    except DataError as e:
        raise SystemExit(f"--folds: {e}") from None
    variants = parse_variants(a.variants, parse_changes(a.sets, "--set"))
    done = load_rows(a.out) if a.out.exists() else []
    planned = plan(base, methods, a.seeds, ratios, folds, protocol, variants, data, set())
    digests = {digest(dict(p, method=m)) for j in planned for m, _, _, p in j["evaluations"]}  # this study's points
    have = {r.get("params") for r in done}
    todo = [dict(j, evaluations=[e for e in j["evaluations"] if digest(dict(e[3], method=e[0])) not in have])
            for j in planned]
    todo = [j for j in todo if j["evaluations"]]
    n_eval = sum(len(j["evaluations"]) for j in todo)
    print(f"study ({protocol} protocol): {len(todo)} jobs, {n_eval} evaluations to run; {len(done)} rows in {a.out}",
          flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    from scripts import test_log
    started_on = test_log.commit()
    settings = {"root": str(a.root or a.features), "preset": str(a.preset), "set": a.sets,
                "variants": [v for v, _ in variants[1:]]}

    def log_test_runs(rows: list[dict], failed: list[str] | None = None) -> None:
        # one entry per finished job, written as it ends: a study stopped midway (a killed session)
        # still leaves every test run it finished in the log
        if protocol == "test":
            test_log.append("study", settings, rows, failed, started_on=started_on)
    try:
        run_jobs([(source, j) for j in todo], a.jobs, a.out, log_test_runs)
    except BaseException as e:
        if todo:
            log_test_runs([], [f"{type(e).__name__}: {e}"[:500]])
        raise
    rows = [r for r in (load_rows(a.out) if a.out.exists() else []) if r.get("params") in digests]
    text = summary(rows, val_rows)
    a.out.with_suffix(".md").write_text(text)
    print("\n" + text)
    if a.compare is not None:
        report, ok = compare(rows, load_rows(a.compare))
        print(f"Against {a.compare}:\n\n{report}")
        if not ok:
            raise SystemExit(1)
    return rows


class StudyStopped(Exception):
    """SIGTERM or SIGHUP reached the study: raised in its main thread, so that the stop is logged as a
    test run's failure and the workers are ended with it."""


def _raise_stopped(signum, frame):
    raise StudyStopped(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def stop_on_signals():
    """SIGTERM and SIGHUP raise StudyStopped while the jobs run (SIGHUP only where it is not ignored, as
    under nohup); the earlier handlers come back afterwards."""
    old = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers: the main thread only
        for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if s is not None and signal.getsignal(s) is not signal.SIG_IGN:
                old[s] = signal.signal(s, _raise_stopped)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def signals_deferred():
    """SIGTERM, SIGHUP and SIGINT wait until the block is done (a signal that came meanwhile is delivered
    as it ends), so that a job's rows and its test-log entry are written together or not at all."""
    names = ("SIGTERM", "SIGHUP", "SIGINT")
    blocked = {getattr(signal, n) for n in names if hasattr(signal, n)}
    if not hasattr(signal, "pthread_sigmask"):  # no signal masks on this platform: nothing to defer
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def stop_workers(pool) -> None:
    """Cancel the queued jobs and end the running ones now. Leaving the pool's block would wait for its
    workers, and a stopped study's workers would train on for hours with nowhere to write their rows
    (ProcessPoolExecutor.terminate_workers from Python 3.14 does the same)."""
    processes = dict(getattr(pool, "_processes", None) or {})  # shutdown() drops this table
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes.values():
        try:
            proc.terminate()
        except (ProcessLookupError, ValueError):  # already gone, or closed
            pass


def run_jobs(todo: list, jobs: int, out: Path, on_rows) -> None:
    """Jobs in a pool of spawned workers (a forked one would inherit CUDA state), each job's rows
    appended to `out` as it ends, so that an interrupted study resumes where it stopped, then passed
    to `on_rows` (the test log), both before a stop is let in. A failure, Ctrl-C, SIGTERM or SIGHUP ends the
    running workers too."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # the workers' stage bars would interleave: one line per job instead
    from tqdm import tqdm
    with stop_on_signals(), ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        try:
            futures = [pool.submit(run_job, job) for job in todo]
            for future in tqdm(as_completed(futures), total=len(futures), desc="study", unit="job", disable=False):
                rows = future.result()
                with signals_deferred():  # a stop must not fall between the rows and their test-log entry
                    with open(out, "a") as f:
                        f.writelines(json.dumps(r) + "\n" for r in rows)
                    for r in rows:
                        tqdm.write(f"{label(r['method'], r['variant'])} seed {r['seed']} ratio {r['seen_ratio']}"
                                   f"{' fold ' + r['fold'] if r['fold'] else ''}: T1 {r['T1']:.3f}"
                                   + (f" H {r['H']:.3f} (U {r['U']:.3f}, S {r['S']:.3f})" if "H" in r else "")
                                   + f", {r['minutes']:.1f} min")
                    on_rows(rows)
        except BaseException:
            stop_workers(pool)
            raise


if __name__ == "__main__":
    main()
