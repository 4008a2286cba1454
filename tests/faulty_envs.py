"""Small gymnasium envs with the faults and spaces the reliability tests need.

A user selects a custom env the same way: `rlexp train env.id=tests.faulty_envs:NanObservation-v0`
(gymnasium imports the module before the `:`, which registers the ids below).
"""

from __future__ import annotations

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
