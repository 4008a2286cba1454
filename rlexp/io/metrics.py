"""What a run reports as it goes: TensorBoard scalars and hyperparameters, and a progress bar or log lines."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary
from torch.utils.tensorboard.writer import FileWriter
from tqdm import tqdm

from rlexp.config.compat import flatten
from rlexp.errors import RunFailure
from rlexp.io import OBJECTIVE
from rlexp.io.trackers import MlflowSettings, WandbSettings, make_trackers

log = logging.getLogger("rlexp")


def _quiet_writer_threads(args: threading.ExceptHookArgs) -> None:
    """TensorBoard's writer thread ends on a write error (a full disk, a file-size limit, a deleted run directory)
    with a traceback of its own; the writer raises the same error again at its next call from the run, which
    reports it in one line (RunLogger), so that traceback is left out. Every other thread's error is reported."""
    if isinstance(args.thread, _AsyncWriterThread) and isinstance(args.exc_value, OSError):
        return
    _threads_excepthook(args)


_threads_excepthook = threading.excepthook


class RunLogger:
    """TensorBoard writer (and the other trackers of `log.backends`, rlexp/io/trackers.py) plus human-facing
    progress: a tqdm bar in a terminal, periodic lines otherwise. A write that fails is a RunFailure naming the
    directory and the OS's reason."""

    QUEUE = 1000   # events queued for the writer's thread (SummaryWriter's default: 10)

    def __init__(self, log_dir: Path, total_steps: int, start_step: int, progress: str,
                 hyperparameters: dict[str, Any], backends: tuple[str, ...] = ("tensorboard",),
                 wandb: WandbSettings | None = None, mlflow: MlflowSettings | None = None) -> None:
        threading.excepthook = _quiet_writer_threads
        self.log_dir = log_dir
        flat = flatten(hyperparameters)
        self.trackers = make_trackers(list(backends), log_dir, start_step, flat, wandb, mlflow)
        self.writer: SummaryWriter | None = None
        # The HParams tab's records of this run: its start (with the hyperparameters) and, once it completes, its
        # end. No experiment record: TensorBoard then builds the tab from every run of a sweep (the union of their
        # hyperparameters, marking those that differ) instead of copying the first run's.
        _, self._session_start, self._session_end = hparams_summary(flat, {OBJECTIVE: 0.0})
        # The writer's thread writes the events; with its default queue of 10 events the loop waited on that
        # thread whenever episodes ended in bursts (many envs, many seeds): a deeper queue lets it write them later.
        if "tensorboard" in backends:
            with self._writing():
                if start_step:
                    # A resumed run: TensorBoard drops what the interrupted process logged after its checkpoint
                    # (purge_step), so the curves continue without duplicated or zig-zag points.
                    self.writer = SummaryWriter(str(log_dir), purge_step=start_step + 1, max_queue=self.QUEUE)
                else:
                    self.writer = SummaryWriter(str(log_dir), max_queue=self.QUEUE)
                    self._write_hyperparameters(flat)
        self.total_steps = total_steps
        if progress == "auto":  # the value itself is checked by config.validate
            progress = "bar" if sys.stderr.isatty() else "lines"
        self.mode = progress
        self.bar = (tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)
                    if progress == "bar" else None)
        self.line_every = max(total_steps // 20, 1)
        self._next_line = start_step + self.line_every
        self._bar_step = start_step
        self.last_return: float | None = None
        self.last_eval: float | None = None

    def _write_hyperparameters(self, flat: dict[str, Any]) -> None:
        rows = "\n".join(f"|{k}|{v}|" for k, v in flat.items())
        assert self.writer is not None   # (made just before)
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")
        self._file_writer().add_summary(self._session_start)

    def _file_writer(self) -> FileWriter:
        """The writer's FileWriter (made by its __init__; torch's annotations leave it None)."""
        assert self.writer is not None   # (asked for only where TensorBoard is written)
        return cast(FileWriter, self.writer.file_writer)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise RunFailure(f"could not write the TensorBoard events in {self.log_dir}: "
                             f"{error.strerror or error}") from None

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            with self._writing():
                for tag, value in values.items():
                    self.writer.add_scalar(tag, value, step)
        for tracker in self.trackers:
            tracker.scalars(values, step)

    def flush(self) -> None:
        """Before a resumable checkpoint: the other trackers' stores hold every point logged so far (MLflow sends its
        points in batches), so a resumed run finds there every point its checkpoint covers."""
        for tracker in self.trackers:
            tracker.flush()

    def episode(self, episodic_return: float, episodic_length: int, step: int) -> None:
        self.scalars({"charts/episodic_return": episodic_return, "charts/episodic_length": episodic_length}, step)
        self.last_return = episodic_return

    def evaluation(self, mean: float, std: float, step: int) -> None:
        self.scalars({"eval/mean_return": mean, "eval/std_return": std}, step)
        self.last_eval = mean
        log.info("step %d/%d  eval return %.2f +/- %.2f", step, self.total_steps, mean, std)

    def progress(self, step: int, sps: float) -> None:
        if self.bar is not None:
            self.bar.update(step - self._bar_step)
            self._bar_step = step
            postfix = {"SPS": f"{sps:.0f}"}
            if self.last_return is not None:
                postfix["return"] = f"{self.last_return:.1f}"
            if self.last_eval is not None:
                postfix["eval"] = f"{self.last_eval:.1f}"
            self.bar.set_postfix(postfix, refresh=False)
        elif self.mode == "lines" and step >= self._next_line:
            self._next_line = (step // self.line_every + 1) * self.line_every
            last = "n/a" if self.last_return is None else f"{self.last_return:.2f}"
            log.info("step %d/%d (%.0f%%)  episodic return %s  SPS %.0f",
                     step, self.total_steps, 100.0 * step / self.total_steps, last, sps)

    def close(self, completed: bool = False) -> None:
        """Flushes and closes the events file (and an unfinished run's other trackers). A write that fails then is
        raised (RunFailure) for a run that completed; a run that did not is already ending on its own error, which
        is the one to report."""
        if self.bar is not None:
            self.bar.close()
        if not completed:   # (a completed run's trackers are closed by `end`, once its results.json is written)
            with contextlib.suppress(RunFailure):
                self.end(completed=False)
        try:
            if self.writer is not None:
                with self._writing():
                    if completed:
                        self._file_writer().add_summary(self._session_end)
                    self.writer.close()
        except RunFailure:
            if completed:
                raise

    def end(self, completed: bool = True) -> None:
        """Closes the other trackers; a completed run's once its results.json is written (W&B saves it)."""
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.close(completed)


class StepTimer:
    """Environment steps per second since the timer started."""

    def __init__(self, start_step: int = 0) -> None:
        self.start_step = start_step
        self.start_time = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    def sps(self, step: int) -> float:
        return (step - self.start_step) / max(self.elapsed(), 1e-9)
