"""Atari 2600 games through the ALE, preprocessed as in the DQN paper (Mnih et al. 2015, Methods)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rlexp.config.schema import AtariConfig
from rlexp.errors import needs_extra


@dataclass(frozen=True)
class AtariSettings:
    """The DQN paper's Atari preprocessing, as gymnasium's wrappers implement it."""

    noop_max: int                 # up to this many no-op actions after each reset: varied starts
    frame_skip: int               # repeat each action this many frames; observe the max of the last two
    screen_size: int              # grayscale frames resized to screen_size x screen_size
    frame_stack: int              # the observation is the last frame_stack frames
    terminal_on_life_loss: bool   # a lost life ends the return for training (the game goes on)
    clip_rewards: bool            # train on the reward's sign; the raw score is still what is logged


def atari_settings(atari: AtariConfig | Mapping[str, Any] | None) -> AtariSettings | None:
    """A config's `env.atari` section (typed, or as saved) as settings (None: not an Atari run)."""
    if not atari:
        return None
    return AtariSettings(**(atari if isinstance(atari, Mapping) else dataclasses.asdict(atari)))


def register_ale(env_id: str) -> None:
    """ALE ids (ALE/Pong-v5) exist once ale_py registers them with gymnasium."""
    with needs_extra("atari", f"env.id={env_id!r} is an Atari game, and ale-py is not installed (fix: $fix)"):
        import ale_py
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)   # no banner on stderr: errors stay one line
    gym.register_envs(ale_py)


class TrainingSignals(gym.Wrapper):
    """What training sees but evaluation and the logged returns do not: `info["training_reward"]` (the clipped
    reward) and `info["life_lost"]` (a life lost without the game ending)."""

    def __init__(self, env: gym.Env, clip_rewards: bool, terminal_on_life_loss: bool) -> None:
        super().__init__(env)
        self.clip_rewards = clip_rewards
        self.terminal_on_life_loss = terminal_on_life_loss
        self.lives = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.lives = int(info.get("lives", 0))
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.clip_rewards:
            info["training_reward"] = float(np.sign(float(reward)))
        if self.terminal_on_life_loss:
            lives = int(info.get("lives", 0))
            info["life_lost"] = lives < self.lives
            self.lives = lives
        return obs, reward, terminated, truncated, info


def atari_wrappers(env: gym.Env, settings: AtariSettings) -> gym.Env:
    env = gym.wrappers.AtariPreprocessing(env, noop_max=settings.noop_max, frame_skip=settings.frame_skip,
                                          screen_size=settings.screen_size, terminal_on_life_loss=False,
                                          grayscale_obs=True, scale_obs=False)
    env = TrainingSignals(env, settings.clip_rewards, settings.terminal_on_life_loss)
    return gym.wrappers.FrameStackObservation(env, settings.frame_stack, padding_type="reset")
