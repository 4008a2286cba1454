"""Runs' learning curves from their directories: finding the runs, reading one TensorBoard scalar of each, and
grouping the runs whose overrides differ only in their seed (or in settings that do not change what is learned).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from rlexp.config.compat import EXECUTION_KEYS
from rlexp.errors import ConfigError, RunFailure
from rlexp.io import override_key, seed_runs

#: Override keys (and key prefixes, ending in "." or "/") left out of a group's key: the seed, and what does not
#: change what a run learns, only where or how it runs and what it writes (rlexp.config.compat.EXECUTION_KEYS).
#: eval.* stays in the key: eval.every sets the steps a curve has and eval.episodes how noisy each of its points
#: is, so pooling runs that differ there would mix different measurements (and drop the steps they do not share).
NOT_LEARNING = ("seed", *EXECUTION_KEYS, "hydra.", "hydra/")


@dataclass(frozen=True)
class Run:
    run_dir: Path
    overrides: tuple[str, ...]
    seed: int | None
    algo: str | None
    env_id: str | None


@dataclass(frozen=True)
class Curve:
    run: Run
    points: dict[int, float]     # step -> value, each step once


@dataclass(frozen=True)
class Group:
    key: tuple[str, ...]         # the overrides that change learning, sorted
    label: str
    curves: tuple[Curve, ...]


# --- finding and reading runs ---------------------------------------------------------------------------------

def _natural(path: Path) -> list[Any]:
    """Sort key that puts sweep job 2 before job 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_runs(paths: Iterable[Path], warn: Callable[[str], None] = lambda message: None) -> list[Path]:
    """Every run directory at or below `paths` (.hydra/overrides.yaml and an event file in it), once each, in
    the order of `paths` (the groups, and their colours, follow it)."""
    found: dict[Path, Path] = {}
    for root in paths:
        for run_dir in sorted((o.parent.parent for o in root.rglob(".hydra/overrides.yaml")), key=_natural):
            if not any(run_dir.glob("events.out.tfevents.*")):
                if seed_runs(run_dir):
                    continue   # the parent of a many-seeds run: its seeds are the runs, found below it
                warn(f"{run_dir} holds no TensorBoard event file (did the run start?); skipped")
                continue
            found.setdefault(run_dir.resolve(), run_dir)
    return list(found.values())


def read_run(run_dir: Path) -> Run:
    """The run's overrides, and its seed, algo and env from the config Hydra saved with it (when there)."""
    overrides = tuple(str(o) for o in cast("list[Any]", OmegaConf.to_container(
        OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))))   # a list of override strings
    config_file = run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create({})

    def select(key: str) -> Any:
        value = OmegaConf.select(config, key, default=None, throw_on_missing=False)
        return value if isinstance(value, (str, int)) else None

    seed = select("seed")
    if seed is None:
        seed = next((int(o.split("=", 1)[1]) for o in overrides
                     if override_key(o) == "seed" and o.split("=", 1)[1].lstrip("-").isdigit()), None)
    return Run(run_dir=run_dir, overrides=overrides, seed=seed, algo=select("algo.name"), env_id=select("env.id"))


