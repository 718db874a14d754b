"""Per-epoch curves through DVCLive, DVC's own logger: `dvclive/<curve>/` holds `metrics.json` (the
last epoch's values: `dvc exp show`, `dvc metrics diff`) and `plots/metrics/<name>.tsv` (`dvc plots
show`, DVC's editor integrations). Each epoch is written when it ends, so the curves can be watched
while `dvc exp run` trains. dvc.yaml declares both as the stage's metrics and plots; the report
stage draws the same files into plots/training_curves.png for offline reading."""
from __future__ import annotations

import csv
from pathlib import Path

class LiveLog:
    """One curve (the SC encoder's, the DRG's, the generator's, DiffTTA's, the classifiers'): a DVCLive
    run in its directory (paths.*_LIVE), one step per epoch. NaN (a diagnostic on the epochs it skips, a
    stage that trained nothing) is written as it is, as the curve holds it; metrics.json keeps each
    metric's last value."""

    def __init__(self, directory: Path | str):
        from dvclive import Live  # DVC's logger; imported here so that the package's core does not need it
        # no experiment of its own (DVC runs the stage), no dvc.yaml edits (dvc.yaml declares the files)
        self.live = Live(dir=str(directory), save_dvc_exp=False, dvcyaml=None, report=None)
        self.logged = False

    def epoch(self, row: dict) -> None:
        """One epoch's row of a training.Curve (its `step` is the epoch)."""
        self.live.step = int(row["step"])
        for name, value in row.items():
            if name != "step":
                self.live.log_metric(name, float(value))
        self.live.make_summary()
        self.logged = True

    def rows(self, rows: list[dict]) -> None:
        for row in rows:
            self.epoch(row)

    def end(self, *empty: str) -> None:
        """Close the run. When nothing was trained (no DiffTTA, supplied SC features), the metrics named
        in `empty` are written once as NaN, so that the files dvc.yaml declares exist."""
        if not self.logged and empty:
            self.epoch({"step": 0, **{name: float("nan") for name in empty}})
        self.live.end()


def read_curve(curve_dir: Path | str) -> dict[str, tuple[list[float], list[float]]]:
    """{metric: (steps, values)} of a DVCLive curve directory."""
    out = {}
    for tsv in sorted(Path(curve_dir).glob("plots/metrics/**/*.tsv")):
        with open(tsv) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        name = tsv.relative_to(Path(curve_dir) / "plots" / "metrics").with_suffix("").as_posix()
        out[name] = ([float(r["step"]) for r in rows], [float(r[tsv.stem]) for r in rows])
    return out
