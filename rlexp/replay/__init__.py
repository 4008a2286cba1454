"""Replay memory: uniform or prioritized, with n-step returns, one stream per env, image frames stored once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlexp.replay.batch import ReplayBatch
from rlexp.replay.frames import FrameReplayBuffer, PrioritizedFrameReplayBuffer
from rlexp.replay.prioritized import PrioritizedReplayBuffer
from rlexp.replay.uniform import ReplayBuffer

__all__ = ["FrameReplayBuffer", "PrioritizedFrameReplayBuffer", "PrioritizedReplayBuffer", "Priorities",
           "ReplayBatch", "ReplayBuffer", "make_replay"]


@dataclass(frozen=True)
class Priorities:
    """Prioritized replay's settings (Schaul et al. 2016)."""

    alpha: float
    beta0: float
    eps: float
    total_updates: int   # what beta anneals over


def make_replay(*, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], discrete: bool,
                image: bool, device: torch.device, seed: int, num_envs: int, n_step: int, gamma: float,
                priorities: Priorities | None = None, obs_dtype: torch.dtype = torch.float32) -> ReplayBuffer:
    """Uniform or prioritized replay (frames stored once for image observations; other observations in
    `obs_dtype`, their own)."""
    common: dict[str, Any] = dict(capacity=capacity, obs_shape=obs_shape, action_shape=action_shape,
                                  discrete_actions=discrete, device=device, seed=seed, num_envs=num_envs,
                                  n_step=n_step, gamma=gamma, **({} if image else {"obs_dtype": obs_dtype}))
    if priorities is not None:
        kind = PrioritizedFrameReplayBuffer if image else PrioritizedReplayBuffer
        return kind(**common, alpha=priorities.alpha, beta0=priorities.beta0, eps=priorities.eps,
                    total_updates=priorities.total_updates)
    return FrameReplayBuffer(**common) if image else ReplayBuffer(**common)
