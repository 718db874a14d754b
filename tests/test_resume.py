"""Resuming the long stages after a kill (zerodiffpp/runtime/checkpoints.py): a stage killed by a signal in
the middle of an epoch and run again continues from its checkpoint and ends bit-identical to an
uninterrupted run; a changed param or input never resumes."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import make_xlsa17
from tests.test_pipeline import copy_repo
from tests.tiny import tiny_params
from zerodiffpp.runtime.checkpoints import CHECKPOINT_DIR, Checkpoints

SETTINGS = {"every_epochs": 1, "every_minutes": 10.0, "keep": False}
CPU = {"device": "cpu"}
OUTPUTS = {"pretrain": ["models/pretrain/sc_encoder.pt", "models/pretrain/drg.pt", "data/prepared/prepared.npz",
                        "dvclive/sc", "dvclive/drg"],
           "train": ["models/generator/generator.pt", "dvclive/train"],
           "val_train": ["models/validation/generator.pt", "models/validation/drg.pt",
                         "models/validation/prepared.npz", "models/validation/split.json", "dvclive/val_train"],
           "adapt": ["models/adapted/generator.pt", "models/adapted/pseudo_labels.npz", "dvclive/adapt"]}
# the part whose first checkpoint triggers the kill
KILL_AFTER = {"pretrain": "drg.pt", "train": "generator.pt", "val_train": "generator.pt", "adapt": "difftta.pt"}


def _stage(work: Path, stage: str, **popen):
    env = dict(os.environ, TQDM_DISABLE="1")
    return subprocess.Popen([sys.executable, "-m", f"stages.{stage}"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **popen)


def _finish(work: Path, stage: str) -> str:
    proc = _stage(work, stage)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return err


def _contents(work: Path, stage: str) -> dict:
    """Every output of the stage: tensors of the .pt files, arrays of the .npz, rows of the curves."""
    import numpy as np
    out = {}
    for rel in OUTPUTS[stage]:
        path = work / rel
        if rel.endswith(".pt"):
            obj = torch.load(path, weights_only=False)
            out[rel] = {k: v.clone() for k, v in obj.get("state", {}).items()}
        elif rel.endswith(".npz"):
            out[rel] = dict(np.load(path, allow_pickle=False))
        elif rel.endswith(".json"):
            out[rel] = path.read_text()
        else:  # a DVCLive curve: metrics.json and one .tsv per metric
            out[rel] = {f.relative_to(path).as_posix(): f.read_text() for f in sorted(path.rglob("*")) if f.is_file()}
    return out


def _assert_same(a: dict, b: dict) -> None:
    import numpy as np
    assert a.keys() == b.keys()
    for rel in a:
        if rel.endswith(".pt"):
            assert a[rel].keys() == b[rel].keys(), rel
            for k in a[rel]:
                assert torch.equal(a[rel][k], b[rel][k]), (rel, k)
        elif rel.endswith(".npz"):
            for k in a[rel]:
                np.testing.assert_array_equal(a[rel][k], b[rel][k], err_msg=f"{rel}: {k}")
        else:
            assert a[rel] == b[rel], rel


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    data = make_xlsa17(tmp / "AWA2", n_seen=40, n_unseen=10, att_dim=85, x_dim=16, per_class=6, n_val=13)
    work = tmp / "repo"
    work.mkdir()
    copy_repo(work)
    p = tiny_params(data={"name": "AWA2", "root": str(data)}, checkpoint=dict(SETTINGS))
    # enough epochs that a kill lands in the middle of a part, not after it
    p["sc"].update(epochs=20)
    p["drg"].update(epochs=60)
    p["gen"].update(epochs=30)
    p["tta"].update(epochs=15, rounds=2, gate="always")  # a kill inside a round (the gate must not close DiffTTA)
    p["diagnostics"].update(every=7, per_class=5)
    (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    _finish(work, "extract")
    return work


@pytest.mark.parametrize("stage", ["pretrain", "train", "val_train", "adapt"])
def test_a_stage_killed_mid_epoch_resumes_and_ends_bit_identical(work, stage):
    if stage == "adapt":  # DiffTTA's pseudo-labels read the calibrate stage's value
        _finish(work, "calibrate")
    _finish(work, stage)  # uninterrupted
    reference = _contents(work, stage)
    assert not (work / CHECKPOINT_DIR / stage).exists()  # removed once the outputs are written
    proc = _stage(work, stage)
    deadline = time.monotonic() + 120
    while not list((work / CHECKPOINT_DIR / stage).glob(f"*/{KILL_AFTER[stage]}")):
        assert proc.poll() is None and time.monotonic() < deadline, "the stage ended before its first checkpoint"
        time.sleep(0.02)
    time.sleep(0.15)  # into a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the stage finished before it was killed: raise its epochs"
    err = _finish(work, stage)
    assert f"resuming {stage}" in err
    _assert_same(reference, _contents(work, stage))
    assert not (work / CHECKPOINT_DIR / stage).exists()


def _one_stage_repo(tmp_path, monkeypatch):
    """A folder whose dvc.yaml has one stage `s` depending on in.txt, as the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {"deps": ["in.txt"]}}}))
    (tmp_path / "in.txt").write_text("a")


