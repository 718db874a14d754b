import logging

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from tests.conftest import SHARED_XLSA17, XLSA17_SPLITS, make_xlsa17
from zerodiffpp.data.features import FeatureSet, unlearnable_attributes, without_constant_columns
from zerodiffpp.runtime.errors import DataError
from zerodiffpp.data.splits import MinMax, prepare_split, subsample_per_class, validation_view
from zerodiffpp.data.xlsa17 import load_xlsa17


def test_loader_reads_xlsa17_conventions(xlsa17_dir):
    fs = load_xlsa17(xlsa17_dir, "TOY")
    res = loadmat(xlsa17_dir / "res101.mat")
    assert fs.x.shape == (144, 32)  # features are stored D x N
    np.testing.assert_allclose(fs.x[5], res["features"][:, 5])
    assert fs.labels.min() == 0 and fs.labels.max() == 5  # 1-based on disk
    assert fs.att.shape == (6, 6)
    assert fs.seen_classes.tolist() == [0, 1, 2, 3] and fs.unseen_classes.tolist() == [4, 5]
    assert fs.class_names.tolist() == [f"c{k}" for k in range(6)]


def test_row_feature_files_replace_x_and_supply_r(xlsa17_dir):
    rng = np.random.default_rng(1)
    savemat(xlsa17_dir / "ce_ce.mat", {"features": rng.random((144, 16)).astype(np.float32)})
    savemat(xlsa17_dir / "con_paco.mat", {"features": rng.random((144, 8)).astype(np.float32)})
    fs = load_xlsa17(xlsa17_dir, "TOY", x_file="ce_ce.mat", r_file="con_paco.mat")
    assert fs.x.shape == (144, 16) and fs.r.shape == (144, 8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(one_based=False), "1-based"),
    (dict(extra_split={"test_seen_loc": np.array([[0], [3]])}), "must hold 1-based indices"),
    (dict(drop_keys=("trainval_loc",)), "missing key 'trainval_loc'"),
    (dict(drop_keys=("features",)), "missing key 'features'"),
    (dict(extra_res={"features": np.zeros((32, 10), np.float32)}), "'features' must be D x N"),
    (dict(extra_res={"labels": np.full((144, 1), 9)}), "'labels' go up to 9"),
    (dict(extra_split={"test_unseen_loc": np.array([[1], [2]])}), r"classes \['c0'\] are both seen"),
    (dict(extra_split={"trainval_loc": np.array([[500]])}), "indexes up to 500"),
])
def test_malformed_files_are_named(tmp_path, kwargs, message):
    folder = make_xlsa17(tmp_path / "BAD", **kwargs)
    with pytest.raises(DataError, match=message):
        load_xlsa17(folder, "TOY")


