"""A rollout of `n_steps` vector steps of `num_envs` envs, on the training device, and its advantages.

Each step stores s_t, a_t, log pi_old(a_t|s_t), V_old(s_t), r_t and how the step ended. V(s'_t), the value the
step bootstraps from, is known one step later for an env that goes on (its next V(s_t)) and at once for an env
whose episode ended (the value of its final observation, which the caller computes, since the env has already
reset): `add` takes the latter, and `finish` takes V(s_T) for the steps the rollout cuts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from rlexp.rollouts.advantages import generalized_advantages


@dataclass(frozen=True)
class RolloutBatch:
    observations: Tensor
    actions: Tensor
    old_log_probs: Tensor
    old_values: Tensor
    advantages: Tensor
    returns: Tensor


def stack_rollout_batches(batches: Sequence[RolloutBatch]) -> RolloutBatch:
    """Many seeds' minibatches as one, with the member axis in front of every field."""
    return RolloutBatch(**{f.name: torch.stack([getattr(b, f.name) for b in batches]) for f in fields(RolloutBatch)})


class RolloutStorage:
    FIELDS = ("observations", "actions", "log_probs", "values", "rewards", "terminations", "episode_ends",
              "next_values")
    # FIELDS[2:], made in __init__ by name: (n_steps, num_envs) each
    log_probs: Tensor
    values: Tensor
    rewards: Tensor
    terminations: Tensor
    episode_ends: Tensor
    next_values: Tensor

    def __init__(self, n_steps: int, num_envs: int, obs_shape: Sequence[int], action_shape: Sequence[int],
                 discrete: bool, device: torch.device, obs_dtype: torch.dtype = torch.float32) -> None:
        self.n_steps, self.num_envs, self.device = n_steps, num_envs, device
        shape = (n_steps, num_envs)
        # observations as the env gives them: a Discrete observation one integer (the network one-hot encodes it)
        self.observations = torch.zeros(*shape, *obs_shape, device=device, dtype=obs_dtype)
        # (a Discrete action one int64; the others float32 in their shape: a MultiDiscrete or MultiBinary action's
        # integers are exact there, and its distribution casts them back, rlexp/networks/multi_actions.py)
        self.actions = torch.zeros(*shape, *(() if discrete else action_shape), device=device,
                                   dtype=torch.long if discrete else torch.float32)
        for name in self.FIELDS[2:]:
            setattr(self, name, torch.zeros(shape, device=device))
        self.pos = 0
        self.advantages: Tensor | None = None
        self.returns: Tensor | None = None

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def add(self, observations: Tensor, actions: Tensor, log_probs: Tensor, values: Tensor, rewards: Tensor,
            terminations: Tensor, episode_ends: Tensor, final_values: Tensor) -> None:
        """One vector step. `final_values` is V(final observation) where `episode_ends`, ignored elsewhere."""
        t = self.pos
        if t > 0:   # the previous step of an env that went on bootstraps from this step's V(s_t)
            going_on = self.episode_ends[t - 1] == 0
            self.next_values[t - 1] = torch.where(going_on, values, self.next_values[t - 1])
        for name, value in (("observations", observations), ("actions", actions), ("log_probs", log_probs),
                            ("values", values), ("rewards", rewards), ("terminations", terminations),
                            ("episode_ends", episode_ends)):
            getattr(self, name)[t] = value
        self.next_values[t] = torch.where(episode_ends > 0, final_values, torch.zeros_like(final_values))
        self.pos += 1

    def cut(self, envs: Tensor, values: Tensor) -> None:
        """End the episodes of the bool mask `envs` at the last stored step, bootstrapping from `values` (V of the
        observation each had reached): for an env that continues with a fresh episode instead."""
        t = self.pos - 1
        self.episode_ends[t] = torch.where(envs, torch.ones_like(values), self.episode_ends[t])
        self.next_values[t] = torch.where(envs, values, self.next_values[t])

    def finish(self, last_values: Tensor, gamma: float, gae_lambda: float) -> None:
        """Close the rollout with V(s_T) and compute advantages and returns."""
        t = self.n_steps - 1
        self.next_values[t] = torch.where(self.episode_ends[t] == 0, last_values, self.next_values[t])
        self.advantages, self.returns = generalized_advantages(
            self.rewards, self.values, self.next_values, self.terminations, self.episode_ends, gamma, gae_lambda)

    def minibatches(self, batch_size: int, generator: torch.Generator) -> Iterator[RolloutBatch]:
        """One epoch: the rollout's samples shuffled (by the caller's generator) into minibatches of `batch_size`;
        a minibatch of the whole rollout is the rollout as it is (its order changes nothing but the summation's)."""
        assert self.advantages is not None and self.returns is not None, "finish() the rollout first"
        total = self.n_steps * self.num_envs
        flat = {name: tensor.reshape(total, *tensor.shape[2:]) for name, tensor in (
            ("observations", self.observations), ("actions", self.actions), ("old_log_probs", self.log_probs),
            ("old_values", self.values), ("advantages", self.advantages), ("returns", self.returns))}
        if batch_size >= total:
            yield RolloutBatch(**flat)
            return
        order = torch.randperm(total, generator=generator, device=generator.device).to(self.device)
        for start in range(0, total, batch_size):
            index = order[start:start + batch_size]
            yield RolloutBatch(**{name: tensor[index] for name, tensor in flat.items()})

    def reset(self) -> None:
        self.pos = 0
        self.advantages = self.returns = None

    def state_dict(self) -> dict[str, Tensor | int]:
        """A rollout cut by a checkpoint: the steps stored so far (host copies)."""
        return {"pos": self.pos, **{name: getattr(self, name)[:self.pos].cpu() for name in self.FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reset()
        self.pos = int(state["pos"])
        for name in self.FIELDS:
            getattr(self, name)[:self.pos] = state[name].to(self.device)
