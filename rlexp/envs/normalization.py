"""Observation and reward normalization, as SB3's VecNormalize does it, for every algorithm (`env.normalize`).

- Observations: (x - mean) / sqrt(var + 1e-8), clipped to +-clip_obs, with the running mean and variance of every
  observation the training envs returned (statistics shared by the envs).
- Rewards: r / sqrt(var(G) + 1e-8), clipped to +-clip_reward, where G is each env's running discounted return
  G <- gamma * G + r (reset when its episode ends): the scale of the returns, not of single rewards. The mean is not
  subtracted, so the sign of a reward (and a termination's meaning) is kept.

Dict and Tuple observations (packed into bytes, rlexp/envs/packing.py) have only their float vector entries
standardised, as VecNormalize's `norm_obs_keys` would choose them: the entries stored as float32 (Boxes that are
not uint8), with one running mean and variance over their values concatenated; images, Discrete, MultiDiscrete
and MultiBinary entries pass as they are, and the rows stay packed.

Why not gymnasium's NormalizeObservation / NormalizeReward: on a vector env they transform the returned
observations but not `info["final_obs"]`, the observation a truncated episode bootstraps from (and off-policy
replay stores); wrapped around each sub-env instead, every env keeps statistics of its own; and EnvPool's envs
are not gymnasium envs. So the runner applies this module between the collector and the agent, where it sees
every observation, the final ones included. Its statistics are part of every checkpoint, frozen in evaluation
and used by `rlexp eval`. Logged returns are the envs' raw returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlexp.config.schema import NormalizeConfig
from rlexp.envs.packing import Entry

EPSILON = 1e-8


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al.'s parallel update), in float64. `count` starts at
    1e-4, as SB3's, so the first batch is not divided by zero."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64)
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = np.asarray(self.mean + delta * batch_count / total)
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / total
        self.var = np.asarray(m2 / total)
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": torch.from_numpy(self.mean.copy()), "var": torch.from_numpy(self.var.copy()),
                "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var = state["mean"].numpy().copy(), state["var"].numpy().copy()
        self.count = float(state["count"])


@dataclass(frozen=True)
class NormalizeSettings:
    obs: bool
    reward: bool
    clip_obs: float
    clip_reward: float
    gamma: float       # of the discounted return whose scale rewards are divided by (the algorithm's)


class Normalization:
    """The statistics and the transforms; `training` false freezes the statistics (evaluation)."""

    def __init__(self, settings: NormalizeSettings, obs_shape: tuple[int, ...], num_envs: int,
                 entries: tuple[Entry, ...] = ()) -> None:
        self.settings = settings
        # a packed observation's float entries (standardised), or none: the whole observation is
        self.floats = standardised(entries)
        self.obs_rms = RunningMeanStd(statistics_shape(obs_shape, entries))
        self.return_rms = RunningMeanStd()
        self.returns = np.zeros(num_envs, np.float64)   # each training env's discounted return so far

    def observations(self, obs: np.ndarray, update: bool) -> np.ndarray:
        """A batch of observations, normalized (after updating the statistics with it, if `update`)."""
        if not self.settings.obs:
            return obs
        if self.floats:
            return self.packed_observations(obs, update)
        if update:
            self.obs_rms.update(obs)
        clip = self.settings.clip_obs
        return np.clip((obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + EPSILON), -clip, clip).astype(np.float32)

    def packed_observations(self, obs: np.ndarray, update: bool) -> np.ndarray:
        """Packed rows (..., nbytes) with their float entries standardised in place of the raw ones (a copy)."""
        rows = np.array(obs, np.uint8).reshape(-1, obs.shape[-1])   # (a copy: the caller's rows stay raw)
        views = [rows[:, e.offset:e.offset + e.nbytes].view(np.float32) for e in self.floats]
        values = np.concatenate(views, axis=1)
        if update:
            self.obs_rms.update(values)
        clip = self.settings.clip_obs
        scaled = np.clip((values - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + EPSILON), -clip, clip
                         ).astype(np.float32)
        start = 0
        for view in views:
            view[...] = scaled[:, start:start + view.shape[1]]
            start += view.shape[1]
        return rows.reshape(obs.shape)

    def rewards(self, rewards: np.ndarray, ended: np.ndarray) -> np.ndarray:
        """The training envs' rewards of one vector step, scaled; `ended`: the envs whose episode ended in it."""
        if not self.settings.reward:
            return rewards
        self.returns = self.returns * self.settings.gamma + rewards
        self.return_rms.update(self.returns)
        clip = self.settings.clip_reward
        scaled = np.clip(rewards / np.sqrt(self.return_rms.var + EPSILON), -clip, clip).astype(np.float32)
        self.returns[ended] = 0.0
        return scaled

    def state_dict(self) -> dict[str, Any]:
        return {"obs_rms": self.obs_rms.state_dict(), "return_rms": self.return_rms.state_dict(),
                "returns": torch.from_numpy(self.returns.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.return_rms.load_state_dict(state["return_rms"])
        returns = state["returns"].numpy()
        if returns.shape == self.returns.shape:   # the training envs' returns (an evaluation has no use for them)
            self.returns = returns.copy()


def standardised(entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
    """The entries of a packed observation that observation normalization standardises: its float vectors."""
    return tuple(entry for entry in entries if entry.dtype == np.float32)


def statistics_shape(obs_shape: tuple[int, ...], entries: tuple[Entry, ...] = ()) -> tuple[int, ...]:
    """The shape of the observation statistics: the observation's, or for a packed Dict/Tuple observation, the
    number of values in its float entries."""
    return (sum(entry.nbytes // 4 for entry in standardised(entries)),) if entries else tuple(obs_shape)


def make_normalization(normalize: NormalizeConfig, gamma: float, obs_shape: tuple[int, ...],
                       num_envs: int, entries: tuple[Entry, ...] = ()) -> Normalization | None:
    """The run's normalization from `env.normalize` (None when it normalizes nothing); `entries`: a packed
    Dict/Tuple observation's (SpaceInfo.entries)."""
    if not (normalize.obs or normalize.reward):
        return None
    return Normalization(NormalizeSettings(normalize.obs, normalize.reward, float(normalize.clip_obs),
                                           float(normalize.clip_reward), gamma), obs_shape, num_envs, entries)
