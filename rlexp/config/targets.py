"""Hydra-style `_target_`s a config names (env.wrappers' entries, network.torso): a dotted path checked against the
import rule of rlexp/config/trust.py, then resolved to the object it names.

A small importlib resolver rather than hydra.utils.instantiate: Hydra's errors are chained tracebacks of its own,
and here every failure is one ConfigError line naming the key (`where`) and the target. What the object may then be
(a gymnasium.Wrapper, an nn.Module) is checked by the caller, where it is built.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlexp.config.trust import check_import
from rlexp.errors import ConfigError, one_line

TARGET = "_target_"


def check_target(spec: Mapping[str, Any], where: str, saved_in: Path | None) -> str:
    """The entry's target as a dotted path, once it is one and its module may be imported (rlexp/config/trust.py;
    judged by its top-level package, so importing that yourself is the opt-in, as for an env.id's module)."""
    dotted = str(spec[TARGET]).replace(":", ".")
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


def describe_entry(key: str, index: int, spec: Mapping[str, Any]) -> str:
    """How a message names an entry of a list of targets: `env.wrappers[0] (gymnasium.wrappers.FlattenObservation)`."""
    return f"{key}[{index}] ({spec.get(TARGET)})"


def check_saved_entries(key: str, specs: Sequence[Mapping[str, Any]], saved_in: Path) -> None:
    """Refuse, before anything is imported, an entry of a saved run's `key` (env.wrappers, callbacks) whose module
    the trust rule does not import."""
    for index, spec in enumerate(specs):
        check_target(spec, describe_entry(key, index, spec), saved_in)


def check_arguments(target: Any, where: str, kwargs: Mapping[str, Any], leading: tuple[Any, ...] = (),
                    leading_named: str = "", verb: str = "called") -> None:
    """One ConfigError line when `target` cannot be called with the `leading` positional values (`leading_named`:
    "the env", as a message names them) and `kwargs`, with its signature; a target without a signature (a builtin)
    passes, for its call to say what is wrong."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*leading, **kwargs)
    except TypeError as error:
        given = f"the keyword arguments {sorted(kwargs)}" if kwargs else "no keyword arguments"
        raise ConfigError(f"{where} cannot be {verb} with {f'{leading_named} and ' if leading_named else ''}{given}: "
                          f"{error}; its signature is {signature}") from None
