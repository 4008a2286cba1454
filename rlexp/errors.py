"""What can stop a command, and the exit code each one ends with.

- `ConfigError` (exit 2): bad input, found before anything is built, trained or written.
- `RunFailure` (exit 1): the run started but cannot go on (a non-finite loss, an env emitting NaN,
  a checkpoint that cannot be written or read); the last good checkpoint is named in the message.
- `TrainingInterrupted` (exit 130 for SIGINT, 143 for SIGTERM): the user stopped the run; a checkpoint was saved.
- `SweepFailed` (exit 1): some jobs of a multirun did not complete; the others ran to the end.

`TrainingInterrupted` and `SweepFailed` derive from BaseException, like KeyboardInterrupt: Hydra's launchers
treat an `Exception` as one failed job and go on with the sweep (an interrupt must stop it), and Hydra's
callback runner turns an `Exception` into a warning (a failed sweep must set the exit code).

A missing optional dependency is a ConfigError naming the extra that installs it (`needs_extra`).
"""

from __future__ import annotations

import signal
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


class TrainingInterrupted(BaseException):
    """SIGINT or SIGTERM arrived; the runner finished its step and saved a checkpoint."""

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        saved = f"checkpoint saved to {checkpoint}" if checkpoint else "no checkpoint saved"
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; {saved}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


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
