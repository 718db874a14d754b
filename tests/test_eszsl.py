import numpy as np
import pytest

from tests.conftest import make_xlsa17
from zerodiffpp.baselines.eszsl import GRID, eszsl_fit, eszsl_t1, select_on_validation
from zerodiffpp.data.splits import prepare_split
from zerodiffpp.data.xlsa17 import load_xlsa17


def test_eszsl_solves_its_normal_equations():
    """V minimises ||X^T V S - Y||^2 + gamma ||V S||^2 + lambda ||X^T V||^2 + gamma lambda ||V||^2 on the
    centred features X (D x N, the training mean removed), so
    (X X^T + gamma I) V (S S^T + lambda I) = X Y S^T (S: A x C)."""
    rng = np.random.default_rng(0)
    x, y, att = rng.random((20, 5)) + 3, rng.integers(0, 4, 20), rng.random((6, 3))
    classes = np.array([0, 1, 2, 3])
    gamma, lam = 0.1, 10.0
    model = eszsl_fit(x, y, att, classes, gamma, lam)
    targets = -np.ones((20, 4))
    targets[np.arange(20), y] = 1
    s, xc = att[classes].T, x - x.mean(axis=0)
    lhs = (xc.T @ xc + gamma * np.eye(5)) @ model.v @ (s @ s.T + lam * np.eye(3))
    assert model.v.shape == (5, 3)
    assert np.allclose(model.mean, x.mean(axis=0))
    assert np.allclose(lhs, xc.T @ targets @ s.T)


def test_eszsl_transfers_when_features_are_linear_in_the_attributes():
    """x = P a_y: a map fitted on 4 classes recognises 2 classes it never saw; labels are ids, not positions."""
    rng = np.random.default_rng(1)
    att = rng.random((6, 3))
    proj = rng.normal(size=(3, 8))
    seen, unseen = np.array([0, 2, 3, 5]), np.array([1, 4])
    y_seen, y_unseen = np.repeat(seen, 10), np.repeat(unseen, 10)
    model = eszsl_fit(att[y_seen] @ proj, y_seen, att, seen, 0.001, 0.001)
    pred = model.predict(att[y_unseen] @ proj, att, unseen)
    assert (pred == y_unseen).all()
    assert set(model.predict(att[y_seen] @ proj, att, seen)) <= set(seen)


def test_regularisers_are_chosen_on_validation_folds_only(tmp_path):
    fs = load_xlsa17(make_xlsa17(tmp_path / "TOY", n_seen=5, n_unseen=2, att_dim=4), "TOY")
    names = fs.class_names[fs.seen_classes]
    folds = [prepare_split(fs, 1.0, 0, "validation", f"{names[0]},{names[1]}")[0],
             prepare_split(fs, 1.0, 0, "validation", f"{names[2]},{names[3]}")[0]]
    best, scores = select_on_validation(folds)
    assert len(scores) == len(GRID) ** 2 and all(len(s) == 2 for s in scores.values())
    assert np.mean(scores[best]) == max(np.mean(s) for s in scores.values())
    assert scores[best] == [eszsl_t1(f, *best) for f in folds]


def test_reference_script_prints_validation_and_test_rows(tmp_path, monkeypatch, capsys):
    from scripts import eszsl_reference
    from zerodiffpp.runtime import paths
    from tests.tiny import tiny_params
    import yaml
    fs = load_xlsa17(make_xlsa17(tmp_path / "TOY", n_seen=5, n_unseen=2, att_dim=4), "TOY")
    monkeypatch.chdir(tmp_path)
    fs.save(paths.FEATURES)
    paths.PARAMS.write_text(yaml.safe_dump(tiny_params()))
    out = eszsl_reference.main(["--folds", "c0,c1", "c2,c3"])
    printed = capsys.readouterr().out
    assert "| validation | c0, c1 | 0.500 |" in printed and "| test | c5, c6 | 0.500 |" in printed
    assert len(out["validation"]) == 2 and 0 <= out["test"] <= 1
    with pytest.raises(SystemExit, match="features.npz: not found"):
        paths.FEATURES.unlink()
        eszsl_reference.main([])
