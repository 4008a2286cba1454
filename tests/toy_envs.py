"""Small gymnasium envs with MultiDiscrete and MultiBinary actions that a policy must learn, for the tests.

Selected as a user selects any env of their own: `rlexp train env.id=tests.toy_envs:MultiChoice-v0` (gymnasium
imports the module before the `:`, which registers the ids below).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

EPISODE = 8   # steps per episode (a time limit)


class MultiChoice(gym.Env):
    """Each step shows a target, one choice per component (one-hot per component for MultiDiscrete, the bits for
    MultiBinary), drawn anew each step; the reward is the number of the action's components that match it. A
    uniformly random policy matches 1/n of a component's n choices; the optimum matches all."""

    def __init__(self, nvec: tuple[int, ...] = (3, 3), binary: int | None = None) -> None:
        self.nvec = np.full(binary, 2) if binary is not None else np.asarray(nvec)
        self.action_space: gym.Space = gym.spaces.MultiBinary(binary) if binary is not None else \
            gym.spaces.MultiDiscrete(self.nvec)
        size = binary if binary is not None else int(self.nvec.sum())
        self.observation_space = gym.spaces.Box(0.0, 1.0, (size,), np.float32)
        self.binary = binary is not None
        self.target = np.zeros(len(self.nvec), np.int64)

    def _obs(self) -> np.ndarray:
        self.target = self.np_random.integers(self.nvec)
        if self.binary:
            return self.target.astype(np.float32)
        obs = np.zeros(int(self.nvec.sum()), np.float32)
        obs[np.concatenate([[0], np.cumsum(self.nvec)[:-1]]) + self.target] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)) or \
                np.shape(action) != self.action_space.shape:
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        reward = float((np.asarray(action) == self.target).sum())
        return self._obs(), reward, False, False, {}


gym.register(id="MultiChoice-v0", entry_point=MultiChoice, max_episode_steps=EPISODE)
gym.register(id="MultiSwitch-v0", entry_point=MultiChoice, kwargs={"binary": 3}, max_episode_steps=EPISODE)
