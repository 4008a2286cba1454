"""Replay memory for stacked image observations (Atari), each frame stored once, in uint8.

An observation is a stack of the last k frames, (k, H, W) uint8, and consecutive observations of an env share k-1
of them; next_obs of one transition is obs of the next. Storing both stacks per transition would keep every frame
2k times (8 x 7 KB for 84x84 frames and k=4). Here each env has its own ring of frames, each frame is written
once, and a transition keeps only the (absolute, per env) number of its observation's newest frame, f:
obs = frames f-k+1 .. f and next_obs = frames f-k+2 .. f+1, since the next frame an env writes is always its
next_obs's newest.

- At an episode start, all k frames of the first observation are written (k-1 extra frames per episode), so any
  padding the frame stack uses is reproduced exactly. Whether a transition continues the env's previous one is
  decided by the data (obs equals the previous next_obs), so a life lost without a reset keeps the stack going.
- Bytes per transition: H*W*(1 + 1/32) for frames (a reserve of 1/32 of each env's rows covers the extra frames
  at episode starts), plus 8 (action) + 12 (reward, termination, episode end) + 8 (frame number on the device)
  + 8 (its host mirror): 7,312 bytes for 84x84, so 1M transitions take 7.3 GB (6.8 GiB).
- Should an env's episodes be so short that its frame ring comes round to a frame a stored transition still
  needs, the oldest rows are dropped first (never a transition with a half-overwritten stack).
- On a GPU, frames are staged in pinned host memory and copied to the device in bulk, like the transitions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.errors import CheckpointError
from rlexp.replay.prioritized import PrioritizedReplayBuffer
from rlexp.replay.uniform import ReplayBuffer


def frames_per_env(rows: int, stack: int) -> int:
    """The length of each env's frame ring: a frame per row, a reserve for episode starts, and slack."""
    return rows + rows // 32 + 4 * stack + 64


class FrameStaging:
    """GPU: frames written into pinned host memory with their ring slots, copied and scattered into the device's
    frame rings in bulk (before sampling, or when `capacity` frames are waiting)."""

    def __init__(self, frames: Tensor, capacity: int) -> None:
        self.frames = frames
        pin = frames.device.type == "cuda"
        self.staged = torch.zeros((capacity, *frames.shape[1:]), dtype=frames.dtype, pin_memory=pin)
        self.slots = torch.zeros(capacity, dtype=torch.int64, pin_memory=pin)
        self._staged, self._slots = self.staged.numpy(), self.slots.numpy()
        self.count = 0
        self._copied: torch.cuda.Event | None = None

    def write(self, slot: int, frame: np.ndarray) -> None:
        if self.count == len(self._slots):
            self.flush()
        if self._copied is not None:  # the last flush may still be reading the host rows
            self._copied.synchronize()
            self._copied = None
        self._staged[self.count] = frame
        self._slots[self.count] = slot
        self.count += 1

    def flush(self) -> None:
        if not self.count:
            return
        device = self.frames.device
        slots = self.slots[:self.count].to(device, non_blocking=True)
        self.frames.index_copy_(0, slots, self.staged[:self.count].to(device, non_blocking=True))
        if device.type == "cuda":
            self._copied = torch.cuda.Event()
            self._copied.record(torch.cuda.current_stream(device))
        self.count = 0


