"""Atari as in the DQN paper: the preprocessing, the Nature CNN, the frame-deduplicating replay memory."""

import numpy as np
import pytest
import torch

from rlexp.agents import registry
from rlexp.commands.train import resolved_config
from rlexp.envs import AtariSettings, describe_spaces, make_env
from rlexp.networks.q import DuelingQNetwork, QNetwork
from rlexp.networks.torsos import NatureConvolutions
from rlexp.replay.frames import FrameReplayBuffer, PrioritizedFrameReplayBuffer
from tests.conftest import compose_config, run_cli

CPU = torch.device("cpu")
PAPER = AtariSettings(noop_max=30, frame_skip=4, screen_size=84, frame_stack=4, terminal_on_life_loss=True,
                      clip_rewards=True)


def test_the_preprocessed_game_observes_4_stacked_84x84_grayscale_frames():
    env = make_env("ALE/Breakout-v5", {"frameskip": 1, "repeat_action_probability": 0.0}, PAPER)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert all(np.array_equal(obs[0], frame) for frame in obs)  # a reset pads the stack with its first frame
    spaces = describe_spaces(env.observation_space, env.action_space, "ALE/Breakout-v5")
    registry.check_fits(registry.get("dqn"), spaces)  # DQN reads stacked frames with the Nature CNN
    assert spaces.frames and not spaces.flat and spaces.n_actions == 4
    lives, lost, rewards = info["lives"], [], []
    for _ in range(2000):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.append((reward, info["training_reward"]))
        lost.append(info["life_lost"])
        if terminated or truncated:
            break
    assert any(lost) and lives == 5  # lives were lost while the game went on (terminal for training only)
    assert all(clipped == np.sign(raw) for raw, clipped in rewards)


def test_the_nature_cnn_has_the_papers_layers():
    convolutions = NatureConvolutions((4, 84, 84))
    conv = [m for m in convolutions.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in conv] == [(32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)),
                                                                        (64, (3, 3), (1, 1))]
    assert convolutions.out_features == 64 * 7 * 7
    q = QNetwork(0, 6, [], image_shape=(4, 84, 84))
    assert [m.out_features for m in q.modules() if isinstance(m, torch.nn.Linear)] == [512, 6]
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert q(frames).shape == (2, 6) and DuelingQNetwork(0, 6, [], image_shape=(4, 84, 84))(frames).shape == (2, 6)


def stacks(n_episodes: int, length: int, seed: int = 0):
    """Episodes of (obs, next_obs) stacks as FrameStackObservation makes them: a reset pads with its frame."""
    rng = np.random.default_rng(seed)
    for _episode in range(n_episodes):
        frames = [rng.integers(0, 256, (84, 84), dtype=np.uint8)] * 4
        for t in range(length):
            obs = np.stack(frames[-4:])
            frames.append(rng.integers(0, 256, (84, 84), dtype=np.uint8))
            yield obs, np.stack(frames[-4:]), t == length - 1


def add_one(buffer: FrameReplayBuffer, obs: np.ndarray, next_obs: np.ndarray, terminated: bool) -> None:
    """One transition of a single env (a row of one): action 0, reward 1."""
    buffer.add(obs[None], np.zeros(1, np.int64), np.ones(1, np.float32), next_obs[None], np.array([terminated]),
               np.array([False]))


def test_frames_are_stored_once_and_every_stack_comes_back_exactly():
    buffer = FrameReplayBuffer(100, (4, 84, 84), (), True, CPU, seed=0)
    added = list(stacks(3, 20))
    for obs, next_obs, last in added:
        add_one(buffer, obs, next_obs, last)
    assert buffer.frames_written.tolist() == [3 * (4 + 20)]  # per episode: its first stack, then a frame per step
    batch = buffer.batch_at(torch.arange(60))
    for i, (obs, next_obs, _) in enumerate(added):
        assert np.array_equal(batch.observations[i].numpy(), obs), i
        assert np.array_equal(batch.next_observations[i].numpy(), next_obs), i
    assert batch.observations.dtype == torch.uint8


