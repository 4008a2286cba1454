"""Building a run's pieces from its config (a plain dict): envs, replay buffer, agent.

Shared by `rlexp train` (from the composed Hydra config) and `rlexp eval` (from the config a checkpoint holds).
"""

from __future__ import annotations

import random
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlexp.agents import DDPG, DQN, TD3, Agent
from rlexp.buffers import PrioritizedReplayBuffer, ReplayBuffer
from rlexp.config import LOOP_KEYS
from rlexp.envs import AtariSettings, SpaceInfo, make_env
from rlexp.errors import ConfigError
from rlexp.frame_buffer import FrameReplayBuffer, PrioritizedFrameReplayBuffer
from rlexp.noise import make_action_noise


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_envs(env_cfg: dict[str, Any], count: int, **make_kwargs: Any) -> list[gym.Env]:
    """`count` instances of the configured env (training, evaluation, ...), Atari preprocessing included."""
    atari = AtariSettings(**env_cfg["atari"]) if env_cfg.get("atari") else None
    return [make_env(env_cfg["id"], {**env_cfg["kwargs"], **make_kwargs}, atari) for _ in range(count)]

def planned_updates(algo: dict[str, Any], total_steps: int) -> int:
    """Gradient updates a run of `total_steps` makes (what learning-rate and beta schedules span).

    With gradient_steps=-1, one per env step after learning starts (rounds fall at episode ends, so a few
    more or fewer). Episode rounds of a fixed size are not known in advance; validation keeps them off
    the schedules that need this.
    """
    collected = total_steps - algo["learning_starts"]
    if algo["gradient_steps"] == -1:
        return collected
    if algo["train_freq_unit"] == "episode":
        return collected * algo["gradient_steps"]  # an upper bound: one-step episodes
    return collected // algo["train_freq"] * algo["gradient_steps"]


def build_buffer(algo: dict[str, Any], spaces: SpaceInfo, total_steps: int, device: torch.device,
                 seed: int) -> ReplayBuffer:
    """Uniform or prioritized replay with the algo's n-step returns (frames stored once for image observations);
    never larger than the run needs."""
    common = dict(capacity=min(algo["buffer_size"], total_steps), obs_shape=spaces.obs_shape,
                  action_shape=spaces.action_shape, discrete_actions=spaces.discrete, device=device, seed=seed,
                  n_step=algo.get("n_step", 1), gamma=algo["gamma"])
    if algo.get("prioritized"):
        prioritized = PrioritizedFrameReplayBuffer if spaces.image else PrioritizedReplayBuffer
        return prioritized(**common, alpha=algo["priority_alpha"], beta0=algo["priority_beta0"],
                           eps=algo["priority_eps"], total_updates=planned_updates(algo, total_steps))
    return FrameReplayBuffer(**common) if spaces.image else ReplayBuffer(**common)


def build_agent(algo: dict[str, Any], spaces: SpaceInfo, hidden_sizes: list[int], total_steps: int,
                device: torch.device, seed: int, buffer: ReplayBuffer | None = None) -> Agent:
    """The agent named by `algo['name']`; the algo keys that are not loop keys are its constructor arguments."""
    kwargs = {k: v for k, v in algo.items() if k not in LOOP_KEYS and k != "name"}
    # Exploration has its own generator so that changing the update code never changes what is explored.
    rng = np.random.default_rng(seed)
    try:
        if algo["name"] == "dqn":
            report = buffer.update_priorities if isinstance(buffer, PrioritizedReplayBuffer) else None
            return DQN(spaces.obs_dim, spaces.n_actions, hidden_sizes=hidden_sizes, total_steps=total_steps,
                       total_updates=planned_updates(algo, total_steps), device=device, rng=rng,
                       report_td_errors=report, image_shape=spaces.obs_shape if spaces.image else None, **kwargs)
        noise = kwargs.pop("noise")
        exploration_noise = make_action_noise(noise["type"], noise["sigma"], noise["theta"],
                                              spaces.action_low.size, rng)
        agent_class = {"ddpg": DDPG, "td3": TD3}[algo["name"]]
        extra = {"n_critics": 2} if agent_class is TD3 else {}
        return agent_class(spaces.obs_dim, spaces.action_low, spaces.action_high, hidden_sizes=hidden_sizes,
                           exploration_noise=exploration_noise, device=device, **extra, **kwargs)
    except TypeError as error:  # an unknown or missing key in the algo group
        raise ConfigError(f"the algo={algo['name']} config does not fit its agent: {error}") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