def read_scalars(run_dir: Path, metric: str) -> tuple[dict[int, float] | None, list[str]]:
    """The run's `metric` by step (None if it never logged it), and every scalar tag it logged.

    EventAccumulator reads all the run's event files in order and drops the points that a resumed run
    purged (those logged after its checkpoint by the process that was killed), as TensorBoard shows them.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    tensorboard_log = logging.getLogger("tensorboard")
    level = tensorboard_log.level
    tensorboard_log.setLevel(logging.ERROR)  # not its multi-line notice of each purge: purging is expected here
    try:
        accumulator.Reload()
    except OSError as error:   # (TensorBoard takes every name events.out.tfevents.* for a file: a directory so named)
        where = os.fsdecode(error.filename) if error.filename is not None else str(run_dir)
        raise RunFailure(f"cannot read the TensorBoard events of {run_dir}: {where}: "
                         f"{error.strerror or error}") from None
    finally:
        tensorboard_log.setLevel(level)
    tags = sorted(accumulator.Tags()["scalars"])
    if metric not in tags:
        return None, tags
    return {int(e.step): float(e.value) for e in accumulator.Scalars(metric)}, tags  # a repeated step: the last


def read_curves(run_dirs: Sequence[Path], metric: str, warn: Callable[[str], None]) -> list[Curve]:
    """Each run's curve of `metric`; runs without it are skipped with a warning, unless no run has it."""
    curves: list[Curve] = []
    missing: list[Path] = []
    all_tags: set[str] = set()
    for run_dir in run_dirs:
        points, tags = read_scalars(run_dir, metric)
        all_tags.update(tags)
        if not points:
            missing.append(run_dir)
            continue
        try:
            curves.append(Curve(read_run(run_dir), points))
        except Exception as error:  # a hand-edited or truncated .hydra/*.yaml: one run lost, not the plot
            warn(f"{run_dir}/.hydra is unreadable ({type(error).__name__}: {error}); skipped".replace("\n", " "))
    if len(missing) == len(run_dirs) and not all_tags:   # (TensorBoard's reader skips what it cannot read, silently)
        raise ConfigError(f"the TensorBoard event files of {', '.join(map(str, run_dirs[:3]))}"
                          f"{f' and {len(run_dirs) - 3} more runs' if len(run_dirs) > 3 else ''} hold no readable "
                          f"scalar (empty, truncated or corrupt, or a run that has not logged yet)")
    if len(missing) == len(run_dirs):
        raise ConfigError(f"no run logged metric={metric}; the runs logged: {', '.join(sorted(all_tags))}")
    if not curves:
        raise ConfigError("no run with a readable .hydra/ config logged " + metric)
    for run_dir in missing:
        warn(f"{run_dir} has no {metric}; skipped")
    return curves


def human_normalized_curves(curves: Sequence[Curve]) -> list[Curve]:
    """Each run's returns as % of the human tester's score on its game (a ConfigError names a run off the table)."""
    from rlexp.envs.atari_scores import human_normalized

    normalized = []
    for curve in curves:
        if curve.run.env_id is None:
            raise ConfigError(f"normalize=human: {curve.run.run_dir} has no env.id in .hydra/config.yaml")
        normalized.append(Curve(curve.run, {step: human_normalized(value, curve.run.env_id)
                                            for step, value in curve.points.items()}))
    return normalized


def binned(curve: Curve, width: int) -> Curve:
    """The curve's points averaged over bins of `width` steps, (k - 1) * width < step <= k * width drawn at
    k * width."""
    bins: dict[int, list[float]] = {}
    for step, value in curve.points.items():
        bins.setdefault(-(-step // width) * width, []).append(value)
    return Curve(curve.run, {end: sum(values) / len(values) for end, values in sorted(bins.items())})


# --- grouping -------------------------------------------------------------------------------------------------

def changes_learning(override: str) -> bool:
    key = override_key(override)
    return not any(key == k or (k.endswith((".", "/")) and key.startswith(k)) for k in NOT_LEARNING)


#: `rlexp plot pool=env`: the overrides that choose the task, left out of the group key so that one algorithm's
#: runs on several envs form one group
ENV_KEYS = ("env", "env.id")


def group_key(overrides: Iterable[str], pool_envs: bool = False) -> tuple[str, ...]:
    """What a run learned with: its overrides minus the seed and the settings that do not change learning (and,
    pooling, the env it learned on)."""
    return tuple(sorted(o for o in overrides if changes_learning(o)
                        and not (pool_envs and override_key(o) in ENV_KEYS)))


def group_labels(groups: Sequence[Sequence[Run]]) -> list[str]:
    """Each group's overrides minus those all groups share (as the sweep summary does), in the order they were
    typed; with one group, its algo and env (what the plot is of), as there is no other group to tell it from."""
    if len(groups) == 1:
        names = sorted({f"{r.algo} on {r.env_id}" for r in groups[0] if r.algo and r.env_id})
        return [", ".join(names) or " ".join(group_key(groups[0][0].overrides)) or "runs"]
    shared = set.intersection(*(set(group_key(runs[0].overrides)) for runs in groups))
    return [" ".join(o for o in runs[0].overrides if changes_learning(o) and o not in shared) or "(none)"
            for runs in groups]


def group_curves(curves: Sequence[Curve], pool_envs: bool = False) -> list[Group]:
    """Curves with the same group key (`pool_envs`: whatever their env), groups in the order their first run was
    found."""
    by_key: dict[tuple[str, ...], list[Curve]] = {}
    for curve in curves:
        by_key.setdefault(group_key(curve.run.overrides, pool_envs), []).append(curve)
    labels = group_labels([[c.run for c in members] for members in by_key.values()])
    return [Group(key, label, tuple(members)) for (key, members), label in zip(by_key.items(), labels)]
