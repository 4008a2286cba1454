"""Replay memory with an env axis: each env's transitions form their own stream (n-step windows, the cut at
terminations and time limits, frames stored once, priorities), checked against hand-built sequences of 3 envs
whose episodes end at different steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlexp.replay import FrameReplayBuffer, PrioritizedFrameReplayBuffer, PrioritizedReplayBuffer, ReplayBuffer

CPU = torch.device("cpu")
GAMMA = 0.5

# rewards[row][env]; env 0 terminates at row 1, env 2 hits a time limit at row 1, env 1 terminates at row 3.
REWARDS = [[1, 10, 100], [2, 20, 200], [3, 30, 300], [4, 40, 400]]
TERMINATED = [[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0]]
TRUNCATED = [[0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]


def filled(kind=ReplayBuffer, **kwargs) -> ReplayBuffer:
    buffer = kind(capacity=30, obs_shape=(1,), action_shape=(), discrete_actions=True, device=CPU, seed=0,
                  num_envs=3, gamma=GAMMA, **kwargs)
    for row in range(4):
        obs = np.array([[row * 10 + env] for env in range(3)], dtype=np.float32)
        buffer.add(obs, np.array([row, row, row]), np.array(REWARDS[row], dtype=np.float32), obs + 0.5,
                   np.array(TERMINATED[row], dtype=bool), np.array(TRUNCATED[row], dtype=bool))
    return buffer


def slot(row: int, env: int) -> int:
    return row * 3 + env


def test_a_row_holds_one_transition_per_env_and_slots_are_row_major():
    buffer = filled()
    assert len(buffer) == 12 and buffer.ring.rows == 10 and buffer.capacity == 30
    batch = buffer.batch_at(torch.arange(12))
    assert batch.observations.squeeze(1).tolist() == [row * 10 + env for row in range(4) for env in range(3)]
    assert batch.rewards.tolist() == [r for row in REWARDS for r in row]
    # one-step: no bootstrap after env 0's termination (row 1) and env 1's (row 3); a time limit bootstraps
    assert batch.discounts[slot(1, 0)] == 0 and batch.discounts[slot(3, 1)] == 0
    assert batch.discounts[slot(1, 2)] == GAMMA


@pytest.mark.parametrize("where, reward, discount, next_obs", [
    ((0, 0), 1 + 0.5 * 2, 0.0, 10.5),                 # env 0 terminates at row 1: two steps, no bootstrap
    ((0, 1), 10 + 0.5 * 20 + 0.25 * 30, 0.125, 21.5),  # env 1 runs on: three steps, bootstrap from row 2's s'
    ((0, 2), 100 + 0.5 * 200, 0.25, 12.5),            # env 2's time limit: two steps, bootstrap from the last s'
    ((1, 1), 20 + 0.5 * 30 + 0.25 * 40, 0.0, 31.5),   # env 1 terminates at row 3 within the window
    ((2, 0), 3 + 0.5 * 4, 0.25, 30.5),                # env 0's next episode: cut at the newest row
    ((2, 1), 30 + 0.5 * 40, 0.0, 31.5),
    ((3, 2), 400, 0.5, 32.5),                          # the newest row: one step
])
def test_n_step_returns_stay_within_each_env_and_stop_at_its_episode_ends(where, reward, discount, next_obs):
    batch = filled(n_step=3).batch_at(torch.tensor([slot(*where)]))
    assert batch.rewards.item() == pytest.approx(reward)
    assert batch.discounts.item() == pytest.approx(discount)
    assert batch.next_observations.item() == pytest.approx(next_obs)


def test_sampling_draws_every_env_and_the_state_round_trips():
    buffer = filled(n_step=2)
    seen = torch.cat([buffer.sample(64).indices for _ in range(20)])
    assert set(seen.tolist()) == set(range(12))
    state = buffer.state_dict()
    copy = ReplayBuffer(capacity=30, obs_shape=(1,), action_shape=(), discrete_actions=True, device=CPU, seed=1,
                        num_envs=3, gamma=GAMMA, n_step=2)
    copy.load_state_dict(state)
    a, b = buffer.sample(32), copy.sample(32)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.rewards, b.rewards)


def test_a_smaller_capacity_on_resume_keeps_the_newest_rows_of_every_env():
    state = filled().state_dict()
    smaller = ReplayBuffer(capacity=6, obs_shape=(1,), action_shape=(), discrete_actions=True, device=CPU, seed=0,
                           num_envs=3, gamma=GAMMA)
    smaller.load_state_dict(state)
    kept = smaller.batch_at(torch.arange(6)).observations.squeeze(1)
    assert sorted(kept.tolist()) == [20, 21, 22, 30, 31, 32]


def test_prioritized_replay_gives_new_rows_the_top_priority_and_updates_single_slots():
    buffer = filled(PrioritizedReplayBuffer, alpha=1.0, beta0=1.0, eps=0.0, total_updates=10)
    buffer.sample(4)  # assigns the 12 new transitions the maximal priority (1)
    assert buffer.tree.get(torch.arange(12)).tolist() == [1.0] * 12
    buffer.update_priorities(torch.tensor([slot(2, 1)]), torch.tensor([100.0]))
    counts = torch.bincount(torch.cat([buffer.sample(111).indices for _ in range(10)]), minlength=12)
    # slot (2, 1) holds 100 of the 111 units of priority: about 900 of the 1110 draws
    assert counts[slot(2, 1)] > 800 and counts.sum() == 1110


# --- frames ------------------------------------------------------------------------------------------------------

STACK, SIZE = 2, 36


def frame(env: int, number: int) -> np.ndarray:
    return np.full((SIZE, SIZE), env * 50 + number, dtype=np.uint8)


def stack_of(env: int, newest: int, start: int) -> np.ndarray:
    """The stack an env's frame stack shows: the newest frames, padded with the episode's first (reset padding)."""
    return np.stack([frame(env, max(n, start)) for n in range(newest - STACK + 1, newest + 1)])


@pytest.mark.parametrize("kind", [FrameReplayBuffer, PrioritizedFrameReplayBuffer])
def test_frames_are_stored_once_per_env_and_every_stack_comes_back(kind):
    """Three envs with episodes of 3, 4 and 5 steps, over 15 rows in a memory of 8 rows per env: every stored
    transition's obs and next_obs come back exactly, episode starts (padding) included, in every env."""
    extra = dict(alpha=0.6, beta0=0.4, eps=1e-6, total_updates=10) if kind is PrioritizedFrameReplayBuffer else {}
    buffer = kind(capacity=24, obs_shape=(STACK, SIZE, SIZE), action_shape=(), discrete_actions=True, device=CPU,
                  seed=0, num_envs=3, **extra)
    lengths = [3, 4, 5]
    counters = [0, 0, 0]   # the number of each env's current frame
    starts = [0, 0, 0]     # the frame number its episode began at
    stored = []
    for _ in range(15):
        obs, next_obs, ended = [], [], []
        for env in range(3):
            obs.append(stack_of(env, counters[env], starts[env]))
            next_obs.append(stack_of(env, counters[env] + 1, starts[env]))
            counters[env] += 1
            done = (counters[env] - starts[env]) % lengths[env] == 0
            ended.append(done)
            if done:  # the next episode starts with a new frame
                counters[env] += 1
                starts[env] = counters[env]
        buffer.add(np.stack(obs), np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.float32), np.stack(next_obs),
                   np.array(ended), np.zeros(3, dtype=bool))
        stored.append((np.stack(obs), np.stack(next_obs)))
    assert len(buffer) == 24  # the 8 newest rows
    live = buffer._live(torch.arange(len(buffer)))
    batch = buffer.batch_at(live)
    for i, s in enumerate(live.tolist()):
        row, env = divmod(s, 3)
        chronological = 15 - 8 + i // 3
        assert np.array_equal(batch.observations[i].numpy(), stored[chronological][0][env])
        assert np.array_equal(batch.next_observations[i].numpy(), stored[chronological][1][env])