def test_each_env_keeps_its_own_frames():
    # Two envs stepping together, each its own episodes of different lengths: every stack comes back exactly.
    buffer = FrameReplayBuffer(100, (4, 84, 84), (), True, CPU, seed=0, num_envs=2)
    streams = [list(stacks(3, 10, seed=1)), list(stacks(2, 15, seed=2))]
    for (obs0, next0, last0), (obs1, next1, last1) in zip(*streams):
        buffer.add(np.stack([obs0, obs1]), np.zeros(2, np.int64), np.ones(2, np.float32), np.stack([next0, next1]),
                   np.array([last0, last1]), np.zeros(2, bool))
    assert buffer.frames_written.tolist() == [3 * (4 + 10), 2 * (4 + 15)]
    batch = buffer.batch_at(torch.arange(60))  # slot = row * 2 + env
    for slot in range(60):
        obs, next_obs, _ = streams[slot % 2][slot // 2]
        assert np.array_equal(batch.observations[slot].numpy(), obs), slot
        assert np.array_equal(batch.next_observations[slot].numpy(), next_obs), slot


def test_bytes_per_transition_keep_a_million_under_8_gb():
    buffer = FrameReplayBuffer(32_000, (4, 84, 84), (), True, CPU, seed=0)
    total = buffer.frames.nbytes + sum(t.nbytes for t in buffer.storage.values()) + buffer._newest_frame.nbytes
    per_transition = total / 32_000
    assert per_transition < 7_400 and per_transition * 1_000_000 < 8e9
    plain = 2 * 4 * 84 * 84 * 4  # float32 obs and next_obs stacks per transition, as a plain buffer keeps them
    assert plain / per_transition > 30


def test_a_life_lost_without_a_reset_keeps_the_stack_going():
    buffer = FrameReplayBuffer(50, (4, 84, 84), (), True, CPU, seed=0)
    added = list(stacks(1, 10))
    for t, (obs, next_obs, _) in enumerate(added):
        add_one(buffer, obs, next_obs, terminated=(t == 4))  # terminal for training; the game goes on
    assert buffer.frames_written.tolist() == [4 + 10]
    batch = buffer.batch_at(torch.arange(10))
    assert all(np.array_equal(batch.observations[i].numpy(), added[i][0]) for i in range(10))
    assert batch.discounts[4] == 0


def test_when_the_frame_ring_comes_round_the_oldest_transitions_go_first():
    buffer = FrameReplayBuffer(64, (4, 84, 84), (), True, CPU, seed=0)
    n_frames = buffer.n_frames
    added = list(stacks(40, 2))  # 2-step episodes: 6 frames per 2 transitions, more than the ring's reserve
    for obs, next_obs, last in added:
        add_one(buffer, obs, next_obs, last)
    size = buffer.ring.size
    assert len(buffer) == size < 64 and buffer.frames_written[0] > n_frames
    live = (buffer.pos - size + torch.arange(size)) % 64
    batch = buffer.batch_at(live)
    expected = added[-size:]
    for i, (obs, next_obs, _) in enumerate(expected):  # every live transition intact
        assert np.array_equal(batch.observations[i].numpy(), obs) and np.array_equal(
            batch.next_observations[i].numpy(), next_obs)
    assert set(buffer.sample(256).indices.tolist()) <= set(live.tolist())


def test_prioritized_frame_replay_never_samples_an_evicted_slot_and_state_round_trips():
    buffer = PrioritizedFrameReplayBuffer(64, (4, 84, 84), (), True, CPU, seed=0, alpha=0.6, beta0=0.4, eps=1e-6,
                                          total_updates=100, n_step=3, gamma=0.99)
    for obs, next_obs, last in stacks(40, 2):
        add_one(buffer, obs, next_obs, last)
    live = set(((buffer.pos - buffer.ring.size + torch.arange(buffer.ring.size)) % 64).tolist())
    batch = buffer.sample(512)
    assert set(batch.indices.tolist()) <= live
    twin = PrioritizedFrameReplayBuffer(64, (4, 84, 84), (), True, CPU, seed=1, alpha=0.6, beta0=0.4, eps=1e-6,
                                        total_updates=100, n_step=3, gamma=0.99)
    twin.load_state_dict(buffer.state_dict())
    a, b = buffer.sample(32), twin.sample(32)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.observations, b.observations)
    assert torch.equal(a.rewards, b.rewards) and torch.equal(a.weights, b.weights)


def test_the_atari_preset_is_the_papers():
    cfg = resolved_config(compose_config(["algo=dqn", "env=atari"]))
    algo, atari = cfg["algo"], cfg["env"]["atari"]
    assert (algo["batch_size"], algo["buffer_size"], algo["train_freq"], algo["target_update_interval"],
            algo["learning_starts"], algo["exploration_final_eps"], algo["tau"]) == (32, 1_000_000, 4, 10_000,
                                                                                       50_000, 0.1, 1.0)
    assert atari == {"noop_max": 30, "frame_skip": 4, "screen_size": 84, "frame_stack": 4,
                     "terminal_on_life_loss": False, "clip_rewards": True}
    assert cfg["env"]["kwargs"]["repeat_action_probability"] == 0.0


@pytest.mark.parametrize("game", ["ALE/Pong-v5"])
def test_dqn_trains_on_a_real_atari_game_from_the_command_line(workdir, game):
    proc = run_cli(["train", "algo=dqn", "env=atari", f"env.id={game}", "env.atari.terminal_on_life_loss=true",
                    "total_steps=400", "algo.learning_starts=300", "algo.buffer_size=600",
                    "algo.target_update_interval=50", "algo.double=true", "algo.prioritized=true",
                    "+env.kwargs.max_num_frames_per_episode=1000",   # the evaluation game: 250 agent steps at most
                    "eval.every=0", "eval.episodes=1", "checkpoint.every=200", "log.every=100", "log.heldout_states=16",
                    "log.progress=lines", "hydra.run.dir=run"], cwd=workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr
    import json

    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["total_steps"] == 400 and -21 <= results["eval_return_mean"] <= 21  # a raw Pong score
    checkpoint = torch.load(workdir / "run" / "checkpoints" / "step_400.pt", weights_only=True)
    assert checkpoint["runner"]["replay"]["frames"].dtype == torch.uint8
