"""Small gymnasium envs with the faults and spaces the reliability tests need.

A user selects a custom env the same way: `rlexp train env.id=tests.faulty_envs:NanObservation-v0`
(gymnasium imports the module before the `:`, which registers the ids below).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import gymnasium as gym
import numpy as np


class FaultyEnv(gym.Env):
    """Observes a slowly drifting vector, rewards -|action|; from env step `fault_at` on (counted over the
    instance's life), emits NaN in the observation or the reward."""

    def __init__(self, fault: str | None = None, fault_at: int = 10**9, discrete: bool = False,
                 unbounded: bool = False, image: bool = False, seeded: bool = True,
                 fault_seed: int | None = None) -> None:
        self.fault, self.fault_at, self.seeded = fault, fault_at, seeded
        self.fault_seed, self.first_seed = fault_seed, None   # fault_seed: only the env first reset with it faults
        self.observation_space = (gym.spaces.Box(0, 255, (84, 84, 3), np.uint8) if image
                                  else gym.spaces.Box(-10.0, 10.0, (3,), np.float32))
        if discrete:
            self.action_space = gym.spaces.Discrete(2)
        else:
            bound = np.inf if unbounded else 1.0
            self.action_space = gym.spaces.Box(-bound, bound, (1,), np.float32)
        self.steps = 0
        self.t = 0

    def _obs(self) -> np.ndarray:
        if isinstance(self.observation_space, gym.spaces.Box) and self.observation_space.dtype == np.uint8:
            return np.zeros(self.observation_space.shape, np.uint8)
        obs = np.array([np.sin(self.t / 10), np.cos(self.t / 10), self.state], dtype=np.float32)
        if self.fault == "observation" and self.steps >= self.fault_at:
            obs[1] = np.nan
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.first_seed is None and seed is not None:
            self.first_seed = seed
        if self.fault_seed is not None and self.first_seed != self.fault_seed:
            self.fault = None
        self.t = 0
        # seeded=False stands for an env whose state does not follow from its seed (e.g. wall-clock driven).
        rng = self.np_random if self.seeded else np.random.default_rng()
        self.state = float(rng.uniform(-1, 1))
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        reward = -float(np.abs(action).sum()) if not np.isscalar(action) else -float(action)
        if self.fault == "reward" and self.steps >= self.fault_at:
            reward = float("nan")
        return self._obs(), reward, False, False, {}


for name, kwargs in {
    "NanObservation-v0": {"fault": "observation"},
    "NanReward-v0": {"fault": "reward", "discrete": True},
    "UnboundedAction-v0": {"unbounded": True},
    "ImageObservation-v0": {"image": True, "discrete": True},
    "Unseeded-v0": {"seeded": False},
}.items():
    gym.register(id=name, entry_point=FaultyEnv, kwargs=kwargs, max_episode_steps=50)


class MisbehavingEnv(FaultyEnv):
    """A FaultyEnv with discrete actions that, from env step `at` on (counted over the instance's life), fails as a
    user's env can: raises in step or reset, returns a malformed value, or (in an async worker only) hangs or dies;
    `how=None` never ends an episode (register it without max_episode_steps)."""

    def __init__(self, how: str | None = None, at: int = 30, fault_seed: int | None = None) -> None:
        super().__init__(discrete=True, fault_seed=fault_seed)
        self.how, self.at = how, at
        if how == "dies_on_make" and multiprocessing.current_process().name.startswith("Worker"):
            os.kill(os.getpid(), signal.SIGKILL)

    def _due(self) -> bool:
        if self.fault_seed is not None and self.first_seed != self.fault_seed:
            return False
        return self.steps >= self.at

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        if self._due() and self.how == "raises_in_reset":
            raise RuntimeError("the simulator lost its license server")
        if self._due() and self.how == "reset_not_tuple":
            return obs
        return obs, info

    def close(self) -> None:
        if self.how == "raises_on_close":
            raise OSError("device busy")

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if not self._due():
            return obs, reward, terminated, truncated, info
        in_worker = multiprocessing.current_process().name.startswith("Worker")
        if self.how == "raises_in_step":
            raise ValueError("joint 3 exploded")
        if self.how == "hangs" and in_worker:
            time.sleep(3600)
        if self.how == "dies" and in_worker:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.how == "four_tuple":
            return obs, reward, terminated or truncated, info
        malformed = {"wrong_shape": {"obs": obs[:2]}, "string_reward": {"reward": "1.0"},
                     "array_reward": {"reward": np.array([reward])}, "none_reward": {"reward": None},
                     "flag_not_bool": {"terminated": 0}}.get(self.how or "", {})
        out = {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, **malformed}
        return out["obs"], out["reward"], out["terminated"], out["truncated"], info


for name, how in {"RaisesInStep-v0": "raises_in_step", "RaisesInReset-v0": "raises_in_reset",
                  "WrongShape-v0": "wrong_shape", "StringReward-v0": "string_reward", "FourTuple-v0": "four_tuple",
                  "ResetNotTuple-v0": "reset_not_tuple", "FlagNotBool-v0": "flag_not_bool",
                  "HangsInStep-v0": "hangs", "DiesInStep-v0": "dies"}.items():
    gym.register(id=name, entry_point=MisbehavingEnv, kwargs={"how": how}, max_episode_steps=50)
gym.register(id="NeverEnds-v0", entry_point=MisbehavingEnv)   # no time limit
