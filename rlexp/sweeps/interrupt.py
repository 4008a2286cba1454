"""A signal that stops a sweep: the jobs it reaches stop as single runs do (a checkpoint, results.json `interrupted`),
the jobs not started yet do not start, and the sweep still ends with its summary, then the signal's exit status.

The jobs may run in other processes (joblib's workers), so the sweep's state is a file in the sweep directory,
`.interrupted` (the signal's name): a job that stops on a signal writes it, and so does the sweep's own process when
the signal reaches it; a job that starts after it finds it and records that it never ran; the summary reads it,
and removes it.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from rlexp.errors import STOP_SIGNALS, Interrupted

log = logging.getLogger("rlexp")

MARKER = ".interrupted"


def mark_interrupted(sweep_dir: Path, signum: int) -> None:
    """Records that a signal stopped the sweep (kept if one is there: the first signal says how it ended)."""
    marker = sweep_dir / MARKER
    try:
        if not marker.exists():
            marker.write_text(signal.Signals(signum).name + "\n")
    except OSError:   # a sweep directory that cannot be written: its jobs' results.json say it all the same
        pass


def interrupted_by(sweep_dir: Path) -> int | None:
    """The signal that stopped the sweep, if one did."""
    try:
        return int(signal.Signals[(sweep_dir / MARKER).read_text().strip()])
    except (OSError, KeyError):
        return None


def clear(sweep_dir: Path) -> None:
    (sweep_dir / MARKER).unlink(missing_ok=True)


class SweepSignals:
    """The sweep's process between and around its jobs (the launcher waiting on its workers): the first SIGINT or
    SIGTERM is recorded and the launcher left to collect the jobs, which stop on the same signal when it reached
    their processes too (Ctrl-C, `timeout`, systemd and Slurm signal the whole process group; a signal to this
    process alone lets the running jobs finish); a second one raises `Interrupted` at once. Main thread only."""

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir = sweep_dir
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum, "twice: the sweep stopped at once; its jobs may have no results.json")
        self.signum = signum
        mark_interrupted(self.sweep_dir, signum)
        log.warning("%s received: the running jobs stop at their step and save, no other job starts (again to stop "
                    "at once)", signal.Signals(signum).name)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
