"""Where a run's scalars go besides (or instead of) TensorBoard: `log.backends`.

- `tensorboard` (the default): the events files of rlexp/io/metrics.py (RunLogger).
- `csv`: `<run_dir>/metrics.csv`, one row per scalar (`step,tag,value,wall_time`: the same tags and steps as
  TensorBoard's, wall_time in seconds since the epoch), and `<run_dir>/params.csv` (the composed config, flattened
  keys, as TensorBoard's hyperparameters), for pandas or a spreadsheet: `pd.read_csv(...).pivot_table(index="step",
  columns="tag", values="value")`.
- `wandb`: a Weights & Biases run per rlexp run (per seed of a many-seeds run), its files in `<run_dir>/wandb/`:
  the flattened config as its config, the same tags and steps as its history, results.json (and any `rlexp eval`
  video in `<run_dir>/eval/`) saved with it at the end; a sweep's jobs in one group. Online once `wandb login` was
  run, offline with WANDB_MODE=offline (or `log.wandb.mode=offline`: `wandb sync <run_dir>/wandb/offline-run-*`
  uploads it later). `pip install "rlexp[wandb]"`.
- `mlflow`: an MLflow run per rlexp run (per seed of a many-seeds run): the flattened config as its params, the same
  tags and steps as its metrics, results.json (and any `rlexp eval` video in `<run_dir>/eval/`) as artifacts at the
  end, then the status FINISHED (an unfinished run ends KILLED, or FAILED after an error). The store is
  `log.mlflow.tracking_uri`, else MLFLOW_TRACKING_URI, else a local SQLite store: `<run_dir>/mlflow.db` (artifacts
  in `<run_dir>/mlartifacts/`; a many-seeds run's in its directory, a sweep's jobs' in the sweep's directory, one
  store and one experiment, named after that directory, for all of them), which `mlflow ui --backend-store-uri
  sqlite:///<dir>/mlflow.db` shows. Its points are sent in batches (MLflow's log_batch), at the latest at each
  checkpoint, so every point a checkpoint covers is in the store before the checkpoint is. `pip install
  "rlexp[mlflow]"`.

A resumed run continues the same files at the same step: the rows a killed process wrote after the checkpoint the
run resumes from are dropped (as TensorBoard's purge_step drops its points), with a row cut in half by the kill, so
the file holds each point once, as the uninterrupted run's does. W&B's run continues under its id (kept in
`<run_dir>/wandb_run.json`); online, the points the killed process logged past the checkpoint are kept and the
resumed run logs from the step after them (exact resume logs the same values there); offline, each process writes
its own offline run of that id, which `wandb sync` uploads in order.

MLflow's run continues under its id, in the store that holds it (both kept in `<run_dir>/mlflow_run.json`; the local
store as a path relative to the run directory, so a moved directory still finds it), its status RUNNING again.
MLflow cannot delete a metric's points, so the resumed run keeps the killed process's and logs none of its own that
would repeat them: for each tag, it reads the tag's history (the last step S_tag it holds and the n points at S_tag)
and skips the points the resumed run logs before S_tag and its first n at S_tag, logging the rest. Exact resume logs
the same points as the killed process (but the clock's, charts/SPS), in the same order, and the store holds, per
tag, the first points of that sequence (batches are sent in order, each one a transaction), so the run ends with
each point of the uninterrupted run once; timestamps rise within a tag, so MLflow keeps points equal but for their
time apart. (A resume that changes what is logged, such as a non-replayable env's fresh episode, keeps the killed
process's points up to S_tag.) MLflow's params cannot change: a resume logs only keys the run lacks.

A tracker's package is imported only when its backend is selected.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rlexp.errors import Interrupted, RunFailure, TrainingInterrupted

if TYPE_CHECKING:
    from mlflow.entities import Metric

log = logging.getLogger("rlexp")


@dataclass(frozen=True)
class WandbSettings:
    project: str
    entity: str | None = None
    group: str | None = None    # (a sweep's jobs: the sweep's directory, when log.wandb.group is null)
    name: str | None = None     # (null: the run directory's name)
    mode: str | None = None     # online | offline | disabled; null: W&B's own choice (WANDB_MODE, or online)


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str | None = None   # null: MLFLOW_TRACKING_URI, else the local SQLite store
    experiment: str | None = None     # null: "rlexp"; a sweep's jobs: the sweep directory's name
    run_name: str | None = None       # null: the run directory's name (a seed's: `<batch dir>/seed_<s>`)
    group: str | None = None          # a sweep's jobs: the sweep's directory (their store and experiment)
    batch: bool = False               # a seed of a many-seeds run (its store is the batch directory's)


class Tracker(Protocol):
    """A destination of a run's scalars other than TensorBoard (RunLogger calls it beside its own writer)."""

    def scalars(self, values: Mapping[str, float], step: int) -> None: ...

    def flush(self) -> None:
        """Every point logged so far is in the tracker's store (called before each resumable checkpoint)."""

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

    def flush(self) -> None:
        """(Each row is flushed as it is written.)"""

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

    def flush(self) -> None:
        """(W&B's own process sends what the run logs.)"""

    def close(self, completed: bool) -> None:
        if completed:   # results.json saved with the run (a copy in its files), its figures in the run's summary
            results = json.loads((self.run_dir / "results.json").read_text())
            self.run.summary.update({key: value for key, value in results.items()
                                     if isinstance(value, (int, float, str)) and not isinstance(value, bool)})
            for name in artifacts(self.run_dir):
                copy = Path(self.run.dir) / name
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.run_dir / name, copy)
                self.run.save(str(copy), base_path=self.run.dir, policy="now")
        self.run.finish(exit_code=0 if completed else 1)


