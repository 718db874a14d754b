"""Diagnostic: does calibrated stacking's value carry from one class layout to another? (issue 37)

    python -m scripts.calibration_transfer_probe --root /tmp/fx-new/cub --method fclswgan --seeds 0 1 2 --ratio 0.1
    python -m scripts.calibration_transfer_probe --root /tmp/fx-new/cub --method fclswgan --seeds 0 --balanced

Nested validation, no test image read: the "outer" task is a separate validation run (data.protocol
validation: the dataset's validation classes unseen beside the other training classes), the "inner"
task its own validation pass (`classifier.calibration_holdout` of those training classes unseen,
`zerodiffpp.pipeline.validation`), each with its own generator and GZSL classifier, as the pipeline
trains them. Both classifiers' probabilities on their own evaluation images are kept (--out, one .npz
per seed), and for each calibration form the value of the inner task's best H is read on the outer
task's curve, as the pipeline's validation pass carries its value to the test task:
  probability      gamma subtracted from every seen class's probability (calibrated stacking as the
                   pipeline applies it);
  log-probability  gamma subtracted from every seen class's log-probability (independent of the
                   softmax's normaliser, hence of the number of classes).
--balanced trains the GZSL classifiers with each real seen class's features repeated up to
`synth.unseen_per_class` (every class the same count), to separate the class layout from the
synthetic-to-real proportion. --augment gives the inner task's classifier the outer task's unseen
classes as well, as generated-only classes (their attributes only, as a ZSL method may use them; no
image of theirs is read), so that it has as many classes as the outer task; they are not scored.
Nothing here chooses a setting of the pipeline.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMS = {"probability": [round(0.02 * k, 2) for k in range(-50, 51)],
         "log-probability": [round(0.1 * k, 1) for k in range(-100, 101)]}


def probabilities(q: dict, prep, drg: dict, gen: dict, seed_offset: int, balanced: bool) -> dict:
    """The task's GZSL classifier (post-training as the pipeline runs it, or --balanced) on its own
    evaluation images: {'ps', 'ys', 'pu', 'yu', 'classes', 'seen', 'unseen'} ('unseen': the classes
    of its unseen images, without generated-only classes)."""
    from zerodiffpp.nn.classifier import InputView, load_classifier, train_softmax
    from zerodiffpp.pipeline import classify, post_training
    from zerodiffpp.runtime.session import resolve_device, setup

    out = post_training.run(q, prep, drg, gen, 0.0, 0.0, seed_offset=seed_offset)
    device = resolve_device(q["train"]["device"])
    view = InputView.from_generator(out["states"]["view"], out["adapted"], device)
    if balanced:
        n = q["synth"]["unseen_per_class"]
        xs, ys = [out["syn"]["x"]], [out["syn"]["y"]]
        for c in prep.seen:
            pos = np.resize(np.flatnonzero(prep.y_train == c), max(n, int((prep.y_train == c).sum())))
            xs.append(prep.x_train[pos])
            ys.append(prep.y_train[pos])
        setup(q["train"], seed_offset + classify.SEED_OFFSET)
        c = q["classifier"]
        clf = train_softmax(np.concatenate(xs), np.concatenate(ys), prep.classes, c["epochs"], c["batch_size"],
                            c["lr"], device, desc="balanced GZSL classifier", view=view,
                            normalise=c["normalise"])
    else:
        clf = load_classifier(out["states"]["gzsl"], prep.x_train.shape[1], device, view)
    return dict(ps=clf.probabilities(prep.x_test_seen, device), ys=prep.y_test_seen,
                pu=clf.probabilities(prep.x_test_unseen, device), yu=prep.y_test_unseen,
                classes=prep.classes, seen=prep.seen, unseen=np.unique(prep.y_test_unseen))


def curve(task: dict, form: str) -> list[dict]:
    """`calibration.sweep` of the task's scores over `FORMS[form]`: [{'calibration', 'U', 'S', 'H'}]."""
    from zerodiffpp.evaluation import calibration

    scores = (lambda p: p) if form == "probability" else (lambda p: np.log(np.clip(p, 1e-30, None)))  # noqa: E731
    return calibration.sweep(scores(task["ps"]), task["ys"], scores(task["pu"]), task["yu"], task["classes"],
                             task["seen"], task["unseen"], grid=FORMS[form])


