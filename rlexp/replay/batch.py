"""What a replay sample hands to an agent's update."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, cast

import torch
from torch import Tensor


class ReplayBatch(NamedTuple):
    observations: Tensor       # (batch, *obs_shape): s_t (float32, or uint8 frames the CNN scales)
    actions: Tensor            # (batch,) int64 for discrete actions, (batch, action_dim) float32 otherwise
    rewards: Tensor            # (batch,) float32: the n-step return sum_k gamma^k r_{t+k} (r_t when n = 1)
    next_observations: Tensor  # (batch, *obs_shape): s_{t+m}, the state the target bootstraps from
    discounts: Tensor          # (batch,) float32: gamma^m * (1 - terminated within the m steps)
    indices: Tensor            # (batch,) int64 slots sampled (prioritized replay updates their priorities)
    weights: Tensor | None = None   # (batch,) float32 importance-sampling weights (prioritized replay)


def stack_batches(batches: Sequence[ReplayBatch]) -> ReplayBatch:
    """The members' batches of a many-seeds run as one, with the member axis in front of every field."""
    # (a field that is None, the weights of uniform replay, is None in every member's batch)
    return ReplayBatch._make(None if field is None else
                             torch.stack(cast("list[Tensor]", [batch[i] for batch in batches]))
                             for i, field in enumerate(batches[0]))