def test_nan_features_are_named_by_file_key_and_position(tmp_path):
    x = np.random.default_rng(0).random((32, 144)).astype(np.float32)
    x[3, 7] = x[5, 7] = np.nan
    x[0, 9] = np.inf
    folder = make_xlsa17(tmp_path / "NAN", extra_res={"features": x})
    with pytest.raises(DataError, match=r"NAN/res101.mat: 'features' holds 3 NaN or inf values in 2 images, the "
                                        r"first at features\[0, 9\] \(0-based: image 9\)"):
        load_xlsa17(folder, "TOY")
    r = np.random.default_rng(1).random((144, 8)).astype(np.float32)  # N x D files: an image is a row
    r[40, 2] = np.nan
    savemat(folder / "con_paco.mat", {"features": r})
    x[3, 7] = x[5, 7] = x[0, 9] = 0
    savemat(folder / "res101.mat", {"features": x, "labels": loadmat(folder / "res101.mat")["labels"]})
    with pytest.raises(DataError, match=r"con_paco.mat: 'features' holds 1 NaN or inf values in 1 images, the first "
                                        r"at features\[40, 2\] \(0-based: image 40\)"):
        load_xlsa17(folder, "TOY", r_file="con_paco.mat")


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_xlsa17(tmp_path / "nope", "AWA2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="res101.mat: file not found"):
        load_xlsa17(tmp_path / "empty", "AWA2")


def test_subsample_keeps_ratio_per_class_and_at_least_one():
    labels = np.repeat([0, 1, 2], [100, 10, 3])
    keep = subsample_per_class(labels, 0.1, seed=0)
    assert np.bincount(labels[keep]).tolist() == [10, 1, 1]
    assert np.array_equal(keep, subsample_per_class(labels, 0.1, seed=0))
    assert not np.array_equal(keep, subsample_per_class(labels, 0.1, seed=1))
    assert len(subsample_per_class(labels, 1.0, seed=0)) == len(labels)
    with pytest.raises(ValueError, match="seen_ratio"):
        subsample_per_class(labels, 0.0, seed=0)
    with pytest.raises(ValueError, match="seen_ratio"):
        subsample_per_class(labels, 1.5, seed=0)


def test_subsample_draws_without_replacement_and_only_for_classes_it_cuts():
    """The draw a seed gives, pinned (a prepared split must not move between versions): one
    default_rng(seed) stream, one draw without replacement per class that loses images, in class order;
    a class kept whole (here class 0: round(0.75 x 2) = 2 of its 2 images) takes no draw."""
    labels = np.repeat([0, 1, 2], [2, 10, 4])
    rng = np.random.default_rng(0)
    first, second = rng.choice(np.arange(2, 12), 8, replace=False), rng.choice(np.arange(12, 16), 3, replace=False)
    expected = [0, 1, *sorted(first.tolist()), *sorted(second.tolist())]
    assert subsample_per_class(labels, 0.75, seed=0).tolist() == expected == [0, 1, 2, 3, 4, 5, 6, 8, 10, 11, 13, 14, 15]


def test_scaler_is_fitted_on_the_kept_subset_only(xlsa17_dir):
    fs = load_xlsa17(xlsa17_dir, "TOY")
    prep, scaler = prepare_split(fs, 0.25, seed=3)
    np.testing.assert_array_equal(prep.class_names, fs.class_names)
    # train.seed decides the kept subset: the same seed gives the same one, another seed another
    np.testing.assert_array_equal(prepare_split(fs, 0.25, seed=3)[0].train_index, prep.train_index)
    assert not np.array_equal(prepare_split(fs, 0.25, seed=4)[0].train_index, prep.train_index)
    with pytest.raises(ValueError, match="data.protocol must be 'test' or 'validation', got 'val'"):
        prepare_split(fs, 0.25, seed=3, protocol="val")
    assert prep.x_train.min() == pytest.approx(0.0) and prep.x_train.max() == pytest.approx(1.0)
    kept = fs.x[prep.train_index]
    np.testing.assert_allclose(scaler.lo, kept.min(0))
    assert len(prep.y_test_seen) == len(fs.test_seen) and len(prep.y_test_unseen) == len(fs.test_unseen)
    assert np.bincount(prep.y_train).tolist() == [4, 4, 4, 4]  # 18 per class * 0.25, rounded


def test_minmax_maps_the_fitted_range_to_unit_interval_and_clips_outside_it():
    s = MinMax.fit(np.array([[0.0, 10.0], [2.0, 10.001]]))
    out = s(np.array([[1.0, 10.0005], [3.0, 50.0], [-1.0, 9.0]]))
    np.testing.assert_allclose(out, [[0.5, 0.5], [1.0, 1.0], [0.0, 0.0]], atol=1e-4)
    assert out.dtype == np.float32


def test_minmax_constant_feature_does_not_divide_by_zero():
    s = MinMax.fit(np.ones((4, 2)))
    assert np.isfinite(s(np.ones((2, 2)))).all()
    # a constant training column is shifted, not scaled: a test value 0.4 above it maps to 0.4
    np.testing.assert_allclose(s(np.array([[1.4, 0.5]])), [[0.4, 0.0]], atol=1e-6)


def test_featureset_roundtrip(tmp_path, xlsa17_dir):
    fs = load_xlsa17(xlsa17_dir, "TOY")
    fs.save(tmp_path / "f.npz")
    back = FeatureSet.load(tmp_path / "f.npz")
    np.testing.assert_array_equal(back.x, fs.x)
    assert back.class_names.tolist() == fs.class_names.tolist()


@pytest.mark.parametrize("name, counts, sizes", [
    ("AWA2", (40, 10), (23527, 5882, 7913)),
    ("CUB", (150, 50), (7057, 1764, 2967)),
    ("SUN", (645, 72), (10320, 2580, 1440)),
])
def test_real_split_files(tmp_path, name, counts, sizes):
    """The real att_splits.mat with a generated res101.mat whose labels agree with the splits."""
    split = loadmat(XLSA17_SPLITS / name / "att_splits.mat")
    n_classes = split["att"].shape[1]
    locs = {k: split[k].ravel() for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc")}
    n = int(max(v.max() for v in locs.values()))
    # labels consistent with the splits: give each image the class of its position in a real class list
    labels = np.zeros(n, np.int64)
    rng = np.random.default_rng(0)
    cls_seen, cls_unseen = _classes_from_names(XLSA17_SPLITS / name, split, counts)
    labels[locs["trainval_loc"] - 1] = rng.choice(cls_seen, len(locs["trainval_loc"]))
    labels[locs["trainval_loc"][:len(cls_seen)] - 1] = cls_seen  # every seen class has training images
    labels[locs["test_seen_loc"] - 1] = rng.choice(cls_seen, len(locs["test_seen_loc"]))
    labels[locs["test_unseen_loc"] - 1] = rng.choice(cls_unseen, len(locs["test_unseen_loc"]))
    labels[locs["test_unseen_loc"][:len(cls_unseen)] - 1] = cls_unseen
    labels[labels == 0] = cls_seen[0]  # images outside the proposed split
    folder = tmp_path / name
    folder.mkdir()
    savemat(folder / "res101.mat", {"features": np.zeros((4, n), np.float32), "labels": labels.reshape(-1, 1)})
    (folder / "att_splits.mat").symlink_to(XLSA17_SPLITS / name / "att_splits.mat")
    fs = load_xlsa17(folder, name)
    assert (len(fs.seen_classes), len(fs.unseen_classes)) == counts
    assert (len(fs.trainval), len(fs.test_seen), len(fs.test_unseen)) == sizes
    assert fs.att.shape[0] == n_classes
    np.testing.assert_allclose(np.linalg.norm(fs.att, axis=1), 1.0, atol=1e-4)


def _classes_from_names(folder, split, counts):
    """1-based class ids of the proposed split's seen and unseen classes, from the class lists."""
    names = [str(np.asarray(v).ravel()[0]) for v in split["allclasses_names"].ravel()]
    unseen_names = (folder / "testclasses.txt").read_text().split()
    unseen = np.array([names.index(u) + 1 for u in unseen_names])
    seen = np.array([i + 1 for i in range(len(names)) if i + 1 not in set(unseen)])
    assert (len(seen), len(unseen)) == counts
    return seen, unseen


def test_validation_protocol_uses_only_seen_training_images(tmp_path):
    base = make_xlsa17(tmp_path / "V0")
    tv = loadmat(base / "att_splits.mat")["trainval_loc"].ravel()
    labels = loadmat(base / "res101.mat")["labels"].ravel()
    val_loc = tv[np.isin(labels[tv - 1], [3, 4])].reshape(-1, 1)  # 1-based classes 3, 4 = ids 2, 3
    folder = make_xlsa17(tmp_path / "V", extra_split={"val_loc": val_loc, "train_loc": tv[:5].reshape(-1, 1)})
    fs = load_xlsa17(folder, "TOY")
    assert fs.val_classes.tolist() == [2, 3]
    prep, _ = prepare_split(fs, 1.0, seed=0, protocol="validation")
    assert prep.seen.tolist() == [0, 1] and prep.unseen.tolist() == [2, 3]
    # train.seed also draws the validation fold's held-out images
    again = prepare_split(fs, 1.0, seed=0, protocol="validation")[0]
    other = prepare_split(fs, 1.0, seed=1, protocol="validation")[0]
    np.testing.assert_array_equal(again.x_test_seen, prep.x_test_seen)
    assert not np.array_equal(other.x_test_seen, prep.x_test_seen)
    used = set(prep.train_index)
    assert used <= set(fs.trainval)
    assert len(prep.y_test_unseen) == len(val_loc)
    assert len(prep.y_test_seen) + len(prep.y_train) == np.isin(fs.labels[fs.trainval], [0, 1]).sum()


def test_validation_protocol_needs_validation_classes(xlsa17_dir):
    fs = load_xlsa17(xlsa17_dir, "TOY")
    with pytest.raises(DataError, match="defines no validation classes"):
        prepare_split(fs, 1.0, seed=0, protocol="validation")


def test_validation_classes_named_in_params_replace_the_datasets_own(xlsa17_dir):
    fs = load_xlsa17(xlsa17_dir, "TOY")  # defines no validation classes of its own
    name = lambda i: str(fs.class_names[i])
    seen = fs.seen_classes
    prep, _ = prepare_split(fs, 1.0, seed=0, protocol="validation", val_classes=f" {name(seen[1])},{name(seen[0])}")
    assert prep.unseen.tolist() == sorted(seen[:2].tolist())
    assert prep.seen.tolist() == seen[2:].tolist()
    assert len(prep.y_test_unseen) == np.isin(fs.labels[fs.trainval], seen[:2]).sum()
    with pytest.raises(DataError, match="data.val_classes: unknown class 'okapi'"):
        prepare_split(fs, 1.0, seed=0, protocol="validation", val_classes="okapi")
    with pytest.raises(DataError, match="is an unseen class"):
        prepare_split(fs, 1.0, seed=0, protocol="validation", val_classes=name(fs.unseen_classes[0]))
    with pytest.raises(DataError, match="at least one seen class must stay"):
        prepare_split(fs, 1.0, seed=0, protocol="validation", val_classes=",".join(name(c) for c in seen))


def test_unlearnable_attributes_are_those_constant_across_the_training_classes():
    att = np.array([[1.0, 0.0, 0.5, 0.4],
                    [0.5, 0.0, 0.0, 0.4],
                    [0.2, 0.7, 0.0, 0.0],    # has attribute 1, which no training class (0, 1) has
                    [0.3, 0.0, 0.9, 0.1]])   # attribute 3 is 0.4 in both training classes
    assert unlearnable_attributes(att, [0, 1], [2, 3]) == [(2, 1), (3, 3)]
    assert unlearnable_attributes(att, [0, 2], [1, 3]) == []


def test_constant_attribute_columns_are_removed_and_rows_renormalised():
    att = np.array([[0.6, 0.0, 0.8], [0.8, 0.0, 0.6], [0.0, 0.6, 0.8]], np.float32)
    out, removed = without_constant_columns(att, [0, 1])  # column 1 is 0 in both training classes
    assert removed.tolist() == [1]
    np.testing.assert_allclose(out, [[0.6, 0.0, 0.8], [0.8, 0.0, 0.6], [0.0, 0.0, 1.0]], atol=1e-7)
    same, none = without_constant_columns(att[:, :2], [0, 2])
    assert none.size == 0 and same is not None and np.array_equal(same, att[:, :2])


def test_validation_fold_removes_what_its_training_classes_cannot_vary(caplog):
    labels = np.repeat(np.arange(4), 5)
    att = np.array([[1.0, 0.0, 0.2], [0.8, 0.0, 0.4], [0.5, 0.5, 0.5], [0.6, 0.0, 0.6]], np.float32)
    fs = FeatureSet(x=np.random.default_rng(0).random((20, 3), dtype=np.float32), labels=labels, att=att,
                    class_names=np.array(["a", "b", "c", "d"]), trainval=np.arange(15), test_seen=np.arange(15),
                    test_unseen=np.arange(15, 20))
    with caplog.at_level(logging.INFO, logger="zerodiffpp.data.splits"):
        kept = validation_view(fs, 0, classes="b")  # training classes a, c: column 1 varies
    assert not caplog.records and np.array_equal(kept.att, att)
    with caplog.at_level(logging.INFO, logger="zerodiffpp.data.splits"):
        view = validation_view(fs, 0, classes="c")  # only c has column 1
    assert "attribute columns [1]" in caplog.text
    np.testing.assert_allclose(view.att[:, 1], 0.0)
    np.testing.assert_allclose(view.att[2], [2 ** -0.5, 0.0, 2 ** -0.5], atol=1e-6)
    np.testing.assert_array_equal(fs.att, att)  # the full dataset is left as it was


def test_class_embeddings_are_made_unit_length_whatever_the_file_gives(tmp_path, caplog):
    """sent_splits.mat's sentence embeddings have norms of about 17-23 while the attribute decoder's
    output is unit length: the loader normalises every class embedding per class (att_splits.mat's
    att already is, and is left as it is), and refuses an all-zero one."""
    base = load_xlsa17(make_xlsa17(tmp_path / "A"), "TOY")
    scaled = np.random.default_rng(3).uniform(15, 25, size=(1, 6)) * base.att.T  # A x C, class norms 15-25
    with caplog.at_level(logging.INFO, logger="zerodiffpp.data.xlsa17"):
        fs = load_xlsa17(make_xlsa17(tmp_path / "B", extra_split={"att": scaled}), "TOY")
    np.testing.assert_allclose(np.linalg.norm(fs.att, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(fs.att, base.att, atol=1e-6)  # same directions
    assert "normalised to unit length" in caplog.text
    zero = base.att.T.copy()
    zero[:, 2] = 0
    with pytest.raises(DataError, match=r"all-zero class embeddings \(classes \[2\]\)"):
        load_xlsa17(make_xlsa17(tmp_path / "C", extra_split={"att": zero}), "TOY")


@pytest.mark.skipif(not (SHARED_XLSA17 / "CUB" / "sent_splits.mat").exists(), reason="../shared CUB is not present")
def test_real_cub_sentence_embeddings_come_out_unit_length():
    from zerodiffpp.data.xlsa17 import unit_rows
    raw = loadmat(SHARED_XLSA17 / "CUB" / "sent_splits.mat")["att"].T
    norms = np.linalg.norm(raw, axis=1)
    assert norms.min() > 10  # the file's own scale (16.7-22.6)
    np.testing.assert_allclose(np.linalg.norm(unit_rows(raw, "sent_splits.mat"), axis=1), 1.0, atol=1e-6)


def test_sc_representations_are_scaled_on_the_kept_training_subset_only(xlsa17_dir):
    """Supplied r (data.r_file) and learned r (the SC encoder) alike: the MinMax statistics come from
    the kept training images, never from test or dropped training images, so a test value outside
    that range is clipped rather than moving the statistics."""
    import torch
    from zerodiffpp.generators.sc import SCEncoder, encode, sc_representations
    fs = load_xlsa17(xlsa17_dir, "TOY")
    rng = np.random.default_rng(0)
    fs.r = rng.random((len(fs.labels), 3)).astype(np.float32)
    fs.r[fs.test_seen[0]] = 50.0  # far outside every training value
    prep, _ = prepare_split(fs, 0.25, seed=3)
    kept_r = fs.r[prep.train_index]
    lo, hi = kept_r.min(0), kept_r.max(0)
    np.testing.assert_allclose(prep.r_train, (kept_r - lo) / (hi - lo), atol=1e-6)
    np.testing.assert_allclose(prep.r_test_unseen, np.clip((fs.r[fs.test_unseen] - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert prep.r_test_seen.max() == 1.0
    torch.manual_seed(0)
    enc = SCEncoder(prep.x_train.shape[1], 16, 4, 4)
    scaler, r = sc_representations(enc, prep, "cpu")
    raw_train = encode(enc, prep.x_train, "cpu")
    np.testing.assert_allclose(scaler.lo, raw_train.min(0))
    np.testing.assert_allclose(scaler.lo + scaler.scale, raw_train.max(0), rtol=1e-6)
    assert r["train"].min() == 0.0 and r["train"].max() == 1.0


def test_the_validation_view_holds_out_a_seeded_fraction_and_keeps_names_and_sc_features(xlsa17_dir):
    """Per training class round(fraction x n) images become test-seen, drawn with the given seed (the
    same seed, the same fold; another seed, another draw); the validation classes' images are the
    unseen ones; class names and supplied SC features come along."""
    fs = load_xlsa17(xlsa17_dir, "TOY")
    fs.r = np.random.default_rng(0).random((len(fs.labels), 3)).astype(np.float32)
    val = fs.seen_classes[:1]
    fs.val_classes = val
    view = validation_view(fs, seed=4, held_out_fraction=0.25)
    y = fs.labels
    for c in np.setdiff1d(fs.seen_classes, val):
        n = int((y[fs.trainval] == c).sum())
        assert (y[view.test_seen] == c).sum() == round(0.25 * n) and (y[view.trainval] == c).sum() == n - round(0.25 * n)
    assert set(y[view.test_unseen]) == set(val) and len(view.test_unseen) == int(np.isin(y[fs.trainval], val).sum())
    assert np.intersect1d(view.test_seen, view.trainval).size == 0
    again, other = validation_view(fs, seed=4, held_out_fraction=0.25), validation_view(fs, seed=5, held_out_fraction=0.25)
    np.testing.assert_array_equal(again.test_seen, view.test_seen)
    assert not np.array_equal(other.test_seen, view.test_seen)
    np.testing.assert_array_equal(view.class_names, fs.class_names)
    np.testing.assert_array_equal(view.r, fs.r)
