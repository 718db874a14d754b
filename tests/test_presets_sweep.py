import shutil

import pytest
import yaml

from scripts.apply_preset import apply
from tests.conftest import ROOT
from scripts import sweep
from zerodiffpp.params import load_params


@pytest.mark.parametrize("name, att", [("awa2", 85), ("cub", 312), ("sun", 102)])
def test_presets_apply_and_validate(tmp_path, name, att):
    p = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", p)
    apply(name, "/data/x", p)
    params = load_params(p)
    assert params["gen"]["hidden"] == 4096 and params["gen"]["noise_dim"] == att
    assert params["data"]["root"] == "/data/x"
    assert "# Single source of every setting" in p.read_text()  # comments survive


def test_sweep_summary_and_markdown():
    rows = [{"name": f"n{i}", "method": "zerodiffpp", "seen_ratio": 0.1, "seed": i, "T1": 0.5 + 0.1 * i, "U": 0.4,
             "S": 0.8, "H": 0.5, "spurious_seen": 0.1, "spurious_unseen": 0.2} for i in range(3)]
    s = sweep.summarise(rows)
    assert s[0]["n"] == 3 and s[0]["T1_mean"] == pytest.approx(0.6) and s[0]["T1_std"] == pytest.approx(0.1)
    assert "60.0 ± 10.0" in sweep.markdown(s)
    names = [n for n, _ in sweep.grid(["zerodiff"], [0.1, 1.0], [0, 1], ["tta.enabled=false"], "x")]
    assert names == ["x-zerodiff-r0p1-s0", "x-zerodiff-r0p1-s1", "x-zerodiff-r1p0-s0", "x-zerodiff-r1p0-s1"]
