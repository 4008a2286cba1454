"""What `rlexp train resume=<run_dir>` means.

The run's own command line is replayed: its saved overrides (`<run_dir>/.hydra/overrides.yaml`) come first,
the new command line's overrides win over them, and Hydra writes into the same run directory. The composed
config is then compared with the one stored in the checkpoint: only budget and bookkeeping keys may change
(rlexp/commands/accept.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from rlexp.commands.configstore import config_dir
from rlexp.config.typed import TrainConfig
from rlexp.errors import CheckpointError, ConfigError
from rlexp.io import override_key

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

# Hydra's flags that take a value as the next argument.
_FLAGS_WITH_VALUE = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-c", "--cfg",
                     "-p", "--package", "--experimental-rerun"}


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's flags with their values, the overrides) of an `rlexp train` command line."""
    flags: list[str] = []
    overrides: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg.startswith("-"):
            flags.append(arg)
            if arg in _FLAGS_WITH_VALUE:
                flags.extend(value for value in [next(rest, None)] if value is not None)
        else:
            overrides.append(arg)
    return flags, overrides


def _quoted(path: Path) -> str:
    text = str(path)
    if "'" in text or "\\" in text:
        raise ConfigError(f"resume={text}: paths with quotes or backslashes are not supported; rename the run "
                          f"directory")
    return f"'{text}'"  # Hydra's quoting: commas and '=' in sweep job directories stay part of the value


def resume_arguments(args: list[str]) -> list[str]:
    """The `rlexp train` arguments with `resume=<run_dir>` expanded into the run's own overrides."""
    resume_args = [a for a in args if a.startswith("resume=")]
    if not resume_args or resume_args[-1] in ("resume=null", "resume="):
        return args
    if "-m" in args or "--multirun" in args:
        raise ConfigError("resume continues one run; resume the jobs of a sweep one at a time: "
                          "rlexp train resume=<sweep_dir>/<job_dir>")
    value = resume_args[-1].split("=", 1)[1].strip("'\"")
    run_dir = Path(value).expanduser().resolve()
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ConfigError(f"resume={value}: {run_dir} is not an rlexp run directory (no .hydra/overrides.yaml)")

    flags, overrides = split_flags(args)
    elsewhere = [o for o in overrides if override_key(o) == "hydra.run.dir"
                 and Path(o.split("=", 1)[1].strip("'\"")).expanduser().resolve() != run_dir]
    if elsewhere:   # it would be ignored: a resume writes into its run (the run's own directory may be named)
        raise ConfigError(f"resume={value} with {elsewhere[-1]}: a resume continues the run in its own directory; "
                          f"drop {override_key(elsewhere[-1])}= (to branch the run, copy its directory and resume the "
                          f"copy)")
    new = [o for o in overrides if not o.startswith("resume=")]
    replaced = {override_key(o) for o in new}
    original = [o for o in read_overrides(saved, value, config_dirs(flags))
                if override_key(o) not in replaced and override_key(o) not in ("resume", "hydra.run.dir")]
    quoted = _quoted(run_dir)
    # hydra.output_subdir=null: Hydra leaves the run's .hydra/ alone; train() records the new overrides
    # there only once the checkpoint accepted them (record_resumed_config), so a refused resume changes nothing.
    return [*flags, *original, *new, f"resume={quoted}", f"hydra.run.dir={quoted}", "hydra.output_subdir=null"]


def config_dirs(flags: list[str]) -> list[Path]:
    """rlexp's config directory and those the user's own `--config-dir`/`-cd` flags add: the group options a resume
    may replay (a run trained with `-cd my_conf env=my_env` resumes with the same flag)."""
    named = [value for flag, value in zip(flags, flags[1:]) if flag in ("-cd", "--config-dir")]
    named += [flag.split("=", 1)[1] for flag in flags if flag.startswith("--config-dir=")]
    return [Path(config_dir()), *(Path(d).expanduser() for d in named)]


