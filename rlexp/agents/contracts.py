"""The contracts an agent keeps: what a runner calls, what a checkpoint holds, what deployment and the paper
instruments read, and what many seeds as one model need. A new algorithm implements one of the two protocols
below, and tests/test_conformance.py runs every registered algorithm through it.

A runner's calls that may be batched over seeds are made as values (`ask(OffPolicyAgent.update, sample)`,
rlexp/runners/requests.py), naming the protocol's method itself, so a type checker sees each call's name and
arguments; the other calls (evaluation, checkpoints, noise resets) go to the run's own agent directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from rlexp.replay import ReplayBatch
from rlexp.rollouts.storage import RolloutStorage

#: Metrics of an update, by TensorBoard tag ("losses/td_loss"): tensors on the device, converted only when logged.
Metrics = dict[str, Tensor]


@runtime_checkable
class Agent(Protocol):
    """What every agent has, whatever its family."""

    #: The entries of `state_dict()` that are its exploration (generators, noise processes, gSDE's matrices):
    #: `rlexp.load(run, seed=...)` keeps the saved networks and takes these from a freshly seeded agent.
    exploration_state: tuple[str, ...]

    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """Actions for a batch of observations (one per env), in one forward pass; `explore` adds the
        algorithm's exploration, drawn per env, at env step `step`. Many seeds as one model: a leading member
        axis on both."""
        ...

    def episodes_started(self, envs: np.ndarray) -> None:
        """The envs where the bool mask `envs` is true began an episode (e.g. reset their Ornstein-Uhlenbeck
        noise)."""
        ...

    def exploration_metrics(self, step: int) -> dict[str, float]:
        """Scalars describing exploration at env step `step` (e.g. epsilon)."""
        ...

    def representation(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """(the last hidden layer of the network that values states, one row per state; that value: max_a Q(s, a),
        Q(s, pi(s)) or V(s)): what `rlexp eval embed=true` maps with t-SNE (the DQN paper's Figure 4), and whose
        mean over held-out states is the learning index (its Figure 2)."""
        ...

    def policy_network(self) -> torch.nn.Module:
        """The deterministic policy (what `act(obs, explore=False)` takes) as one module of the agent's own
        networks: a batch of observation tensors -> the env's actions (rlexp/networks/deterministic.py)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly: networks, targets, optimizers, update counter, generators,
        exploration. Tensors, arrays and numbers only: checkpoints are read with weights_only=True."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output: the next update is the one the saved agent would have made."""
        ...


@runtime_checkable
class OffPolicyAgent(Agent, Protocol):
    """An agent of the off-policy runner (rlexp/runners/off_policy.py): it acts, the runner stores the transitions
    in replay, and every round it learns from batches the runner draws."""

    def update(self, batch: ReplayBatch) -> Metrics:
        """One gradient step on a replay batch (with a leading member axis, many seeds')."""
        ...


@runtime_checkable
class OnPolicyAgent(Agent, Protocol):
    """An agent of the on-policy runner (rlexp/runners/on_policy.py): it rolls its current policy out, and learns
    from each finished rollout."""

    def rollout_step(self, observations: Tensor, t: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """(actions, log pi_old(a|s), V_old(s)) for the observations at step `t` of the rollout."""
        ...

    def values(self, observations: Tensor) -> Tensor:
        """V(s): what a rollout bootstraps from (at its end, and at a time limit's final observation)."""
        ...

    def to_env(self, actions: Tensor) -> np.ndarray:
        """Actions as the envs take them (continuous ones clipped to the bounds)."""
        ...

    def learn(self, rollout: RolloutStorage) -> Metrics:
        """The epochs over one finished rollout (many seeds: a sequence of each seed's own rollout)."""
        ...


@runtime_checkable
class StochasticAgent(Agent, Protocol):
    """An agent whose policy is a distribution (AlgoSpec.stochastic): `eval.deterministic=false` evaluates it."""

    def act_sampled(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """A draw from pi(.|s) per observation, from `generator`: the agent's own generators, noise and gSDE
        matrices are left as they were, so an evaluation changes nothing in training (gSDE's matrices are drawn
        afresh for each call)."""
        ...


@runtime_checkable
class Members(Protocol):
    """Many seeds as one model (`seeds=[...]`): the agent an `AlgoSpec.members` builder makes of the seeds' agents.
    It keeps the family's protocol with a leading member axis on every argument and result, and `members`, the
    seeds' own agents: each one's parameters and optimizer state are views of its slices of the stacked ones, so
    it evaluates and checkpoints as a single run's agent."""

    members: Sequence[Agent]
