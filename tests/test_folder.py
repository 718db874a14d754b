"""Your own classes (data.name: folder): the folder and class-table loader, its one-line errors, the
text encoder path and the torchvision backbone path, on tiny folders written here."""
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import ROOT
from zerodiffpp.data import backbone, folder
from zerodiffpp.data.embedded import _input_batch, build_backbone, extract_features
from zerodiffpp.runtime.errors import DataError, ParamsError
from zerodiffpp.runtime.params import validate

CLASSES = {"ant": 5, "bee": 5, "cat": 5, "dog": 4}  # dog is unseen in the tables below
ATTRIBUTES = "class,legs,wings,fur,unseen\nant,6,0,0,0\nbee,6,4,1,no\ncat,4,0,1,0\ndog,4,0,1,yes\n"
DESCRIPTIONS = ("class,description\nant,a small insect with six legs\nbee,a flying insect with wings\n"
                "cat,a furry pet with four legs\ndog,a loyal furry animal with four legs\n")


def grey(seed, size=(20, 24)):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def make_folder(root, classes=CLASSES, table=ATTRIBUTES, name="classes.csv"):
    """One subfolder of small PNGs per class (grey, one colour image of another size) and the table."""
    for k, (cls, n) in enumerate(classes.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = grey(10 * k + i) if i else np.stack([grey(10 * k + i, (30, 18))] * 3, axis=2) // 2 + 40 * k
            Image.fromarray(img).save(root / cls / f"{i:03d}.png")
    (root / name).write_text(table)
    return root


@pytest.fixture(scope="module")
def effnet():
    return build_backbone()


class Refuse(torch.nn.Module):
    """A backbone that fails if used: the errors below must come before any feature is computed."""

    def extract_features(self, x):
        raise AssertionError("features computed before the input was checked")


def test_attribute_folder_loads_in_table_order_with_the_shared_extractor(tmp_path, effnet):
    root = make_folder(tmp_path / "own")
    fs = folder.load_folder(root, image_size=32, test_fraction=0.2, model=effnet)
    assert fs.class_names.tolist() == ["ant", "bee", "cat", "dog"]
    assert fs.x.shape == (19, 1280) and np.bincount(fs.labels).tolist() == [5, 5, 5, 4]
    assert fs.unseen_classes.tolist() == [3] and fs.seen_classes.tolist() == [0, 1, 2]
    assert len(fs.test_seen) == 3 and len(fs.trainval) == 12 and len(fs.test_unseen) == 4  # round(0.2 * 5) = 1
    att = np.array([[6, 0, 0], [6, 4, 1], [4, 0, 1], [4, 0, 1]], np.float32)
    np.testing.assert_allclose(fs.att, att / np.linalg.norm(att, axis=1, keepdims=True), rtol=1e-6)
    # the same extractor as the embedded set: a grey image gives its features (up to the kernel a
    # batch size picks, tests/test_embedded.py)
    ref = extract_features(np.stack([grey(1), grey(2)]), 32, 2, model=effnet)
    np.testing.assert_allclose(fs.x[1:3], ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    again = folder.load_folder(root, image_size=32, test_fraction=0.2, model=effnet)
    assert np.array_equal(again.test_seen, fs.test_seen)
    other_seed = folder.load_folder(root, image_size=32, test_fraction=0.2, split_seed=3, model=effnet)
    assert not np.array_equal(other_seed.test_seen, fs.test_seen)


def test_unseen_from_the_param_and_the_column(tmp_path, effnet):
    root = make_folder(tmp_path / "own", table=ATTRIBUTES.replace(",unseen", "").replace(",0\n", "\n")
                       .replace(",no\n", "\n").replace(",yes\n", "\n"))
    with pytest.raises(DataError, match="no unseen classes"):
        folder.load_folder(root, image_size=32, model=Refuse())
    fs = folder.load_folder(root, unseen="bee, dog", image_size=32, model=effnet)
    assert fs.class_names[fs.unseen_classes].tolist() == ["bee", "dog"]


class StubEncoder:
    """sentence-transformers' encode, deterministic: a vector from the words of each description."""

    def __init__(self):
        self.seen = None

    def encode(self, sentences, batch_size=32, show_progress_bar=False, convert_to_numpy=True,
               normalize_embeddings=True):
        self.seen = list(sentences)
        vocab = sorted({w for s in sentences for w in s.split()})
        return np.array([[s.split().count(w) for w in vocab] for s in sentences], np.float32)


def test_text_table_goes_through_the_encoder(tmp_path, effnet):
    root = make_folder(tmp_path / "own", table=DESCRIPTIONS)
    stub = StubEncoder()
    fs = folder.load_folder(root, embedding="text", unseen="dog", image_size=32, encoder=stub, model=effnet)
    assert stub.seen == [line.split(",", 1)[1] for line in DESCRIPTIONS.splitlines()[1:]]
    np.testing.assert_allclose(np.linalg.norm(fs.att, axis=1), 1.0, rtol=1e-6)
    cos = fs.att @ fs.att.T
    assert cos[2, 3] > cos[0, 3]  # the two furry four-legged animals share the most words


def test_real_text_encoder():
    """all-MiniLM-L6-v2 from the optional extra (requirements-text.txt); about 8 s when installed."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("all_minilm_l6_v2")
    from zerodiffpp.data.text_encoder import encode
    emb = encode(["a tall animal with a very long neck", "a giraffe has a long neck and long legs",
                  "a small fish that swims in the sea"])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_text_extra_missing_is_one_line_naming_what_to_install(monkeypatch):
    from zerodiffpp.data.text_encoder import load_encoder
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails as when not installed
    with pytest.raises(DataError, match=r"needs sentence-transformers.*pip install -r requirements-text.txt") as e:
        load_encoder()
    assert "\n" not in str(e.value)


def _unreadable(root):
    (root / "cat" / "002.png").write_bytes(b"not a png")


def _write(rel, text):
    return lambda root: (root / rel).write_text(text)


@pytest.mark.parametrize("kwargs, mutate, where, message", [
    ({}, lambda r: [f.unlink() for f in (r / "ant").iterdir()], "ant", "class folder without images"),
    ({}, _unreadable, "cat/002.png", "not a readable image"),
    ({}, lambda r: (r / "eel").mkdir() or Image.fromarray(grey(0)).save(r / "eel" / "a.png"),
     "classes.csv", r"class folders \['eel'\] .* are not in the table"),
    ({}, _write("classes.csv", ATTRIBUTES + "eel,0,0,1,0\n"), "own", r"no folder for the table's classes \['eel'\]"),
    ({}, _write("classes.csv", ATTRIBUTES + "cat,4,0,1,0\n"), "classes.csv", r"more than once: \['cat'\]"),
    ({"unseen": "cat"}, None, "classes.csv", r"\['cat', 'dog'\] are both seen and unseen"),
    ({"unseen": "cow"}, None, "classes.csv", r"data.unseen: classes \['cow'\] are not in"),
    ({"test_fraction": 0.5}, lambda r: [f.unlink() for f in sorted((r / "bee").iterdir())[1:]],
     "bee", r"too few images for the split: .*bee \(1\).*at least 2"),
    ({}, _write("classes.csv", ATTRIBUTES.replace("bee,6,4", "bee,six,4")), "classes.csv",
     r"attribute column 'legs' holds 'six'; expected numbers"),
    ({}, _write("classes.csv", ATTRIBUTES.replace("bee,6,4,1", "bee,0,0,0")), "classes.csv", "all-zero attributes"),
    ({"embedding": "text"}, None, "classes.csv", "no 'description' column"),
    ({}, _write("classes.csv", DESCRIPTIONS), "classes.csv", "has a 'description' column but data.embedding is 'att'"),
    ({"embedding": "text", "unseen": "dog"}, _write("classes.csv", DESCRIPTIONS.replace("a flying insect with wings", "")),
     "classes.csv", r"empty description for classes \['bee'\]"),
    ({}, _write("classes.csv", ATTRIBUTES.replace(",no\n", ",maybe\n")), "classes.csv", "column 'unseen' of class 'bee'"),
    ({"class_table": "missing.csv"}, None, "missing.csv", "not found"),
    ({}, lambda r: (r / "cat").rename(r / ".cat"), "own", r"no folder for the table's classes \['cat'\]"),
])
def test_bad_folders_and_tables_are_one_line_naming_the_file(tmp_path, kwargs, mutate, where, message):
    root = make_folder(tmp_path / "own")
    if mutate:
        mutate(root)
    with pytest.raises(DataError, match=message) as e:
        folder.load_folder(root, image_size=32, encoder=StubEncoder(), model=Refuse(), **kwargs)
    assert where in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        folder.scan_classes(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        folder.scan_classes(tmp_path / "empty")


def test_table_from_a_spreadsheet_with_quoted_commas_and_a_byte_order_mark(tmp_path):
    table = tmp_path / "classes.csv"
    table.write_bytes('class,description\nant,"small, six legs"\nbee,wings\n'.encode("utf-8-sig"))
    names, texts, unseen = folder.read_class_table(table, "text")
    assert names == ["ant", "bee"] and texts.tolist() == ["small, six legs", "wings"] and unseen is None


def test_min_images_follows_the_rounding_of_the_split():
    assert folder.min_images(0.2) == 3 and folder.min_images(0.5) == 2 and folder.min_images(0.9) == 5  # round(4.5) = 4
    for f in (0.05, 0.2, 0.34, 0.5, 0.9):
        n = folder.min_images(f)
        tv, ts, _ = folder.split(np.zeros(n, np.int64), set(), f, 0)
        assert len(tv) >= 1 and len(ts) >= 1


class TinyNet(torch.nn.Module):
    """A torchvision-like network: ResNet layout (layer4, avgpool, fc)."""

    def __init__(self, weights=None, num_classes=10):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3)
        self.layer4 = torch.nn.Conv2d(4, 6, 3)
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(6, num_classes)


def test_torchvision_backbone_from_local_weights(tmp_path):
    models = types.SimpleNamespace(tinynet=TinyNet)
    torch.manual_seed(0)
    ref = TinyNet()
    state = {k: v for k, v in ref.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(3, 6), torch.zeros(3)  # a fine-tuned head: not needed
    weights = tmp_path / "tiny.pth"
    torch.save(state, weights)
    trunk = backbone.build_torchvision("tinynet", weights, models)
    images = [grey(1), np.stack([grey(2)] * 3, axis=2)]
    x = backbone.extract(images, "tinynet", str(weights), 32, 2, models=models)
    batch = _input_batch(images, 32, backbone.IMAGENET_NORM)
    with torch.no_grad():
        expected = ref.layer4(ref.conv1(batch)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    assert trunk.extract_features(batch).shape[1] == 6
    rec = backbone.record("tinynet", str(weights), 32, 6)
    assert rec["weights_sha256"] == backbone.sha256(weights) and rec["image_size"] == 32
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(DataError, match=r"wrong.pth (is not a state dict|does not fit) of torchvision 'tinynet'"):
        backbone.build_torchvision("tinynet", tmp_path / "wrong.pth", models)
    with pytest.raises(DataError, match="data.backbone_weights: .*gone.pth not found"):
        backbone.build_torchvision("tinynet", tmp_path / "gone.pth", models)
    with pytest.raises(DataError, match="'nonet' is not a torchvision model constructor"):
        backbone.build_torchvision("nonet", weights, models)


def test_torchvision_missing_is_one_line_naming_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(DataError, match=r"needs torchvision.*pip install torchvision==0.28.0") as e:
        backbone.torchvision_models()
    assert "\n" not in str(e.value)


@pytest.fixture
def params():
    return yaml.safe_load(open(ROOT / "params.yaml"))


@pytest.mark.parametrize("data, message", [
    ({"embedding": "text"}, "data.embedding 'text' applies to data.name 'folder'"),
    ({"name": "folder", "embedding": "sent"}, "data.embedding for data.name 'folder' is att"),
    ({"name": "folder", "class_table": ""}, "data.class_table must name the class table"),
    ({"unseen": "bear"}, r"data.unseen \('bear'\) applies only to data.name 'folder'"),
    ({"name": "folder", "backbone": "resnet101"}, "needs data.backbone_weights"),
    ({"backbone": "resnet101", "backbone_weights": "r.pth"}, "applies only to data.name 'folder'"),
    ({"name": "folder", "root": ""}, "data.root must name the dataset's folder: your image folder"),
])
def test_folder_params_are_checked(params, data, message):
    params["data"].update(data)
    with pytest.raises(ParamsError, match=message):
        validate(params, "params.yaml")
    params["data"].update(name="folder", embedding="text", unseen="a,b", backbone="resnet101",
                          backbone_weights="r.pth", root="x", class_table="c.csv")
    validate(params, "params.yaml")


def test_example_folder_is_a_valid_folder_dataset(tmp_path, effnet):
    """scripts.make_example_folder (the README's example), small: both of its tables load, bear, giraffe
    and sheep are unseen, and the held-back images are none of the training ones."""
    from scripts.make_example_folder import make
    out = make(tmp_path / "own", per_class=3, held_back=1)
    fs = folder.load_folder(out / "data", embedding="text", encoder=StubEncoder(), image_size=32, model=effnet)
    assert fs.x.shape == (30, 1280) and len(fs.test_seen) == 7 and len(fs.test_unseen) == 9
    assert fs.class_names[fs.unseen_classes].tolist() == ["bear", "giraffe", "sheep"]
    names, values, unseen = folder.read_class_table(out / "data" / "attributes.csv", "att")
    assert values.shape == (10, 18) and [n for n, u in zip(names, unseen) if u] == ["bear", "giraffe", "sheep"]
    held = {f.name for f in (out / "held-back").rglob("*.png")}
    assert len(held) == 10 and not held & {f.name for f in (out / "data").rglob("*.png")}
    with pytest.raises(SystemExit, match="exists and is not empty"):
        make(out)


def test_the_image_check_bar_honours_tqdm_disable():
    """check_readable's bar (500 files or more) is silenced by TQDM_DISABLE, as every other bar is."""
    code = ("import zerodiffpp.data.backbone as b; b.read_image = lambda f: None; "
            "b.check_readable([f'{i}.png' for i in range(500)])")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}

    def stderr(**extra):
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(env, **extra), capture_output=True,
                              text=True, check=True).stderr
    assert "check images: 100%" in stderr()
    assert "check images" not in stderr(TQDM_DISABLE="1")
