"""Callbacks: the user's code in the training loop, named in the config (`callbacks`), without forking rlexp.

    callbacks:
      - _target_: my_package.callbacks.LogLength   # a class (or a function returning the callback)
        every: 1000                                # its keyword arguments

A callback is any object with some of the hooks below (subclassing `Callback`, whose hooks do nothing, is the easy
way); each hook gets the `Run`, through which it reads the run and may log scalars or ask the run to stop:

- `on_run_start(run)`: once the run is built (a resumed run: after its checkpoint is loaded, `run.resumed` true);
- `on_step(run)`: after every vector step (`run.step` env steps, summed over the envs; an on-policy run's rollout
  ends at the step where `run.rollout_done` is true), after that step's updates;
- `on_episodes(returns, lengths, run)`: training episodes that ended in the step (numpy arrays);
- `on_evaluation(returns, run)`: each evaluation's episode returns (the final one too);
- `on_checkpoint(path, run)`: a resumable checkpoint was written (periodic, on a signal, and at the end);
- `on_run_end(results, run)`: the run completed; `results` is what results.json holds.

`run.log({"tag": value})` adds TensorBoard scalars at the current step; `run.stop("why")` ends the run after the
current step, as a solved run ends (the final evaluation, the final checkpoint, results.json with `stopped_by:
callback` and the reason). A callback with state (`state_dict()` returning plain data: numbers, strings, lists,
dicts, tensors; `load_state_dict(state)`) has it saved in every resumable checkpoint and given back on resume, so a
resumed run calls it as the uninterrupted run would have. A hook that raises ends the run with one line naming the
callback and the hook (its checkpoints are as they were); a target that does not import, or that is no callback,
is refused before anything is built. The stop rules (`stop.*`, `total_episodes`) can be written as callbacks: see
`StopOnEvalReturn` and `StopOnMeanReturn` below, which stop where those rules stop.

Each seed of a many-seeds run has its own callbacks (built from the same entries), its own `Run` and state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rlexp.config.checks import check_callbacks
from rlexp.config.targets import TARGET, check_arguments, check_saved_entries, check_target, describe_entry, resolve
from rlexp.errors import ConfigError, RunFailure, one_line

#: The hooks a callback may have, in the order a run calls them.
HOOKS = ("on_run_start", "on_step", "on_episodes", "on_evaluation", "on_checkpoint", "on_run_end")


class Callback:
    """A callback's hooks, each doing nothing: subclass it and override those you need (see the module's doc)."""

    def on_run_start(self, run: Run) -> None:
        """Once the run is built (`run.resumed`: continued from a checkpoint)."""

    def on_step(self, run: Run) -> None:
        """After each vector step and its updates."""

    def on_episodes(self, returns: np.ndarray, lengths: np.ndarray, run: Run) -> None:
        """Training episodes that ended in the step."""

    def on_evaluation(self, returns: np.ndarray, run: Run) -> None:
        """An evaluation's episode returns."""

    def on_checkpoint(self, path: Path, run: Run) -> None:
        """A resumable checkpoint was written at `path`."""

    def on_run_end(self, results: dict[str, Any], run: Run) -> None:
        """The run completed with `results` (results.json's)."""

    def state_dict(self) -> dict[str, Any]:
        """What exact resume needs of this callback (plain data and tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Takes back what `state_dict` returned."""


@dataclass
class Run:
    """What a callback sees of the run, and the two things it may do to it (`log`, `stop`)."""

    run_dir: Path
    seed: int
    total_steps: int
    config: dict[str, Any]        # the run's config, as saved in its checkpoints (read it, do not change it)
    agent: Any = None             # the agent being trained (its networks; read, do not step it)
    step: int = 0                 # env steps so far, summed over the envs
    episodes: int = 0             # training episodes finished
    resumed: bool = False
    rollout_done: bool = False    # on-policy: this step ended a rollout, which was just learned from
    stop_reason: str | None = None
    _log: Callable[[dict[str, float], int], None] | None = field(default=None, repr=False)
    _naming: str = field(default="a callback", repr=False)

    def log(self, scalars: Mapping[str, float]) -> None:
        """TensorBoard scalars at the current step (`{"custom/my_metric": 1.5}`)."""
        values: dict[str, float] = {}
        for tag, value in scalars.items():
            if not isinstance(tag, str) or not tag:
                raise TypeError(f"run.log takes tags that are non-empty strings, not {tag!r}")
            try:
                values[tag] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"run.log's {tag!r} must be a number, not {type(value).__name__}") from None
        if self._log is not None:
            self._log(values, self.step)

    def stop(self, reason: str = "") -> None:
        """End the run after the current step (the final evaluation and checkpoint as usual)."""
        if self.stop_reason is None:
            self.stop_reason = f"{self._naming}: {reason}" if reason else self._naming


@dataclass
class Entry:
    name: str        # how messages name it: `callbacks[0] (my_package.LogLength)`
    target: str
    callback: Any


def check_saved_callbacks(specs: Sequence[Mapping[str, Any]], saved_in: Path) -> None:
    """Refuse, before anything is imported, a saved run's callback whose module the trust rule
    (rlexp/config/trust.py) does not import."""
    check_callbacks(specs)
    check_saved_entries("callbacks", specs, saved_in)


