"""What can stop a run, and how each reaches the user: one line on stderr and an exit code.

- `ConfigError` (exit 2): bad input, found before anything is built or trained.
- `RunFailure` (exit 1): the run started but cannot go on (a non-finite loss, an env emitting NaN,
  a checkpoint that cannot be written or read); the last good checkpoint is named in the message.
- `TrainingInterrupted` (exit 130 for SIGINT, 143 for SIGTERM): the user stopped the run; a checkpoint was saved.
  It derives from BaseException, like KeyboardInterrupt, so that Hydra's launchers do not treat it as one
  failed job and go on with the sweep: an interrupt stops the sweep.
"""

from __future__ import annotations

import difflib
import signal


class ConfigError(ValueError):
    """A bad setting: the run stops before anything is built, with this one-line message."""


class RunFailure(RuntimeError):
    """A fault during a run that stops it; the message names the step, the quantity and the last good checkpoint."""


class NonFiniteError(RunFailure):
    """A loss, gradient norm or Q-value became NaN or infinite."""


class EnvFault(RunFailure):
    """The environment returned a non-finite observation or reward."""


class CheckpointError(RunFailure):
    """A checkpoint could not be written, or is unreadable (truncated, corrupt, not an rlexp checkpoint)."""


class TrainingInterrupted(BaseException):
    """SIGINT or SIGTERM arrived; the loop finished its step and saved a checkpoint."""

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        saved = f"checkpoint saved to {checkpoint}" if checkpoint else "no checkpoint saved"
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; {saved}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def one_line(text: str) -> str:
    """Collapse a message to its non-empty lines joined by '; ' (stderr gets exactly one line)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


#: The Hydra plugins behind rlexp's extras: group -> option -> extra.
PLUGIN_EXTRAS = {
    "hydra/launcher": {"joblib": "sweep", "ray": "ray", "ray_aws": "ray", "submitit_slurm": "slurm",
                       "submitit_local": "slurm"},
    "hydra/sweeper": {"optuna": "sweep"},
}


def describe(error: Exception) -> tuple[int, str] | None:
    """(exit code, one-line message) for the errors a user causes or meets; None for a bug (show a traceback)."""
    from hydra.errors import CompactHydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, ConfigError):
        return 2, str(error)
    if isinstance(error, RunFailure):
        return 1, str(error)
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, name = error.missing_cfg_file.rpartition("/")
        if name in PLUGIN_EXTRAS.get(group, {}):
            return 2, f"{group}={name} comes with a Hydra plugin that is not installed: " \
                      f'pip install "rlexp[{PLUGIN_EXTRAS[group][name]}]"'

        close = difflib.get_close_matches(name, error.options, n=1)
        hint = f"; did you mean {group}={close[0]}?" if close else ""
        return 2, f"{group}={name} is not an option of the {group} group: choose from " \
                  f"{', '.join(sorted(error.options))}{hint}"
    if isinstance(error, ValueError) and str(error).startswith("Only one of --run, --multirun"):
        return 2, f"{error} (to see a sweep's config, drop --multirun: `rlexp train --cfg hydra <overrides>`)"
    if isinstance(error, (CompactHydraException, OmegaConfBaseException)):
        cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else None
        unknown = _unknown_key(cause, str(error)) if cause is not None else None
        if unknown:
            return 2, unknown
        head = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        detail = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
        return 2, one_line(f"{head}: {detail}" if detail else head)
    return None


def _unknown_key(cause: Exception, message: str) -> str | None:
    """`algo.lrr is not a config key; did you mean algo.lr?` for OmegaConf's struct-mode key errors."""
    import dataclasses

    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    full_key = getattr(cause, "full_key", None)
    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or not full_key:
        return None
    parent, _, key = str(full_key).rpartition(".")
    object_type = getattr(cause, "object_type", None)
    if not dataclasses.is_dataclass(object_type):  # a free-form dict such as env.kwargs: keys are added with +
        append = next((line.strip() for line in message.splitlines() if line.startswith("To append")), "")
        return f"{full_key} is not set yet" + (f"; {append[0].lower()}{append[1:]}" if append else "")
    known = [f.name for f in dataclasses.fields(object_type)]
    close = difflib.get_close_matches(key, known, n=2)
    where = f"{parent}." if parent else ""
    hint = f"; did you mean {' or '.join(where + c for c in close)}?" if close else ""
    return f"{full_key} is not a config key{hint} (rlexp train --cfg job shows every key)"
