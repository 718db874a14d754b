import shutil

import pytest
import yaml

from tests.conftest import ROOT
from zerodiffpp.runtime.errors import ParamsError
from zerodiffpp.runtime.params import load_params, load_stage_params, validate


@pytest.fixture
def params():
    return yaml.safe_load(open(ROOT / "params.yaml"))


def test_committed_params_are_valid():
    load_params(ROOT / "params.yaml")


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p["train"].update(seen_ratio=0.0), "train.seen_ratio: expected a value in (0"),
    (lambda p: p["train"].update(seen_ratio=1.5), "train.seen_ratio"),
    (lambda p: p["train"].update(seen_ration=0.1), "unknown key 'train.seen_ration'"),
    (lambda p: p.update(methd="zerodiff"), "unknown key 'methd'"),
    (lambda p: p["data"].update(name="IMAGENET"), "data.name: expected one of"),
    (lambda p: p["gen"].update(lr="1e-3"), "write decimals like 0.001"),
    (lambda p: p["gen"].pop("lr"), "gen.lr is missing"),
    (lambda p: p["diffgen"].update(start_step=4), "diffgen.start_step must be < diffusion.timesteps"),
    (lambda p: p["data"].update(name="CUB", root=""), "data.root must name the dataset's folder: an xlsa17 folder"),
    (lambda p: p["data"].update(root=""), "data.root must name the dataset's folder: zerodiffpp/assets"),
    (lambda p: p["data"].update(protocol="test", val_classes="cat,horse"),
     "applies only under data.protocol: validation"),
])
def test_bad_params_name_the_key(params, mutate, message):
    mutate(params)
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        validate(params, "params.yaml")


