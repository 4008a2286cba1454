"""Making gymnasium environments, and checking that an algorithm fits an env's spaces."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlexp.config import ConfigError

# Extras a gymnasium env family needs, keyed by the text gymnasium's DependencyNotInstalled mentions.
_EXTRAS = {"box2d": 'pip install "rlexp[box2d]"', "mujoco": 'pip install "rlexp[mujoco]"',
           "ale": 'pip install "rlexp[atari]"', "atari": 'pip install "rlexp[atari]"'}


def _register_ale(env_id: str) -> None:
    """ALE ids (ALE/Pong-v5) exist once ale_py registers them with gymnasium."""
    try:
        import ale_py
    except ImportError:
        raise ConfigError(f"env.id={env_id!r} is an Atari game, and ale-py is not installed "
                          f"(fix: {_EXTRAS['atari']})") from None
    gym.register_envs(ale_py)


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
    def image(self) -> bool:
        """Stacked frames (k, H, W), which DQN reads with the Nature CNN."""
        return len(self.obs_shape) == 3

    @property
    def action_shape(self) -> tuple[int, ...]:
        return () if self.discrete else tuple(self.action_low.shape)


@dataclass(frozen=True)
class AtariSettings:
    """The DQN paper's Atari preprocessing (Mnih et al. 2015, Methods), as gymnasium's wrappers implement it."""

    noop_max: int                 # up to this many no-op actions after each reset: varied starts
    frame_skip: int               # repeat each action this many frames; observe the max of the last two
    screen_size: int              # grayscale frames resized to screen_size x screen_size
    frame_stack: int              # the observation is the last frame_stack frames
    terminal_on_life_loss: bool   # a lost life ends the return for training (the game goes on)
    clip_rewards: bool            # train on the reward's sign; the raw score is still what is logged


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

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.clip_rewards:
            info["training_reward"] = float(np.sign(reward))
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


def make_env(env_id: str, kwargs: dict[str, Any] | None = None, atari: AtariSettings | None = None) -> gym.Env:
    """gymnasium.make (plus the Atari preprocessing when `atari` is given), with its failures turned into
    one-line ConfigErrors a user can act on."""
    if env_id.startswith("ALE/"):
        _register_ale(env_id)
    try:
        env = gym.make(env_id, **(kwargs or {}))
        return atari_wrappers(env, atari) if atari is not None else env
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
    spaces = f"{env_id} (observations {obs_space}, actions {action_space})"
    frames = (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3 and obs_space.dtype == np.uint8
              and obs_space.shape[0] <= 16 and min(obs_space.shape[1:]) >= 36)
    if frames and algo != "dqn":
        raise ConfigError(f"algo={algo} has no image torso, and {spaces} observes stacked frames; use algo=dqn "
                          f"(the Nature CNN) or an env with vector observations")
    if frames:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError(f"algo=dqn needs a discrete action space, but {spaces} is continuous")
        return SpaceInfo(obs_space.shape, True, int(action_space.n), None, None)
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(f"algo={algo} feeds observations to an MLP, which needs a flat (1-D Box) observation "
                          f"space, but {spaces} does not have one; for Atari games use env=atari (stacked "
                          f"84x84 frames for the Nature CNN), otherwise gymnasium.wrappers.FlattenObservation")
    if algo == "dqn":
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError(f"algo=dqn needs a discrete action space, but {spaces} is continuous; "
                              f"use algo=td3 or algo=ddpg for continuous actions")
        return SpaceInfo(obs_space.shape, True, int(action_space.n), None, None)
    if not isinstance(action_space, gym.spaces.Box):
        raise ConfigError(f"algo={algo} needs a continuous (Box) action space, but {spaces} is discrete; "
                          f"use algo=dqn for discrete actions")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ConfigError(f"algo={algo} scales a tanh actor to the action bounds, but {spaces} has an unbounded "
                          f"action space; bound it with gymnasium.wrappers.RescaleAction or ClipAction")
    return SpaceInfo(obs_space.shape, False, None, action_space.low.copy(), action_space.high.copy())


def episode_start(env: gym.Env, seed: int | None) -> dict[str, Any]:
    """How the episode about to be reset begins: a seed, or the env's generator state just before `reset()`.

    Stored in resumable checkpoints: an env's own state (positions, velocities, emulator memory) cannot be
    saved in general, but from this and the episode's actions it can be rebuilt (`replay_episode`).
    """
    if seed is not None:
        return {"seed": seed}
    return {"np_random": env.unwrapped.np_random.bit_generator.state}


def replay_episode(env: gym.Env, start: dict[str, Any], actions: list[Any], expected_obs: np.ndarray,
                   expected_return: float) -> np.ndarray | None:
    """Rebuild the env's state mid-episode by resetting as the episode began and replaying its actions.

    Returns the current observation, or None when the replay does not reproduce the saved observation
    and return (an env that is not deterministic given its seed); the caller then starts a fresh episode.
    """
    if "seed" in start:
        obs, _ = env.reset(seed=int(start["seed"]))
    else:
        env.reset(seed=0)  # initialises wrappers and the generator, whose state is then overwritten
        env.unwrapped.np_random.bit_generator.state = start["np_random"]
        obs, _ = env.reset()
    episode_return = 0.0
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        if terminated or truncated:
            return None
    if not np.array_equal(obs, expected_obs) or episode_return != expected_return:
        return None
    return obs