class FrameReplayBuffer(ReplayBuffer):
    """ReplayBuffer for (k, H, W) uint8 observations with every frame stored once (see the module docstring)."""

    @property
    def frame_dtype(self) -> torch.dtype:
        return torch.uint8

    def _observation_storage(self, slots: int, obs_shape: tuple[int, ...], device: torch.device) -> dict[str, Tensor]:
        self.stack, *frame_shape = obs_shape
        rows = self.ring.rows
        self.n_frames = frames_per_env(rows, self.stack)    # each env's ring of frames
        # Env e's frame number n lives at flat index e * n_frames + n % n_frames.
        self.frames = torch.zeros((self.num_envs * self.n_frames, *frame_shape), dtype=self.frame_dtype,
                                  device=device)
        self._frame_staging = FrameStaging(self.frames, 1024) if self.stage_on_host else None
        self._frames_writable = None if self.stage_on_host else self.frames.numpy()
        self.frames_written = np.zeros(self.num_envs, dtype=np.int64)  # per env: number of the next frame
        self._newest_frame = np.zeros((rows, self.num_envs), dtype=np.int64)  # host mirror, for eviction
        self._last_next_obs: np.ndarray | None = None        # (num_envs, k, H, W): each env's previous next_obs
        return {"newest_frame": torch.zeros(slots, dtype=torch.int64, device=device)}

    def _write_frame(self, env: int, frame: np.ndarray) -> None:
        slot = env * self.n_frames + int(self.frames_written[env]) % self.n_frames
        if self._frame_staging is not None:
            self._frame_staging.write(slot, frame)
        else:
            assert self._frames_writable is not None   # the frames themselves, when not staged on the host
            self._frames_writable[slot] = frame
        self.frames_written[env] += 1

    def _evict_for(self, frames_to_write: np.ndarray) -> None:
        """Drop the oldest rows while one of their transitions' stacks reaches into frames about to be overwritten."""
        overwritten_below = self.frames_written + frames_to_write - self.n_frames  # per env: frames < this go
        while self.ring.size:
            oldest = (self.ring.pos - self.ring.size) % self.ring.rows
            if np.all(self._newest_frame[oldest] - self.stack + 1 >= overwritten_below):
                break
            self.ring.size -= 1
            self._on_evict(oldest)

    def _on_evict(self, row: int) -> None:
        """A row was dropped before its turn (prioritized replay zeroes its priorities)."""

    def _write_observations(self, start: int, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        last = self._last_next_obs
        if last is None:
            continues = np.zeros(self.num_envs, dtype=bool)
        else:
            continues = (obs == last).reshape(self.num_envs, -1).all(axis=1)
        self._evict_for(np.where(continues, 1, self.stack + 1))
        newest = np.empty(self.num_envs, dtype=np.int64)
        for env in range(self.num_envs):
            if not continues[env]:
                for frame in obs[env]:  # the whole first stack of an episode, padding included
                    self._write_frame(env, frame)
            newest[env] = self.frames_written[env] - 1
            self._write_frame(env, next_obs[env][-1])
        self._newest_frame[row] = newest
        self._writable["newest_frame"][start:start + self.num_envs] = newest
        self._last_next_obs = np.array(next_obs, copy=True)

    def _flush(self) -> None:
        if self._frame_staging is not None:
            self._frame_staging.flush()
        super()._flush()

    def _stacks(self, newest: Tensor, envs: Tensor) -> Tensor:
        """(batch, k, H, W) uint8 stacks whose newest frames are `newest` (absolute numbers in each env's ring)."""
        numbers = newest[:, None] + torch.arange(1 - self.stack, 1, device=self.device)
        return self.frames[envs[:, None] * self.n_frames + numbers % self.n_frames]

    def _observations(self, slots: Tensor) -> Tensor:
        return self._stacks(self.storage["newest_frame"][slots], slots % self.num_envs)

    def _next_observations(self, slots: Tensor) -> Tensor:
        return self._stacks(self.storage["newest_frame"][slots] + 1, slots % self.num_envs)

    def _live(self, offsets: Tensor) -> Tensor:
        """The live rows are the `size` rows before `pos`: eviction can leave older rows dead."""
        rows = (self.ring.pos - self.ring.size + offsets // self.num_envs) % self.ring.rows
        return rows * self.num_envs + offsets % self.num_envs

    def state_dict(self) -> dict[str, Any]:
        """The raw rings (frames and transitions) and counters: restored as they were, slot for slot."""
        self._flush()
        last = self._last_next_obs
        return {"storage": {key: stored.cpu() for key, stored in self.storage.items()}, "frames": self.frames.cpu(),
                "num_envs": self.num_envs, "rows": self.ring.rows, "pos": self.ring.pos, "size": self.ring.size,
                "frames_written": torch.from_numpy(self.frames_written.copy()),
                "last_next_obs": torch.from_numpy(last) if last is not None else torch.zeros(0, dtype=torch.uint8),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["rows"]) != self.ring.rows or int(state["num_envs"]) != self.num_envs:
            raise CheckpointError(f"the checkpoint's image replay memory holds {state['rows']} rows of "
                                  f"{state['num_envs']} envs and this run's holds {self.ring.rows} of "
                                  f"{self.num_envs} (min(algo.buffer_size, total_steps) // env.num_envs); resume "
                                  f"with a total_steps that keeps it")
        for key, stored in self.storage.items():
            stored.copy_(state["storage"][key])
        self.frames.copy_(state["frames"])
        if self._frame_staging is not None:
            self._frame_staging.count = 0
        self.ring.pos, self.ring.size = int(state["pos"]), int(state["size"])
        self.frames_written = state["frames_written"].numpy().copy()
        self._newest_frame[:] = state["storage"]["newest_frame"].numpy().reshape(self.ring.rows, self.num_envs)
        last = state["last_next_obs"]
        self._last_next_obs = last.numpy().copy() if last.numel() else None
        if self.staging is not None:
            self.staging.reset(self.ring.pos)
        self.generator.set_state(state["generator"])


class PrioritizedFrameReplayBuffer(PrioritizedReplayBuffer, FrameReplayBuffer):
    """Prioritized replay over the frame store: priorities from PrioritizedReplayBuffer, storage from
    FrameReplayBuffer (Python's method order runs both)."""

    def _on_evict(self, row: int) -> None:
        self._prioritize_new()  # pending new rows first, so the eviction is not undone
        slots = self.ring.slots_of(torch.tensor([row], device=self.device))
        self.tree.update(slots, torch.zeros(len(slots), dtype=torch.float64, device=self.device), checked=False)