def test_stage_sees_only_declared_keys(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    p = load_stage_params("classify", tmp_path / "params.yaml", tmp_path / "dvc.yaml")
    assert p["classifier"]["epochs"] > 0
    with pytest.raises(KeyError, match="stage 'classify' reads param 'gen'"):
        p["gen"]
    with pytest.raises(KeyError, match="train.compile"):
        p["train"]["compile"]


def test_counts_may_be_given_per_seen_ratio(params):
    """The official scripts scale syn_num (also the classifier's batch) with the seen ratio: a count is
    one number or {ratio: count}, and a mapping without the run's ratio is refused before any work."""
    from zerodiffpp.runtime.params import for_ratio
    counts = {1.0: 5400, 0.3: 1800, 0.1: 600}
    params["synth"]["unseen_per_class"] = counts
    params["classifier"]["calibration"] = {1.0: -0.1, 0.3: 0.26, 0.1: "auto"}
    params["train"]["seen_ratio"] = 0.1
    validate(params, "params.yaml")
    resolved = for_ratio(params)  # what every step sees: plain values for the run's ratio
    assert resolved["synth"]["unseen_per_class"] == 600 and resolved["classifier"]["calibration"] == "auto"
    assert params["synth"]["unseen_per_class"] is counts  # the loaded params are left as they are
    params["train"]["seen_ratio"] = 0.3
    resolved = for_ratio(params)
    assert resolved["synth"]["unseen_per_class"] == 1800 and resolved["classifier"]["calibration"] == 0.26
    assert for_ratio(dict(params, synth=dict(params["synth"], unseen_per_class=300)))["synth"]["unseen_per_class"] == 300
    params["train"]["seen_ratio"] = 0.5
    with pytest.raises(ParamsError, match=r"synth.unseen_per_class gives counts for seen ratios \[0.1, 0.3, 1.0\], "
                                          r"not for train.seen_ratio 0.5"):
        validate(params, "params.yaml")
    params["synth"]["unseen_per_class"] = {0.3: 0}
    with pytest.raises(ParamsError, match="synth.unseen_per_class: expected a value in"):
        validate(params, "params.yaml")


def test_command_line_assignments_are_typed_and_only_change_existing_keys():
    from zerodiffpp.runtime.params import apply_assignment, assign, parse_assignment
    assert parse_assignment("gen.epochs={1.0: 20, 0.1: 150}") == ("gen.epochs", {1.0: 20, 0.1: 150})
    assert parse_assignment("classifier.calibration=auto") == ("classifier.calibration", "auto")
    assert parse_assignment("gen.lr=0.001") == ("gen.lr", 0.001)
    p = {"gen": {"lr": 0.1, "sub": {"a": 1}}}
    assign(p, "gen.lr", 0.002)
    assign(p, "gen.sub.a", 3)
    assert p == {"gen": {"lr": 0.002, "sub": {"a": 3}}}
    for key in ("gen.lrr", "gen.lr.x", "genn.lr", "lr"):
        with pytest.raises(ParamsError, match=f"--variant {key}: params.yaml has no such key"):
            assign(p, key, 1, "--variant")
    assert p == {"gen": {"lr": 0.002, "sub": {"a": 3}}}  # a refused key changes nothing
    with pytest.raises(ParamsError, match=r"--variant 'tta.no_such_key=1': params.yaml has no key tta.no_such_key"):
        apply_assignment(p, "tta.no_such_key=1", "--variant")


def test_make_repro_checks_params_before_dvc_names_an_empty_data_root(tmp_path):
    """DVC fails on an empty data.root while loading dvc.yaml ("unexpected error"); `make repro` runs
    the params check first, which names the key."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    bad = tmp_path / "params.yaml"
    bad.write_text((ROOT / "params.yaml").read_text().replace("root: zerodiffpp/assets", 'root: ""', 1))
    out = subprocess.run([sys.executable, "-m", "scripts.check_params", str(bad)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 1 and "data.root must name the dataset's folder" in out.stderr
    recipe = (ROOT / "Makefile").read_text().split("\nrepro:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("python -m scripts.check_params") < recipe.index("dvc repro")


@pytest.mark.parametrize("value, message", [(-1, r"expected a value in \[0, inf\], got -1"),
                                            ({0.1: 2.5}, "expected an integer, got 2.5")])
def test_seen_per_class_allows_zero_and_refuses_negative_or_fractional_counts(value, message):
    """synth.seen_per_class 0 is the paper (no generated seen feature); a count below 0 or a fraction is refused
    with the key's name, also per seen ratio."""
    from zerodiffpp.runtime.params import SCHEMA, _check_value
    _check_value(SCHEMA["synth"]["seen_per_class"], 0, "synth.seen_per_class")
    _check_value(SCHEMA["synth"]["seen_per_class"], {1.0: 0, 0.1: 30}, "synth.seen_per_class")
    with pytest.raises(ParamsError, match=r"synth.seen_per_class: " + message):
        _check_value(SCHEMA["synth"]["seen_per_class"], value, "synth.seen_per_class")


def test_classifier_normalise_is_a_boolean_or_one_per_seen_ratio():
    """classifier.normalise: true / false, or one per train.seen_ratio, resolved by for_ratio; a number or
    a string is refused, naming the key."""
    from zerodiffpp.runtime.params import SCHEMA, _check_value, for_ratio
    spec = SCHEMA["classifier"]["normalise"]
    for ok in (True, False, {1.0: False, 0.3: True, 0.1: True}):
        _check_value(spec, ok, "classifier.normalise")
    for bad in (1, "true", {0.3: 1}):
        with pytest.raises(ParamsError, match="classifier.normalise: expected true or false"):
            _check_value(spec, bad, "classifier.normalise")
    params = load_params(ROOT / "params.yaml")
    params["classifier"]["normalise"] = {1.0: False, 0.3: True, 0.1: True}
    params["train"]["seen_ratio"] = 0.3
    assert for_ratio(params)["classifier"]["normalise"] is True
    params["train"]["seen_ratio"] = 1.0
    assert for_ratio(params)["classifier"]["normalise"] is False
