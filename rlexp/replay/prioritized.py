"""Proportional prioritized experience replay (Schaul et al. 2016, https://arxiv.org/abs/1511.05952)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.replay.batch import ReplayBatch
from rlexp.replay.sumtree import SumTree
from rlexp.replay.uniform import ReplayBuffer
from rlexp.schedules import LinearSchedule


class PrioritizedReplayBuffer(ReplayBuffer):
    """Transition i is sampled with probability P(i) = p_i^alpha / sum_k p_k^alpha, where p_i = |delta_i| + eps is its
    last TD error's size; a new transition gets the largest priority seen so far, so it is replayed at least once.
    Each sample carries the importance-sampling weight w_i = (N P(i))^-beta / max_k w_k, with beta annealed
    linearly from beta0 to 1 over the run's updates. Sampling and priority updates are vectorised on the device,
    with no host-device synchronisation.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 discrete_actions: bool, device: torch.device, seed: int, *, alpha: float, beta0: float, eps: float,
                 total_updates: int, num_envs: int = 1, n_step: int = 1, gamma: float = 0.99,
                 stage_on_host: bool | None = None, obs_dtype: torch.dtype = torch.float32) -> None:
        super().__init__(capacity, obs_shape, action_shape, discrete_actions, device, seed, num_envs=num_envs,
                         n_step=n_step, gamma=gamma, stage_on_host=stage_on_host, obs_dtype=obs_dtype)
        self.alpha = alpha
        self.eps = eps
        self.beta = LinearSchedule(beta0, 1.0, total_updates)
        self.tree = SumTree(self.capacity, device)
        self.max_priority = torch.ones((), dtype=torch.float64, device=device)  # max |delta| + eps so far
        self.n_samples = 0                   # batches drawn: the position in beta's schedule
        self._new_rows = 0                   # rows added since priorities were last assigned

    def _prioritize_new(self) -> None:
        """Give the transitions added since the last sample the maximal priority, in one vectorised update
        (rather than a tree update per env step)."""
        rows = min(self._new_rows, self.ring.rows)
        if rows:
            slots = self.ring.slots_of(self.ring.newest_rows(rows))
            self.tree.update(slots, (self.max_priority ** self.alpha).expand(len(slots)), checked=False)
        self._new_rows = 0

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminations: np.ndarray, truncations: np.ndarray) -> None:
        super().add(obs, actions, rewards, next_obs, terminations, truncations)
        self._new_rows += 1

    def sample(self, batch_size: int) -> ReplayBatch:
        self._ready()
        self._prioritize_new()
        slots = self.tree.sample(batch_size, self.generator, checked=False)
        beta = self.beta(self.n_samples)
        self.n_samples += 1
        # w_i / max_k w_k = (P(i) / min_k P(k))^-beta: the N and the total cancel.
        weights = (self.tree.get(slots) / self.tree.min_positive()) ** -beta
        return self.batch_at(slots)._replace(weights=weights.float())

    def update_priorities(self, slots: Tensor, td_errors: Tensor) -> None:
        """p_i = |delta_i| + eps for the sampled transitions (called by the agent after its update)."""
        self._prioritize_new()  # transitions added since the last sample first get theirs, so this one wins
        priorities = td_errors.detach().abs().double() + self.eps
        self.max_priority = torch.maximum(self.max_priority, priorities.max())
        self.tree.update(slots, priorities ** self.alpha, checked=False)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        self._prioritize_new()
        return {**state, "priorities": self.tree.get(self._chronological_slots()).cpu(),
                "max_priority": self.max_priority.cpu(), "n_samples": self.n_samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        slots = self._chronological_slots()
        priorities = state["priorities"][len(state["priorities"]) - len(slots):].to(self.device)
        self.tree.update(slots, priorities)
        self.max_priority = state["max_priority"].to(self.device)
        self.n_samples = int(state["n_samples"])
        self._new_rows = 0