def build_callbacks(specs: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """Each entry's callback, built with its keyword arguments; every failure (a target that does not import,
    arguments it does not take, a constructor that raises, an object with no hook or a misspelt one) is one
    ConfigError naming the entry."""
    check_callbacks(specs)
    entries = []
    for index, spec in enumerate(specs):
        where = describe_entry("callbacks", index, spec)
        target = resolve(check_target(spec, where, None), where)
        kwargs = {key: value for key, value in spec.items() if key != TARGET}
        if not callable(target):
            raise ConfigError(f"{where} is a {type(target).__name__}, not a callback class or a function returning "
                              f"a callback")
        check_arguments(target, where, kwargs)
        try:
            callback = target(**kwargs)
        except Exception as error:
            raise ConfigError(f"{where} raised {type(error).__name__} when built: {one_line(str(error))}") from None
        hooks = [name for name in HOOKS if callable(getattr(callback, name, None))]
        unknown = sorted(name for name in dir(callback) if name.startswith("on_") and name not in HOOKS)
        if unknown:
            raise ConfigError(f"{where} has {', '.join(unknown)}, which no run calls: the hooks are "
                              f"{', '.join(HOOKS)}")
        if not hooks:
            raise ConfigError(f"{where} built a {type(callback).__name__}, which has none of the hooks "
                              f"{', '.join(HOOKS)}: subclass rlexp.Callback and override the hooks you need")
        entries.append(Entry(where, str(spec[TARGET]), callback))
    return entries


def check_state(value: Any, where: str) -> None:
    """A callback's state must load with `weights_only=True` (checkpoints never unpickle objects)."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_state(item, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise RunFailure(f"{where}.state_dict() has the key {key!r}: keys must be strings or integers")
            check_state(item, where)
        return
    raise RunFailure(f"{where}.state_dict() holds a {type(value).__name__}: a checkpoint keeps numbers, strings, "
                     f"lists, dicts and tensors only (convert it, e.g. an array with torch.as_tensor)")


class Callbacks:
    """A run's callbacks, called in order; a hook that raises is a RunFailure naming it."""

    def __init__(self, entries: Sequence[Entry], run: Run) -> None:
        self.entries = list(entries)
        self.run = run
        # Only the hooks a callback has beyond Callback's own, which do nothing: on_step is called every vector step
        self.hooked = {hook: [entry for entry in self.entries if callable(getattr(entry.callback, hook, None))
                              and getattr(type(entry.callback), hook, None) is not getattr(Callback, hook)]
                       for hook in HOOKS}

    def __bool__(self) -> bool:
        return bool(self.entries)

    def call(self, hook: str, *args: Any) -> None:
        for entry in self.hooked[hook]:
            self.run._naming = entry.name
            try:
                getattr(entry.callback, hook)(*args, self.run)
            except (RunFailure, KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:
                raise RunFailure(f"{entry.name}.{hook} raised {type(error).__name__}: "
                                 f"{one_line(str(error)) or '(no message)'} at step {self.run.step}") from None

    def state_dict(self) -> list[dict[str, Any]]:
        states = []
        for entry in self.entries:
            method = getattr(entry.callback, "state_dict", None)
            state = method() if callable(method) else {}
            check_state(state, entry.name)
            states.append({"target": entry.target, "state": state})
        return states

    def load_state_dict(self, saved: Sequence[Mapping[str, Any]]) -> list[str]:
        """Each callback's saved state, by position and target; returns the names of those that start afresh (a
        callback the run did not have, or another target at its place)."""
        fresh = []
        for index, entry in enumerate(self.entries):
            state = saved[index] if index < len(saved) else None
            method = getattr(entry.callback, "load_state_dict", None)
            if state is None or state.get("target") != entry.target:
                fresh.append(entry.name)
            elif callable(method):
                try:
                    method(state["state"])
                except Exception as error:
                    raise RunFailure(f"{entry.name}.load_state_dict raised {type(error).__name__}: "
                                     f"{one_line(str(error))}") from None
        return fresh


# --- the stop rules, written as callbacks -------------------------------------------------------------------------


class StopOnEvalReturn(Callback):
    """Stops the run at the first evaluation whose mean return reaches `bar` (as `stop.eval_return=<bar>`)."""

    def __init__(self, bar: float) -> None:
        self.bar = float(bar)

    def on_evaluation(self, returns: np.ndarray, run: Run) -> None:
        if float(returns.mean()) >= self.bar:
            run.stop(f"eval return {float(returns.mean()):.2f} >= {self.bar:g}")


class StopOnMeanReturn(Callback):
    """Stops the run once the mean return of the last `window` training episodes reaches `bar` (as
    `stop.mean_return=<bar> stop.window=<window>`); its window is saved in checkpoints."""

    def __init__(self, bar: float, window: int = 100) -> None:
        if window < 1:
            raise ValueError(f"window={window} must be at least 1")
        self.bar, self.window = float(bar), int(window)
        self.recent: deque[float] = deque(maxlen=self.window)

    def on_episodes(self, returns: np.ndarray, lengths: np.ndarray, run: Run) -> None:
        for episodic_return in returns:
            self.recent.append(float(episodic_return))
            if len(self.recent) == self.window and (mean := float(np.mean(self.recent))) >= self.bar:
                run.stop(f"mean return of the last {self.window} episodes {mean:.2f} >= {self.bar:g}")
                return

    def state_dict(self) -> dict[str, Any]:
        return {"recent": torch.tensor(list(self.recent), dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque(state["recent"].tolist(), maxlen=self.window)


class StopOnEpisodes(Callback):
    """Stops the run once `episodes` training episodes have finished (as `total_episodes=<episodes>`)."""

    def __init__(self, episodes: int) -> None:
        self.episodes = int(episodes)

    def on_step(self, run: Run) -> None:
        if run.episodes >= self.episodes:
            run.stop(f"{run.episodes} episodes >= {self.episodes}")

