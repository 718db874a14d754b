"""results/test-log.jsonl: every test-split study appends what it ran and its numbers, failures included."""
import json

from scripts import test_log


def test_an_entry_names_commit_command_settings_and_numbers(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setattr(test_log, "commit", lambda: "abc123")
    rows = [{"method": "zerodiff", "seed": 0, "seen_ratio": 0.1, "T1": 0.5, "U": 0.4, "S": 0.6, "H": 0.48,
             "calibration": -0.2, "calibration_curve": [[0.0, 1, 1, 1]]}]
    test_log.append("fixture_study", {"set": {"gen.lr": 0.002}}, rows, log=log)
    test_log.append("sweep", {"set": []}, [], failed=["zerodiffpp-r0p1-s0"], log=log)
    first, second = [json.loads(line) for line in log.read_text().splitlines()]
    assert first["commit"] == "abc123" and first["study"] == "fixture_study" and first["settings"] == {"set": {"gen.lr": 0.002}}
    assert first["runs"] == [{k: v for k, v in rows[0].items() if k != "calibration_curve"}] and first["failed"] == []
    assert second["runs"] == [] and second["failed"] == ["zerodiffpp-r0p1-s0"]


def test_the_tests_never_write_the_repositorys_log(monkeypatch, tmp_path):
    import os
    assert os.environ["ZERODIFFPP_TEST_LOG"] != str(test_log.LOG)
    monkeypatch.setattr(test_log, "commit", lambda: "x")
    test_log.append("fixture_study", {}, [])
    assert (tmp_path / "test-log.jsonl").exists()


def test_commit_marks_edited_code_but_not_the_rows_studies_write(tmp_path, monkeypatch):
    import subprocess

    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,  # noqa: E731
                                    check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "rows.jsonl").write_text("{}\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    monkeypatch.setattr(test_log, "REPO", tmp_path)
    assert not test_log.commit().endswith("+uncommitted")
    (tmp_path / "results" / "rows.jsonl").write_text("{}\n{}\n")  # a study's own rows, before a test study
    assert not test_log.commit().endswith("+uncommitted")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert test_log.commit().endswith("+uncommitted")
