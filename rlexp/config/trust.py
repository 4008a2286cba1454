"""What a saved run may make this process import: the one rule for every module a run's config names.

A run directory or a checkpoint is data that anyone may have written (a run copied from a shared drive, a file
downloaded beside a module of the same author). Loading it (`rlexp eval`, `rlexp export`, `rlexp.load`, a
resume) must not run code because it says so. Its config still names code: `env.id=my_package.envs:MyEnv-v0`
imports the module that registers the env, as gymnasium.make would, and `env.wrappers` and `network.torso` name theirs
by `_target_` (rlexp/config/targets.py), and `callbacks` theirs. So a module a *saved* config names is imported only if

- it is already imported in this process (in Python, importing it yourself before `rlexp.load` is how you opt in),
- or Python finds it through an installed location or a directory named on PYTHONPATH: never through the current
  directory (where `python -m rlexp` and a notebook look first) or the run's own directory, unless PYTHONPATH names
  that directory explicitly (`PYTHONPATH=. rlexp eval <run>` is the opt-in for one's own env module);

and a module of Python's standard library never is (no env, wrapper or network lives there, and `os` or
`subprocess` named as a target would be code execution by config). A config the user typed for this command is
theirs: it imports what they named, as any Python import would.

This decides imports only. What a target may then be (a gymnasium.Wrapper, an nn.Module) is checked where it is
built, before it is called.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

from rlexp.errors import ConfigError


def check_import(name: str, named_by: str, saved_in: Path | None) -> None:
    """Refuse (one ConfigError line) the import of `name`, a module or a dotted target inside one, that a config
    saved in `saved_in` (a run directory or a checkpoint's) names as `named_by` (e.g. "env.id='m:Env-v0'"). With
    `saved_in=None` (the user typed the config for this command) every module may be imported (a name that is not
    a module's is refused either way). Nothing is imported here: the caller imports once this returns. A module
    Python cannot find passes, for the caller's import to say so in its own words."""
    if not all(part.isidentifier() for part in name.split(".")):   # ('..m' would be a relative import, '' none)
        raise ConfigError(f"{named_by} names {name!r}, which is not a module name: dotted Python identifiers, such "
                          f"as my_package.envs")
    if saved_in is None:
        return
    top = name.split(".")[0]
    where = f"{named_by}, saved in {saved_in.resolve()},"
    if top in sys.stdlib_module_names:   # refused even when imported: `os:...` names no env, only code to reach
        raise ConfigError(f"{where} names {top!r}, a module of Python's standard library: a run's saved config "
                          f"never makes rlexp import one (no env, wrapper or network lives there)")
    if name in sys.modules:
        return
    spec = _spec(top)
    if spec is None:
        return
    refused = _untrusted_directories(saved_in)
    for entry in _search_entries(spec):
        if entry in refused:
            place = "the current directory" if entry == Path.cwd().resolve() else "the run's own directory"
            raise ConfigError(f"{where} would import {top!r} from {entry}, {place}: a saved run imports only "
                              f"installed modules and those of directories named on PYTHONPATH, never code found "
                              f"beside it; if you trust that module, name its directory (PYTHONPATH={entry} rlexp "
                              f"...), or in Python import {top} yourself before rlexp.load")


def _spec(top: str) -> ModuleSpec | None:
    """Where Python would import the top-level module `top` from, without running any of it (a submodule's
    find_spec would import its parents)."""
    module = sys.modules.get(top)
    if module is not None:
        return getattr(module, "__spec__", None)
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


def _search_entries(spec: ModuleSpec) -> list[Path]:
    """The directories (sys.path entries) a top-level module was found through: a module file's directory, a
    package directory's parent (each of a namespace package's portions: its submodules come from any of them). The
    file itself is not resolved: a link in the current directory to an installed file is found there."""
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.has_location and spec.origin:
        locations = [spec.origin]
    return [Path(location).absolute().parent.resolve() for location in locations]


def _untrusted_directories(saved_in: Path) -> set[Path]:
    """The directories a saved config's module may not come from: the current one and the run's own (or its
    checkpoints/), unless PYTHONPATH names them. Only these, not those below them: one may hold an installed
    environment (a checkpoint in ~ must not make ~/.venv untrusted)."""
    named = {Path(entry).resolve() for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry}
    run = saved_in.resolve()
    return {Path.cwd().resolve(), run, run / "checkpoints"} - named
