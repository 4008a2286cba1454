"""Experience replay, preallocated on the training device: uniform, with n-step returns computed at sampling."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from rlexp.noise import LinearSchedule
from rlexp.sumtree import SumTree


class ReplayBatch(NamedTuple):
    observations: Tensor       # (batch, *obs_shape) float32: s_t
    actions: Tensor            # (batch,) int64 for discrete actions, (batch, action_dim) float32 otherwise
    rewards: Tensor            # (batch,) float32: the n-step return sum_k gamma^k r_{t+k} (r_t when n = 1)
    next_observations: Tensor  # (batch, *obs_shape) float32: s_{t+m}, the state the target bootstraps from
    terminations: Tensor       # (batch,) float32: 1.0 where the episode truly ended (not a time limit) within m steps
    discounts: Tensor          # (batch,) float32: gamma^m * (1 - terminated), the factor on the bootstrapped value
    indices: Tensor | None = None   # (batch,) int64 slots sampled (prioritized replay updates them)
    weights: Tensor | None = None   # (batch,) float32 importance-sampling weights (prioritized replay)


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', terminated, episode ended), sampled uniformly.

    With `n_step` > 1 a sample starting at t carries the n-step return
    r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1} and bootstraps from s_{t+m} with gamma^m, where m <= n stops
    early at the end of an episode (no bootstrap after a termination; bootstrap from the last state after a time
    limit) and at the newest stored transition. Computed at sampling, vectorised over the batch.

    Storage lives on `device`. On the CPU, `add` writes straight into it through numpy views.
    On a GPU, `add` writes into a host staging area that `sample` flushes with one copy per field,
    so the environment loop never pays a host-to-device copy per step.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 discrete_actions: bool, device: torch.device, seed: int, stage_on_host: bool | None = None,
                 n_step: int = 1, gamma: float = 0.99) -> None:
        self.capacity = capacity
        self.device = device
        self.n_step = n_step
        self.gamma = gamma
        self._discount_powers = gamma ** torch.arange(n_step + 1, dtype=torch.float32, device=device)
        action_dtype = torch.int64 if discrete_actions else torch.float32
        self.storage = {
            **self._observation_storage(capacity, obs_shape, device),
            "actions": torch.zeros((capacity, *action_shape), dtype=action_dtype, device=device),
            "rewards": torch.zeros(capacity, dtype=torch.float32, device=device),
            "terminations": torch.zeros(capacity, dtype=torch.float32, device=device),
            "episode_ends": torch.zeros(capacity, dtype=torch.float32, device=device),  # terminated or truncated
        }
        self.pos = 0        # next slot to write
        self.size = 0       # transitions stored
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

        self.stage_on_host = device.type != "cpu" if stage_on_host is None else stage_on_host
        if self.stage_on_host:
            rows = min(capacity, 4096)  # a small host area, never a second full-size copy of the buffer
            self._stage = {k: torch.zeros((rows, *v.shape[1:]), dtype=v.dtype) for k, v in self.storage.items()}
            if device.type == "cuda":
                self._stage = {k: v.pin_memory() for k, v in self._stage.items()}
            self._stage_start = 0   # buffer slot of the first staged transition
            self._staged = 0
            self._writable = {k: v.numpy() for k, v in self._stage.items()}
        else:
            self._writable = {k: v.numpy() for k, v in self.storage.items()}

    def __len__(self) -> int:
        return self.size

    # How observations are kept; FrameReplayBuffer (rlexp/frame_buffer.py) stores image frames once instead.
    def _observation_storage(self, capacity: int, obs_shape: tuple[int, ...],
                             device: torch.device) -> dict[str, Tensor]:
        return {"observations": torch.zeros((capacity, *obs_shape), dtype=torch.float32, device=device),
                "next_observations": torch.zeros((capacity, *obs_shape), dtype=torch.float32, device=device)}

    def _write_observations(self, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        self._writable["observations"][row] = obs
        self._writable["next_observations"][row] = next_obs

    def _observations(self, slots: Tensor) -> Tensor:
        return self.storage["observations"][slots]

    def _next_observations(self, slots: Tensor) -> Tensor:
        return self.storage["next_observations"][slots]

    def add(self, obs: np.ndarray, action: np.ndarray | int, reward: float, next_obs: np.ndarray,
            terminated: bool, truncated: bool = False) -> None:
        if self.stage_on_host:
            if self._staged == len(self._stage["rewards"]):
                self._flush()
            row = self._staged
            self._staged += 1
        else:
            row = self.pos
        w = self._writable
        self._write_observations(row, obs, next_obs)
        w["actions"][row] = action
        w["rewards"][row] = reward
        w["terminations"][row] = terminated
        w["episode_ends"][row] = terminated or truncated
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _flush(self) -> None:
        """Copy staged transitions into device storage (at most two contiguous slices: the ring may wrap)."""
        n, start = self._staged, self._stage_start
        first = min(n, self.capacity - start)
        for key, stored in self.storage.items():
            staged = self._stage[key]
            stored[start:start + first].copy_(staged[:first], non_blocking=True)
            if n > first:
                stored[: n - first].copy_(staged[first:n], non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # staging rows are reused right after
        self._stage_start = self.pos
        self._staged = 0

    def sample(self, batch_size: int) -> ReplayBatch:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        if self.stage_on_host and self._staged:
            self._flush()
        indices = torch.randint(self.size, (batch_size,), device=self.device, generator=self.generator)
        return self.batch_at(indices)

    def batch_at(self, indices: Tensor) -> ReplayBatch:
        """The transitions starting at slots `indices`, with their n-step returns."""
        stored = self.storage
        if self.n_step == 1:
            terminations = stored["terminations"][indices]
            return ReplayBatch(self._observations(indices), stored["actions"][indices], stored["rewards"][indices],
                               self._next_observations(indices), terminations,
                               self.gamma * (1.0 - terminations), indices)
        offsets = torch.arange(self.n_step, device=self.device)
        window = (indices[:, None] + offsets) % self.capacity                     # (batch, n) slots t .. t+n-1
        newer = (self.pos - 1 - indices) % self.capacity                          # transitions stored after t
        ends = stored["episode_ends"][window]
        ended_before = (ends.cumsum(dim=1) - ends) > 0                            # an episode end at t .. t+k-1
        in_window = (offsets <= newer[:, None]) & ~ended_before                   # (batch, n)
        m = in_window.sum(dim=1)                                                  # steps used, 1 <= m <= n
        rewards = (stored["rewards"][window] * self._discount_powers[:-1] * in_window).sum(dim=1)
        last = window.gather(1, (m - 1)[:, None]).squeeze(1)                      # slot of t+m-1
        terminations = stored["terminations"][last]
        return ReplayBatch(self._observations(indices), stored["actions"][indices], rewards,
                           self._next_observations(last), terminations,
                           self._discount_powers[m] * (1.0 - terminations), indices)

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions in the order they were added (oldest first), and the sampling generator.

        Chronological order makes the state independent of the capacity, so a resumed run whose
        total_steps (and with it the capacity) changed can still load it.
        """
        if self.stage_on_host and self._staged:
            self._flush()
        order = torch.arange(self.pos - self.size, self.pos, device=self.device) % self.capacity
        return {"transitions": {key: stored[order].cpu() for key, stored in self.storage.items()},
                "capacity": self.capacity, "pos": self.pos, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refill from `state_dict()`; when more transitions were stored than fit, the newest are kept.

        With an unchanged capacity every transition returns to its old slot, so sampling continues exactly.
        """
        transitions = state["transitions"]
        count = len(transitions["rewards"])
        keep = min(count, self.capacity)
        self.pos = int(state["pos"]) if int(state["capacity"]) == self.capacity else keep % self.capacity
        slots = (torch.arange(keep, device=self.device) + self.pos - keep) % self.capacity
        for key, stored in self.storage.items():
            stored[slots] = transitions[key][count - keep:].to(self.device)
        self.size = keep
        if self.stage_on_host:
            self._stage_start, self._staged = self.pos, 0
        self.generator.set_state(state["generator"])


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016, https://arxiv.org/abs/1511.05952).

    Transition i is sampled with probability P(i) = p_i^alpha / sum_k p_k^alpha, where p_i = |delta_i| + eps is its
    last TD error's size; a new transition gets the largest priority seen so far, so it is replayed at least once.
    Each sample carries the importance-sampling weight w_i = (N P(i))^-beta / max_k w_k, with beta annealed
    linearly from beta0 to 1 over the run's updates. Sampling and priority updates are vectorised on the device.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 discrete_actions: bool, device: torch.device, seed: int, *, alpha: float, beta0: float, eps: float,
                 total_updates: int, stage_on_host: bool | None = None, n_step: int = 1,
                 gamma: float = 0.99) -> None:
        super().__init__(capacity, obs_shape, action_shape, discrete_actions, device, seed, stage_on_host,
                         n_step, gamma)
        self.alpha = alpha
        self.eps = eps
        self.beta = LinearSchedule(beta0, 1.0, total_updates)
        self.tree = SumTree(capacity, device)
        self.max_priority = torch.ones((), dtype=torch.float64, device=device)  # max |delta| + eps so far
        self.n_samples = 0                   # batches drawn: the position in beta's schedule
        self._new = 0                        # transitions added since priorities were last assigned

    def _prioritize_new(self) -> None:
        """Give the transitions added since the last sample the maximal priority, in one vectorised update
        (rather than a tree update per env step)."""
        new = min(self._new, self.capacity)
        if new:
            slots = (torch.arange(new, device=self.device) + self.pos - new) % self.capacity
            self.tree.update(slots, (self.max_priority ** self.alpha).expand(new), checked=False)
        self._new = 0

    def add(self, obs: np.ndarray, action: np.ndarray | int, reward: float, next_obs: np.ndarray,
            terminated: bool, truncated: bool = False) -> None:
        super().add(obs, action, reward, next_obs, terminated, truncated)
        self._new += 1

    def sample(self, batch_size: int) -> ReplayBatch:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        if self.stage_on_host and self._staged:
            self._flush()
        self._prioritize_new()
        indices = self.tree.sample(batch_size, self.generator, checked=False)
        beta = self.beta(self.n_samples)
        self.n_samples += 1
        # w_i / max_k w_k = (P(i) / min_k P(k))^-beta: the N and the total cancel.
        weights = (self.tree.get(indices) / self.tree.min_positive()) ** -beta
        return self.batch_at(indices)._replace(weights=weights.float())

    def update_priorities(self, indices: Tensor, td_errors: Tensor) -> None:
        """p_i = |delta_i| + eps for the sampled transitions (called by the agent after its update)."""
        self._prioritize_new()  # transitions added since the last sample first get theirs, so this one wins
        priorities = td_errors.detach().abs().double() + self.eps
        self.max_priority = torch.maximum(self.max_priority, priorities.max())
        self.tree.update(indices, priorities ** self.alpha, checked=False)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        self._prioritize_new()
        order = torch.arange(self.pos - self.size, self.pos, device=self.device) % self.capacity
        return {**state, "priorities": self.tree.get(order).cpu(), "max_priority": self.max_priority.cpu(),
                "n_samples": self.n_samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        priorities = state["priorities"][len(state["priorities"]) - self.size:].to(self.device)
        slots = (torch.arange(self.size, device=self.device) + self.pos - self.size) % self.capacity
        self.tree.update(slots, priorities)
        self.max_priority = state["max_priority"].to(self.device)
        self.n_samples = int(state["n_samples"])
        self._new = 0
