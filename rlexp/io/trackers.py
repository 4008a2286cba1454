"""Where a run's scalars go besides (or instead of) TensorBoard: `log.backends`.

- `tensorboard` (the default): the events files of rlexp/io/metrics.py (RunLogger).
- `csv`: `<run_dir>/metrics.csv`, one row per scalar (`step,tag,value,wall_time`: the same tags and steps as
  TensorBoard's, wall_time in seconds since the epoch), and `<run_dir>/params.csv` (the composed config, flattened
  keys, as TensorBoard's hyperparameters), for pandas or a spreadsheet: `pd.read_csv(...).pivot_table(index="step",
  columns="tag", values="value")`.

A resumed run continues the same files at the same step: the rows a killed process wrote after the checkpoint the
run resumes from are dropped (as TensorBoard's purge_step drops its points), with a row cut in half by the kill, so
the file holds each point once, as the uninterrupted run's does.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from rlexp.errors import RunFailure

#: The backends `log.backends` may name.
BACKENDS = ("tensorboard", "csv")


class Tracker(Protocol):
    """A destination of a run's scalars other than TensorBoard (RunLogger calls it beside its own writer)."""

    def scalars(self, values: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class CsvTracker:
    """metrics.csv (`step,tag,value,wall_time`, one row per scalar) and params.csv (`key,value`) in the run
    directory."""

    HEADER = ("step", "tag", "value", "wall_time")

    def __init__(self, run_dir: Path, start_step: int, params: Mapping[str, Any]) -> None:
        self.path = run_dir / "metrics.csv"
        try:
            if start_step:
                self._purge_after(start_step)
            if not start_step or not (run_dir / "params.csv").exists():   # (a resume that adds csv writes it too)
                with (run_dir / "params.csv").open("w", newline="") as f:
                    writer = csv.writer(f)
                    writer.writerow(("key", "value"))
                    writer.writerows(params.items())
            fresh = not self.path.exists()
            self.file = self.path.open("a", newline="")
            self.writer = csv.writer(self.file)
            if fresh:
                self.writer.writerow(self.HEADER)
                self.file.flush()
        except OSError as error:
            raise RunFailure(f"could not write {self.path}: {error.strerror or error}") from None

    def _purge_after(self, step: int) -> None:
        """Keep the rows up to `step` (a resumed run's checkpoint), dropping a row the kill cut short; the file is
        replaced whole (written beside it, then renamed), so a second kill leaves the old one or the new."""
        if not self.path.exists():
            return
        kept = []
        with self.path.open(newline="") as f:
            for row in csv.reader(f):
                if tuple(row) == self.HEADER:
                    continue
                try:
                    if len(row) == 4 and int(row[0]) <= step:
                        float(row[2]), float(row[3])
                        kept.append(row)
                except ValueError:
                    continue   # (a row the kill cut short)
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.HEADER)
            writer.writerows(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, self.path)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        now = round(time.time(), 3)
        try:
            self.writer.writerows((step, tag, repr(float(value)), now) for tag, value in values.items())
            self.file.flush()
        except OSError as error:
            raise RunFailure(f"could not write {self.path}: {error.strerror or error}") from None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as error:
            raise RunFailure(f"could not write {self.path}: {error.strerror or error}") from None


def make_trackers(backends: list[str], run_dir: Path, start_step: int, params: Mapping[str, Any]) -> list[Tracker]:
    """The trackers `backends` names besides TensorBoard (which RunLogger writes itself)."""
    trackers: list[Tracker] = []
    if "csv" in backends:
        trackers.append(CsvTracker(run_dir, start_step, params))
    return trackers
