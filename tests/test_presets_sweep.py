import shutil

import pytest
import yaml

from scripts.apply_preset import apply
from tests.conftest import ROOT
from scripts import sweep
from zerodiffpp.runtime.params import load_params


@pytest.mark.parametrize("name, att, counts", [("awa2", 85, (5400, 1800, 600)), ("cub", 312, (1440, 440, 140)),
                                               ("sun", 102, (400, 120, 40))])
def test_presets_carry_the_official_settings(tmp_path, name, att, counts):
    """Widths 4096; noise, r- and t-embedding widths equal to the attribute size; syn_num per seen
    ratio, also the classifier's batch; posterior fakes, the GP rule on the sum; calibration chosen on held-out
    seen classes of the dataset (auto), never a number carried over from the toy."""
    from zerodiffpp.runtime.params import for_ratio
    p = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", p)
    apply(name, "/data/x", p)
    params = load_params(p)
    g = params["gen"]
    assert g["hidden"] == g["critic_hidden"] == g["dec_hidden"] == 4096
    assert g["noise_dim"] == g["cond_dim"] == params["diffusion"]["time_dim"] == params["drg"]["noise_dim"] == att
    assert (g["fake_latent"], g["adaptive_gp_input"], params["classifier"]["calibration"]) == ("posterior", "sum", "auto")
    for ratio, count in zip((1.0, 0.3, 0.1), counts):
        resolved = for_ratio(dict(params, train=dict(params["train"], seen_ratio=ratio)))
        assert resolved["synth"]["unseen_per_class"] == resolved["classifier"]["batch_size"] == count
    assert params["data"]["root"] == "/data/x"
    assert "# Single source of every setting" in p.read_text()  # comments survive


@pytest.mark.parametrize("name", [None, "cub", "cub-cpu", "awa2", "sun"])
def test_defaults_and_presets_choose_the_pseudo_labels_calibration_on_the_dataset(tmp_path, name):
    """DiffTTA's pseudo-labels keep their own calibration, chosen on held-out seen classes of the dataset: a value
    from the toy (0.6) erased a 200-class run's seen classes, and the final classifier's validation-chosen value
    collapsed ZeroDiff++'s S when it also set the pseudo-labels (docs/notebook/results.md)."""
    p = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", p)
    if name:
        apply(name, "/data/x", p)
    params = load_params(p)
    assert params["tta"]["calibration"] == "auto"
    assert params["classifier"]["calibration"] == "auto"


@pytest.mark.parametrize("name", ["cub", "cub-cpu", "awa2", "sun"])
def test_a_benchmark_preset_without_its_folder_is_refused_before_params_change(tmp_path, name):
    p = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", p)
    before = p.read_text()
    with pytest.raises(SystemExit, match="pass --root"):
        apply(name, None, p)
    assert p.read_text() == before
    target = tmp_path / "CUB"
    apply(name, str(target), p)  # with a folder it applies; applying again without --root keeps that folder
    apply(name, None, p)
    assert load_params(p)["data"]["root"] == str(target)


def test_sweep_summary_and_markdown():
    rows = [{"name": f"n{i}", "method": "zerodiffpp", "seen_ratio": 0.1, "seed": i, "T1": 0.5 + 0.1 * i, "U": 0.4,
             "S": 0.8, "H": 0.5, "spurious_seen": 0.1, "spurious_unseen": 0.2} for i in range(3)]
    s = sweep.summarise(rows)
    assert s[0]["n"] == 3 and s[0]["T1_mean"] == pytest.approx(0.6) and s[0]["T1_std"] == pytest.approx(0.1)
    assert "60.0 ± 10.0" in sweep.markdown(s)
    names = [n for n, _ in sweep.grid(["zerodiff"], [0.1, 1.0], [0, 1], ["tta.rounds=2"], "x")]
    assert names == ["x-zerodiff-r0p1-s0", "x-zerodiff-r0p1-s1", "x-zerodiff-r1p0-s0", "x-zerodiff-r1p0-s1"]
