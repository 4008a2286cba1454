"""What can stop a command, and the exit code each one ends with.

- `ConfigError` (exit 2): bad input, found before anything is built, trained or written.
- `RunFailure` (exit 1): the run started but cannot go on (a non-finite loss, an env emitting NaN,
  a checkpoint that cannot be written or read); the last good checkpoint is named in the message.
- `TrainingInterrupted` (exit 130 for SIGINT, 143 for SIGTERM): the user stopped the run; a checkpoint was saved.
- `Interrupted` (exit 130/143): SIGINT or SIGTERM anywhere else (`signals_interrupt`, installed by the entry point:
  imports, Hydra's composition, a job's setup, `rlexp eval`/`plot`/`export`); a command may add what it was doing.
- `SweepFailed` (exit 1): some jobs of a multirun did not complete; the others ran to the end.

`TrainingInterrupted` and `SweepFailed` derive from BaseException, like KeyboardInterrupt: Hydra's launchers
treat an `Exception` as one failed job and go on with the sweep (an interrupt must stop it), and Hydra's
callback runner turns an `Exception` into a warning (a failed sweep must set the exit code).

A missing optional dependency is a ConfigError naming the extra that installs it (`needs_extra`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from string import Template


class ConfigError(ValueError):
    """A bad setting: the command stops before anything is built, with this one-line message."""


class RunFailure(RuntimeError):
    """A fault during a run that stops it; the message names the step, the quantity and the last good checkpoint."""


class NonFiniteError(RunFailure):
    """A loss, gradient norm or Q-value became NaN or infinite."""


class EnvFault(RunFailure):
    """The environment returned a non-finite observation or reward."""


class CheckpointError(RunFailure):
    """A checkpoint could not be written, or is unreadable (truncated, corrupt, not an rlexp checkpoint)."""


class OutputLost(RunFailure):
    """stdout cannot be written (closed, a full disk, an I/O error): raised once, at the first write that fails
    (rlexp/commands/streams.py); the command's files are written as usual."""


class TrainingInterrupted(BaseException):
    """SIGINT or SIGTERM arrived; the runner finished its step and saved a checkpoint."""

    def __init__(self, signum: int, step: int, checkpoint: str | None, unfinished: str | None = None) -> None:
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        saved = f"checkpoint saved to {checkpoint}" if checkpoint else "no checkpoint saved"
        if unfinished:   # the step could not finish (an env worker that hangs): no new checkpoint
            saved = f"{unfinished}; the last checkpoint is {checkpoint}" if checkpoint else \
                f"{unfinished}; no checkpoint had been written yet"
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}" +
                         ("" if unfinished else ";") + f" {saved}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM outside a training loop's StopRequest (which saves a checkpoint first): raised at once by
    the handler of `signals_interrupt`. A KeyboardInterrupt, so that code which cleans up after Ctrl-C (temp files,
    worker pools) does so for SIGTERM too; `context` says what was stopped (`after 3 of 10 episodes; ...`)."""

    def __init__(self, signum: int, context: str = "") -> None:
        self.signum = signum
        self.context = context
        super().__init__(signum, context)

    def __str__(self) -> str:
        context = self.context if self.context.startswith(";") else f" {self.context}"
        return f"interrupted by {signal.Signals(self.signum).name}" + (context if self.context else "")

    def during(self, context: str) -> Interrupted:
        """The same interrupt, saying what it stopped (raise it `from None`)."""
        return Interrupted(self.signum, context)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def raise_interrupted(signum: int, frame: object) -> None:
    """A signal handler: SIGINT/SIGTERM become `Interrupted` where the main thread is."""
    raise Interrupted(signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within it, SIGINT and SIGTERM raise `Interrupted` in the main thread (SIGTERM's default would kill the
    process with no word and no cleanup); the previous handlers are put back after. Elsewhere than in the main
    thread (where handlers cannot be installed) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, raise_interrupted) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class SweepFailed(BaseException):
    """Some jobs of a multirun did not complete (raised by the sweep summary after it wrote its table)."""

    exit_code = 1


def one_line(text: str) -> str:
    """Collapse a message to its non-empty lines joined by '; ' (stderr gets exactly one line)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def pip_install(extra: str) -> str:
    """The command that installs one of rlexp's optional extras (pyproject.toml): `pip install "rlexp[plot]"`."""
    return f'pip install "rlexp[{extra}]"'


@contextmanager
def needs_extra(extra: str, message: str) -> Iterator[None]:
    """Imports of an optional extra's packages: one that fails is a ConfigError, `message` with `$missing` (the
    module that is not installed) and `$fix` (the pip command that installs `extra`) filled in.

        with needs_extra("video", "video=true needs imageio (fix: $fix)"):
            import imageio
    """
    try:
        yield
    except ImportError as error:
        fix = pip_install(extra)
        raise ConfigError(Template(message).safe_substitute(missing=error.name, fix=fix)) from None
