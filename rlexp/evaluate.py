"""Deterministic evaluation episodes on an env instance kept apart from training."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


def evaluate(policy: Callable[[np.ndarray], np.ndarray | int], env: gym.Env, episodes: int,
             seed: int) -> np.ndarray:
    """Run `episodes` full episodes with `policy` and return their undiscounted returns.

    Seeding the first reset with the same `seed` every time makes successive evaluations of a run
    start from the same initial states, so their returns compare the policies, not the luck.
    """
    returns = np.zeros(episodes, dtype=np.float64)
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            returns[episode] += float(reward)
            done = terminated or truncated
        obs, _ = env.reset()
    return returns
