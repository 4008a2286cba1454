import numpy as np
import pytest
import torch

from rlexp.buffers import ReplayBuffer

CPU = torch.device("cpu")


def filled(capacity: int, n: int, stage: bool = False, seed: int = 0) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, (2,), (), True, CPU, seed=seed, stage_on_host=stage)
    for i in range(n):
        buffer.add(np.array([i, -i], dtype=np.float32), i % 3, float(i), np.array([i + 1, -i - 1]), i % 5 == 4)
    return buffer


def test_add_and_sample_shapes_and_dtypes():
    batch = filled(10, 7).sample(4)
    assert batch.observations.shape == (4, 2) and batch.observations.dtype == torch.float32
    assert batch.actions.shape == (4,) and batch.actions.dtype == torch.int64
    assert batch.rewards.shape == (4,) and batch.terminations.shape == (4,)


def test_sample_returns_consistent_stored_transitions():
    batch = filled(100, 50).sample(256)
    i = batch.rewards  # reward i marks transition i
    assert torch.all(i < 50)
    torch.testing.assert_close(batch.observations[:, 0], i)
    torch.testing.assert_close(batch.next_observations[:, 0], i + 1)
    torch.testing.assert_close(batch.actions, i.long() % 3)
    torch.testing.assert_close(batch.terminations, ((i.long() % 5) == 4).float())


def test_ring_overwrites_oldest_and_caps_size():
    buffer = filled(10, 25)
    assert len(buffer) == 10 and buffer.pos == 5
    stored = sorted(buffer.storage["rewards"].tolist())
    assert stored == [float(i) for i in range(15, 25)]


def test_host_staging_matches_direct_writes_across_wraparound():
    direct, staged = filled(10, 23), filled(10, 23, stage=True)
    staged.sample(1)  # flushes
    for key in direct.storage:
        torch.testing.assert_close(direct.storage[key], staged.storage[key])


def test_same_seed_same_samples():
    a, b = filled(50, 50, seed=3), filled(50, 50, seed=3)
    torch.testing.assert_close(a.sample(32).rewards, b.sample(32).rewards)
    assert not torch.equal(filled(50, 50, seed=4).sample(32).rewards, filled(50, 50, seed=3).sample(32).rewards)


def test_continuous_actions_are_float_vectors():
    buffer = ReplayBuffer(5, (3,), (2,), False, CPU, seed=0)
    buffer.add(np.zeros(3), np.array([0.5, -0.25], dtype=np.float32), 1.0, np.ones(3), False)
    batch = buffer.sample(2)
    assert batch.actions.dtype == torch.float32
    torch.testing.assert_close(batch.actions, torch.tensor([[0.5, -0.25]] * 2))


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(5, (3,), (), True, CPU, seed=0).sample(1)
