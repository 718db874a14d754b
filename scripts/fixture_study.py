"""The methods on a benchmark-difficulty fixture (docs/fixture.md), over seeds and seen ratios.

    python -m zerodiffpp.fixtures.realistic --shape cub --out /tmp/cub-fixture
    python -m scripts.fixture_study --root /tmp/cub-fixture --preset presets/cub-cpu.yaml \\
        --methods zerodiffpp zerodiff fclswgan panel --seeds 0 1 2 --ratios 1.0 0.3 0.1 --jobs 2

Each point runs the stages' own `run()` functions in one process (as `dvc repro` would compute them,
zerodiffpp/pipeline/in_process.py) on params.yaml with the preset, `data.root` and any `--set` applied, and appends
one JSON row per method to --out as soon as it finishes (a rerun skips the points already there).
ZeroDiff and ZeroDiff++ of one seed and ratio share one job: their pretrain and train stages are the
same computation (ZeroDiff is ZeroDiff++ without DiffTTA and DiffGen), so the generator is trained once
and evaluated both ways (each row's minutes count the shared training plus its own evaluation).
`--protocol validation` runs on the dataset's validation classes (xlsa17 val_loc or valclasses1.txt;
data.protocol) instead of the test split: the place to choose settings (`--set section.key=value`).
ESZSL is the closed-form reference: its regularisers are chosen on the dataset's validation classes,
then the test split is scored once (on the validation protocol its row is that validation T1).
Every generative row carries its split's U, S, H at each calibrated-stacking value (the same GZSL
classifier; zerodiffpp.evaluation.calibration.split_curve). `--calibration-from` a validation study's rows adds
the numbers at the value chosen on the validation classes (calibrated stacking's own protocol; the
pipeline's `calibration: auto` chooses on held-out seen classes the generator trained on).
`--variant NAME KEY=VALUE...` adds post-training settings (DiffTTA, DiffGen, synthesis, classifier)
evaluated on the same trained generator: a variant's row is the row a `--set` run with its changes
would give (its `set` holds them, its `variant` the name), without training again. A variant that
changes what pretrain or train read is refused (it needs a generator of its own: use --set).
Prints a markdown table of means and standard deviations over seeds.
Test numbers are read, never used to choose anything.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GENERATIVE = ("zerodiffpp", "zerodiff", "fclswgan")
BASELINES = ("eszsl", "ridge", "ridge_linear", "ridge_whitened", "ceiling")  # the rows of --methods panel
TRANSDUCTIVE = "zerodiffpp"  # its rows read unlabelled test features and self-train on test-seen syntheses
KEYS = ("T1", "U", "S", "H", "gen_seen_acc", "calibration", "minutes")


def parse_sets(sets: list[str]) -> dict:
    """["gen.lr=0.001", ...] -> {"gen.lr": 0.001, ...} (values read as YAML; a row records them)."""
    from zerodiffpp.runtime.errors import ParamsError
    from zerodiffpp.runtime.params import parse_assignment
    try:
        return dict(parse_assignment(s) for s in sets)
    except ParamsError as e:
        raise SystemExit(str(e)) from e


def parse_variants(args: list[list[str]], sets: dict) -> list[tuple[str, dict]]:
    """[["keep3", "tta.keep_fraction=0.3"], ...] -> [("keep3", {**sets, "tta.keep_fraction": 0.3}), ...]
    (each variant's full `set`); a name used twice, a variant without changes, or one that changes a
    param pretrain or train declares (it would need its own generator) is refused before any work."""
    from zerodiffpp.runtime.errors import ParamsError
    from zerodiffpp.runtime.params import declared_keys, parse_assignment
    training = declared_keys("pretrain") + declared_keys("train")
    out, names = [], set()
    for name, *changes in args:
        if name in names or "=" in name or not changes:
            raise SystemExit(f"--variant {' '.join([name, *changes])}: expected a new NAME then KEY=VALUE changes")
        names.add(name)
        try:
            parsed = dict(parse_assignment(c, "--variant") for c in changes)
        except ParamsError as e:
            raise SystemExit(str(e)) from e
        for key in parsed:
            hit = [k for k in training if key == k or key.startswith(k + ".") or k.startswith(key + ".")]
            if hit:
                raise SystemExit(f"--variant {name} {key}: pretrain or train reads {hit[0]}, so the variant would "
                                 f"need a generator of its own; study it with --set")
        out.append((name, {**sets, **parsed}))
    return out


def set_key(sets: dict) -> str:
    """A row's `set` as a hashable, order-free key."""
    return json.dumps(sets, sort_keys=True, default=str)


def row_key(row: dict) -> tuple:
    """What makes a row one point of a study: method, seed, seen ratio and `set` (a variant's included)."""
    return row["method"], row["seed"], row["seen_ratio"], set_key(row.get("set", {}))


def study_params(preset: Path | None, root: Path, name: str, method: str, seed: int, ratio: float,
                 protocol: str = "test", sets: dict | None = None) -> dict:
    from zerodiffpp.runtime.errors import ParamsError
    from zerodiffpp.runtime.params import assign, validate
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    if preset is not None:
        for section, values in yaml.safe_load(preset.read_text()).items():
            p[section].update(values) if isinstance(values, dict) else p.__setitem__(section, values)
    try:
        for key, value in (sets or {}).items():
            assign(p, key, value)
    except ParamsError as e:
        raise SystemExit(str(e)) from e
    p["data"].update(name=name, root=str(root), protocol=protocol)
    p["train"].update(seed=seed, seen_ratio=ratio, threads=1)
    p["method"] = method if method in GENERATIVE else p["method"]
    validate(p, "fixture_study")
    return p


def run_point(args: tuple) -> list[dict]:
    """One (methods, seed, ratio) job: ESZSL, f-CLSWGAN, or ZeroDiff and / or ZeroDiff++ on one trained
    generator; one row per method and evaluation. `evaluations` are (variant name or None, full set):
    the base (None, `sets`) and variants, all on one generator trained with `sets`."""
    preset, root, name, methods, seed, ratio, protocol, sets, evaluations = args
    os.environ.setdefault("TQDM_DISABLE", "1")  # one log line per point, not progress bars from two workers
    from zerodiffpp.data.splits import prepare_split
    from zerodiffpp.data.xlsa17 import load_xlsa17
    start = time.time()
    fs = load_xlsa17(root, name)
    base = {"seed": seed, "seen_ratio": ratio, "protocol": protocol, "set": sets}
    if methods == ("panel",):  # the simple baselines, every choice made on the validation pass's split
        from zerodiffpp.baselines.panel import panel
        result = panel(fs, ratio, seed, protocol)
        minutes = (time.time() - start) / 60
        return [dict(base, method=name, **{k: v for k, v in result[name].items() if k in ("T1", "U", "S", "H")},
                     choices={k: v for k, v in result[name].items() if k not in ("T1", "U", "S", "H")},
                     minutes=minutes)
                for name in BASELINES]
    from zerodiffpp.pipeline import pretrain, train
    from zerodiffpp.pipeline.in_process import calibrate, evaluate_generators, train_validation
    from zerodiffpp.runtime.session import setup
    p = study_params(preset, root, name, methods[0], seed, ratio, protocol, sets)
    device = setup(p["train"], pretrain.SEED_OFFSET)
    prep, _, drg_ckpt, _, _ = pretrain.run(p, fs, device)
    setup(p["train"], train.SEED_OFFSET)
    gen_ckpt, curve = train.run(p, prep, device, drg_ckpt)
    checked = [r for r in curve if np.isfinite(r.get("gen_seen_acc", np.nan))]
    validation_trained = train_validation(p, fs)
    trained = (time.time() - start) / 60
    rows = []
    for variant, vsets in evaluations:
        vp = study_params(preset, root, name, methods[0], seed, ratio, protocol, vsets)
        label = {} if variant is None else {"set": vsets, "variant": variant}
        for method in methods:
            t0 = time.time()
            mp = dict(vp, method=method)
            m = evaluate_generators(mp, prep, drg_ckpt, gen_ckpt, calibrate(mp, validation_trained), curve=True)
            rows.append(dict(base, **label, method=method, T1=m["zsl"]["T1"], **m["gzsl"],
                             calibration=m["calibration"]["value"], calibration_record=m["calibration"],
                             gate=m.get("gate"), transductive=m["transductive"],
                             gen_seen_acc=checked[-1]["gen_seen_acc"] if checked else None,
                             gen_mean_gap=checked[-1]["gen_mean_gap"] if checked else None,
                             spurious=m["spurious"], minutes=trained + (time.time() - t0) / 60,
                             calibration_curve=[[c["calibration"], round(c["U"], 5), round(c["S"], 5), round(c["H"], 5)]
                                                for c in m["calibration_curve"]]))
    return rows


def jobs(methods: list[str]) -> list[tuple]:
    """Methods grouped into jobs: ZeroDiff and ZeroDiff++ share one (one trained generator)."""
    shared = tuple(m for m in ("zerodiff", "zerodiffpp") if m in methods)
    return ([shared] if shared else []) + [(m,) for m in methods if m not in shared]


def missing_jobs(methods: list[str], seeds: list[int], ratios: list[float], sets: dict, variants: list[tuple],
                 have: set) -> list[tuple]:
    """[(methods, seed, ratio, evaluations)] still to run, `have` holding the `row_key`s of the rows found:
    per job only the methods and evaluations (base and variants; the panel has no variants) it lacks. Its
    generator is trained again, so a resumed job may recompute rows already there (main keeps the first)."""
    todo = []
    for r in ratios:
        for s in seeds:
            for group in jobs(methods):
                evaluations = [(None, sets)] + ([] if group == ("panel",) else variants)
                lacking = {(m, v) for v, vs in evaluations for m in group  # the panel's rows are its baselines'
                           if row_key({"method": BASELINES[0] if m == "panel" else m, "seed": s, "seen_ratio": r,
                                       "set": vs}) not in have}
                if lacking:
                    todo.append((tuple(m for m in group if any(k[0] == m for k in lacking)), s, r,
                                 [(v, vs) for v, vs in evaluations if any(k[1] == v for k in lacking)]))
    return todo


def curve_at(row: dict, gamma: float) -> dict:
    """U, S, H of a row's split at calibration value `gamma` (a value of calibration.GRID), read
    from the row's curve: the same GZSL classifier, only the value differs."""
    for g, u, s, h in row["calibration_curve"]:
        if np.isclose(g, gamma):
            return {"U": u, "S": s, "H": h}
    raise KeyError(f"calibration {gamma} is not on the curve of {row['method']} seed {row['seed']}")


def chosen_on_validation(val_rows: list[dict], method: str, ratio: float, sets: dict | None = None) -> float | None:
    """Calibrated stacking's value as its authors choose it: the best validation H (mean over the
    validation rows' seeds) of `method` at `ratio` with the same `--set` values, from
    validation-protocol rows only; None if there are none."""
    from zerodiffpp.evaluation.calibration import best
    rs = [r for r in val_rows if r.get("protocol") == "validation" and r["method"] == method
          and np.isclose(r["seen_ratio"], ratio) and r.get("set", {}) == (sets or {}) and r.get("calibration_curve")]
    if not rs:
        return None
    grid = [g for g, *_ in rs[0]["calibration_curve"]]
    return best([{"calibration": g, "H": float(np.mean([curve_at(r, g)["H"] for r in rs]))} for g in grid])


def table(rows: list[dict], val_rows: list[dict] | None = None) -> str:
    """Means ± standard deviations over seeds. With `val_rows` (validation-protocol rows with curves),
    also U, S, H at the calibration value chosen on them (test rows only read at that value)."""
    head = "| method | seen ratio | seeds | ZSL T1 | GZSL U | GZSL S | GZSL H | generated-seen acc | calibration | minutes |"
    if val_rows is not None:
        head += " validation-chosen calibration | U | S | H |"
    out = [head, "|" + "---|" * head.count(" |")]
    groups: dict = {}
    for r in rows:  # a variant's rows (another `set`) are a group of their own, named by the variant
        groups.setdefault((r["method"], r["seen_ratio"], set_key(r.get("set", {}))), []).append(r)
    order = lambda kv: (-kv[0][1], kv[0][0], kv[1][0].get("variant") or "", kv[0][2])  # noqa: E731 (base first)
    for (method, ratio, _), rs in sorted(groups.items(), key=order):
        def cell(k, scale=100.0, fmt="{:.1f}", rs=rs):
            v = [r[k] for r in rs if r.get(k) is not None]
            if not v:
                return ""
            return fmt.format(scale * np.mean(v)) + (f" ± {fmt.format(scale * np.std(v, ddof=1))}" if len(v) > 1 else "")
        label = method + (" (transductive, self-trains on test-seen)" if method == TRANSDUCTIVE else "") + \
            (f" ({rs[0]['variant']})" if rs[0].get("variant") else "")
        line = (f"| {label} | {ratio} | {','.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} | "
                f"{cell('T1')} | {cell('U')} | {cell('S')} | {cell('H')} | {cell('gen_seen_acc')} | "
                f"{cell('calibration', 1.0, '{:.2f}')} | {cell('minutes', 1.0, '{:.0f}')} |")
        if val_rows is not None:
            gamma = chosen_on_validation(val_rows, method, ratio, rs[0].get("set", {}))
            with_curve = [r for r in rs if r.get("calibration_curve")]
            if gamma is None or not with_curve:
                line += " | | | |"
            else:
                read = [dict(curve_at(r, gamma), seed=r["seed"]) for r in with_curve]
                line += f" {gamma:.2f} | {cell('U', rs=read)} | {cell('S', rs=read)} | {cell('H', rs=read)} |"
        out.append(line)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="the fixture folder (zerodiffpp.fixtures.realistic --out)")
    ap.add_argument("--name", default="CUB", help="data.name of the fixture (CUB, SUN, AWA2)")
    ap.add_argument("--preset", type=Path, default=None, help="a presets/*.yaml applied over params.yaml")
    ap.add_argument("--methods", nargs="+", default=[*GENERATIVE, "panel"], choices=[*GENERATIVE, "panel"],
                    help="generative methods, and panel: the simple baselines (ESZSL, ridge prototype regression, "
                         "the supervised ceiling) on the same split")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--ratios", nargs="+", type=float, default=[1.0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--protocol", choices=("test", "validation"), default="test",
                    help="data.protocol: the test split, or the dataset's validation classes (to choose settings)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a parameter over params.yaml and the preset (repeatable), recorded in each row")
    ap.add_argument("--variant", dest="variants", nargs="+", action="append", default=[],
                    metavar="NAME KEY=VALUE", help="post-training changes evaluated on the same trained generator "
                                                   "(repeatable; ZeroDiff++'s tta.* and diffgen.*, synth, classifier)")
    ap.add_argument("--out", type=Path, default=Path("runs/fixture-study/rows.jsonl"))
    ap.add_argument("--calibration-from", type=Path, default=None, metavar="VALIDATION.jsonl",
                    help="rows of a --protocol validation study: the table adds U, S, H at the calibration "
                         "value chosen on them (the test rows are only read at it)")
    a = ap.parse_args(argv)
    if a.jobs < 1:
        raise SystemExit("--jobs: expected at least 1")
    if not (a.root / "att_splits.mat").exists():
        raise SystemExit(f"--root {a.root}: no att_splits.mat (write one with python -m zerodiffpp.fixtures.realistic)")
    if a.preset is not None and not a.preset.exists():
        raise SystemExit(f"--preset {a.preset}: not found")
    if a.calibration_from is not None and not a.calibration_from.exists():
        raise SystemExit(f"--calibration-from {a.calibration_from}: not found")
    sets = parse_sets(a.sets)
    variants = parse_variants(a.variants, sets)
    for m in a.methods:  # every point's params are checked before any work
        for s in a.seeds:
            for r in a.ratios:
                for vsets in [sets] + [v for _, v in variants]:
                    study_params(a.preset, a.root, a.name, m, s, r, a.protocol, vsets)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    wanted_sets = {set_key(v) for v in [sets] + [v for _, v in variants]}
    done = [json.loads(line) for line in a.out.read_text().splitlines()] if a.out.exists() else []
    done = [r for r in done if r.get("protocol", "test") == a.protocol and set_key(r.get("set", {})) in wanted_sets]
    have = {row_key(r) for r in done}
    todo = [(a.preset, a.root, a.name, methods, s, r, a.protocol, sets, evals)
            for methods, s, r, evals in missing_jobs(a.methods, a.seeds, a.ratios, sets, variants, have)]
    print(f"fixture study ({a.protocol} protocol{', ' + ' '.join(a.sets) if a.sets else ''}): {len(todo)} jobs "
          f"to run, {len(have)} points already in {a.out}", flush=True)
    from scripts import test_log
    logged, failed, started_on = [], [], test_log.commit()  # this invocation's test rows and failures, its code
    try:
        run_jobs(todo, a.jobs, a.out, have, done, logged)
    except BaseException as e:
        failed.append(f"{type(e).__name__}: {e}"[:500])
        raise
    finally:
        if a.protocol == "test" and todo:
            test_log.append("fixture_study", {"root": str(a.root), "preset": str(a.preset), "set": sets,
                                              "variants": [v for v, _ in variants]}, logged, failed, started_on=started_on)
    shown = set(a.methods) | (set(BASELINES) if "panel" in a.methods else set())
    wanted = [r for r in done if r["method"] in shown and r["seed"] in a.seeds and r["seen_ratio"] in a.ratios]
    val_rows = None if a.calibration_from is None else [json.loads(line) for line in
                                                         a.calibration_from.read_text().splitlines()]
    print("\n" + table(wanted, val_rows))


def run_jobs(todo: list, jobs: int, out: Path, have: set, done: list, logged: list) -> None:
    """Run the jobs in a worker pool, appending each finished job's rows to `out` (and to `done`, `logged`)."""
    with mp.get_context("spawn").Pool(jobs) as pool:  # spawn: no forked CUDA state in a worker
        for rows in pool.imap_unordered(run_point, todo):
            rows = [row for row in rows if row_key(row) not in have]  # a job may recompute a row found earlier
            have.update(row_key(row) for row in rows)
            with open(out, "a") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
            for row in rows:
                name = row["method"] + (f" {row['variant']}" if row.get("variant") else "")
                print(f"{name} seed {row['seed']} ratio {row['seen_ratio']}: T1 {row['T1']:.3f}"
                      + (f" H {row['H']:.3f} (U {row['U']:.3f}, S {row['S']:.3f}), generated-seen acc "
                         f"{row['gen_seen_acc']:.3f}, calibration {row['calibration']:.2f}" if "H" in row else "")
                      + f", {row['minutes']:.1f} min", flush=True)
            done.extend(rows)
            logged.extend(rows)


if __name__ == "__main__":
    main()
