"""Replay memory: uniform or prioritized, with n-step returns, one stream per env, image frames stored once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlexp.replay.batch import ReplayBatch
from rlexp.replay.frames import FrameReplayBuffer, PrioritizedFrameReplayBuffer
from rlexp.replay.her import Goals, HerReplayBuffer
from rlexp.replay.images import ImageReplayBuffer, PrioritizedImageReplayBuffer
from rlexp.replay.prioritized import PrioritizedReplayBuffer
from rlexp.replay.uniform import ReplayBuffer

__all__ = ["FrameReplayBuffer", "Goals", "HerReplayBuffer", "Hindsight", "ImageReplayBuffer",
           "PrioritizedFrameReplayBuffer", "PrioritizedImageReplayBuffer", "PrioritizedReplayBuffer", "Priorities",
           "ReplayBatch", "ReplayBuffer", "make_replay"]


@dataclass(frozen=True)
class Priorities:
    """Prioritized replay's settings (Schaul et al. 2016)."""

    alpha: float
    beta0: float
    eps: float
    total_updates: int   # what beta anneals over


@dataclass(frozen=True)
class Hindsight:
    """Hindsight experience replay's settings (Andrychowicz et al. 2017): the env's goals and the strategy."""

    goals: Goals
    n_sampled_goal: int
    goal_selection_strategy: str


def make_replay(*, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], discrete: bool,
                image: bool, device: torch.device, seed: int, num_envs: int, n_step: int, gamma: float,
                priorities: Priorities | None = None, obs_dtype: torch.dtype = torch.float32,
                single_image: bool = False, hindsight: Hindsight | None = None) -> ReplayBuffer:
    """Uniform or prioritized replay: `image`, stacked uint8 frames (k, H, W) each stored once; `single_image`, a
    rank-3 image each stored once, in `obs_dtype`; other observations in `obs_dtype`, their own, observation and next
    observation each; with `hindsight`, goal-conditioned observations relabelled at sampling (rlexp/replay/her.py)."""
    common: dict[str, Any] = dict(capacity=capacity, obs_shape=obs_shape, action_shape=action_shape,
                                  discrete_actions=discrete, device=device, seed=seed, num_envs=num_envs,
                                  n_step=n_step, gamma=gamma,
                                  **({} if image else {"obs_dtype": obs_dtype}))
    uniform, prioritized = ((FrameReplayBuffer, PrioritizedFrameReplayBuffer) if image else
                            (ImageReplayBuffer, PrioritizedImageReplayBuffer) if single_image else
                            (ReplayBuffer, PrioritizedReplayBuffer))
    if hindsight is not None:   # (packed Dict observations, uniform 1-step replay: checked before)
        return HerReplayBuffer(**common, goals=hindsight.goals, n_sampled_goal=hindsight.n_sampled_goal,
                               goal_selection_strategy=hindsight.goal_selection_strategy)
    if priorities is not None:
        return prioritized(**common, alpha=priorities.alpha, beta0=priorities.beta0, eps=priorities.eps,
                           total_updates=priorities.total_updates)
    return uniform(**common)
