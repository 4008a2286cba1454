import numpy as np
import pytest
import torch

from rlexp.replay import ReplayBuffer

CPU = torch.device("cpu")
GAMMA = 0.99  # ReplayBuffer's default


def add_one(buffer: ReplayBuffer, obs, action, reward: float, next_obs, terminated: bool,
            truncated: bool = False) -> None:
    """One transition of a single env: a row of one (leading env axis of 1)."""
    buffer.add(np.asarray(obs, np.float32)[None], np.asarray(action)[None], np.array([reward], np.float32),
               np.asarray(next_obs, np.float32)[None], np.array([terminated]), np.array([truncated]))


def filled(capacity: int, n: int, stage: bool = False, seed: int = 0) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, (2,), (), True, CPU, seed=seed, stage_on_host=stage)
    for i in range(n):
        add_one(buffer, [i, -i], i % 3, float(i), [i + 1, -i - 1], i % 5 == 4)
    return buffer


def test_add_and_sample_shapes_and_dtypes():
    batch = filled(10, 7).sample(4)
    assert batch.observations.shape == (4, 2) and batch.observations.dtype == torch.float32
    assert batch.actions.shape == (4,) and batch.actions.dtype == torch.int64
    assert batch.rewards.shape == (4,) and batch.discounts.shape == (4,) and batch.indices.shape == (4,)


def test_sample_returns_consistent_stored_transitions():
    batch = filled(100, 50).sample(256)
    i = batch.rewards  # reward i marks transition i
    assert torch.all(i < 50)
    torch.testing.assert_close(batch.observations[:, 0], i)
    torch.testing.assert_close(batch.next_observations[:, 0], i + 1)
    torch.testing.assert_close(batch.actions, i.long() % 3)
    torch.testing.assert_close(batch.discounts, GAMMA * (1.0 - ((i.long() % 5) == 4).float()))
    torch.testing.assert_close(batch.indices, i.long())  # one env: transition i lives in slot i


def test_ring_overwrites_oldest_and_caps_size():
    buffer = filled(10, 25)
    assert len(buffer) == 10 and buffer.pos == 5
    stored = sorted(buffer.storage["rewards"].tolist())
    assert stored == [float(i) for i in range(15, 25)]


def test_each_env_has_its_own_stream_in_rows_of_one_transition_per_env():
    # 3 envs, capacity 12: 4 rows; transition (row, env) at slot row * 3 + env.
    buffer = ReplayBuffer(12, (1,), (), True, CPU, seed=0, num_envs=3)
    for row in range(6):
        rewards = np.array([10 * row + env for env in range(3)], np.float32)
        buffer.add(rewards[:, None], np.zeros(3, np.int64), rewards, rewards[:, None] + 0.5, np.zeros(3, bool),
                   np.zeros(3, bool))
    assert len(buffer) == 12 and buffer.pos == 6 % 4 and buffer.ring.rows == 4
    expected = {row % 4: row for row in range(2, 6)}  # rows 2..5 survive, in ring rows 2, 3, 0, 1
    for ring_row, row in expected.items():
        for env in range(3):
            assert buffer.storage["rewards"][ring_row * 3 + env].item() == 10 * row + env
    batch = buffer.batch_at(torch.tensor([0, 4, 11]))  # (row 0, env 0), (row 1, env 1), (row 3, env 2)
    assert batch.rewards.tolist() == [40.0, 51.0, 32.0]


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
    add_one(buffer, np.zeros(3), np.array([0.5, -0.25], dtype=np.float32), 1.0, np.ones(3), False)
    batch = buffer.sample(2)
    assert batch.actions.dtype == torch.float32
    torch.testing.assert_close(batch.actions, torch.tensor([[0.5, -0.25]] * 2))


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(5, (3,), (), True, CPU, seed=0).sample(1)
