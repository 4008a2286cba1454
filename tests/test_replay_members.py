"""Many seeds' replays as one memory (rlexp/replay/members.py): the same batches as separate memories, value for
value, each seed drawing with its own generator, writing, saving and restoring only its own transitions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlexp.replay import PrioritizedReplayBuffer, ReplayBuffer
from rlexp.replay.batch import stack_batches
from rlexp.replay.members import MemberReplays, Sample, sample_members

CPU = torch.device("cpu")


def member(seed: int, n: int = 40, **kwargs) -> ReplayBuffer:
    """A replay of its own data: transition i of seed s has reward 100 s + i."""
    replay = ReplayBuffer(64, (3,), (2,), False, CPU, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    for i in range(n):
        replay.add(rng.normal(size=(1, 3)).astype(np.float32), rng.normal(size=(1, 2)).astype(np.float32),
                   np.array([100.0 * seed + i], np.float32), rng.normal(size=(1, 3)).astype(np.float32),
                   np.array([i % 7 == 6]), np.array([False]))
    return replay


def assert_same(batch, expected) -> None:
    for name, got, want in zip(batch._fields, batch, expected):
        assert (got is None) == (want is None), name
        if got is not None:
            assert torch.equal(got, want), name


@pytest.mark.parametrize("stage", [False, True], ids=["direct", "host-staged"])   # staged: as on a GPU
def test_a_shared_sample_is_the_stack_of_each_seeds_own_sample(stage):
    replays = [member(seed, n=30, stage_on_host=stage) for seed in range(3)]
    alone = [member(seed, n=30, stage_on_host=stage) for seed in range(3)]   # the same, in separate memories
    shared = MemberReplays.share(replays)
    assert shared is not None
    for replay, twin in zip(replays, alone):   # rows added after sharing land in the shared memory
        for other in (replay, twin):
            other.add(np.full((1, 3), 7, np.float32), np.zeros((1, 2), np.float32), np.array([-1.0], np.float32),
                      np.full((1, 3), 8, np.float32), np.array([True]), np.array([False]))
    for _ in range(3):   # the generators move on from draw to draw alike
        batch = sample_members([Sample(replay, 16) for replay in replays], shared)
        assert_same(batch, stack_batches([replay.sample(16) for replay in alone]))
    assert batch.observations.shape == (3, 16, 3) and batch.discounts.shape == (3, 16)


def test_each_seed_writes_only_its_own_slice_and_saves_only_its_own_transitions():
    replays = [member(seed) for seed in range(3)]
    saved = [replay.state_dict() for replay in replays]
    shared = MemberReplays.share(replays)
    assert shared is not None
    assert replays[1].storage["rewards"].data_ptr() == shared.storage["rewards"][1].data_ptr()   # a view
    replays[1].add(np.ones((1, 3), np.float32), np.ones((1, 2), np.float32), np.array([-5.0], np.float32),
                   np.ones((1, 3), np.float32), np.array([False]), np.array([False]))
    for seed in (0, 2):   # the others' memories are as they were
        for key, values in replays[seed].state_dict()["transitions"].items():
            assert torch.equal(values, saved[seed]["transitions"][key]), key
    assert replays[1].state_dict()["transitions"]["rewards"][-1] == -5.0
    assert shared.storage["rewards"][1, 40] == -5.0 and len(replays[1]) == 41


def test_a_checkpoint_restores_into_the_shared_memory_exactly():
    replays = [member(seed) for seed in range(2)]
    states = [replay.state_dict() for replay in replays]
    expected = [copy.deepcopy(replay).sample(8) for replay in replays]
    fresh = [ReplayBuffer(64, (3,), (2,), False, CPU, seed=99) for _ in range(2)]
    shared = MemberReplays.share(fresh)   # as a resumed run: shared first, then loaded
    for replay, state in zip(fresh, states):
        replay.load_state_dict(state)
    assert_same(sample_members([Sample(replay, 8) for replay in fresh], shared), stack_batches(expected))


def test_a_request_repeated_for_an_ended_seed_is_drawn_once():
    replays = [member(seed) for seed in range(3)]
    alone = copy.deepcopy(replays)
    shared = MemberReplays.share(replays)
    live = [Sample(replays[0], 8), Sample(replays[1], 8)]
    batch = sample_members([live[0], live[1], live[1]], shared)   # seed 2 ended: its slot repeats seed 1's call
    first = [alone[0].sample(8), alone[1].sample(8)]
    assert_same(batch, stack_batches([first[0], first[1], first[1]]))
    # seed 1's generator moved once, not twice
    assert torch.equal(replays[1].draw_slots(8), alone[1].draw_slots(8))


def test_replays_that_cannot_share_sample_each_on_their_own():
    n_step = [member(seed, n_step=3) for seed in range(2)]
    prioritized = [PrioritizedReplayBuffer(64, (3,), (2,), False, CPU, seed=seed, alpha=0.6, beta0=0.4, eps=1e-6,
                                           total_updates=10) for seed in range(2)]
    assert MemberReplays.share(n_step) is None and MemberReplays.share(prioritized) is None
    assert MemberReplays.share([member(0)]) is None   # one seed: nothing to share
    alone = copy.deepcopy(n_step)
    assert_same(sample_members([Sample(replay, 8) for replay in n_step], None),
                stack_batches([replay.sample(8) for replay in alone]))
