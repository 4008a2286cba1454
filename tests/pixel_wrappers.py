"""An observation wrapper of the kind users put in `env.wrappers` to get float images: a pixel env's uint8 images as
float32 in [0, 1] (what a pixel-rendering wrapper or a normalising one gives)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class UnitPixels(gym.ObservationWrapper):
    """uint8 images (any layout) -> float32 images in [0, 1], the same shape."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        assert isinstance(env.observation_space, gym.spaces.Box)
        self.observation_space = gym.spaces.Box(0.0, 1.0, env.observation_space.shape, np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return (np.asarray(observation, np.float32) / 255.0).astype(np.float32)
