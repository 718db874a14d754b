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
