"""`rlexp train`'s command line, checked before Hydra reads it: Hydra's own flags, the optional groups' options, a
new run's directory, and `seed=` beside `seeds=`; then `resume=` expanded (rlexp/commands/resume.py). Each mistake is
a ConfigError, which `rlexp train` reports in one line (exit 2) before anything is composed or written."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import hydra._internal.utils as hydra_utils

from rlexp.commands.configstore import config_dir
from rlexp.commands.hydra_errors import unknown_option
from rlexp.commands.resume import resume_arguments, split_flags
from rlexp.errors import ConfigError
from rlexp.io import override_key, seed_runs
from rlexp.io.results import results_status

#: Config groups whose option may be absent: Hydra skips a missing one silently, so rlexp checks them itself.
OPTIONAL_GROUPS = ("tuned", "experiment", "hparams_search")


def checked_arguments(args: list[str]) -> list[str]:
    """The arguments Hydra is given: `args` checked, with `resume=<run_dir>` expanded into the run's overrides."""
    check_flags(args)
    check_no_empty_paths(args)
    check_sweep_overrides(args)
    check_optional_groups(args)
    check_new_run_dir(args)
    expanded = resume_arguments(args)
    check_seed_keys(args, expanded)
    return absolute_sweep_dir(expanded)


def absolute_sweep_dir(args: list[str]) -> list[str]:
    """`hydra.sweep.dir=<relative path>` made absolute, in the directory of the command: the jobs of a launcher
    whose workers run elsewhere resolve a relative one in their own working directory (a Ray node's: where `ray
    start` ran), where the sweep would never find them. (conf/config.yaml's default is absolute too.)"""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        bare = value.strip("'\"")
        if eq and key == "hydra.sweep.dir" and bare and not bare.startswith(("/", "$", "~")):
            arg = f"{key}={Path.cwd() / bare}"
        out.append(arg)
    return out


def check_flags(args: list[str]) -> None:
    """Hydra's own flags, parsed by Hydra's parser, whose mistakes would print argparse's usage block."""
    parser = hydra_utils.get_args_parser()

    def refuse(message: str) -> NoReturn:
        raise ConfigError(f"{message} (rlexp train --help)")

    parser.error = refuse  # type: ignore[method-assign]
    rerun = parser.parse_args(args).experimental_rerun
    if rerun is not None:   # Hydra would pickle.load it: a file in a run directory would run code (rlexp writes none)
        raise ConfigError(f"--experimental-rerun {rerun}: Hydra's rerun unpickles that file, which can run any code, "
                          f"and rlexp writes no config.pickle to rerun; continue a run with rlexp train "
                          f"resume=<run_dir>")


#: The keys that name a directory, and what an empty value would do instead (Hydra and rlexp take '' as no value).
PATH_KEYS = {"resume": "start a new run with the default settings", "hydra.run.dir": "write the run into the "
             "current directory", "hydra.sweep.dir": "write the sweep's jobs into the current directory"}


def check_no_empty_paths(args: list[str]) -> None:
    """`resume=$RUN` with RUN unset reaches rlexp as `resume=`: an empty directory key is refused, where it would
    silently do something else than the user meant (train 50,000 default steps in a new directory, or write a run
    into the current one)."""
    _, overrides = split_flags(args)
    for override in overrides:
        key, _, value = override.partition("=")
        if key in PATH_KEYS and value.strip().strip("'\"").strip() == "":
            fix = "resume=<run_dir> (resume=null for a new run)" if key == "resume" else f"{key}=<directory>"
            raise ConfigError(f"{override} is empty (a shell variable that is not set?); it would "
                              f"{PATH_KEYS[key]}: give {fix}")


