"""Where a run's scalars go besides (or instead of) TensorBoard: `log.backends`.

- `tensorboard` (the default): the events files of rlexp/io/metrics.py (RunLogger).
- `csv`: `<run_dir>/metrics.csv`, one row per scalar (`step,tag,value,wall_time`: the same tags and steps as
  TensorBoard's, wall_time in seconds since the epoch), and `<run_dir>/params.csv` (the composed config, flattened
  keys, as TensorBoard's hyperparameters), for pandas or a spreadsheet: `pd.read_csv(...).pivot_table(index="step",
  columns="tag", values="value")`.
- `wandb`: a Weights & Biases run per rlexp run (per seed of a many-seeds run), its files in `<run_dir>/wandb/`:
  the flattened config as its config, the same tags and steps as its history, results.json saved with it at the
  end; a sweep's jobs in one group. Online once `wandb login` was run, offline with WANDB_MODE=offline (or
  `log.wandb.mode=offline`: `wandb sync <run_dir>/wandb/offline-run-*` uploads it later). `pip install "rlexp[wandb]"`.

A resumed run continues the same files at the same step: the rows a killed process wrote after the checkpoint the
run resumes from are dropped (as TensorBoard's purge_step drops its points), with a row cut in half by the kill, so
the file holds each point once, as the uninterrupted run's does. W&B's run continues under its id (kept in
`<run_dir>/wandb_run.json`); online, the points the killed process logged past the checkpoint are kept and the
resumed run logs from the step after them (exact resume logs the same values there); offline, each process writes
its own offline run of that id, which `wandb sync` uploads in order.

A tracker's package is imported only when its backend is selected.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rlexp.errors import RunFailure


@dataclass(frozen=True)
class WandbSettings:
    project: str
    entity: str | None = None
    group: str | None = None    # (a sweep's jobs: the sweep's directory, when log.wandb.group is null)
    name: str | None = None     # (null: the run directory's name)
    mode: str | None = None     # online | offline | disabled; null: W&B's own choice (WANDB_MODE, or online)


class Tracker(Protocol):
    """A destination of a run's scalars other than TensorBoard (RunLogger calls it beside its own writer)."""

    def scalars(self, values: Mapping[str, float], step: int) -> None: ...

    def close(self, completed: bool) -> None:
        """The run ended (`completed`: and its results.json is written)."""


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
            fresh = not start_step or not self.path.exists()   # (a new run owns the file: one refused there left it)
            self.file = self.path.open("w" if fresh else "a", newline="")
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

    def close(self, completed: bool) -> None:
        try:
            self.file.close()
        except OSError as error:
            raise RunFailure(f"could not write {self.path}: {error.strerror or error}") from None


class WandbTracker:
    """A W&B run (rlexp/io/trackers.py's module doc)."""

    def __init__(self, run_dir: Path, start_step: int, params: Mapping[str, Any], settings: WandbSettings) -> None:
        import wandb

        record = run_dir / "wandb_run.json"
        saved = json.loads(record.read_text()) if start_step and record.is_file() else {}
        run_id = saved.get("id") or uuid.uuid4().hex[:8]
        if not saved:   # (written before the run starts: a kill right after init still resumes the same run)
            partial = record.with_name(record.name + ".partial")
            partial.write_text(json.dumps({"id": run_id}))
            os.replace(partial, record)
        self.run = wandb.init(project=settings.project, entity=settings.entity, group=settings.group,
                              name=settings.name or run_dir.name, id=run_id, resume="allow", dir=str(run_dir),
                              config=dict(params), mode=settings.mode, reinit="create_new",  # type: ignore[arg-type]
                              settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                                      save_code=False))
        # W&B's history only moves forward: a resumed online run continues after the last step it holds
        self.next_step = int(self.run.step) if start_step else 0
        self.run_dir = run_dir

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if step >= self.next_step:
            self.run.log(dict(values), step=step)

    def close(self, completed: bool) -> None:
        if completed:   # results.json saved with the run (a copy in its files), its figures in the run's summary
            results = json.loads((self.run_dir / "results.json").read_text())
            self.run.summary.update({key: value for key, value in results.items()
                                     if isinstance(value, (int, float, str)) and not isinstance(value, bool)})
            copy = Path(self.run.dir) / "results.json"
            shutil.copyfile(self.run_dir / "results.json", copy)
            self.run.save(str(copy), base_path=self.run.dir, policy="now")
        self.run.finish(exit_code=0 if completed else 1)


def make_trackers(backends: list[str], run_dir: Path, start_step: int, params: Mapping[str, Any],
                  wandb: WandbSettings | None = None) -> list[Tracker]:
    """The trackers `backends` names besides TensorBoard (which RunLogger writes itself)."""
    trackers: list[Tracker] = []
    if "csv" in backends:
        trackers.append(CsvTracker(run_dir, start_step, params))
    if "wandb" in backends:
        trackers.append(WandbTracker(run_dir, start_step, params, wandb or WandbSettings("rlexp")))
    return trackers
