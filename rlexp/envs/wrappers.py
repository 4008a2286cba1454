"""The user's gymnasium wrappers, named in the config (`env.wrappers`): resolved, checked and applied in order.

Each entry is `{_target_: <dotted path>, <keyword arguments>}`, as Hydra's instantiate reads one; the target is a
gymnasium.Wrapper subclass (`gymnasium.wrappers.FlattenObservation`) or a callable that takes the env (and the
keyword arguments) and returns a gymnasium.Env. A small importlib resolver rather than hydra.utils.instantiate:
Hydra's errors are chained tracebacks of its own, and here every failure is one ConfigError line naming the entry's
index and target. A target that a run's *saved* config names (`saved_in`) is imported only under the rule of
rlexp/config/trust.py, as the module of a saved env.id is.

Where they go (rlexp/envs/make.py): gymnasium.make's env with CheckedEnv innermost, then these wrappers, then
rlexp's own (the Atari preprocessing, the episode recorder of a training env). When there are wrappers, a second
CheckedEnv goes around them, so what a wrapper returns or raises is named in one line as the env's own is.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from rlexp.config.checks import check_wrappers
from rlexp.config.trust import check_import
from rlexp.errors import ConfigError, RunFailure, one_line

TARGET = "_target_"


def describe(index: int, spec: Mapping[str, Any]) -> str:
    """`env.wrappers[0] (gymnasium.wrappers.FlattenObservation)`: how a message names an entry."""
    return f"env.wrappers[{index}] ({spec.get(TARGET)})"


def check_saved_wrappers(wrappers: Sequence[Mapping[str, Any]], saved_in: Path) -> None:
    """Refuse, before anything is imported, a saved run's wrapper whose module the trust rule does not import."""
    check_wrappers(wrappers)   # (a saved config may have been altered)
    for index, spec in enumerate(wrappers):
        check_target(spec, describe(index, spec), saved_in)


def check_target(spec: Mapping[str, Any], where: str, saved_in: Path | None) -> str:
    """The entry's target as a dotted path, once it is one and its module may be imported (rlexp/config/trust.py;
    judged by its top-level package, so importing that yourself is the opt-in, as for an env.id's module)."""
    dotted = str(spec[TARGET]).replace(":", ".")   # (a string: rlexp/config/checks.py's check_wrappers)
    check_import(dotted, where, None)   # a dotted path of identifiers
    check_import(dotted.split(".")[0], where, saved_in)
    return dotted


def resolve(target: str, where: str) -> Any:
    """The object a dotted path names (`package.module.Name`), importing the first name, then each next one as a
    submodule where no attribute holds it."""
    parts = target.split(".")
    obj = import_module(parts[0], where)
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif inspect.ismodule(obj):
            obj = import_module(".".join(parts[:i + 1]), where, parent=".".join(parts[:i]))
        else:
            raise ConfigError(f"{where}: {'.'.join(parts[:i])} has no attribute {part!r}")
    return obj


def import_module(name: str, where: str, parent: str | None = None) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == name or (error.name and name.startswith(f"{error.name}.")):
            missing = f"module {parent} has no attribute or submodule {name.rsplit('.', 1)[1]!r}" if parent \
                else f"no module named {name!r}"
            raise ConfigError(f"{where} does not import: {missing}; check the dotted path, or install its "
                              f"package") from None
        raise ConfigError(f"{where}: importing {name} needs a package that is not installed: no module named "
                          f"{error.name!r} (fix: pip install {str(error.name).split('.')[0]})") from None
    except Exception as error:   # the module's own code failed
        raise ConfigError(f"{where}: importing {name} raised {type(error).__name__}: {one_line(str(error))}"
                          ) from None


def apply_wrappers(env: gym.Env, wrappers: Sequence[Mapping[str, Any]], saved_in: Path | None = None) -> gym.Env:
    """`env` wrapped by each entry of `wrappers` in order (the first innermost). Every failure (a target that does
    not import or is no wrapper, arguments it does not take, a wrapper whose construction raises) is one
    ConfigError naming the entry."""
    check_wrappers(wrappers)
    for index, spec in enumerate(wrappers):
        where = describe(index, spec)
        wrapper = resolve(check_target(spec, where, saved_in), where)
        kwargs = {key: value for key, value in spec.items() if key != TARGET}
        if inspect.isclass(wrapper):
            if not issubclass(wrapper, gym.Wrapper):
                raise ConfigError(f"{where} is a class, but not a gymnasium.Wrapper: name a subclass of "
                                  f"gymnasium.Wrapper, or a function that takes the env and returns a gymnasium.Env")
        elif not callable(wrapper):
            raise ConfigError(f"{where} is a {type(wrapper).__name__}, not a gymnasium.Wrapper or a callable "
                              f"returning one")
        try:
            signature: inspect.Signature | None = inspect.signature(wrapper)
        except (TypeError, ValueError):   # a builtin without one: the call says it
            signature = None
        if signature is not None:
            try:
                signature.bind(env, **kwargs)
            except TypeError as error:
                given = f"the keyword arguments {sorted(kwargs)}" if kwargs else "no keyword arguments"
                raise ConfigError(f"{where} cannot be called with the env and {given}: {error}; its signature is "
                                  f"{signature}") from None
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