def artifacts(run_dir: Path) -> list[Path]:
    """What a completed run gives its tracker run as files, relative to its directory: results.json, and the videos
    `rlexp eval video=true` left in eval/."""
    return [Path("results.json"), *(video.relative_to(run_dir) for video in sorted((run_dir / "eval").glob("*.mp4")))]


#: The local store's database and artifacts, in the directory that holds them (a run's, a many-seeds run's, a
#: sweep's), and the record of a run's MLflow run in its run directory.
MLFLOW_DB, MLFLOW_ARTIFACTS, MLFLOW_RECORD = "mlflow.db", "mlartifacts", "mlflow_run.json"


class MlflowTracker:
    """An MLflow run (rlexp/io/trackers.py's module doc), written through `mlflow.MlflowClient`."""

    BATCH = 1000          # MLflow's most metrics in one log_batch
    PARAMS = 100          # its most params in one log_batch
    PARAM_LENGTH = 6000   # its longest param value (MLflow 3)
    EVERY_S = 10.0        # seconds between the batches sent while the run goes (besides one at each checkpoint)

    def __init__(self, run_dir: Path, start_step: int, params: Mapping[str, Any], settings: MlflowSettings) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        logging.getLogger("mlflow").setLevel(logging.WARNING)   # (its store's INFO lines kept out of the run's log)

        self.run_dir, self.metric = run_dir, Metric
        record = run_dir / MLFLOW_RECORD
        saved = json.loads(record.read_text()) if start_step and record.is_file() else {}
        self.uri, local = self._store(saved, settings)
        self.pending: list[Metric] = []
        self.stamps: dict[str, int] = {}   # each key's last timestamp (ms): they rise, so equal points stay apart
        self.skip: dict[str, list[int]] = {}   # a resumed run's: each key's last step in the store, points there
        self.due = time.monotonic() + self.EVERY_S
        with self._calling():
            with _opening(self.uri):
                self.client = MlflowClient(tracking_uri=self.uri)
            run = self._reopen(saved, start_step) if saved else None
            if run is None:
                experiment = settings.experiment or (Path(settings.group).name if settings.group else "rlexp")
                name = settings.run_name or (f"{run_dir.parent.name}/{run_dir.name}" if settings.batch
                                             else run_dir.name)
                run = self.client.create_run(self._experiment(experiment), run_name=name,
                                             tags={"rlexp.run_dir": str(run_dir.resolve())})
                # written before any point: a kill right after still resumes the same run
                partial = record.with_name(record.name + ".partial")
                partial.write_text(json.dumps({"run_id": run.info.run_id, "tracking_uri": self.uri,
                                               "local_store": None if local is None else
                                               os.path.relpath(local, run_dir.resolve())}))
                os.replace(partial, record)
            self.run_id = run.info.run_id
            known = set(run.data.params)   # (MLflow's params cannot change: a resume adds the keys it lacks)
            fresh = {key: str(value)[:self.PARAM_LENGTH] for key, value in
                     ((_mlflow_key(key), value) for key, value in params.items()) if key not in known}
            entries = [Param(key, value) for key, value in fresh.items()]
            for i in range(0, len(entries), self.PARAMS):
                self.client.log_batch(self.run_id, params=entries[i:i + self.PARAMS], synchronous=True)

    def _store(self, saved: dict[str, Any], settings: MlflowSettings) -> tuple[str, Path | None]:
        """The tracking URI, and the local store's directory when the run's store is the default local one: the
        store that holds a resumed run's MLflow run, else log.mlflow.tracking_uri, MLFLOW_TRACKING_URI, or a
        SQLite database in the run's (a many-seeds run's, a sweep's) directory."""
        if saved.get("local_store") is not None:
            local = (self.run_dir / saved["local_store"]).resolve()
            if (local / MLFLOW_DB).is_file():
                return f"sqlite:///{local / MLFLOW_DB}", local
        elif saved.get("tracking_uri"):
            return str(saved["tracking_uri"]), None
        uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            database = _sqlite_path(uri)   # (a relative path made absolute: a resume from elsewhere finds it)
            return (f"sqlite:///{database}" if database is not None else uri), None
        local = (Path(settings.group) if settings.group else
                 self.run_dir.parent if settings.batch else self.run_dir).resolve()
        return f"sqlite:///{local / MLFLOW_DB}", local

    def _reopen(self, saved: dict[str, Any], start_step: int) -> Any:
        """The resumed run's MLflow run, RUNNING again, with the points it holds noted (`skip`); None, with a
        warning, when its store no longer holds it."""
        from mlflow.exceptions import MlflowException

        run_id = str(saved.get("run_id"))
        try:
            run = self.client.get_run(run_id)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            run = None
        if run is None or run.info.lifecycle_stage != "active":
            log.warning("the MLflow run %s (%s) is not in %s any more; a new MLflow run logs from step %d on",
                        run_id, self.run_dir / MLFLOW_RECORD, _shown(self.uri), start_step + 1)
            return None
        self.client.update_run(run_id, status="RUNNING")
        for key in run.data.metrics:
            steps = [metric.step for metric in self.client.get_metric_history(run_id, key)]
            if steps:
                self.skip[key] = [max(steps), steps.count(max(steps))]
        return run

    def _experiment(self, name: str) -> str:
        """The experiment's id, made if it is new (by this job or, at the same time, another job of the sweep);
        a local SQLite store's artifacts beside its database."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            database = _sqlite_path(self.uri)
            artifacts = None if database is None else (database.parent / MLFLOW_ARTIFACTS).as_uri()
            try:
                return str(self.client.create_experiment(name, artifact_location=artifacts))
            except MlflowException:
                found = self.client.get_experiment_by_name(name)   # (made by another job meanwhile)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise RunFailure(f"the MLflow experiment {name!r} in {_shown(self.uri)} is deleted: restore it (mlflow "
                             f"experiments restore --experiment-id {found.experiment_id}) or name another with "
                             f"log.mlflow.experiment")
        return str(found.experiment_id)

    @contextmanager
    def _calling(self) -> Iterator[None]:
        from mlflow.exceptions import MlflowException

        try:
            yield
        except (MlflowException, OSError) as error:   # (requests' errors are OSErrors)
            lines = str(error).strip().splitlines()
            raise RunFailure(f"MLflow could not log to {_shown(self.uri)}: "
                             f"{lines[0] if lines else type(error).__name__}") from None

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        for tag, value in values.items():
            key = _mlflow_key(tag)
            skip = self.skip.get(key)
            if skip is not None:   # a resumed run: the points the store holds already
                if step < skip[0] or (step == skip[0] and skip[1] > 0):
                    skip[1] -= step == skip[0]
                    continue
                del self.skip[key]
            stamp = self.stamps[key] = max(now, self.stamps.get(key, 0) + 1)
            self.pending.append(self.metric(key, float(value), stamp, step))
        if len(self.pending) >= self.BATCH or time.monotonic() >= self.due:
            self.flush()

    def flush(self) -> None:
        with self._calling():
            while self.pending:   # in order, each batch one transaction: the store holds a prefix of the points
                batch = self.pending[:self.BATCH]
                self.client.log_batch(self.run_id, metrics=batch, synchronous=True)
                del self.pending[:len(batch)]
        self.due = time.monotonic() + self.EVERY_S

    def close(self, completed: bool) -> None:
        ending = sys.exc_info()[1]   # (an unfinished run's: the error or the interrupt that ends it)
        with self._calling():
            try:
                self.flush()
                if completed:
                    for name in artifacts(self.run_dir):
                        self.client.log_artifact(self.run_id, str(self.run_dir / name),
                                                 artifact_path=str(name.parent) if name.parent != Path(".") else None)
            finally:
                interrupted = isinstance(ending, (TrainingInterrupted, Interrupted, KeyboardInterrupt))
                self.client.set_terminated(self.run_id, "FINISHED" if completed else
                                           "KILLED" if interrupted else "FAILED")


def _mlflow_key(tag: str) -> str:
    """A tag or config key as MLflow takes it: letters, digits, `_-. /:`, at most 250 characters."""
    return re.sub(r"[^\w\-. /:]", "_", tag)[:250]


def _sqlite_path(uri: str) -> Path | None:
    """The absolute path of a SQLite tracking URI's database file (None: not a SQLite file)."""
    if not uri.startswith("sqlite:///") or uri[len("sqlite:///"):] in ("", ":memory:"):
        return None
    return Path(uri[len("sqlite:///"):].split("?")[0]).resolve()


