"""Exploration: the epsilon schedule of DQN and the action noise of DDPG/TD3.

Noise is drawn from a numpy Generator owned by the caller, so a seed fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class LinearSchedule:
    """Anneal linearly from `start` to `end` over `duration` steps, then stay at `end`."""

    start: float
    end: float
    duration: int

    def __call__(self, step: int) -> float:
        if self.duration <= 0:
            return self.end
        fraction = min(step / self.duration, 1.0)
        return self.start + fraction * (self.end - self.start)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A Generator's exact position: plain dicts and ints, safe to store in a weights_only checkpoint."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state


class ActionNoise(Protocol):
    def __call__(self) -> np.ndarray: ...

    def reset(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GaussianNoise:
    """Independent N(0, sigma^2) per action dimension (Fujimoto et al. 2018)."""

    def __init__(self, action_dim: int, sigma: float, rng: np.random.Generator) -> None:
        self.action_dim = action_dim
        self.sigma = sigma
        self.rng = rng

    def __call__(self) -> np.ndarray:
        return self.rng.normal(0.0, self.sigma, size=self.action_dim).astype(np.float32)

    def reset(self) -> None:
        """Gaussian noise has no state."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise, as in the DDPG paper (Lillicrap et al. 2015):
    x <- x + theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1), with mu = 0.
    """

    def __init__(self, action_dim: int, sigma: float, theta: float, rng: np.random.Generator,
                 dt: float = 1e-2) -> None:
        self.action_dim = action_dim
        self.sigma = sigma
        self.theta = theta
        self.dt = dt
        self.rng = rng
        self.state = np.zeros(action_dim, dtype=np.float64)

    def __call__(self) -> np.ndarray:
        self.state = (
            self.state
            - self.theta * self.state * self.dt
            + self.sigma * np.sqrt(self.dt) * self.rng.normal(size=self.action_dim)
        )
        return self.state.astype(np.float32)

    def reset(self) -> None:
        """Back to the mean at each episode start."""
        self.state = np.zeros(self.action_dim, dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "x": torch.from_numpy(self.state.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        self.state = state["x"].numpy().astype(np.float64)


def make_action_noise(type: str, sigma: float, theta: float, action_dim: int,
                      rng: np.random.Generator) -> ActionNoise:
    if type == "gaussian":
        return GaussianNoise(action_dim, sigma, rng)
    if type == "ou":
        return OrnsteinUhlenbeckNoise(action_dim, sigma, theta, rng)
    from rlexp.errors import ConfigError

    raise ConfigError(f"algo.noise.type={type!r} is unknown; use gaussian or ou")
