"""What an on-policy learner's epochs read of the rollout they learn from: one run's rollout, or many seeds' (a
member axis in front), shuffled into minibatches by each one's own generator.

PPO's `learn` loops over epochs of minibatches the same way for one run and for many seeds as one model; what
differs, how the minibatches are drawn and stacked and what shape a per-member figure has, lives here, so the
single-run learner carries no hooks that only a batch of seeds needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from rlexp.rollouts.storage import RolloutBatch, RolloutStorage, stack_rollout_batches


class Epochs(Protocol):
    """The rollout(s) of one `learn`: `member_shape` is () for one run, (members,) for many seeds."""

    @property
    def member_shape(self) -> tuple[int, ...]: ...

    def minibatches(self, learning: Tensor) -> Iterator[RolloutBatch]:
        """One epoch's minibatches; `learning` (of `member_shape`) says who still learns from this rollout."""
        ...

    def flat(self, name: str) -> Tensor:
        """A field of the rollout(s) (`returns`, `values`), flattened over steps and envs."""
        ...


@dataclass
class OneRollout:
    """A single run's rollout, shuffled by the agent's generator."""

    storage: RolloutStorage
    batch_size: int
    generator: torch.Generator
    member_shape: tuple[int, ...] = ()

    def minibatches(self, learning: Tensor) -> Iterator[RolloutBatch]:
        return self.storage.minibatches(self.batch_size, self.generator)

    def flat(self, name: str) -> Tensor:
        return getattr(self.storage, name).flatten()


@dataclass
class MemberRollouts:
    """Many seeds' rollouts, each shuffled by its own member's generator, their minibatches stacked on a member
    axis."""

    storages: Sequence[RolloutStorage]
    batch_size: int
    generators: Sequence[torch.Generator]

    @property
    def member_shape(self) -> tuple[int, ...]:
        return (len(self.storages),)

    def minibatches(self, learning: Tensor) -> Iterator[RolloutBatch]:
        """One epoch: each learning member's rollout shuffled by its own generator (a member that has stopped draws
        nothing, as its single run; its slot repeats another's minibatch, which it does not step on)."""
        epochs = [storage.minibatches(self.batch_size, generator) if on else None
                  for storage, generator, on in zip(self.storages, self.generators, learning.tolist())]
        while True:
            try:
                batches = [None if epoch is None else next(epoch) for epoch in epochs]
            except StopIteration:
                return
            filler = next(batch for batch in batches if batch is not None)
            yield stack_rollout_batches([filler if batch is None else batch for batch in batches])

    def flat(self, name: str) -> Tensor:
        return torch.stack([getattr(storage, name).flatten() for storage in self.storages])
