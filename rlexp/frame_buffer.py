"""Replay memory for stacked image observations (Atari), each frame stored once, in uint8.

An observation is a stack of the last k frames, (k, H, W) uint8, and consecutive observations share k-1 of them;
next_obs of one transition is obs of the next. Storing both stacks per transition would keep every frame 2k times
(8 x 7 KB for 84x84 frames and k=4). Here each frame is written once into a ring of frames, and a transition
keeps only the (absolute) number of its observation's newest frame, f: obs = frames f-k+1 .. f and
next_obs = frames f-k+2 .. f+1, since the next frame written is always next_obs's newest.

- At an episode start, all k frames of the first observation are written (k-1 extra frames per episode), so any
  padding the frame stack uses is reproduced exactly. Whether a transition continues the previous one is decided
  by the data (obs equals the previous next_obs), so a life lost without a reset keeps the stack going.
- Bytes per transition: H*W*(1 + 1/32) for frames (a reserve of 1/32 of the capacity covers the extra frames at
  episode starts), plus 8 (action) + 12 (reward, termination, episode end) + 8 (frame number on the device) + 8
  (its host mirror): 7,312 bytes for 84x84, so 1M transitions take 7.3 GB (6.8 GiB).
- Should episodes be so short that the frame ring comes round to a frame a stored transition still needs, the
  oldest transitions are dropped first (never a transition with a half-overwritten stack).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.buffers import PrioritizedReplayBuffer, ReplayBuffer
from rlexp.errors import CheckpointError


class FrameReplayBuffer(ReplayBuffer):
    """ReplayBuffer for (k, H, W) uint8 observations with every frame stored once (see the module docstring)."""

    def _observation_storage(self, capacity: int, obs_shape: tuple[int, ...],
                             device: torch.device) -> dict[str, Tensor]:
        self.stack, *frame_shape = obs_shape
        self.n_frames = capacity + capacity // 32 + 4 * self.stack + 64  # the ring of frames
        self.frames = torch.zeros((self.n_frames, *frame_shape), dtype=torch.uint8, device=device)
        self._frames_writable = self.frames.numpy() if device.type == "cpu" else None
        self.frames_written = 0                       # absolute number of the next frame to write
        self._newest_frame = np.zeros(capacity, dtype=np.int64)   # host mirror of `newest_frame`, for eviction
        self._last_next_obs: np.ndarray | None = None
        return {"newest_frame": torch.zeros(capacity, dtype=torch.int64, device=device)}

    def _write_frame(self, frame: np.ndarray) -> None:
        slot = self.frames_written % self.n_frames
        if self._frames_writable is not None:
            self._frames_writable[slot] = frame
        else:
            self.frames[slot].copy_(torch.from_numpy(np.ascontiguousarray(frame)))
        self.frames_written += 1

    def _evict_for(self, frames_to_write: int) -> None:
        """Drop the oldest transitions whose stacks reach into the frames about to be overwritten."""
        overwritten_below = self.frames_written + frames_to_write - self.n_frames  # frames < this get overwritten
        while self.size:
            oldest = (self.pos - self.size) % self.capacity
            if self._newest_frame[oldest] - self.stack + 1 >= overwritten_below:
                break
            self.size -= 1
            self._on_evict(oldest)

    def _on_evict(self, slot: int) -> None:
        """A transition was dropped before its turn (prioritized replay zeroes its priority)."""

    def _write_observations(self, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        continues = self._last_next_obs is not None and np.array_equal(obs, self._last_next_obs)
        self._evict_for(1 if continues else self.stack + 1)
        if not continues:
            for frame in obs:  # the whole first stack of an episode, padding included
                self._write_frame(frame)
        newest = self.frames_written - 1
        self._write_frame(next_obs[-1])
        slot = self.pos
        self._newest_frame[slot] = newest
        self._writable["newest_frame"][row] = newest
        self._last_next_obs = np.array(next_obs, copy=True)

    def _stacks(self, newest: Tensor) -> Tensor:
        """(batch, k, H, W) uint8 stacks whose newest frames are `newest` (absolute frame numbers)."""
        numbers = newest[:, None] + torch.arange(1 - self.stack, 1, device=self.device)
        return self.frames[numbers % self.n_frames]

    def _observations(self, slots: Tensor) -> Tensor:
        return self._stacks(self.storage["newest_frame"][slots])

    def _next_observations(self, slots: Tensor) -> Tensor:
        return self._stacks(self.storage["newest_frame"][slots] + 1)

    def sample(self, batch_size: int) -> Any:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        if self.stage_on_host and self._staged:
            self._flush()
        # The live transitions are the `size` slots before `pos` (eviction can leave older slots dead).
        offsets = torch.randint(self.size, (batch_size,), device=self.device, generator=self.generator)
        return self.batch_at((self.pos - self.size + offsets) % self.capacity)

    def state_dict(self) -> dict[str, Any]:
        """The raw rings (frames and transitions) and counters: restored as they were, slot for slot."""
        if self.stage_on_host and self._staged:
            self._flush()
        last = self._last_next_obs
        return {"storage": {key: stored.cpu() for key, stored in self.storage.items()}, "frames": self.frames.cpu(),
                "capacity": self.capacity, "pos": self.pos, "size": self.size, "frames_written": self.frames_written,
                "last_next_obs": torch.from_numpy(last) if last is not None else torch.zeros(0, dtype=torch.uint8),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise CheckpointError(f"the checkpoint's image replay memory holds {state['capacity']} transitions and "
                                  f"this run's holds {self.capacity} (min(algo.buffer_size, total_steps)); resume "
                                  f"with a total_steps that keeps it")
        for key, stored in self.storage.items():
            stored.copy_(state["storage"][key])
        self.frames.copy_(state["frames"])
        self.pos, self.size, self.frames_written = int(state["pos"]), int(state["size"]), int(state["frames_written"])
        self._newest_frame[:] = state["storage"]["newest_frame"].numpy()
        last = state["last_next_obs"]
        self._last_next_obs = last.numpy().copy() if last.numel() else None
        if self.stage_on_host:
            self._stage_start, self._staged = self.pos, 0
        self.generator.set_state(state["generator"])


class PrioritizedFrameReplayBuffer(PrioritizedReplayBuffer, FrameReplayBuffer):
    """Prioritized replay over the frame store: priorities from PrioritizedReplayBuffer, storage from
    FrameReplayBuffer (Python's method order runs both)."""

    def _on_evict(self, slot: int) -> None:
        self._prioritize_new()  # pending new slots first, so the eviction is not undone
        self.tree.update(torch.tensor([slot], device=self.device),
                         torch.zeros(1, dtype=torch.float64, device=self.device), checked=False)
