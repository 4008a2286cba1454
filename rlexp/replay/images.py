"""Replay memory for single image observations (CarRacing's 96x96x3, any rank-3 image that is not Atari's stacked
frames), each observation stored once, in `obs_dtype` (uint8, or float32 for float images).

A transition's next observation is the observation its env gives next, unless an episode ended in between: the
same data as rlexp/replay/frames.py's, with a stack of one frame. So each env keeps its own ring of images, a
transition keeps the number of its observation's image, f, and next_obs is image f+1; the first observation of
an episode is written as well (whether a transition continues the env's last one is decided by the data:
obs equal to the last next_obs), so an episode's final observation and the reset one are both kept exactly.

Sampling draws what the plain replay (observations and next observations each stored, rlexp/replay/uniform.py)
draws, slot for slot, bit for bit (tests/test_replay_images.py), unless an env's episodes are so short (under
about 32 steps on average) that its image ring comes round first: then, as for Atari's frames, the oldest rows
are dropped. Bytes per transition: the image's size times 1 + 1/32 (the reserve for episode starts), plus the
action, reward, termination and episode end, plus 16 (the image's number on the device and its host mirror):
28,571 for CarRacing (SAC, 3 float32 actions; 100k transitions), where the observation and the next one take
55,320 (`python benchmarks/memory.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.replay.frames import FrameReplayBuffer, PrioritizedFrameReplayBuffer

#: (observations, actions, rewards, next observations, terminations, episode ends) of one row, env axis first
Row = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class ImageReplayBuffer(FrameReplayBuffer):
    """ReplayBuffer for single image observations, each stored once (see the module docstring)."""

    @property
    def frame_dtype(self) -> torch.dtype:
        return self.obs_dtype

    def _observation_storage(self, slots: int, obs_shape: tuple[int, ...], device: torch.device) -> dict[str, Tensor]:
        self.image_shape = obs_shape
        return super()._observation_storage(slots, (1, *obs_shape), device)   # a stack of one frame

    def _write_observations(self, start: int, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        super()._write_observations(start, row, np.asarray(obs)[:, None], np.asarray(next_obs)[:, None])

    def _observations(self, slots: Tensor) -> Tensor:
        return super()._observations(slots).squeeze(1)

    def _next_observations(self, slots: Tensor) -> Tensor:
        return super()._next_observations(slots).squeeze(1)

    def _live(self, offsets: Tensor) -> Tensor:
        # A full ring: every row is live, and offset i is slot i, as in the plain replay (the frame replay counts
        # from the oldest row), so a run draws the transitions it drew when the replay stored both observations.
        if self.ring.size == self.ring.rows:
            return offsets
        return super()._live(offsets)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the rings as saved; or, from a checkpoint of another capacity (total_steps changed) or of the
        plain replay (a run from before images were stored once), add the saved rows again, oldest first,
        keeping the newest that fit, as the plain replay does."""
        if "transitions" not in state and int(state["rows"]) == self.ring.rows:
            super().load_state_dict(state)
            return
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(f"the saved replay has {state['num_envs']} envs, this one {self.num_envs}")
        rows = list(_saved_rows(state, self.num_envs))
        keep = min(len(rows), self.ring.rows)
        pos = int(state["pos"]) if "transitions" in state and int(state["rows"]) == self.ring.rows \
            else keep % self.ring.rows
        self.ring.pos, self.ring.size = (pos - keep) % self.ring.rows, 0
        self.frames_written[:] = 0
        self._last_next_obs = None
        for obs, actions, rewards, next_obs, terminations, ends in rows[len(rows) - keep:]:
            self.add(obs, actions, rewards, next_obs, terminations, ends)
        self.generator.set_state(state["generator"])


def _saved_rows(state: dict[str, Any], num_envs: int) -> Iterator[Row]:
    """The rows of a saved replay, oldest first: from the plain replay's chronological transitions, or read out
    of an image replay's rings."""
    def numpy(tensor: Tensor) -> np.ndarray:
        return tensor.cpu().numpy()

    if "transitions" in state:
        saved = state["transitions"]
        for row in range(len(saved["rewards"]) // num_envs):
            at = slice(row * num_envs, (row + 1) * num_envs)
            yield (numpy(saved["observations"][at]), numpy(saved["actions"][at]), numpy(saved["rewards"][at]),
                   numpy(saved["next_observations"][at]), numpy(saved["terminations"][at]),
                   numpy(saved["episode_ends"][at]))
        return
    stored, frames = state["storage"], state["frames"]
    n_frames = len(frames) // num_envs
    first_frame = torch.arange(num_envs) * n_frames
    rows, pos, size = int(state["rows"]), int(state["pos"]), int(state["size"])
    for row in (torch.arange(size) + pos - size) % rows:
        at = slice(int(row) * num_envs, (int(row) + 1) * num_envs)
        newest = stored["newest_frame"][at]
        yield (numpy(frames[first_frame + newest % n_frames]), numpy(stored["actions"][at]),
               numpy(stored["rewards"][at]), numpy(frames[first_frame + (newest + 1) % n_frames]),
               numpy(stored["terminations"][at]), numpy(stored["episode_ends"][at]))


class PrioritizedImageReplayBuffer(PrioritizedFrameReplayBuffer, ImageReplayBuffer):
    """Prioritized replay over single images stored once (PrioritizedFrameReplayBuffer's priorities and eviction,
    ImageReplayBuffer's storage)."""
