"""Making gymnasium environments, and checking that an algorithm fits an env's spaces."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlexp.config import ConfigError

# Extras a gymnasium env family needs, keyed by the text gymnasium's DependencyNotInstalled mentions.
_EXTRAS = {"box2d": 'pip install "gymnasium[box2d]"', "mujoco": 'pip install "gymnasium[mujoco]"',
           "ale": 'pip install ale-py', "atari": 'pip install ale-py'}


@dataclass(frozen=True)
class SpaceInfo:
    """The runtime facts about an env that the agent and buffer are built from."""

    obs_shape: tuple[int, ...]
    discrete: bool
    n_actions: int | None              # Discrete action spaces
    action_low: np.ndarray | None      # Box action spaces
    action_high: np.ndarray | None

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def action_shape(self) -> tuple[int, ...]:
        return () if self.discrete else tuple(self.action_low.shape)


def make_env(env_id: str, kwargs: dict[str, Any] | None = None) -> gym.Env:
    """gymnasium.make, with its failures turned into one-line ConfigErrors a user can act on."""
    try:
        return gym.make(env_id, **(kwargs or {}))
    except gym.error.DependencyNotInstalled as error:
        text = str(error)
        fix = next((cmd for key, cmd in _EXTRAS.items() if key in text.lower()), None)
        raise ConfigError(f"env.id={env_id!r} needs a package that is not installed: {text.splitlines()[0]}"
                          + (f" (fix: {fix})" if fix else "")) from None
    except gym.error.Error as error:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry() for the ids"
        raise ConfigError(f"env.id={env_id!r} is not a registered gymnasium environment ({error}){hint}") from None
    except TypeError as error:
        raise ConfigError(f"env.kwargs={kwargs!r} do not fit {env_id}: {error}") from None


def space_info(env: gym.Env, algo: str, env_id: str) -> SpaceInfo:
    """The env's spaces, after checking that `algo` can act in them."""
    obs_space, action_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(f"algo={algo} uses an MLP on flat observations, but {env_id} observes {obs_space}; "
                          f"pick an env with a 1-D Box observation space")
    if algo == "dqn":
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError(f"algo=dqn needs a discrete action space, but {env_id} has {action_space}; "
                              f"use algo=td3 or algo=ddpg for continuous actions")
        return SpaceInfo(obs_space.shape, True, int(action_space.n), None, None)
    if not isinstance(action_space, gym.spaces.Box):
        raise ConfigError(f"algo={algo} needs a continuous (Box) action space, but {env_id} has {action_space}; "
                          f"use algo=dqn for discrete actions")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ConfigError(f"algo={algo} scales a tanh actor to the action bounds, but {env_id}'s action space "
                          f"{action_space} is unbounded; wrap the env with gymnasium's ClipAction/RescaleAction")
    return SpaceInfo(obs_space.shape, False, None, action_space.low.copy(), action_space.high.copy())
