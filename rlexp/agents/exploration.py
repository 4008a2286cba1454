"""Exploration: the action noise of DDPG/TD3, one process per env, and saving numpy generators.

Noise is drawn from a numpy Generator owned by the caller, so a seed fixes it. With several envs, each draws its
own noise in one call (a row per env), and Ornstein-Uhlenbeck keeps one state per env, reset when that env's
episode starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch


def rng_state(rng: np.random.Generator) -> Mapping[str, Any]:
    """A Generator's exact position: plain dicts and ints, safe to store in a weights_only checkpoint."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    rng.bit_generator.state = state


class ActionNoise(Protocol):
    def __call__(self, n: int) -> np.ndarray:
        """(n, action_dim) float32: one noise vector per env of a batch of n (the run's num_envs in training)."""

    def reset(self, envs: np.ndarray) -> None:
        """Start anew for the envs where `envs` (a bool mask) is true: their episodes just started."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GaussianNoise:
    """Independent N(0, sigma^2) per env and action dimension (Fujimoto et al. 2018)."""

    def __init__(self, num_envs: int, action_dim: int, sigma: float, rng: np.random.Generator) -> None:
        self.shape = (num_envs, action_dim)
        self.sigma = sigma
        self.rng = rng

    def __call__(self, n: int) -> np.ndarray:
        return self.rng.normal(0.0, self.sigma, size=(n, self.shape[1])).astype(np.float32)

    def reset(self, envs: np.ndarray) -> None:
        """Gaussian noise has no state."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise, as in the DDPG paper (Lillicrap et al. 2015):
    x <- x + theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1), with mu = 0.
    """

    def __init__(self, num_envs: int, action_dim: int, sigma: float, theta: float, rng: np.random.Generator,
                 dt: float = 1e-2) -> None:
        self.sigma = sigma
        self.theta = theta
        self.dt = dt
        self.rng = rng
        self.state = np.zeros((num_envs, action_dim), dtype=np.float64)   # one process per env

    def __call__(self, n: int) -> np.ndarray:
        if n != len(self.state):   # another set of envs (a loaded agent acting on a new batch): from the mean
            self.state = np.zeros((n, self.state.shape[1]), dtype=np.float64)
        self.state = (
            self.state
            - self.theta * self.state * self.dt
            + self.sigma * np.sqrt(self.dt) * self.rng.normal(size=self.state.shape)
        )
        return self.state.astype(np.float32)

    def reset(self, envs: np.ndarray) -> None:
        """Back to the mean when an env's episode starts."""
        self.state[envs] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "x": torch.from_numpy(self.state.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        self.state = state["x"].numpy().astype(np.float64)


def make_action_noise(type: str, sigma: float, theta: float, num_envs: int, action_dim: int,
                      rng: np.random.Generator) -> ActionNoise:
    if type == "gaussian":
        return GaussianNoise(num_envs, action_dim, sigma, rng)
    if type == "ou":
        return OrnsteinUhlenbeckNoise(num_envs, action_dim, sigma, theta, rng)
    raise ValueError(f"unknown noise type {type!r}")  # the schema allows only the two above
