"""The test-split log (results/test-log.jsonl): every study run scored on a test split is appended,
failures included, so that nothing chosen after a disappointing test number can hide. One JSON line
per finished job of a study (written as it ends, so a stopped study leaves what it finished) and one per
failure: when, the commit the study started on (and whether tracked files had uncommitted edits), the
command, the settings (preset, `--set`s), what it evaluated and each run's numbers (or the failure)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "results" / "test-log.jsonl"  # ZERODIFFPP_TEST_LOG names another file (the tests' own)
NUMBERS = ("method", "variant", "seed", "seen_ratio", "T1", "U", "S", "H", "calibration")


def commit() -> str:
    """HEAD of the repository, with '+uncommitted' when tracked files other than results/ differ from it
    (results/ holds what studies write, this log and their rows files, not the code they ran)."""
    run = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True,  # noqa: E731
                                       cwd=REPO).stdout.strip()
    head = run("rev-parse", "--short=12", "HEAD") or "unknown"
    edited = run("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results")
    return head + ("+uncommitted" if edited else "")


def append(study: str, settings: dict, rows: list[dict], failed: list[str] | None = None,
           log: Path | None = None, started_on: str | None = None) -> dict:
    """Append one entry; returns it. `rows` keep only the numbers of `NUMBERS` they have; `started_on`
    is the `commit()` the study started on (the code its runs ran; default: now)."""
    entry = {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "commit": started_on or commit(),
             "study": study,
             "command": " ".join(sys.argv), "settings": settings,
             "runs": [{k: r[k] for k in NUMBERS if k in r} for r in rows], "failed": failed or []}
    log = Path(log or os.environ.get("ZERODIFFPP_TEST_LOG") or LOG)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry
