"""Apply a trained pipeline to new images: `python -m zerodiffpp.predict INPUT... --out predictions.csv`.

INPUT is image files, folders of images (searched recursively; images in a subfolder named after a
class of the model count as labelled, and the CSV then says whether each prediction is right), or one
features file alone (.npz with key `x`, an N x D array of raw features as `extract` computes them, one
image (1, D); optional keys `input` (N names) and `extractor` (the extractor record as JSON)).

The model is what `dvc repro` left in the repository (--model-dir): the extractor record and the
training features (data/features: the feature extractor, and the training images' feature range the
pipeline scales by), the prepared split (data/prepared: the classes, which are seen, which training
images were kept), the adapted generator (models/adapted/generator.pt: the attribute decoder that the
classifier's input view needs) and the GZSL classifier with its calibrated-stacking value
(models/classifier/classifiers.pt). Before any image is read the parts are checked against each
other and against the input; a mismatch (another feature extractor, input view or class set) is
refused with one line saying what differs.

Each CSV row: input, predicted class, seen or unseen, [true class, correct], then the top-k classes
with their probabilities. Classes are ranked by calibrated stacking (the seen classes' probability
minus the calibration value, as the pipeline's GZSL evaluation), and `p<k>` is the classifier's
softmax probability of that class.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zerodiffpp.runtime import files, paths
from zerodiffpp.data.backbone import DEFAULT, EXTRACTOR, ImageFiles, check_readable, differences, extract, record
from zerodiffpp.nn.classifier import InputView, calibrated
from zerodiffpp.data.features import FeatureSet, Prepared
from zerodiffpp.runtime.errors import DataError, InputError
from zerodiffpp.data.folder import image_files
from zerodiffpp.nn.networks import LinearClassifier
from zerodiffpp.data.splits import MinMax

log = logging.getLogger("zerodiffpp.predict")


@dataclass
class Model:
    class_names: np.ndarray
    seen: np.ndarray
    classes: np.ndarray        # the GZSL classifier's class ids, in its output order
    scaler: MinMax             # the pretrain stage's scaling (fitted on the kept training images)
    view: InputView
    net: LinearClassifier
    calibration: float
    extractor: dict | None     # None: the features were not computed from images here (xlsa17)
    feature_dim: int

    def probabilities(self, x_raw: np.ndarray) -> np.ndarray:
        """Softmax of the GZSL classifier over raw (unscaled) features."""
        device = next(self.net.parameters()).device  # load_model(device="cuda") puts the classifier there
        with torch.no_grad():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(self.view(self.scaler(x_raw)))).to(device))
            return torch.softmax(logits, dim=1).cpu().numpy()


def load_model(model_dir: Path | str = ".", device="cpu") -> Model:
    """The trained pipeline under `model_dir`, its parts checked against each other."""
    root = Path(model_dir)
    fs = FeatureSet.load(root / paths.FEATURES)
    prep = Prepared.load(root / paths.PREPARED)
    gen = files.load_torch(root / paths.ADAPTED_GENERATOR, device)
    ckpt = files.load_torch(root / paths.CLASSIFIERS, device)
    extractor = files.load_json(root / EXTRACTOR) if (root / EXTRACTOR).exists() else None
    if not np.array_equal(prep.class_names, fs.class_names):
        raise DataError(f"class set: {root / paths.PREPARED} and {root / paths.FEATURES} name different classes; "
                        f"rerun dvc repro")
    n_classes, x_dim = len(fs.class_names), fs.x.shape[1]
    classes = np.asarray(ckpt["gzsl"]["classes"])
    if not np.array_equal(np.sort(classes), np.arange(n_classes)):
        raise DataError(f"class set: the GZSL classifier in {root / paths.CLASSIFIERS} covers {len(classes)} classes, "
                        f"the dataset {n_classes}; rerun dvc repro")
    gen_x_dim = gen["config"]["x_dim"]
    if gen_x_dim != x_dim:
        raise DataError(f"input view: the generator in {root / paths.ADAPTED_GENERATOR} reads {gen_x_dim}-d features, "
                        f"{root / paths.FEATURES} holds {x_dim}-d ones; rerun dvc repro")
    view = InputView.from_generator(ckpt["view"], gen, device)
    if view.name != ckpt["view"]:
        raise DataError(f"input view: the classifier reads view {ckpt['view']!r} but {root / paths.ADAPTED_GENERATOR} "
                        f"gives {view.name!r} (no attribute decoder); rerun dvc repro")
    in_dim = view(np.zeros((1, x_dim), np.float32)).shape[1]
    net = LinearClassifier(in_dim, len(classes), "centre" in ckpt["gzsl"]["state"]).to(device)
    try:
        net.load_state_dict(ckpt["gzsl"]["state"])
    except RuntimeError:
        raise DataError(f"input view: the classifier in {root / paths.CLASSIFIERS} does not read the {in_dim}-d "
                        f"view {view.name!r} of {root / paths.ADAPTED_GENERATOR}; rerun dvc repro") from None
    if extractor is not None and extractor.get("feature_dim") != x_dim:
        raise DataError(f"feature extractor: {root / EXTRACTOR} records {extractor.get('feature_dim')}-d features, "
                        f"{root / paths.FEATURES} holds {x_dim}-d ones; rerun dvc repro")
    return Model(class_names=fs.class_names, seen=prep.seen, classes=classes,
                 scaler=MinMax.fit(fs.x[prep.train_index]), view=view, net=net.eval(),
                 calibration=float(ckpt["calibration"]), extractor=extractor, feature_dim=x_dim)


def _labels_from_folders(files: list[Path], inputs: list[Path], class_names) -> list[str]:
    """The true class of each image in a subfolder named after a model class, '' otherwise. A folder
    input whose subfolders name classes the model lacks is refused (a class-set mismatch)."""
    names, out = set(class_names.tolist()), []
    folders = [p for p in inputs if p.is_dir()]
    for folder in folders:
        subs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        known = [s for s in subs if s in names]
        unknown = [s for s in subs if s not in names]
        if known and unknown:
            raise DataError(f"class set: {folder} has class folders {unknown} that the model does not know "
                            f"(its classes: {sorted(names)})")
    for f in files:
        parent = f.parent.name
        out.append(parent if parent in names and any(p in f.parents for p in folders) else "")
    return out


def features_of(inputs: list[Path], model: Model, batch_size: int = 16, backbone_model=None, models=None):
    """-> (input names, raw features, true labels or ''). Images go through the model's recorded
    extractor (`backbone_model` / `models`: tests); a features file is checked against it."""
    npz = [p for p in inputs if p.suffix == ".npz"]
    if npz and len(inputs) > 1:  # otherwise the image reader would call a features file an unreadable image
        raise DataError(f"{npz[0]}: a features file is read alone, one .npz at a time; got {len(inputs)} inputs "
                        f"(run predict once per .npz, or give images and folders only)")
    if npz:
        z = files.load_npz(inputs[0])
        if "x" not in z:
            raise DataError(f"{inputs[0]}: no key 'x' (found {sorted(z)}); expected N x D features")
        x = np.asarray(z["x"], np.float32)
        if x.ndim != 2:
            raise DataError(f"{inputs[0]}: 'x' has shape {x.shape}; expected a 2-D array (n, d), one row of "
                            f"features per image (one image: shape (1, d))")
        if x.shape[1] != model.feature_dim:
            raise DataError(f"feature extractor: {inputs[0]} holds features of shape {x.shape}, the model reads "
                            f"{model.feature_dim}-d ones")
        if not np.isfinite(x).all():
            raise DataError(f"{inputs[0]}: features contain NaN or inf")
        if "extractor" in z and model.extractor is not None:
            diff = differences(model.extractor, json.loads(str(z["extractor"])))
            if diff:
                raise DataError(f"feature extractor: {inputs[0]} was made by another extractor than the model's "
                                f"({diff})")
        names = [str(n) for n in z["input"]] if "input" in z else [f"{inputs[0].name}[{i}]" for i in range(len(x))]
        return names, x, [""] * len(x)
    if model.extractor is None:
        raise DataError(f"feature extractor: this model's features were not computed from images (no {EXTRACTOR}); "
                        f"give a features file (.npz with key x) made like its training features")
    images = image_files(inputs)  # not `files`: that is the module read above
    labels = _labels_from_folders(images, inputs, model.class_names)
    rec = model.extractor
    if backbone_model is None and rec["backbone"] != DEFAULT:
        now = record(rec["backbone"], rec["weights"], rec["image_size"], rec["feature_dim"]) \
            if Path(rec["weights"]).is_file() else None
        if now is None:
            raise DataError(f"feature extractor: the model's weights file {rec['weights']} ({rec['backbone']}) is gone")
        diff = differences(rec, now)
        if diff:
            raise DataError(f"feature extractor: {rec['weights']} changed since the model was trained ({diff})")
    elif backbone_model is None:
        diff = differences(rec, record(DEFAULT, "", rec["image_size"], rec["feature_dim"]))
        if diff:
            raise DataError(f"feature extractor: the installed EfficientNet-Lite0 differs from the model's ({diff})")
    check_readable(images)
    x = extract(ImageFiles(images), rec["backbone"], rec["weights"], rec["image_size"], batch_size,
                models=models, model=backbone_model)
    if x.shape[1] != model.feature_dim:
        raise DataError(f"feature extractor: it gives {x.shape[1]}-d features, the model reads {model.feature_dim}-d")
    return [str(f) for f in images], x, labels


def predict_rows(model: Model, names, x: np.ndarray, labels, top_k: int = 3) -> list[dict]:
    probs = model.probabilities(x)
    scores = calibrated(probs, model.classes, model.seen, model.calibration)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    rows = []
    for i, name in enumerate(names):
        best = model.classes[order[i, 0]]
        row = {"input": name, "predicted": model.class_names[best],
               "split": "seen" if best in model.seen else "unseen"}
        if any(labels):
            row["true"] = labels[i]
            row["correct"] = "" if not labels[i] else int(labels[i] == row["predicted"])
        for k, j in enumerate(order[i], 1):
            row[f"top{k}"], row[f"p{k}"] = model.class_names[model.classes[j]], round(float(probs[i, j]), 4)
        rows.append(row)
    return rows


def summary(rows: list[dict], seen_names: set[str], n_classes: int) -> str:
    """Mean per-class accuracy of the labelled rows, unseen and seen classes apart (GZSL's U and S)."""
    parts = []
    for split, is_seen in (("unseen", False), ("seen", True)):
        per_class: dict[str, list[int]] = {}
        for r in rows:
            if r.get("true") and (r["true"] in seen_names) == is_seen:
                per_class.setdefault(r["true"], []).append(r["correct"])
        if per_class:
            parts.append(f"{split} classes {np.mean([np.mean(v) for v in per_class.values()]):.3f} "
                         f"({len(per_class)} classes)")
    return "mean per-class accuracy: " + ", ".join(parts) + f"; chance {1 / n_classes:.3f} over all {n_classes} classes"


def run(inputs, out: Path | str, model_dir: Path | str = ".", top_k: int = 3, batch_size: int = 16,
        features_out: Path | str | None = None, device="cpu", backbone_model=None, models=None) -> list[dict]:
    """Predict every input and write the CSV (atomically); -> the rows."""
    inputs = [Path(i) for i in inputs]
    if not inputs:
        raise DataError("predict: no input; give image files, folders of images or one .npz features file")
    if top_k < 1:
        raise DataError(f"--top-k: expected at least 1, got {top_k}")
    model = load_model(model_dir, device)
    names, x, labels = features_of(inputs, model, batch_size, backbone_model, models)
    rows = predict_rows(model, names, x, labels, min(top_k, len(model.classes)))
    files.save_csv(out, rows)
    if features_out:
        files.save_npz(features_out, x=x, input=np.array(names),
                    extractor=np.array(json.dumps(model.extractor or {}, sort_keys=True)))
    seen_names = set(model.class_names[model.seen].tolist())
    log.info("predict: %d inputs -> %s (%d predicted unseen)", len(rows), out,
             sum(r["split"] == "unseen" for r in rows))
    if any(labels):
        log.info("predict: %s", summary(rows, seen_names, len(model.classes)))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m zerodiffpp.predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="image files, folders of images, or one .npz features file (key x)")
    ap.add_argument("--out", default="predictions.csv", help="CSV to write (default predictions.csv)")
    ap.add_argument("--model-dir", default=".", help="the repository whose dvc repro outputs to use (default .)")
    ap.add_argument("--top-k", type=int, default=3, help="classes listed per input with probabilities (default 3)")
    ap.add_argument("--batch-size", type=int, default=16, help="images per forward pass of the extractor")
    ap.add_argument("--features-out", help="also save the inputs' raw features (.npz: x, input, extractor)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        run(args.inputs, args.out, args.model_dir, args.top_k, args.batch_size, args.features_out)
    except InputError as e:
        print(f"ERROR: predict: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
