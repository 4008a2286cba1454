"""Many seeds' replays as one memory, so a batched update's samples are gathered in one op.

A runner asks for its update's batch as a `Sample` (a value, like every call it makes: runners/requests.py), and
whoever answers the call draws it: a single run from its own replay, the many-seeds driver for all seeds at once
(`sample_members`). There each seed's ReplayBuffer keeps its transitions in its slice of one member-stacked
storage (`MemberReplays`), as each seed's networks are views of the stacked model: a seed still writes, draws
with its own generator, saves and restores its own replay, and only the gather is shared: one indexing op per
field for every seed, where separate memories take one per seed. The batch is the same, value for value.

Shared are plain uniform replays with 1-step targets (DQN's, DDPG's, TD3's and SAC's defaults); prioritized,
n-step and frame replays sample each seed on its own and stack the batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from rlexp.replay.batch import ReplayBatch, stack_batches
from rlexp.replay.uniform import ReplayBuffer


@dataclass(frozen=True, eq=False)
class Sample:
    """A uniform (or prioritized) batch of `batch_size` transitions from `replay`, for the update it is passed to."""

    replay: ReplayBuffer
    batch_size: int

    def draw(self) -> ReplayBatch:
        return self.replay.sample(self.batch_size)


def sample(replay: ReplayBuffer, batch_size: int) -> ReplayBatch:
    """The batch an update asks for, as a `Sample`: it stands for the batch (its type, as the update's argument)
    until whoever answers the call draws it."""
    return cast(ReplayBatch, Sample(replay, batch_size))


class MemberReplays:
    """The replays of a many-seeds run, each seed's storage a view of its row of one stacked tensor per field."""

    def __init__(self, replays: Sequence[ReplayBuffer]) -> None:
        self.storage: dict[str, Tensor] = {}
        for key in replays[0].storage:   # one field at a time: the copy never holds every field twice
            self.storage[key] = torch.stack([replay.storage[key] for replay in replays])
            for k, replay in enumerate(replays):
                replay.storage[key] = self.storage[key][k]
        self.members = {id(replay): k for k, replay in enumerate(replays)}
        self.gamma = replays[0].gamma
        # Gathered through one flat index (member k's slot i is row k * slots + i): index_select on a
        # contiguous (members * slots, ...) view is cheaper than indexing two axes.
        self.slots = replays[0].storage["rewards"].shape[0]
        self._flat = {key: stored.view(-1, *stored.shape[2:]) for key, stored in self.storage.items()}
        self._first_slots = torch.arange(len(replays), device=replays[0].device)[:, None] * self.slots
        for replay in replays:   # its storage dict now holds the views: point its writes at them too
            replay.use_storage(replay.storage)

    @classmethod
    def share(cls, replays: Sequence[ReplayBuffer | None]) -> MemberReplays | None:
        """Put `replays` in one memory if they can share it (plain uniform replays of one shape, 1-step targets)."""
        if len(replays) < 2 or any(type(replay) is not ReplayBuffer or replay.n_step != 1 for replay in replays):
            return None
        buffers = [replay for replay in replays if replay is not None]   # all of them (checked just above)
        first = buffers[0]
        if any(replay.gamma != first.gamma or replay.device != first.device
               or any(replay.storage[key].shape != stored.shape or replay.storage[key].dtype != stored.dtype
                      for key, stored in first.storage.items()) for replay in buffers):
            return None
        return cls(buffers)

    def holds(self, replays: Sequence[ReplayBuffer]) -> bool:
        return all(id(replay) in self.members for replay in replays)

    def sample(self, samples: Sequence[Sample]) -> ReplayBatch:
        """The members' batches, member axis first: each drawn by its own replay, gathered together."""
        slots = torch.stack([sample.replay.draw_slots(sample.batch_size) for sample in samples])
        members = [self.members[id(sample.replay)] for sample in samples]
        first = self._first_slots if members == list(range(len(self.members))) else \
            torch.tensor(members, device=slots.device)[:, None] * self.slots
        rows = (first + slots).view(-1)

        def gather(key: str) -> Tensor:
            stored = self._flat[key]
            return stored.index_select(0, rows).view(*slots.shape, *stored.shape[1:])

        terminations = gather("terminations")
        return ReplayBatch(gather("observations"), gather("actions"), gather("rewards"), gather("next_observations"),
                           self.gamma * (1.0 - terminations), slots)


def sample_members(samples: Sequence[Sample], shared: MemberReplays | None) -> ReplayBatch:
    """Every member's batch, stacked on a member axis. A seed that has ended fills its slot with a live seed's
    request: each request is drawn once (a second draw would move that seed's generator)."""
    unique = list({id(sample): sample for sample in samples}.values())
    if shared is not None and shared.holds([sample.replay for sample in unique]):
        batch = shared.sample(unique)
        if len(unique) == len(samples):
            return batch
        position = {id(sample): i for i, sample in enumerate(unique)}
        return ReplayBatch._make(None if field is None else field[[position[id(s)] for s in samples]]
                                 for field in batch)
    drawn = {id(sample): sample.draw() for sample in unique}
    return stack_batches([drawn[id(sample)] for sample in samples])
