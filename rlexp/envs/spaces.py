"""The runtime facts about an env's spaces that agents and replay memory are built from."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class SpaceInfo:
    obs_shape: tuple[int, ...]
    discrete: bool                     # a Discrete action space
    continuous: bool                   # a Box action space
    n_actions: int | None              # Discrete action spaces
    action_low: np.ndarray | None      # Box action spaces
    action_high: np.ndarray | None
    frames: bool                       # stacked uint8 frames (k, H, W), read by the Nature CNN
    flat: bool                         # a 1-D Box of observations, read by an MLP
    description: str                   # "<env id> (observations ..., actions ...)" for error messages

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def action_shape(self) -> tuple[int, ...]:
        if not self.continuous:
            return ()
        assert self.action_low is not None   # set for every Box action space (describe_spaces)
        return tuple(self.action_low.shape)

    @property
    def bounded(self) -> bool:
        if not self.continuous:
            return False
        assert self.action_low is not None and self.action_high is not None
        return bool(np.all(np.isfinite(self.action_low)) and np.all(np.isfinite(self.action_high)))


def describe_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str) -> SpaceInfo:
    box = isinstance(obs_space, gym.spaces.Box)
    shape: tuple[int, ...] = tuple(obs_space.shape) if isinstance(obs_space, gym.spaces.Box) else ()
    frames = (box and len(shape) == 3 and obs_space.dtype == np.uint8 and shape[0] <= 16
              and min(shape[1:]) >= 36)
    discrete = isinstance(action_space, gym.spaces.Discrete)
    continuous = isinstance(action_space, gym.spaces.Box)
    return SpaceInfo(
        obs_shape=shape, discrete=discrete, continuous=continuous,
        n_actions=int(action_space.n) if isinstance(action_space, gym.spaces.Discrete) else None,
        action_low=action_space.low.copy() if isinstance(action_space, gym.spaces.Box) else None,
        action_high=action_space.high.copy() if isinstance(action_space, gym.spaces.Box) else None,
        frames=frames, flat=box and len(shape) == 1,
        description=f"{env_id} (observations {obs_space}, actions {action_space})")