def test_a_changed_param_or_input_never_resumes(tmp_path, monkeypatch):
    _one_stage_repo(tmp_path, monkeypatch)
    params = {"gen": {"lr": 0.1}, "train": CPU, "checkpoint": dict(SETTINGS)}
    first = Checkpoints("s", params, SETTINGS, root=tmp_path / "ck")
    first.part("g").save(3, 10, {"rows": []})
    same = Checkpoints("s", dict(params, checkpoint=dict(SETTINGS, every_epochs=5)), SETTINGS, root=tmp_path / "ck")
    assert same.dir == first.dir and same.part("g").load()["epoch"] == 3  # the settings are not in the key
    other = Checkpoints("s", {"gen": {"lr": 0.2}, "train": CPU, "checkpoint": SETTINGS}, SETTINGS, root=tmp_path / "ck")
    assert other.dir != first.dir and other.part("g").load() is None and not first.dir.exists()
    other.part("g").save(3, 10, {"rows": []})
    (tmp_path / "in.txt").write_text("b")  # a changed input file
    changed = Checkpoints("s", {"gen": {"lr": 0.2}, "train": CPU, "checkpoint": SETTINGS}, SETTINGS,
                          root=tmp_path / "ck")
    assert changed.dir != other.dir and changed.part("g").load() is None


def test_auto_device_keys_cpu_and_gpu_checkpoints_apart(tmp_path, monkeypatch):
    """`train.device: auto` is one params value for two devices: a run resumed where a GPU appeared
    (or went) must not load the other device type's state."""
    _one_stage_repo(tmp_path, monkeypatch)
    params = {"gen": {"lr": 0.1}, "train": {"device": "auto"}, "checkpoint": SETTINGS}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = Checkpoints("s", params, SETTINGS, root=tmp_path / "ck")
    on_cpu.part("g").save(3, 10, {"rows": []})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on_gpu = Checkpoints("s", params, SETTINGS, root=tmp_path / "ck")
    assert on_gpu.dir != on_cpu.dir and on_gpu.part("g").load() is None


def test_an_unreadable_checkpoint_is_reported_and_its_part_starts_afresh(tmp_path, monkeypatch, caplog):
    """A checkpoint cut short (a hard preemption before its bytes reached the disk) must not make
    every rerun crash in torch.load."""
    _one_stage_repo(tmp_path, monkeypatch)
    part = Checkpoints("s", {"train": CPU, "checkpoint": SETTINGS}, SETTINGS, root=tmp_path / "ck").part("g")
    part.save(3, 10, {"rows": []})
    part.path.write_bytes(part.path.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        assert part.load() is None
    assert str(part.path) in caplog.text and "starting this part afresh" in caplog.text


# f-CLSWGAN's train step, in process: its loop saves and resumes as the stage does (the kill is an
# exception raised at the end of an epoch, after that epoch drew its random numbers)
class _Killed(Exception):
    pass


def _fclswgan(tmp_path, kill_at: int | None = None):
    """-> (generator state, curve) of a seeded tiny f-CLSWGAN run checkpointing into tmp_path/ck."""
    import numpy as np
    from zerodiffpp.generators.fclswgan import train_fclswgan
    from zerodiffpp.runtime.session import seed_everything
    rng = np.random.default_rng(0)
    att = rng.random((4, 5)).astype(np.float32)
    y = np.repeat(np.arange(4), 16)
    x = (att[y] @ rng.random((5, 10)) + 0.1 * rng.random((64, 10))).astype(np.float32)
    p = dict(tiny_params()["fclswgan"], epochs=4, batch_size=16)

    def kill(epoch, epochs, ckpt):
        if epoch == kill_at:
            raise _Killed
        return {}

    seed_everything(0)
    part = Checkpoints("s", {"train": CPU}, SETTINGS, root=tmp_path / "ck").part("fclswgan")
    ckpt, rows = train_fclswgan(x, y, att, np.arange(4), p, "cpu", check=kill, part=part)
    return ckpt["state"], rows


def test_fclswgan_interrupted_resumes_bit_identical(tmp_path, monkeypatch, caplog):
    _one_stage_repo(tmp_path, monkeypatch)
    reference, ref_rows = _fclswgan(tmp_path / "uninterrupted")
    with pytest.raises(_Killed):
        _fclswgan(tmp_path / "run", kill_at=2)
    with caplog.at_level("INFO"):
        state, rows = _fclswgan(tmp_path / "run")
    assert "resuming s (fclswgan) at epoch 2 of 4" in caplog.text
    assert rows == ref_rows
    for k in reference:
        assert torch.equal(reference[k], state[k]), k


def test_fclswgan_with_a_truncated_checkpoint_trains_afresh(tmp_path, monkeypatch, caplog):
    _one_stage_repo(tmp_path, monkeypatch)
    reference, _ = _fclswgan(tmp_path / "uninterrupted")
    with pytest.raises(_Killed):
        _fclswgan(tmp_path / "run", kill_at=2)
    [saved] = (tmp_path / "run" / "ck").rglob("fclswgan.pt")
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with caplog.at_level("WARNING"):
        state, _ = _fclswgan(tmp_path / "run")
    assert str(saved) in caplog.text
    for k in reference:
        assert torch.equal(reference[k], state[k]), k