def check_sweep_overrides(args: list[str]) -> None:
    """`--multirun seed=range(0,0)` sweeps over no value: Hydra runs no job and the sweep ends with an empty table and
    exit 0, as if it had trained. `hydra.launcher.n_jobs=0` was joblib's ValueError traceback."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    _, overrides = split_flags(args)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # Hydra reports its own grammar errors
    for override, text in zip(parsed, overrides, strict=True):
        if not override.is_sweep_override() or override.is_interval_sweep():
            continue
        try:
            empty = not list(override.sweep_string_iterator())
        except HydraException:   # glob(...) of a group: Hydra expands it against the config
            continue
        if empty:
            raise ConfigError(f"{text} sweeps over no value, so the sweep would run no job; give it at least one")
    for override, text in zip(parsed, overrides, strict=True):
        if override.key_or_group == "hydra.launcher.n_jobs" and not override.is_sweep_override() \
                and override.value() == 0:   # (joblib's ValueError traceback, after the sweep's directory was made)
            raise ConfigError(f"{text}: the joblib launcher runs a positive number of jobs at once (or -1: one per "
                              f"core)")


def check_optional_groups(args: list[str]) -> None:
    """`experiment=`, `tuned=` and `hparams_search=` must name a file of their group: Hydra skips a missing option of
    an optional group without a word, so a typo would train another setup. (The automatic `tuned: ${algo}_${env}`
    lookup stays optional: it is not on the command line.)"""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    _, overrides = split_flags(args)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # Hydra reports its own grammar errors
    for override in parsed:
        group = override.key_or_group
        if group not in OPTIONAL_GROUPS or override.is_delete():
            continue
        names = list(override.sweep_string_iterator()) if override.is_sweep_override() else \
            [override.get_value_element_as_str()] if override.value() is not None else []
        options = sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))
        for name in names:
            if name not in options and name != "null":
                raise ConfigError(unknown_option(group, name, options))


def never_started(run_dir: Path) -> bool:
    """A run refused before it trained (a bad value), or interrupted before it trained: a failed or interrupted
    results.json, no checkpoints, no TensorBoard events (its seeds' neither, for many seeds). Its directory holds
    nothing but the config, so the corrected command, or the same one, may write there."""
    runs = [run_dir, *seed_runs(run_dir)]
    return (results_status(run_dir) in ("failed", "interrupted")
            and not any((run / "checkpoints").exists() or any(run.glob("events.out.tfevents.*")) for run in runs))


def check_new_run_dir(args: list[str]) -> None:
    """A new run never writes into another run's directory: `hydra.run.dir=<a run>` would overwrite its config, and
    `--multirun hydra.sweep.dir=<a sweep>` its jobs' runs (a job whose overrides name the same job directory)."""
    flags, overrides = split_flags(args)
    if any(o.startswith("resume=") and o not in ("resume=null", "resume=") for o in overrides):
        return
    if "-m" in flags or "--multirun" in flags:
        check_new_sweep_dir(overrides)
    for override in overrides:
        if override_key(override) == "hydra.run.dir":
            run_dir = Path(override.split("=", 1)[1].strip("'\""))
            try:
                taken = (run_dir / ".hydra").is_dir()
            except OSError as error:  # a name the file system refuses
                raise ConfigError(f"cannot write to {run_dir}: {error.strerror}; choose another directory") from None
            if taken and not never_started(run_dir):
                raise ConfigError(f"hydra.run.dir={run_dir} already holds a run; continue it with "
                                  f"`rlexp train resume={run_dir}`, or choose a new directory")
            # Inside another run (its checkpoints/, a seed of a batch): the run's own files would be mixed with it.
            inside = next((parent for parent in run_dir.absolute().parents
                           if (parent / ".hydra").is_dir() and not never_started(parent)), None)
            if inside is not None:
                raise ConfigError(f"hydra.run.dir={run_dir} is inside the run {inside}; choose a directory outside "
                                  f"it")


def check_new_sweep_dir(overrides: list[str]) -> None:
    """`hydra.sweep.dir=<a sweep's directory>`: the same command as the sweep's continues it (rlexp/sweeps/resume.py:
    its finished jobs skipped, the others resumed); any other sweep there would train over the run of the old job
    with the same number and overrides (its directory's name), checkpoints, results and all."""
    for override in overrides:
        if override_key(override) != "hydra.sweep.dir":
            continue
        sweep_dir = Path(override.split("=", 1)[1].strip("'\""))
        try:
            runs = sorted(d.name for d in sweep_dir.iterdir() if (d / ".hydra").is_dir() and not never_started(d))
        except OSError:   # no such directory yet, or one the OS refuses (Hydra reports that)
            continue
        if not runs:
            continue
        saved = sweep_overrides(sweep_dir)
        if saved is not None and saved == task_overrides(overrides):
            return   # the same sweep: it continues
        own = f"its own command continues it (rlexp train --multirun {' '.join(saved)} hydra.sweep.dir=" \
              f"{sweep_dir}), or " if saved is not None else ""
        raise ConfigError(f"hydra.sweep.dir={sweep_dir} already holds the runs of another sweep ({runs[0]}"
                          f"{f' and {len(runs) - 1} more' if len(runs) > 1 else ''}), which this one's jobs would "
                          f"train over; {own}choose a new directory (a job continues alone: rlexp train "
                          f"resume={sweep_dir}/<job>)")


def task_overrides(overrides: list[str]) -> list[str]:
    """The overrides Hydra records as a sweep's own (its `hydra.overrides.task`): all but Hydra's settings."""
    return [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]


def sweep_overrides(sweep_dir: Path) -> list[str] | None:
    """The task overrides of the sweep made in `sweep_dir`, from the multirun.yaml Hydra wrote there (None: none
    that reads as one)."""
    from omegaconf import OmegaConf

    try:
        saved = OmegaConf.to_container(OmegaConf.load(sweep_dir / "multirun.yaml"))
        task = saved["hydra"]["overrides"]["task"]   # type: ignore[index,call-overload]
    except Exception:   # (no file, not YAML, not a sweep's)
        return None
    return [str(o) for o in task] if isinstance(task, list) else None


def check_seed_keys(args: list[str], expanded: list[str]) -> None:
    """`seed=` on the command line of a many-seeds run (`seeds=`, given there or by the resumed run) would be
    ignored: each seed of the list is a run's seed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        given = OverridesParser.create().parse_overrides(split_flags(args)[1])
        every = OverridesParser.create().parse_overrides(split_flags(expanded)[1])
    except HydraException:
        return  # Hydra reports its own grammar errors
    seed = [o for o in given if o.key_or_group == "seed" and not o.is_delete()]
    seeds = [o for o in every if o.key_or_group == "seeds" and not o.is_delete()]
    if seed and seeds and (seeds[-1].is_sweep_override() or seeds[-1].value() is not None):
        raise ConfigError(f"seed={seed[-1].get_value_element_as_str() if not seed[-1].is_sweep_override() else '...'} "
                          f"with seeds=[...]: each seed of a many-seeds run is one of its seeds=, so seed= would be "
                          f"ignored; drop seed= (or run one process per seed: rlexp train --multirun seed=0,1,2)")
