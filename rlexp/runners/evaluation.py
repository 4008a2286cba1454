"""Deterministic evaluation episodes on an env instance kept apart from training."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int, seed: int,
             record_first: Callable[[], None] | None = None) -> np.ndarray:
    """Run `episodes` full episodes with `policy` (a batch of observations -> a batch of actions) and return their
    undiscounted returns.

    Seeding the first reset with the same `seed` every time makes successive evaluations of a run start from the
    same initial states, so their returns compare the policies, not the luck. `record_first` is called at every
    step of the first episode (e.g. to grab a video frame).
    """
    returns = np.zeros(episodes, dtype=np.float64)
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        record = record_first if episode == 0 else None
        if record is not None:
            record()
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(np.asarray(obs)[None])[0])
            returns[episode] += float(reward)
            done = terminated or truncated
            if record is not None:
                record()
        obs, _ = env.reset()
    return returns
