"""A small env observing through any of the spaces rlexp encodes (tests/test_obs_spaces.py), for the algorithms
gymnasium's own Discrete-observation envs (FrozenLake, Taxi, CliffWalking: all with discrete actions) do not fit.

`rlexp train algo=td3 env.id=tests.obs_envs:Corridor-multidiscrete-v0` (Box actions; `Corridor-<observations>-v0`
for each observation space below).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LENGTH = 6   # cells of the corridor


class SpacesEnv(gym.Env):
    """A corridor of LENGTH cells; the agent starts at 0, an action moves it left or right (a Box action by its
    sign), reaching the last cell ends the episode with reward 1 (else -0.01 a step, 20 steps at most). The cell is
    observed as `observations`: discrete (the cell), multidiscrete (the cell and its parity), multibinary (a
    thermometer code), box3d (a (1, 2, LENGTH) float one-hot: a Box of rank 3 that is not an image)."""

    SPACES = {"discrete": gym.spaces.Discrete(LENGTH),
              "multidiscrete": gym.spaces.MultiDiscrete([LENGTH, 2]),
              "multibinary": gym.spaces.MultiBinary(LENGTH),
              "box3d": gym.spaces.Box(0.0, 1.0, (1, 2, LENGTH), np.float32)}

    def __init__(self, observations: str = "discrete", actions: str = "box") -> None:
        self.kind = observations
        self.observation_space = self.SPACES[observations]
        self.action_space = gym.spaces.Discrete(2) if actions == "discrete" else \
            gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.cell, self.t = 0, 0

    def _obs(self) -> Any:
        if self.kind == "discrete":
            return self.cell
        if self.kind == "multidiscrete":
            return np.array([self.cell, self.cell % 2], np.int64)
        if self.kind == "multibinary":
            return (np.arange(LENGTH) <= self.cell).astype(np.int8)
        obs = np.zeros((1, 2, LENGTH), np.float32)
        obs[0, 0, self.cell] = 1.0
        obs[0, 1, LENGTH - 1 - self.cell] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.cell, self.t = 0, 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        right = int(action) == 1 if isinstance(self.action_space, gym.spaces.Discrete) else float(action[0]) > 0
        self.cell = min(max(self.cell + (1 if right else -1), 0), LENGTH - 1)
        self.t += 1
        done = self.cell == LENGTH - 1
        return self._obs(), 1.0 if done else -0.01, done, self.t >= 20, {}


for _observations in SpacesEnv.SPACES:
    gym.register(id=f"Corridor-{_observations}-v0", entry_point=SpacesEnv, kwargs={"observations": _observations})