@contextmanager
def _opening(uri: str) -> Iterator[None]:
    """Where a SQLite store is opened, one process at a time: MLflow makes a new database's tables (and migrates an
    old one's) when a client first opens it, unguarded, so two jobs of a sweep opening their new store at once both
    make them and one fails. They take turns on a lock file beside the database (`flock`: released however the
    holder dies; never the database itself, whose POSIX locks a close of another descriptor would drop)."""
    database = _sqlite_path(uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with (database.parent / f".{database.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _shown(uri: str) -> str:
    """A tracking URI without its credentials (`user:password@`)."""
    return re.sub(r"//[^/@]*@", "//", uri)


def make_trackers(backends: list[str], run_dir: Path, start_step: int, params: Mapping[str, Any],
                  wandb: WandbSettings | None = None, mlflow: MlflowSettings | None = None) -> list[Tracker]:
    """The trackers `backends` names besides TensorBoard (which RunLogger writes itself)."""
    trackers: list[Tracker] = []
    if "csv" in backends:
        trackers.append(CsvTracker(run_dir, start_step, params))
    if "wandb" in backends:
        trackers.append(WandbTracker(run_dir, start_step, params, wandb or WandbSettings("rlexp")))
    if "mlflow" in backends:
        trackers.append(MlflowTracker(run_dir, start_step, params, mlflow or MlflowSettings()))
    return trackers