def read_overrides(path: Path, resume: str, search: list[Path] | None = None) -> list[str]:
    """A run's saved overrides (a YAML list of strings), each one a resume may replay (`check_replayable`); a
    damaged file is a ConfigError that says how to recover."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OmegaConf.to_container(OmegaConf.load(path))
        if isinstance(overrides, list) and all(isinstance(o, str) for o in overrides):
            for number, line in enumerate(overrides, 1):
                if line.lstrip().startswith("-"):   # argv: Hydra would read it as its flag (--config-dir=...)
                    raise _not_replayed(path, resume, number, line, "a flag of Hydra's command line")
            check_replayable(OverridesParser.create().parse_overrides(overrides), path, resume,
                             search or [Path(config_dir())])   # each line as Hydra reads it
            return overrides
        reason = "it is not a YAML list of overrides, such as ['algo=td3', 'seed=1']"
    except ConfigError:
        raise
    except Exception as error:  # YAML syntax, a NUL byte, an encoding error, an override Hydra cannot parse
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ConfigError(f"resume={resume}: {path} is damaged ({reason}); {_recovery(path.parent.parent)}")


def check_replayable(overrides: list[Override], path: Path, resume: str, search: list[Path]) -> None:
    """A run directory is data, not code: what a resume replays from its overrides.yaml is only what rlexp writes
    there, the run's task overrides (a key of the config, or an option of one of its groups, by name). Hydra's own
    settings (hydra.*, hydra/<group>: callbacks with a `_target_`, hydra.job.env_set, a launcher, a search path)
    are never saved there, and a group option given as a path (experiment=../../elsewhere/x) or put in another
    package (env@hydra=...) would load a YAML file that sets them: refused, with the line. Everything the replayed
    lines compose is then compared with the checkpoint's config (accept.py), so the overrides need no comparison of
    their own with the checkpoint's (which comes from the same directory and so proves nothing more). `search`:
    the config directories whose groups' options may be named (rlexp's, and those the user's flags add)."""
    groups: dict[str, set[str]] = {}
    for directory in search:
        for group in (p for p in directory.glob("*") if p.is_dir() and p.name != "hydra"):
            groups.setdefault(group.name, set()).update(o.stem for o in group.glob("*.yaml"))
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    for number, override in enumerate(overrides, 1):
        name = override.key_or_group
        reason = None
        if override.is_hydra_override():
            reason = "a setting of Hydra's own, never saved there"
        elif override.package is not None:
            reason = "a config group put in another package (@), which rlexp never writes"
        elif name in groups:
            values = [] if override.is_delete() or override.value() is None else \
                list(override.sweep_string_iterator()) if override.is_sweep_override() else \
                [override.get_value_element_as_str()]
            unknown = [v for v in values if v not in groups[name] and v != "null"]
            if unknown:
                reason = f"{unknown[0]!r} is not an option of the {name} group (conf/{name}/)"
        elif "/" in name or name.split(".")[0] not in keys:
            reason = "not a key or group of rlexp's config"
        if reason:
            raise _not_replayed(path, resume, number, override.input_line or name, reason)


def _not_replayed(path: Path, resume: str, number: int, line: str, reason: str) -> ConfigError:
    return ConfigError(f"resume={resume}: line {number} of {path}, {line!r}, is not replayed: {reason}; a run's "
                       f"overrides.yaml holds only the keys and group options of its config, so rlexp did not write "
                       f"this line: remove it (a Hydra setting you want goes on your own command line)")


def _recovery(run_dir: Path) -> str:
    """How to restore a damaged overrides.yaml: every checkpoint holds the overrides the run was made with."""
    from rlexp.io.checkpoints import CheckpointManager

    try:
        bundle, checkpoint, _ = CheckpointManager(run_dir / "checkpoints", 1).load_latest()
    except CheckpointError:
        return ("no readable checkpoint holds the run's overrides either: restore the file by hand, a YAML list "
                "such as ['algo=td3', 'env=Pendulum-v1']")
    return (f"the run's overrides are also in its checkpoint {checkpoint.name}: write them back into that file "
            f"and resume again: {bundle['overrides']}")


def record_resumed_config(run_dir: Path, config: Any, task_overrides: list[str]) -> None:
    """Write the accepted config and overrides into <run_dir>/.hydra/, so the next resume starts from them."""
    hydra_dir = run_dir / ".hydra"
    kept = [o for o in task_overrides if override_key(o) != "resume"]
    for name, content in (("config.yaml", config), ("overrides.yaml", OmegaConf.create(kept))):
        tmp = hydra_dir / f".{name}.tmp"
        OmegaConf.save(content, tmp)
        tmp.replace(hydra_dir / name)
