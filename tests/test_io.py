import pytest
import torch

from zerodiffpp.runtime import files


def test_save_torch_bytes_depend_on_the_object_only(tmp_path):
    obj = {"state": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"kind": "zerodiff"}}
    files.save_torch(tmp_path / "a" / "generator.pt", obj)
    files.save_torch(tmp_path / "b" / "drg.pt", obj)
    assert (tmp_path / "a" / "generator.pt").read_bytes() == (tmp_path / "b" / "drg.pt").read_bytes()
    assert torch.equal(files.load_torch(tmp_path / "b" / "drg.pt")["state"]["w"], obj["state"]["w"])


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []


def test_a_write_reaches_the_disk_before_its_rename_and_the_rename_after(tmp_path, monkeypatch):
    """A hard preemption right after the rename must find the whole file: its data is fsynced before
    the rename (otherwise the rename can reach the disk first and leave a truncated checkpoint), and
    the folder after it (so the rename itself survives)."""
    events, fsync, replace = [], files.os.fsync, files.os.replace

    def logged_fsync(fd):
        events.append(("fsync", files.os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def logged_replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", logged_fsync)
    monkeypatch.setattr(files.os, "replace", logged_replace)
    target = tmp_path / "ck" / "generator.pt"
    files.save_torch(target, {"w": torch.ones(3)})
    [(_, tmp, dst)] = [e for e in events if e[0] == "replace"]
    assert dst == str(target)
    assert events == [("fsync", tmp), ("replace", tmp, dst), ("fsync", str(target.parent))]
