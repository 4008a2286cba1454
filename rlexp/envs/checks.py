"""What an env's `step` and `reset` return, checked where it enters: every env rlexp makes (training, evaluation,
`rlexp eval`, `rlexp.load`) has `CheckedEnv` innermost, right around the user's env, so a malformed value is
named before gymnasium's wrappers unpack it (a 4-tuple would be "not enough values to unpack" in TimeLimit) and
an exception the env raises becomes one `EnvCallError` naming the call, the exception's type and its message.
A run with `env.wrappers` has a second one around the user's wrappers (rlexp/envs/wrappers.py), so what a wrapper
returns or raises is named the same way.

The checks cost about a microsecond a step (README, Reliability): a type test per value, the observation's shape
and dtype kind against its space; the slow path that words an error runs only when a check fails.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rlexp.envs.spaces import invalid_values
from rlexp.errors import EnvFault, one_line

log = logging.getLogger("rlexp")

Check = Callable[[Any], "str | None"]   # None when the value fits, else what came, in words

_FLAGS = (bool, np.bool_)
_NUMBERS = (float, int, np.float64, np.float32, np.int64, np.int32)
STEP_RESULT = "a tuple (obs, reward, terminated, truncated, info), gymnasium's step API"
RESET_RESULT = "a tuple (obs, info), gymnasium's reset API"


class EnvCallError(EnvFault):
    """An env's `step` or `reset` raised, or returned what gymnasium's API and the env's spaces do not allow.
    `index` is the env's place in a vector env (None for a single env); the runner adds the step."""

    def __init__(self, env_id: str, problem: str = "", index: int | None = None) -> None:
        super().__init__(env_id, problem, index)   # (the args pickle: the error crosses from an async worker)
        self.env_id, self.problem, self.index = env_id, problem, index

    def __str__(self) -> str:
        return f"{self.env_id}: {self.problem}" if self.problem else self.env_id

    def at(self, step: int, num_envs: int = 1, where: str = "") -> EnvFault:
        """The one line a run ends with: the env (its index among `num_envs`), the step and what went wrong."""
        which = f" (env {self.index} of {num_envs})" if self.index is not None and num_envs > 1 else ""
        return EnvFault(f"{self.env_id}{where}{which} failed at step {step}: {self.problem}")


def kind_fits(space_kind: str, value_kind: str) -> bool:
    """A value's dtype kind that a Box of `space_kind` takes as it is (an int observation in a float Box)."""
    return value_kind == space_kind or (space_kind == "f" and value_kind in "iub") or \
        (space_kind in "iu" and value_kind in "iub")


