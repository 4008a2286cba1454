"""Uniform experience replay, preallocated on the training device."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor


class ReplayBatch(NamedTuple):
    observations: Tensor       # (batch, *obs_shape) float32
    actions: Tensor            # (batch,) int64 for discrete actions, (batch, action_dim) float32 otherwise
    rewards: Tensor            # (batch,) float32
    next_observations: Tensor  # (batch, *obs_shape) float32
    terminations: Tensor       # (batch,) float32: 1.0 where the episode truly ended (not a time limit)


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', terminated), sampled uniformly.

    Storage lives on `device`. On the CPU, `add` writes straight into it through numpy views.
    On a GPU, `add` writes into a host staging area that `sample` flushes with one copy per field,
    so the environment loop never pays a host-to-device copy per step.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 discrete_actions: bool, device: torch.device, seed: int, stage_on_host: bool | None = None) -> None:
        self.capacity = capacity
        self.device = device
        action_dtype = torch.int64 if discrete_actions else torch.float32
        self.storage = {
            "observations": torch.zeros((capacity, *obs_shape), dtype=torch.float32, device=device),
            "actions": torch.zeros((capacity, *action_shape), dtype=action_dtype, device=device),
            "rewards": torch.zeros(capacity, dtype=torch.float32, device=device),
            "next_observations": torch.zeros((capacity, *obs_shape), dtype=torch.float32, device=device),
            "terminations": torch.zeros(capacity, dtype=torch.float32, device=device),
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

    def add(self, obs: np.ndarray, action: np.ndarray | int, reward: float, next_obs: np.ndarray,
            terminated: bool) -> None:
        if self.stage_on_host:
            if self._staged == len(self._stage["rewards"]):
                self._flush()
            row = self._staged
            self._staged += 1
        else:
            row = self.pos
        w = self._writable
        w["observations"][row] = obs
        w["actions"][row] = action
        w["rewards"][row] = reward
        w["next_observations"][row] = next_obs
        w["terminations"][row] = terminated
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
        return ReplayBatch(**{key: stored[indices] for key, stored in self.storage.items()})

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