def transfer(inner: dict, outer: dict, form: str) -> dict:
    """The inner task's best value (`calibration.best`, the pipeline's rule) read on the outer task's curve."""
    from zerodiffpp.evaluation import calibration

    ci, co = curve(inner, form), curve(outer, form)
    vi, vo = calibration.best(ci), calibration.best(co)
    at, bo = calibration.at(co, vi), calibration.at(co, vo)
    return {"inner_value": vi, "outer_value": vo, "outer_H": bo["H"], "outer_U": bo["U"], "H_at_inner": at["H"],
            "U_at_inner": at["U"], "H_relative": at["H"] / bo["H"] - 1 if bo["H"] else float("nan"),
            "U_ratio": at["U"] / bo["U"] if bo["U"] else float("nan")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="an xlsa17 folder")
    ap.add_argument("--name", default="CUB")
    ap.add_argument("--method", default="fclswgan")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--preset", type=Path, default=ROOT / "presets" / "cub-cpu.yaml")
    ap.add_argument("--balanced", action="store_true")
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("calibration-transfer"), help="folder for the .npz files")
    a = ap.parse_args(argv)
    if not a.preset.exists():
        raise SystemExit(f"--preset {a.preset}: not found")
    if not (a.root / "att_splits.mat").exists():
        raise SystemExit(f"--root {a.root}: no att_splits.mat (an xlsa17 folder)")
    from scripts.study import base_params, load_data, point_params
    from zerodiffpp.pipeline import validation
    from zerodiffpp.pipeline.in_process import train_generators, train_validation

    base = base_params(ROOT / "params.yaml", a.preset)
    fs = load_data((str(a.root), a.name))
    a.out.mkdir(parents=True, exist_ok=True)
    print("| seed | form | inner value | outer value, U, H | outer at the inner value: U, H | H, relative | U ratio |")
    print("|---|---|---|---|---|---|---|")
    for seed in a.seeds:
        path = a.out / f"{a.method}-{'balanced-' if a.balanced else ''}{'augment-' if a.augment else ''}{seed}-{a.ratio}.npz"
        if not path.exists():
            p = point_params(base, {}, a.method, seed, a.ratio, "validation", base["data"]["val_classes"],
                             {"name": a.name, "root": str(a.root)})
            tr = train_generators(p, fs)
            outer = probabilities(p, tr.prep, tr.drg, tr.generator, 0, a.balanced)
            prep_v, drg_v, gen_v, _ = train_validation(p, fs)
            if a.augment:
                prep_v = dataclasses.replace(prep_v, unseen=np.union1d(prep_v.unseen, tr.prep.unseen))
            inner = probabilities(validation.pass_params(p), prep_v, drg_v, gen_v, validation.SEED_OFFSET, a.balanced)
            partial = path.with_name(path.stem + ".partial.npz")  # a killed write leaves no .npz a rerun would trust
            np.savez(partial, **{f"outer_{k}": v for k, v in outer.items()}, **{f"inner_{k}": v for k, v in inner.items()})
            partial.replace(path)
        z = np.load(path)
        tasks = {t: {k: z[f"{t}_{k}"] for k in ("ps", "ys", "pu", "yu", "classes", "seen", "unseen")}
                 for t in ("inner", "outer")}
        for form in FORMS:
            r = transfer(tasks["inner"], tasks["outer"], form)
            print(f"| {seed} | {form} | {r['inner_value']:+.2f} | {r['outer_value']:+.2f}, {100 * r['outer_U']:.1f}, "
                  f"{100 * r['outer_H']:.1f} | {100 * r['U_at_inner']:.1f}, {100 * r['H_at_inner']:.1f} | "
                  f"{100 * r['H_relative']:+.0f} % | {r['U_ratio']:.2f} |")


if __name__ == "__main__":
    main()
