"""Single image observations (CarRacing's kind) stored once in replay: the batches drawn are the plain replay's
(observation and next observation each stored), bit for bit, across episode ends (terminations and time limits),
vector envs, n-step returns, a full ring that wraps, priorities and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlexp.replay import (
    ImageReplayBuffer,
    PrioritizedImageReplayBuffer,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    make_replay,
)

CPU = torch.device("cpu")
SHAPE = (6, 5, 3)      # (H, W, C): the buffers do not look at the size
ENVS = 3


def feed(buffers: list[ReplayBuffer], rows: int, seed: int = 0, dtype: type = np.uint8,
         shape: tuple[int, ...] = SHAPE) -> None:
    """`rows` vector steps of 3 envs whose episodes end every 4, 5 and 7 steps (env 1's by a time limit, the others'
    by termination), each step's images random: the same transitions into every buffer."""
    rng = np.random.default_rng(seed)

    def images() -> np.ndarray:
        return (rng.integers(0, 256, (ENVS, *shape), dtype=np.uint8) if dtype == np.uint8 else
                rng.random((ENVS, *shape), dtype=np.float32))

    obs = images()
    steps = np.zeros(ENVS, dtype=np.int64)
    for _ in range(rows):
        next_obs = images()
        steps += 1
        ended = steps % np.array([4, 5, 7]) == 0
        terminated, truncated = ended & (np.arange(ENVS) != 1), ended & (np.arange(ENVS) == 1)
        actions = rng.uniform(-1, 1, (ENVS, 2)).astype(np.float32)
        rewards = rng.normal(size=ENVS).astype(np.float32)
        for buffer in buffers:
            buffer.add(obs, actions, rewards, next_obs, terminated, truncated)
        # an ended episode's next observation is its final one; the env then starts again from a reset image
        obs = np.where(ended.reshape(ENVS, *[1] * len(shape)), images(), next_obs)


def make(kind: type[ReplayBuffer], capacity: int, n_step: int = 1, dtype: torch.dtype = torch.uint8,
         shape: tuple[int, ...] = SHAPE) -> ReplayBuffer:
    extra = dict(alpha=0.6, beta0=0.4, eps=1e-6, total_updates=50) if issubclass(kind, PrioritizedReplayBuffer) else {}
    return kind(capacity=capacity, obs_shape=shape, action_shape=(2,), discrete_actions=False, device=CPU, seed=7,
                num_envs=ENVS, n_step=n_step, gamma=0.9, obs_dtype=dtype, **extra)


def assert_same_batches(plain: ReplayBuffer, once: ReplayBuffer, draws: int = 20) -> None:
    for _ in range(draws):
        expected, got = plain.sample(32), once.sample(32)
        for name, a, b in zip(expected._fields, expected, got):
            assert (a is None) == (b is None), name
            if a is not None:
                assert a.dtype == b.dtype and torch.equal(a, b), name
        if isinstance(plain, PrioritizedReplayBuffer) and isinstance(once, PrioritizedReplayBuffer):
            errors = torch.linspace(0.1, 3.0, 32)
            plain.update_priorities(expected.indices, errors)
            once.update_priorities(got.indices, errors)


KINDS = [(ReplayBuffer, ImageReplayBuffer), (PrioritizedReplayBuffer, PrioritizedImageReplayBuffer)]


@pytest.mark.parametrize("kinds", KINDS, ids=["uniform", "prioritized"])
@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("rows", [9, 40])   # a ring partly filled, a ring that came round (20 rows)
def test_images_stored_once_give_the_plain_replays_batches_bit_for_bit(kinds, n_step: int, rows: int) -> None:
    plain, once = make(kinds[0], 60, n_step), make(kinds[1], 60, n_step)
    feed([plain, once], rows)
    assert len(plain) == len(once)
    assert_same_batches(plain, once)
    feed([plain, once], 13, seed=1)   # more rows after sampling: still the same
    assert_same_batches(plain, once)


def test_float_images_are_stored_once_as_float32_and_come_back_exactly() -> None:
    plain, once = make(ReplayBuffer, 60, dtype=torch.float32), make(ImageReplayBuffer, 60, dtype=torch.float32)
    feed([plain, once], 40, dtype=np.float32)
    assert once.frames.dtype == torch.float32
    assert_same_batches(plain, once)


def test_packed_dict_observations_with_an_image_entry_are_stored_once_too() -> None:
    # a Dict/Tuple observation's packed row of bytes (rlexp/envs/packing.py) is a "frame" of one axis
    plain, once = make(ReplayBuffer, 60, shape=(40,)), make(ImageReplayBuffer, 60, shape=(40,))
    feed([plain, once], 40, shape=(40,))
    assert once.frames.shape[1:] == (40,) and "next_observations" not in once.storage
    assert_same_batches(plain, once)


def test_each_image_is_stored_once_in_uint8() -> None:
    once = make(ImageReplayBuffer, 60)
    feed([once], 40)
    assert once.frames.dtype == torch.uint8 and once.frames.shape[1:] == SHAPE
    assert "observations" not in once.storage and "next_observations" not in once.storage
    # 40 rows: an image per env and step, and one more at each of the 9, 7 and 5 episode starts after the first
    assert once.frames_written.tolist() == [40 + 1 + 9, 40 + 1 + 7, 40 + 1 + 5]


@pytest.mark.parametrize("kinds", KINDS, ids=["uniform", "prioritized"])
def test_a_checkpoint_resumes_sampling_exactly_from_either_replays_state(kinds) -> None:
    plain, once = make(kinds[0], 60), make(kinds[1], 60)
    feed([plain, once], 31)
    assert_same_batches(plain, once, draws=3)
    for state in (once.state_dict(), plain.state_dict()):   # its own; a run's from before images were stored once
        resumed_plain, resumed = make(kinds[0], 60), make(kinds[1], 60)
        resumed_plain.load_state_dict(plain.state_dict())
        resumed.load_state_dict(state)
        feed([resumed_plain, resumed], 11, seed=2)
        assert_same_batches(resumed_plain, resumed)


def test_a_smaller_capacity_on_resume_keeps_the_newest_rows_as_the_plain_replay_does() -> None:
    plain, once = make(ReplayBuffer, 60), make(ImageReplayBuffer, 60)
    feed([plain, once], 31)
    smaller_plain, smaller = make(ReplayBuffer, 30), make(ImageReplayBuffer, 30)
    smaller_plain.load_state_dict(plain.state_dict())
    smaller.load_state_dict(once.state_dict())
    assert len(smaller) == len(smaller_plain) == 30
    assert_same_batches(smaller_plain, smaller)


def test_make_replay_stores_single_images_once_and_other_observations_as_before() -> None:
    common = dict(capacity=8, action_shape=(2,), discrete=False, device=CPU, seed=0, num_envs=1, n_step=1, gamma=0.9)
    assert type(make_replay(obs_shape=SHAPE, image=False, single_image=True, **common)) is ImageReplayBuffer
    assert type(make_replay(obs_shape=(4,), image=False, **common)) is ReplayBuffer
