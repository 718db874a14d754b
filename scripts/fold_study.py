"""Compare settings on many validation folds, paired: per fold, train the generators once and run every
variant's later stages on them. The stages' own `run` functions do the work, in-process
(zerodiffpp/pipeline/in_process.py), with the same seeds as `dvc repro`, so a fold's base row equals `dvc exp run -S data.protocol=validation -S
data.val_classes=<fold>` run with train.threads 1.

    python -m scripts.fold_study --jobs 2                      # embedded: all 35 three-class folds
    python -m scripts.fold_study --variant decoder tta.unseen_labels=decoder --variant cal3 classifier.calibration=0.3
    python -m scripts.fold_study --folds cat,horse dog,horse --set gen.epochs=10 --out runs/x

--folds takes comma-separated seen class names per fold, `subsets:K` (every K-class subset of the
seen classes; the default, K = 3 = the embedded test split's unseen classes) or `own` (the dataset's
own validation classes, xlsa17 val_loc). A variant is a name and KEY=VALUE changes from the base
(params.yaml plus --set); a variant that changes a pretrain or train param gets generators of its
own. Needs data/features/features.npz (`dvc repro extract`); reads no test image. Writes
<out>/runs.jsonl (one row per fold, seed and variant, appended as each fold finishes; a rerun with the
same arguments resumes, reusing the rows whose variant params are unchanged) and <out>/summary.md
(means over folds and each variant against the base: mean differences and folds won)."""
import argparse
import copy
import itertools
import json
import logging
import math
import os
import time
import hashlib
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

# Stage progress bars from parallel folds would interleave; the study logs one line per fold instead.
# tqdm reads this when it is first imported, hence before the imports below.
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402

from zerodiffpp.pipeline.in_process import calibrate, evaluate_generators, train_generators, train_validation  # noqa: E402,E501
from zerodiffpp.runtime import paths  # noqa: E402
from zerodiffpp.data.features import FeatureSet  # noqa: E402
from zerodiffpp.runtime.errors import DataError, ParamsError  # noqa: E402
from zerodiffpp.runtime.files import save_text  # noqa: E402
from zerodiffpp.runtime.params import apply_assignment, declared_keys, load_params, lookup, validate  # noqa: E402

BASE = "base"
MAX_FOLDS = 100
METRICS = ("T1", "U", "S", "H")


def set_param(p: dict, assignment: str) -> None:
    apply_assignment(p, assignment, "--set/--variant")


def fold_list(spec: list[str], fs: FeatureSet) -> list[str]:
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


def training_signature(p: dict, keys: list[str]) -> str:
    """The values of every param that pretrain or train declares: variants that agree share generators."""
    return json.dumps({k: lookup(p, k) for k in keys}, sort_keys=True)


_FEATURES: dict[str, FeatureSet] = {}


def run_fold(job: tuple) -> list[dict]:
    """Every variant on one (fold, seed): pretrain and train once per training signature."""
    features, fold, seed, variants, keys = job
    if features not in _FEATURES:
        _FEATURES[features] = FeatureSet.load(features)
    fs, trained, rows = _FEATURES[features], {}, []
    for name, changes, p in variants:
        digest = params_digest(p)
        p = copy.deepcopy(p)
        p["data"].update(protocol="validation", val_classes=fold)
        p["train"].update(seed=seed, threads=1)
        start = time.time()
        sig = training_signature(p, keys)
        if sig not in trained:
            trained[sig] = train_generators(p, fs), train_validation(p, fs)
        m = evaluate_generators(p, *trained[sig][0], calibrate(p, trained[sig][1]))
        rows.append({"fold": fold or "own", "seed": seed, "variant": name, "changes": changes, "params": digest,
                     "T1": m["zsl"]["T1"], **{k: m["gzsl"][k] for k in ("U", "S", "H")},
                     "pseudo_label_acc": m.get("tta", {}).get("pseudo_label_acc_all"),
                     "seconds": round(time.time() - start, 1)})
    return rows


def params_digest(p: dict) -> str:
    """A short hash of a variant's full params (before the fold and seed are set): rows of a resumed
    study are reused only when their variant's params are the same."""
    return hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:12]


def finished_rows(runs: Path, variants: list[tuple]) -> list[dict]:
    """Rows of an earlier, interrupted run of this study in `runs` (runs.jsonl), for resuming.
    A row of one of our variant names with other params means another study: refuse to mix."""
    if not runs.exists():
        return []
    digests = {name: params_digest(p) for name, _, p in variants}
    rows = [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]
    for r in rows:
        if r["variant"] in digests and r.get("params") != digests[r["variant"]]:
            raise SystemExit(f"fold_study: {runs} holds rows of variant {r['variant']!r} with other params "
                             f"(another study); choose another --out")
    return rows


