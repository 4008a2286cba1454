"""Experience replay, preallocated on the training device and sampled uniformly, one stream per env.

n-step returns are computed at sampling, vectorised over the batch, within each env's own stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.replay.batch import ReplayBatch
from rlexp.replay.ring import Ring
from rlexp.replay.staging import HostStaging, writable_views


class ReplayBuffer:
    """A ring of transitions (s, a, r, s', terminated, episode ended) from `num_envs` envs, sampled uniformly.

    The capacity is split evenly between the envs: `capacity // num_envs` rows of one transition per env (as SB3
    does). With `n_step` > 1 a sample starting at t carries the n-step return
    r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1} and bootstraps from s_{t+m} with gamma^m, where m <= n steps
    of the same env stop early at the end of an episode (no bootstrap after a termination; bootstrap from the
    last state after a time limit) and at the newest stored row.

    Storage lives on `device`. On the CPU, `add` writes straight into it through numpy views. On a GPU, rows are
    staged on the host and copied in bulk when sampled (rlexp/replay/staging.py).
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 discrete_actions: bool, device: torch.device, seed: int, *, num_envs: int = 1, n_step: int = 1,
                 gamma: float = 0.99, stage_on_host: bool | None = None,
                 obs_dtype: torch.dtype = torch.float32) -> None:
        self.num_envs = num_envs
        # observations as the env gives them: a Discrete observation one integer (the network one-hot encodes it)
        self.obs_dtype = obs_dtype
        self.ring = Ring(max(capacity // num_envs, 1), num_envs, device)
        self.capacity = self.ring.capacity
        self.device = device
        self.n_step = n_step
        self.gamma = gamma
        self._discount_powers = gamma ** torch.arange(n_step + 1, dtype=torch.float32, device=device)
        action_dtype = torch.int64 if discrete_actions else torch.float32
        slots = self.capacity
        self.stage_on_host = device.type != "cpu" if stage_on_host is None else stage_on_host
        self.storage = {
            **self._observation_storage(slots, obs_shape, device),
            "actions": torch.zeros((slots, *action_shape), dtype=action_dtype, device=device),
            "rewards": torch.zeros(slots, dtype=torch.float32, device=device),
            "terminations": torch.zeros(slots, dtype=torch.float32, device=device),
            "episode_ends": torch.zeros(slots, dtype=torch.float32, device=device),  # terminated or truncated
        }
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.staging = (HostStaging(self.storage, num_envs, min(self.ring.rows, max(4096 // num_envs, 1)), device)
                        if self.stage_on_host else None)
        self._writable = self.staging.writable if self.staging else writable_views(self.storage)

    def __len__(self) -> int:
        """Transitions stored."""
        return self.ring.size * self.num_envs

    @property
    def pos(self) -> int:
        return self.ring.pos

    # How observations are kept; FrameReplayBuffer (rlexp/replay/frames.py) stores image frames once instead.
    def _observation_storage(self, slots: int, obs_shape: tuple[int, ...], device: torch.device) -> dict[str, Tensor]:
        return {"observations": torch.zeros((slots, *obs_shape), dtype=self.obs_dtype, device=device),
                "next_observations": torch.zeros((slots, *obs_shape), dtype=self.obs_dtype, device=device)}

    def _write_observations(self, start: int, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Write a row's observations at writable slots start .. start + num_envs (ring row `row`)."""
        end = start + self.num_envs
        self._writable["observations"][start:end] = obs
        self._writable["next_observations"][start:end] = next_obs

    def _observations(self, slots: Tensor) -> Tensor:
        return self.storage["observations"][slots]

    def _next_observations(self, slots: Tensor) -> Tensor:
        return self.storage["next_observations"][slots]

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminations: np.ndarray, truncations: np.ndarray) -> None:
        """One row: a transition per env, each argument with a leading env axis. `next_obs` is the state the
        action led to (an episode's final observation where it ended), `terminations` true terminal states only."""
        if self.staging is not None:
            if self.staging.full:
                self._flush()
            start = self.staging.claim_row()
        else:
            start = self.ring.pos * self.num_envs
        end = start + self.num_envs
        w = self._writable
        self._write_observations(start, self.ring.pos, obs, next_obs)
        w["actions"][start:end] = actions
        w["rewards"][start:end] = rewards
        w["terminations"][start:end] = terminations
        w["episode_ends"][start:end] = np.logical_or(terminations, truncations)
        self.ring.advance()

    def _flush(self) -> None:
        if self.staging is not None:
            self.staging.flush(self.storage, self.ring.rows, self.ring.pos)

    def _ready(self) -> None:
        """Before sampling: the device holds every row added."""
        if len(self) == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        self._flush()

    def _live(self, offsets: Tensor) -> Tensor:
        """Slots of the stored transitions numbered `offsets` in [0, len(self)). Without eviction the rows in use
        are 0 .. size-1 (until the ring is full, then all), so the slot is the offset itself."""
        return offsets

    def sample(self, batch_size: int) -> ReplayBatch:
        return self.batch_at(self.draw_slots(batch_size))

    def draw_slots(self, batch_size: int) -> Tensor:
        """The slots of a uniform sample of `batch_size` stored transitions, drawn with this replay's generator."""
        self._ready()
        offsets = torch.randint(len(self), (batch_size,), device=self.device, generator=self.generator)
        return self._live(offsets)

    def use_storage(self, storage: dict[str, Tensor]) -> None:
        """Keep the transitions in `storage` from now on (tensors of the same shapes and contents: views of a
        many-seeds run's stacked memory, rlexp/replay/members.py)."""
        self.storage = storage
        if self.staging is None:
            self._writable = writable_views(storage)

    def batch_at(self, slots: Tensor) -> ReplayBatch:
        """The transitions at `slots`, with their n-step returns."""
        self._flush()  # a no-op when sampling (sample flushed), not when called directly
        stored = self.storage
        if self.n_step == 1:
            terminations = stored["terminations"][slots]
            return ReplayBatch(self._observations(slots), stored["actions"][slots], stored["rewards"][slots],
                               self._next_observations(slots), self.gamma * (1.0 - terminations), slots)
        rows, envs = self.ring.split(slots)
        offsets = torch.arange(self.n_step, device=self.device)
        window = ((rows[:, None] + offsets) % self.ring.rows) * self.num_envs + envs[:, None]  # t .. t+n-1, same env
        newer = (self.ring.pos - 1 - rows) % self.ring.rows                        # rows written after t
        ends = stored["episode_ends"][window]
        ended_before = (ends.cumsum(dim=1) - ends) > 0                             # an episode end at t .. t+k-1
        in_window = (offsets <= newer[:, None]) & ~ended_before                    # (batch, n)
        m = in_window.sum(dim=1)                                                   # steps used, 1 <= m <= n
        rewards = (stored["rewards"][window] * self._discount_powers[:-1] * in_window).sum(dim=1)
        last = window.gather(1, (m - 1)[:, None]).squeeze(1)                       # slot of t+m-1
        terminations = stored["terminations"][last]
        return ReplayBatch(self._observations(slots), stored["actions"][slots], rewards,
                           self._next_observations(last), self._discount_powers[m] * (1.0 - terminations), slots)

    def _chronological_slots(self) -> Tensor:
        """Slots of the stored rows, oldest row first."""
        return self.ring.slots_of(self.ring.newest_rows(self.ring.size))

    def state_dict(self) -> dict[str, Any]:
        """The stored rows in the order they were added (oldest first), and the sampling generator.

        Chronological order makes the state independent of the capacity, so a resumed run whose total_steps (and
        with it the capacity) changed can still load it.
        """
        self._flush()
        order = self._chronological_slots()
        return {"transitions": {key: stored[order].cpu() for key, stored in self.storage.items()},
                "num_envs": self.num_envs, "rows": self.ring.rows, "pos": self.ring.pos,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refill from `state_dict()`; when more rows were stored than fit, the newest are kept.

        With an unchanged capacity every transition returns to its old slot, so sampling continues exactly.
        """
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(f"the saved replay has {state['num_envs']} envs, this one {self.num_envs}")
        transitions = state["transitions"]
        count = len(transitions["rewards"]) // self.num_envs
        keep = min(count, self.ring.rows)
        self.ring.pos = int(state["pos"]) if int(state["rows"]) == self.ring.rows else keep % self.ring.rows
        self.ring.size = keep
        slots = self.ring.slots_of(self.ring.newest_rows(keep))
        first = (count - keep) * self.num_envs
        for key, stored in self.storage.items():
            stored[slots] = transitions[key][first:].to(self.device)
        if self.staging is not None:
            self.staging.reset(self.ring.pos)
        self.generator.set_state(state["generator"])
