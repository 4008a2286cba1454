"""Making gymnasium environments: one for evaluation, a vector of them for training.

Training envs step together in a gymnasium vector env: `SyncVectorEnv` (one after the other, in this process) or
`AsyncVectorEnv` (each in a worker process). Both use the SAME_STEP autoreset mode: an env whose episode ends is
reset within the same `step` call, which returns the new episode's first observation and puts the last one in
`info["final_obs"]` (its info in `info["final_info"]`). So every call is one transition per env, none is wasted
on a reset, and a vector env of one steps exactly as the single env it holds. The vector env returns its own
observation buffer (copy=False), which the next step overwrites: the collector copies it once, with numpy.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import multiprocessing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlexp.config.trust import check_import
from rlexp.envs.atari import AtariSettings, atari_wrappers, register_ale
from rlexp.envs.checks import CheckedEnv, checked, set_index
from rlexp.envs.episodes import EpisodeRecorder
from rlexp.envs.packing import PackObservation, packable
from rlexp.envs.workers import WatchedAsyncVectorEnv, start_forkserver
from rlexp.envs.wrappers import apply_wrappers, check_saved_wrappers
from rlexp.errors import ConfigError, EnvFault, RunFailure, one_line, pip_install

# Extras a gymnasium env family needs, keyed by the text gymnasium's DependencyNotInstalled mentions.
_EXTRAS = {"box2d": "box2d", "mujoco": "mujoco", "ale": "atari", "atari": "atari"}

VECTORIZATIONS = ("sync", "async", "envpool")

#: How AsyncVectorEnv starts its workers. forkserver (where there is one) starts them from a clean process: they
#: import gymnasium and the env, not torch; they inherit no threads (TensorBoard's writer, torch's pool) and no
#: file descriptors, among them the run directory's lock, which must die with the training process.
WORKER_START = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None


Wrappers = Sequence[Mapping[str, Any]]   # env.wrappers: [{_target_: <dotted path>, <kwargs>}, ...]


def make_env(env_id: str, kwargs: dict[str, Any] | None = None, atari: AtariSettings | None = None,
             saved_in: Path | None = None, wrappers: Wrappers = (), pack: bool = True) -> gym.Env:
    """gymnasium.make, the user's `wrappers` (env.wrappers, in order; checked again around them), then the Atari
    preprocessing when `atari` is given, with its failures turned into one-line ConfigErrors a user can act on.
    Dict and Tuple observations are then packed into one array (rlexp/envs/packing.py; the checks, inside,
    see the raw ones), unless `pack` is false (`rlexp.load`'s env gives a user the raw observations).
    `saved_in`: the run whose saved config names `env_id` and `wrappers` (None: the user typed it), whose modules
    are imported only under rlexp/config/trust.py's rule."""
    if env_id.startswith("ALE/"):
        register_ale(env_id)
    module, colon, _ = env_id.partition(":")
    if colon:
        import_registering_module(env_id, module, saved_in)
    try:
        env = checked(gym.make(env_id, **(kwargs or {})), env_id)
        if wrappers:
            try:
                env = CheckedEnv(apply_wrappers(env, wrappers, saved_in), f"{env_id} through env.wrappers")
            except BaseException:
                env.close()
                raise
        if pack and packable(env.observation_space):
            try:
                env = PackObservation(env)
            except BaseException:
                env.close()
                raise
        return atari_wrappers(env, atari) if atari is not None else env
    except gym.error.DependencyNotInstalled as error:
        text = str(error)
        fix = next((pip_install(extra) for key, extra in _EXTRAS.items() if key in text.lower()), None)
        raise ConfigError(f"env.id={env_id!r} needs a package that is not installed: {text.splitlines()[0]}"
                          + (f" (fix: {fix})" if fix else "")) from None
    except ImportError as error:  # an env whose entry point needs a package (phys2d/... needs jax)
        raise missing_package(env_id, error) from None
    except gym.error.Error as error:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry() for the ids"
        raise ConfigError(f"env.id={env_id!r} is not a registered gymnasium environment ({error}){hint}") from None
    except TypeError as error:
        raise ConfigError(f"env.kwargs={kwargs!r} do not fit {env_id}: {error}") from None
    except (ConfigError, RunFailure):
        raise
    except Exception as error:   # the env's own constructor failed
        raise EnvFault(f"{env_id} could not be made: it raised {type(error).__name__}: {one_line(str(error))}"
                       ) from error


def missing_package(env_id: str, error: ImportError) -> ConfigError:
    missing = error.name or str(error)
    return ConfigError(f"env.id={env_id!r} needs a package that is not installed: no module named {missing!r} "
                       f"(fix: pip install {missing.split('.')[0]})")


def import_registering_module(env_id: str, module: str, saved_in: Path | None = None) -> None:
    """`env.id=my_package.envs:MyEnv-v0` imports my_package.envs, which registers MyEnv-v0 (as gymnasium.make
    would, but with a message that tells a missing module from a missing dependency of it). A saved run's
    (`saved_in`) only under the rule of rlexp/config/trust.py: never from the current or the run's directory."""
    check_import(module, f"env.id={env_id!r}", saved_in)
    try:
        importlib.import_module(module)
    except ImportError as error:
        if error.name and (module == error.name or module.startswith(f"{error.name}.")):
            raise ConfigError(f"env.id={env_id!r}: cannot import {module!r}, the module that should register it "
                              f"(no module named {error.name!r}); check its name, or install its package") from None
        raise missing_package(env_id, error) from None


def make_training_env(env_id: str, kwargs: dict[str, Any], atari: AtariSettings | None,
                      index: int | None = None, wrappers: Wrappers = ()) -> gym.Env:
    """One training env (env `index` of its vector env): the env, the user's wrappers, its Atari preprocessing, and
    the episode recorder outermost. (In an async worker, SIGINT and SIGTERM are ignored: rlexp/envs/workers.py.
    The wrappers travel to it as their config, plain data, and are imported there.)"""
    return EpisodeRecorder(set_index(make_env(env_id, kwargs, atari, wrappers=wrappers), index))


def check_saved_env(env_id: str, saved_in: Path, wrappers: Wrappers = ()) -> None:
    """Refuse, before anything is built, a saved run's env.id or env.wrappers whose module the trust rule does not
    import (a resume checks this before its Job makes the envs, in this process and in async workers)."""
    module, colon, _ = env_id.partition(":")
    if colon:
        check_import(module, f"env.id={env_id!r}", saved_in)
    check_saved_wrappers(wrappers, saved_in)


def make_vector_env(env_id: str, kwargs: dict[str, Any], atari: AtariSettings | None, num_envs: int,
                    vectorization: str, seed: int | None = None, step_timeout: float = 300.0,
                    wrappers: Wrappers = ()) -> Any:
    """`num_envs` training envs that step together: in this process (`sync`), in worker processes (`async`), or
    in EnvPool's C++ threads (`envpool`, which seeds env i with seed + i when it makes them; gymnasium's vector
    envs are seeded at their first reset). An async worker that does not answer a step within `step_timeout`
    seconds ends the run (rlexp/envs/workers.py)."""
    if vectorization == "envpool":
        from rlexp.envs.envpool import EnvPoolVectorEnv

        assert seed is not None, "EnvPool seeds its envs when it makes them"
        assert not wrappers, "validation refuses env.wrappers with EnvPool"
        return EnvPoolVectorEnv(env_id, kwargs, atari, num_envs, seed)
    factories = [functools.partial(make_training_env, env_id, kwargs, atari, i, wrappers) for i in range(num_envs)]
    if vectorization == "async":
        if WORKER_START == "forkserver":
            start_forkserver()
        return WatchedAsyncVectorEnv(factories, env_id, step_timeout, autoreset_mode=AutoresetMode.SAME_STEP,
                                     context=WORKER_START, copy=False)
    if vectorization == "sync":
        return gym.vector.SyncVectorEnv(factories, autoreset_mode=AutoresetMode.SAME_STEP, copy=False)
    raise ConfigError(f"env.vectorization={vectorization!r} is unknown; use {' or '.join(VECTORIZATIONS)}")
