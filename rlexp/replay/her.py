"""Hindsight experience replay: Andrychowicz et al. 2017, "Hindsight Experience Replay".

https://arxiv.org/abs/1707.01495

For goal-conditioned envs (Dict observations with `observation`, `achieved_goal` and `desired_goal`, and a
`compute_reward(achieved_goal, desired_goal, info)`: the gymnasium-robotics convention), an episode that missed its
goal is also replayed as if it had aimed at a goal it reached. Transitions are stored as they happened; at
sampling, each transition of the batch is relabelled with probability k / (k + 1) (k = `n_sampled_goal`, so k
relabelled transitions per real one on average, as SB3's HerReplayBuffer), its desired goal in s_t and s_{t+1}
replaced by a goal g' the same episode achieved, and its reward recomputed as r = compute_reward(achieved goal of
s_{t+1}, g', {}) (rlexp keeps no infos in replay: an env whose reward reads them is not supported); its termination
stays the stored one (as SB3's). The strategies (the paper's section 4.5):

- future: g' the goal achieved at s_{j+1}, j uniform in t .. the episode's last stored step (the paper's best);
- final: g' the goal achieved at the episode's last stored step;
- episode: g' the goal achieved at s_{j+1}, j uniform over the episode's stored steps.

An episode still running counts up to its newest stored step. Goals are read from and written into the packed
observation rows (rlexp/envs/packing.py) as bytes: no conversion but for the reward. Each env's transitions form
their own stream (rlexp/replay/ring.py), so an episode is one env's rows; each slot keeps its step in its episode
and, once the episode has ended, the episode's length. The draws come from the replay's generator, so a resumed run
relabels exactly as the uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.replay.batch import ReplayBatch
from rlexp.replay.uniform import ReplayBuffer

#: compute_reward(achieved_goal, desired_goal, info) of a goal-conditioned env, on batches of goals
RewardFunction = Callable[[np.ndarray, np.ndarray, Any], Any]


@dataclass(frozen=True)
class Goals:
    """Where a goal-conditioned env's goals lie in its packed observation rows, and its reward function."""

    achieved: slice          # the achieved goal's bytes in a packed row
    desired: slice           # the desired goal's bytes
    dtype: torch.dtype       # how both are stored (the same space)
    compute_reward: RewardFunction


class HerReplayBuffer(ReplayBuffer):
    """Uniform replay of packed goal-conditioned observations (1-step targets), relabelled at sampling."""

    def __init__(self, *args: Any, goals: Goals, n_sampled_goal: int, goal_selection_strategy: str,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.n_step != 1:
            raise ValueError("hindsight relabelling takes 1-step targets")
        self.goals, self.strategy = goals, goal_selection_strategy
        self.relabel_probability = n_sampled_goal / (n_sampled_goal + 1)
        self.steps_in_episode = np.zeros(self.num_envs, dtype=np.int64)   # the next transition's, per env

    def _observation_storage(self, slots: int, obs_shape: tuple[int, ...], device: torch.device) -> dict[str, Tensor]:
        # with each transition its step in its episode, and its episode's length once it has ended (0 before)
        return {**super()._observation_storage(slots, obs_shape, device),
                "episode_steps": torch.zeros(slots, dtype=torch.int64, device=device),
                "episode_lengths": torch.zeros(slots, dtype=torch.int64, device=device)}

    def _write_observations(self, start: int, row: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        super()._write_observations(start, row, obs, next_obs)
        self._writable["episode_steps"][start:start + self.num_envs] = self.steps_in_episode
        self._writable["episode_lengths"][start:start + self.num_envs] = 0

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminations: np.ndarray, truncations: np.ndarray) -> None:
        row = self.ring.pos
        super().add(obs, actions, rewards, next_obs, terminations, truncations)
        ended = np.logical_or(terminations, truncations)
        if ended.any():
            self._flush()   # every row of the ended episodes in storage: their lengths are written there
            for env in np.flatnonzero(ended):
                length = min(int(self.steps_in_episode[env]) + 1, self.ring.size)   # (older rows may be gone)
                rows = (row - torch.arange(length, device=self.device)) % self.ring.rows
                self.storage["episode_lengths"][rows * self.num_envs + int(env)] = length
        self.steps_in_episode = np.where(ended, 0, self.steps_in_episode + 1)

    def batch_at(self, slots: Tensor) -> ReplayBatch:
        batch = super().batch_at(slots)
        stored = self.storage
        rows, envs = self.ring.split(slots)
        steps, lengths = stored["episode_steps"][slots], stored["episode_lengths"][slots]
        newer = (self.ring.pos - 1 - rows) % self.ring.rows                      # this env's rows after t
        after = torch.where(lengths > 0, torch.minimum(lengths - 1 - steps, newer), newer)
        before = torch.minimum(steps, self.ring.size - 1 - newer)                 # its episode's rows before t
        relabel = torch.rand(len(slots), device=self.device, generator=self.generator) < self.relabel_probability
        u = torch.rand(len(slots), device=self.device, generator=self.generator)
        if self.strategy == "future":
            offsets = (u * (after + 1)).long().clamp(max=after)                   # 0 .. after
        elif self.strategy == "final":
            offsets = after
        else:   # episode
            offsets = (u * (before + after + 1)).long().clamp(max=before + after) - before
        goal_slots = ((rows + offsets) % self.ring.rows) * self.num_envs + envs
        new_goals = self._next_observations(goal_slots)[:, self.goals.achieved]
        observations, next_observations = batch.observations.clone(), batch.next_observations.clone()
        observations[relabel, self.goals.desired] = new_goals[relabel]
        next_observations[relabel, self.goals.desired] = new_goals[relabel]
        rewards = batch.rewards.clone()
        if bool(relabel.any()):
            achieved = self.goal_values(next_observations[relabel][:, self.goals.achieved])
            desired = self.goal_values(new_goals[relabel])
            recomputed = np.asarray(self.goals.compute_reward(achieved, desired, {}), dtype=np.float32)
            rewards[relabel] = torch.as_tensor(recomputed.reshape(-1), device=self.device)
        return batch._replace(observations=observations, rewards=rewards, next_observations=next_observations)

    def goal_values(self, goal_bytes: Tensor) -> np.ndarray:
        """Packed goal bytes (n, bytes) as the goals' values (n, dims), on the host for compute_reward."""
        return goal_bytes.contiguous().view(self.goals.dtype).cpu().numpy()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        # each env's next step in its episode: after its newest stored transition (0 when that one ended)
        self.steps_in_episode = np.zeros(self.num_envs, dtype=np.int64)
        if self.ring.size:
            last = ((self.ring.pos - 1) % self.ring.rows) * self.num_envs + torch.arange(self.num_envs,
                                                                                         device=self.device)
            ended = self.storage["episode_ends"][last] > 0
            self.steps_in_episode = torch.where(ended, 0, self.storage["episode_steps"][last] + 1).cpu().numpy()
