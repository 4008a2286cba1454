"""The user's gymnasium wrappers, named in the config (`env.wrappers`): resolved, checked and applied in order.

Each entry is `{_target_: <dotted path>, <keyword arguments>}`, as Hydra's instantiate reads one; the target is a
gymnasium.Wrapper subclass (`gymnasium.wrappers.FlattenObservation`) or a callable that takes the env (and the
keyword arguments, YAML's lists given as tuples) and returns a gymnasium.Env. Targets are resolved by
rlexp/config/targets.py (every failure one ConfigError line naming the entry's index and target); one that a run's
*saved* config names (`saved_in`) is imported only under the rule of rlexp/config/trust.py, as the module of a saved
env.id is.

Where they go (rlexp/envs/make.py): gymnasium.make's env with CheckedEnv innermost, then these wrappers, then
rlexp's own (the Atari preprocessing, the episode recorder of a training env). When there are wrappers, a second
CheckedEnv goes around them, so what a wrapper returns or raises is named in one line as the env's own is.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from rlexp.config.checks import check_wrappers
from rlexp.config.targets import TARGET, check_arguments, check_saved_entries, check_target, describe_entry, resolve
from rlexp.errors import ConfigError, RunFailure, one_line


def describe(index: int, spec: Mapping[str, Any]) -> str:
    """`env.wrappers[0] (gymnasium.wrappers.FlattenObservation)`: how a message names an entry."""
    return describe_entry("env.wrappers", index, spec)


def as_tuples(value: Any) -> Any:
    """A wrapper argument with its lists (YAML's only sequence) as tuples, at any depth: gymnasium's wrappers take
    shapes as tuples (`ResizeObservation(env, shape=(64, 64))` refuses a list), and any sequence argument a tuple."""
    if isinstance(value, (list, tuple)):
        return tuple(as_tuples(item) for item in value)
    if isinstance(value, Mapping):
        return {key: as_tuples(item) for key, item in value.items()}
    return value


def check_saved_wrappers(wrappers: Sequence[Mapping[str, Any]], saved_in: Path) -> None:
    """Refuse, before anything is imported, a saved run's wrapper whose module the trust rule does not import."""
    check_wrappers(wrappers)   # (a saved config may have been altered)
    check_saved_entries("env.wrappers", wrappers, saved_in)


def apply_wrappers(env: gym.Env, wrappers: Sequence[Mapping[str, Any]], saved_in: Path | None = None) -> gym.Env:
    """`env` wrapped by each entry of `wrappers` in order (the first innermost). Every failure (a target that does
    not import or is no wrapper, arguments it does not take, a wrapper whose construction raises) is one
    ConfigError naming the entry."""
    check_wrappers(wrappers)
    for index, spec in enumerate(wrappers):
        where = describe(index, spec)
        wrapper = resolve(check_target(spec, where, saved_in), where)
        kwargs = {key: as_tuples(value) for key, value in spec.items() if key != TARGET}
        if inspect.isclass(wrapper):
            if not issubclass(wrapper, gym.Wrapper):
                raise ConfigError(f"{where} is a class, but not a gymnasium.Wrapper: name a subclass of "
                                  f"gymnasium.Wrapper, or a function that takes the env and returns a gymnasium.Env")
        elif not callable(wrapper):
            raise ConfigError(f"{where} is a {type(wrapper).__name__}, not a gymnasium.Wrapper or a callable "
                              f"returning one")
        check_arguments(wrapper, where, kwargs, (env,), "the env")
        try:
            wrapped = wrapper(env, **kwargs)
        except (ConfigError, RunFailure):   # the env's own fault (a reset in the wrapper's constructor), named
            raise
        except Exception as error:
            raise ConfigError(f"{where} could not wrap {env.spec.id if env.spec else env}: it raised "
                              f"{type(error).__name__}: {one_line(str(error))}") from None
        if not isinstance(wrapped, gym.Env):
            raise ConfigError(f"{where} returned a {type(wrapped).__name__}, not a gymnasium.Env: name a "
                              f"gymnasium.Wrapper, or a function that returns the wrapped env")
        env = wrapped
    return env