def observation_check(space: gym.Space) -> Check:
    """The check of an observation of `space`: shape and dtype kind for a Box, an integer for a Discrete,
    integers of its shape for a MultiDiscrete or MultiBinary, the same keys or length, entry by entry, for a Dict
    or Tuple; other spaces are not checked."""
    if isinstance(space, gym.spaces.Box):
        shape, kind = space.shape, space.dtype.kind

        def box(obs: Any) -> str | None:
            if type(obs) is np.ndarray and obs.shape == shape and obs.dtype.kind == kind:
                return None   # the fast path
            array = np.asarray(obs) if not isinstance(obs, np.ndarray) else obs
            if array.shape == shape and kind_fits(kind, array.dtype.kind):
                return None
            return f"an observation of shape {array.shape} and dtype {array.dtype} " \
                   f"({type(obs).__name__}); its observation_space {space} expects shape {shape}, dtype {space.dtype}"
        return box
    if isinstance(space, gym.spaces.Discrete):
        def discrete(obs: Any) -> str | None:
            if isinstance(obs, (int, np.integer)) and not isinstance(obs, _FLAGS) or \
                    isinstance(obs, np.ndarray) and obs.shape == () and obs.dtype.kind in "iu":
                return None
            return f"an observation {short(obs)} of type {type(obs).__name__}; its observation_space {space} " \
                   f"expects an integer"
        return discrete
    if isinstance(space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        vector_shape = space.shape

        def integers(obs: Any) -> str | None:
            array = np.asarray(obs)
            if array.shape == vector_shape and array.dtype.kind in "iub":
                return None
            return f"an observation of shape {array.shape} and dtype {array.dtype} ({type(obs).__name__}); its " \
                   f"observation_space {space} expects integers of shape {vector_shape}"
        return integers
    if isinstance(space, gym.spaces.Dict):
        entries = {key: entry_check(sub) for key, sub in space.spaces.items()}

        def mapping(obs: Any) -> str | None:
            if not isinstance(obs, dict) or obs.keys() != entries.keys():
                keys = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
                return f"an observation {keys}; its Dict observation_space expects the keys {sorted(entries)}"
            return next((f"in entry {key!r}, {problem}" for key, check in entries.items()
                         if (problem := check(obs[key])) is not None), None)
        return mapping
    if isinstance(space, gym.spaces.Tuple):
        items = [entry_check(sub) for sub in space.spaces]

        def sequence(obs: Any) -> str | None:
            if not isinstance(obs, tuple) or len(obs) != len(items):
                return f"an observation of type {type(obs).__name__}; its Tuple observation_space expects a " \
                       f"tuple of {len(items)}"
            return next((f"in entry {i}, {problem}" for i, (check, value) in enumerate(zip(items, obs))
                         if (problem := check(value)) is not None), None)
        return sequence
    return lambda obs: None


def entry_check(space: gym.Space) -> Check:
    """The check of an entry of a Dict or Tuple observation: `observation_check`'s, then its values, finite floats
    and integers in their range. (rlexp packs these observations into bytes, rlexp/envs/packing.py, where the
    runner's check of a step's observations sees no floats, and each entry's encoder reads it alone: a value out
    of a Discrete's range would be one-hot encoded as zeros.)"""
    fits = observation_check(space)
    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        return fits

    def entry(obs: Any) -> str | None:
        problem = fits(obs)
        if problem is not None:
            return problem
        array = np.asarray(obs)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return f"an observation holding {int((~np.isfinite(array)).sum())} NaN or infinite value(s): " \
                   f"{short(obs)}"
        invalid = None if isinstance(space, gym.spaces.Box) else invalid_values(space, array[None])
        return None if invalid is None else f"an observation with {invalid}"
    return entry


def reward_problem(reward: Any) -> str | None:
    if isinstance(reward, numbers.Real):   # (numpy's scalars too)
        return None
    if isinstance(reward, np.ndarray) and reward.shape == () and reward.dtype.kind in "fiu":
        return None   # a number in a 0-d array
    what = f"an array of shape {reward.shape}" if isinstance(reward, np.ndarray) else \
        "None" if reward is None else f"{short(reward)} of type {type(reward).__name__}"
    return f"a reward that is {what}; expected a number (a float or an int)"


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


class CheckedEnv(gym.Wrapper):
    """The user's env, with what its `step` and `reset` return checked, and what they raise named (EnvCallError).
    `index`: the env's place in a vector env, for the message."""

    def __init__(self, env: gym.Env, env_id: str, index: int | None = None) -> None:
        super().__init__(env)
        self.env_id, self.index = env_id, index
        self.check_obs = observation_check(env.observation_space)

    def fail(self, problem: str) -> EnvCallError:
        return EnvCallError(self.env_id, problem, self.index)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        try:
            result = self.env.step(action)
        except EnvCallError:   # named already, by the CheckedEnv under the user's wrappers (rlexp/envs/wrappers.py)
            raise
        except Exception as error:
            raise self.fail(f"its step raised {type(error).__name__}: {one_line(str(error))}") from error
        if type(result) is not tuple or len(result) != 5:
            raise self.fail(f"its step returned {returned(result)}; expected {STEP_RESULT}")
        obs, reward, terminated, truncated, info = result
        problem = self.check_obs(obs)
        if problem is None and type(reward) not in _NUMBERS:
            problem = reward_problem(reward)
        if problem is None and not (type(terminated) in _FLAGS and type(truncated) in _FLAGS):
            name, flag = ("terminated", terminated) if type(terminated) not in _FLAGS else ("truncated", truncated)
            problem = f"{name}={short(flag)} of type {type(flag).__name__}; expected a bool"
        if problem is None and not isinstance(info, dict):
            problem = f"an info of type {type(info).__name__}; expected a dict"
        if problem is not None:
            raise self.fail(f"its step returned {problem}")
        return result

    def close(self) -> None:
        """An env whose close fails is warned about in one line: the run's work is done, its results still due."""
        try:
            self.env.close()
        except Exception as error:
            log.warning("%s: its close raised %s: %s (ignored)", self.env_id, type(error).__name__,
                        one_line(str(error)))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        try:
            result = self.env.reset(seed=seed, options=options)
        except EnvCallError:
            raise
        except Exception as error:
            raise self.fail(f"its reset raised {type(error).__name__}: {one_line(str(error))}") from error
        if type(result) is not tuple or len(result) != 2 or not isinstance(result[1], dict):
            raise self.fail(f"its reset returned {returned(result)}; expected {RESET_RESULT}")
        problem = self.check_obs(result[0])
        if problem is not None:
            raise self.fail(f"its reset returned {problem}")
        return result


def returned(result: Any) -> str:
    """What a step or reset returned instead of the tuple gymnasium's API has: `a 4-tuple`, `a ndarray`."""
    if isinstance(result, tuple):
        kinds = ", ".join(type(value).__name__ for value in result)
        return f"a {len(result)}-tuple ({kinds})"
    return f"a {type(result).__name__}"


def checked(env: gym.Env, env_id: str, index: int | None = None) -> gym.Env:
    """`env` (gymnasium.make's) with a CheckedEnv innermost, around the user's env, under gymnasium's wrappers
    (TimeLimit, OrderEnforcing, the passive checker) that would otherwise be first to meet what it returns."""
    if not isinstance(env, gym.Wrapper):
        return CheckedEnv(env, env_id, index)
    outer: gym.Wrapper = env
    while isinstance(outer.env, gym.Wrapper):
        outer = outer.env
    outer.env = CheckedEnv(outer.env, env_id, index)
    return env


def set_index(env: gym.Env, index: int | None) -> gym.Env:
    """Tell `env`'s CheckedEnvs (the one around the user's env, and the one around env.wrappers if any) its place
    in a vector env (for their messages); returns `env`."""
    inner: Any = env
    while True:
        if isinstance(inner, CheckedEnv):
            inner.index = index
        if not isinstance(inner, gym.Wrapper):
            return env
        inner = inner.env