def summarise(rows: list[dict], variants: list[str]) -> str:
    by = {(r["fold"], r["seed"], r["variant"]): r for r in rows}
    pairs = sorted({(r["fold"], r["seed"]) for r in rows})
    lines = [f"{len(pairs)} fold x seed pairs; percentages; 'won' counts pairs where the variant beats {BASE}", "",
             "| variant | T1 | U | S | H | (T1 + H) / 2 | T1 - base | H - base | T1 won | H won |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        own = [by[k + (v,)] for k in pairs]
        base = [by[k + (BASE,)] for k in pairs]
        mean = {m: 100 * np.mean([r[m] for r in own]) for m in METRICS}
        d = {m: 100 * np.array([a[m] - b[m] for a, b in zip(own, base)]) for m in ("T1", "H")}
        diff = "| - | - | - | - |" if v == BASE else \
            f"| {d['T1'].mean():+.1f} | {d['H'].mean():+.1f} | {(d['T1'] > 0).sum()} | {(d['H'] > 0).sum()} |"
        lines.append(f"| {v} | " + " | ".join(f"{mean[m]:.1f}" for m in METRICS) +
                     f" | {(mean['T1'] + mean['H']) / 2:.1f} " + diff)
    return "\n".join(lines) + "\n"


def build_variants(params_path: str, base_sets: list[str], variant_args: list[list[str]]) -> list[tuple]:
    """[(name, changes, params)] with the base first; every params dict validated like params.yaml."""
    base = load_params(params_path)
    for s in base_sets:
        set_param(base, s)
    validate(base, f"{params_path} with --set")
    variants = [(BASE, [], base)]
    for name, *changes in variant_args:
        if name in {v[0] for v in variants}:
            raise ParamsError(f"--variant {name}: the name is used twice")
        p = copy.deepcopy(base)
        for c in changes:
            set_param(p, c)
        validate(p, f"--variant {name}")
        variants.append((name, changes, p))
    return variants


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", nargs="+", default=["subsets:3"])
    ap.add_argument("--seeds", default="0", help="comma list of train.seed values")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="base params override")
    ap.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME KEY=VALUE",
                    help="a named variant and its changes from the base (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="folds run in parallel, one thread each")
    ap.add_argument("--params", default=str(paths.PARAMS))
    ap.add_argument("--features", default=str(paths.FEATURES))
    ap.add_argument("--out", default="runs/fold-study", help="folder of runs.jsonl and summary.md (git-ignored runs/ by default)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"fold_study: --seeds {a.seeds!r}: expected a comma list of integers") from None
    if a.jobs < 1:
        raise SystemExit(f"fold_study: --jobs {a.jobs}: expected at least 1")
    try:
        variants = build_variants(a.params, a.set, a.variant)
    except ParamsError as e:  # before any work: name the flag and key
        raise SystemExit(f"fold_study: {e}") from None
    if not Path(a.features).exists():
        raise SystemExit(f"{a.features}: not found; run `dvc repro extract` first")
    try:
        folds = fold_list(a.folds, FeatureSet.load(a.features))
    except DataError as e:
        raise SystemExit(f"fold_study: --folds: {e}") from None
    keys = declared_keys("pretrain") + declared_keys("train") + declared_keys("val_train")
    out = Path(a.out)
    runs = out / "runs.jsonl"
    earlier = finished_rows(runs, variants)
    names = {v[0] for v in variants}
    done = {(r["fold"], r["seed"]) for r in earlier if r["variant"] in names}
    done = {k for k in done if {r["variant"] for r in earlier if (r["fold"], r["seed"]) == k} >= names}
    jobs = [(a.features, f, s, variants, keys) for f in folds for s in seeds if (f or "own", s) not in done]
    logging.warning("fold study: %d folds x %d seeds x %d variants; %d fold x seed pairs to run, %d found in %s",
                    len(folds), len(seeds), len(variants), len(jobs), len(folds) * len(seeds) - len(jobs), runs)
    out.mkdir(parents=True, exist_ok=True)
    # spawn: a forked worker would inherit the parent's CUDA state (a CUDA run in a fork fails)
    with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as pool, open(runs, "a") as log_file:
        futures = [pool.submit(run_fold, job) for job in jobs]
        for i, future in enumerate(as_completed(futures), 1):
            fold_rows = future.result()
            # each finished fold is appended at once, so an interrupted study resumes where it stopped
            log_file.write("".join(json.dumps(r) + "\n" for r in fold_rows))
            log_file.flush()
            logging.warning("[%d/%d] %s seed %d: %s", i, len(jobs), fold_rows[0]["fold"], fold_rows[0]["seed"],
                            "  ".join(f"{r['variant']} T1 {r['T1']:.3f} H {r['H']:.3f}" for r in fold_rows))
    wanted = {(f or "own", s) for f in folds for s in seeds}
    rows = [r for r in finished_rows(runs, variants) if r["variant"] in names and (r["fold"], r["seed"]) in wanted]
    summary = summarise(rows, [v[0] for v in variants])
    save_text(out / "summary.md", summary)
    print(summary)
    return rows


if __name__ == "__main__":
    main()
