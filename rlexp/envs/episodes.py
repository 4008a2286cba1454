"""Bringing an env back to the middle of an episode, for exact resume.

An env's own state (positions, velocities, emulator memory) cannot be saved in general. What can be saved is how
its current episode began (the reset's seed, or the env generator's state just before the reset) and the actions
taken since: resetting the same way and replaying them rebuilds the state, for every env whose dynamics are a
function of its seed and its actions. `EpisodeRecorder` is the outermost wrapper of every training env, so it
records inside the vector env's worker processes too, and restores there.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


class EpisodeRecorder(gym.Wrapper):
    """Records the current episode (how it began, its actions, its return so far, the last observation)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.start: dict[str, Any] = {}
        self.actions: list[Any] = []
        self.episode_return = 0.0
        self.last_obs: Any = None
        #: Set by the runner (`VectorEnv.set_attr`) before `resume()`: (record, seed of a fresh episode).
        self.resume_from: tuple[dict[str, Any], int] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.start = {"seed": seed} if seed is not None else \
            {"np_random": self.env.unwrapped.np_random.bit_generator.state}
        self.actions, self.episode_return = [], 0.0
        self.last_obs, info = self.env.reset(seed=seed, options=options)
        return self.last_obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self.actions.append(np.array(action, copy=True))
        self.last_obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        return self.last_obs, reward, terminated, truncated, info

    def episode_record(self) -> dict[str, Any]:
        """The current episode: how it began, its actions, its return so far and the current observation."""
        actions = np.stack(self.actions) if self.actions else np.zeros((0,))
        return {"start": self.start, "actions": actions, "obs": np.array(self.last_obs, copy=True),
                "return": self.episode_return}

    def resume(self) -> tuple[Any, bool]:
        """Replay the episode in `resume_from`; returns the current observation and whether the replay reproduced
        the recorded observation and return. If not (an env that is not deterministic given its seed), a fresh
        episode starts from the given seed instead."""
        assert self.resume_from is not None, "set resume_from first"
        record, fresh_seed = self.resume_from
        self.resume_from = None
        start = record["start"]
        if "seed" in start:
            obs, _ = self.reset(seed=int(start["seed"]))
        else:
            self.env.reset(seed=0)  # initialises wrappers and the generator, whose state is then overwritten
            self.env.unwrapped.np_random.bit_generator.state = start["np_random"]
            obs, _ = self.reset()
        for action in record["actions"]:
            obs, _, terminated, truncated, _ = self.step(action)
            if terminated or truncated:
                break
        else:
            if np.array_equal(obs, record["obs"]) and self.episode_return == record["return"]:
                return obs, True
        obs, _ = self.reset(seed=fresh_seed)
        return obs, False

