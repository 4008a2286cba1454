"""Images beyond Atari's stacked frames (issue 36, section 1): rank-3 uint8 observations, channel-first (C, H, W) or
channel-last (H, W, C) as CarRacing's, read by the Nature CNN for SAC, TD3 and DDPG (the actor and the critic each
their own), PPO/A2C and DQN (its Q-network's encoder; dueling heads too); the channel order detected as
SB3 does or set by network.image.channels_first; the replay keeping the env's uint8 images."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlexp.agents.base import BuildContext
from rlexp.agents.registry import algorithms, check_fits
from rlexp.commands.train import resolved_config
from rlexp.config.typed import typed
from rlexp.envs import describe_spaces
from rlexp.envs.spaces import channels_first
from rlexp.errors import ConfigError
from rlexp.networks.encoders import FramesEncoder
from rlexp.replay import make_replay
from tests.conftest import compose_config, run_cli, run_in_process, train_seeds_in_lockstep

CPU = torch.device("cpu")
ACTIONS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


@pytest.mark.parametrize("shape, override, first", [
    ((96, 96, 3), None, False),    # CarRacing: RGB last
    ((84, 84, 1), None, False),    # grayscale, keepdim
    ((3, 64, 64), None, True),     # RGB first
    ((4, 84, 84), None, True),     # Atari's stacked frames
    ((12, 84, 84), None, True),    # a deeper stack
    ((40, 40, 40), None, None),    # no channel axis: not an image for the CNN
    ((3, 64, 3), False, False),    # ambiguous, settled by network.image.channels_first
    ((40, 40, 40), True, True),
])
def test_the_channel_order_is_detected_as_sb3_does_or_set(shape, override, first) -> None:
    assert channels_first(shape, override) is first


def test_an_ambiguous_channel_order_or_an_image_too_small_for_the_nature_cnn_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"\(3, 64, 3\) could have their channels first or last; set "
                                          r"network.image.channels_first=true or false"):
        channels_first((3, 64, 3))
    with pytest.raises(ConfigError, match="are 32x32, smaller than the 36x36 the Nature CNN reads; resize them .*"
                                          "or flatten them for an MLP"):
        describe_spaces(gym.spaces.Box(0, 255, (32, 32, 3), np.uint8), ACTIONS, "Small-v0")
    # the override reads the same shape the other way round: (36, 36, 3) channel-first has 36x3 images
    with pytest.raises(ConfigError, match="are 36x3, smaller"):
        describe_spaces(gym.spaces.Box(0, 255, (36, 36, 3), np.uint8), ACTIONS, "Small-v0", image_channels_first=True)


def test_the_encoder_transposes_channel_last_images_and_gives_512_features_on_any_leading_axes() -> None:
    torch.manual_seed(0)
    last = FramesEncoder((48, 48, 3), channels_last=True)
    first = FramesEncoder((3, 48, 48))
    first.load_state_dict(last.state_dict())   # the same layers: the transposition has no parameters
    images = torch.randint(0, 256, (2, 5, 48, 48, 3), dtype=torch.uint8)   # (seeds, batch, H, W, C)
    features = last(images)
    assert features.shape == (2, 5, 512) and last(images[0]).shape == (5, 512)
    torch.testing.assert_close(features, first(images.permute(0, 1, 4, 2, 3)))


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_off_policy_agents_on_images_update_from_a_replay_of_uint8_images(name: str) -> None:
    spec = algorithms()[name]
    spaces = describe_spaces(gym.spaces.Box(0, 255, (48, 48, 3), np.uint8), ACTIONS, "Image-v0")
    assert spaces.frames and spaces.channels_last and not spaces.stacked and spaces.obs_dtype == np.uint8
    check_fits(spec, spaces)
    config = resolved_config(compose_config([f"algo={name}", "env=Pendulum-v1"]))
    agent = spec.build(typed(config["algo"], spec.schema), BuildContext(
        spaces=spaces, hidden_sizes=(16,), total_steps=100, planned_updates=100, num_envs=1, device=CPU, seed=0))
    # the actor and the critic each their own CNN (SB3's off-policy share_features_extractor=False)
    actor_conv = agent.actor.encoder.convolutions.net[0].weight
    critic_conv = agent.critic.encoder.convolutions.net[0].weight
    assert actor_conv is not critic_conv and agent.critic_target.encoder is not agent.critic.encoder
    replay = make_replay(capacity=16, obs_shape=spaces.obs_shape, action_shape=spaces.action_shape, discrete=False,
                         image=spaces.stacked, device=CPU, seed=0, num_envs=1, n_step=1, gamma=0.99,
                         obs_dtype=torch.uint8)
    rng = np.random.default_rng(0)
    for _ in range(8):
        obs = rng.integers(0, 256, (1, 48, 48, 3), dtype=np.uint8)
        replay.add(obs, agent.act(obs, explore=True), np.ones(1, np.float32), obs, np.zeros(1, bool),
                   np.zeros(1, bool))
    batch = replay.sample(4)
    assert batch.observations.dtype == torch.uint8 and batch.next_observations.dtype == torch.uint8
    # the memory holds the images once per transition and next one, in uint8 (no float copies)
    image_bytes = sum(t.numel() * t.element_size() for t in replay.storage.values() if t.dtype == torch.uint8)
    assert image_bytes == 2 * 16 * 48 * 48 * 3
    before = critic_conv.detach().clone()
    for _ in range(2):   # (TD3 updates its actor every policy_delay-th update)
        agent.update(replay.sample(4))
    assert not torch.equal(before, agent.critic.encoder.convolutions.net[0].weight)


@pytest.mark.parametrize("dueling", [False, True])
def test_dqn_reads_channel_last_images_through_the_frames_encoder_and_its_seeds_stack(dueling: bool) -> None:
    spec = algorithms()["dqn"]
    spaces = describe_spaces(gym.spaces.Box(0, 255, (48, 48, 3), np.uint8), gym.spaces.Discrete(3), "Image-v0")
    check_fits(spec, spaces)
    config = resolved_config(compose_config(["algo=dqn", "env=CartPole-v1", f"algo.dueling={str(dueling).lower()}"]))
    agents = [spec.build(typed(config["algo"], spec.schema), BuildContext(
        spaces=spaces, hidden_sizes=(16,), total_steps=100, planned_updates=100, num_envs=1, device=CPU, seed=seed))
        for seed in (0, 1)]
    q = agents[0].q_network
    # the encoder's CNN and 512 units, then linear heads (no MLP of network.hidden_sizes after the CNN)
    assert isinstance(q.encoder, FramesEncoder) and q.encoder.channels_last
    heads = [q.value, q.advantage] if dueling else list(q.net)
    assert all(isinstance(h, torch.nn.Linear) and h.in_features == 512 for h in heads)
    assert spec.parameters(typed(config["algo"], spec.schema), spaces, (16,)) == \
        sum(p.numel() for p in q.parameters())
    images = np.random.default_rng(0).integers(0, 256, (2, 4, 48, 48, 3), dtype=np.uint8)   # (seeds, batch, ...)
    together = spec.members(agents)
    assert together.q_network.encoder.convolutions.net[0].groups == 2   # each seed's CNN a block of its groups
    q_values = together.q_network(torch.as_tensor(images))
    for k, agent in enumerate(agents):
        torch.testing.assert_close(q_values[k], agent.q_network(torch.as_tensor(images[k])))


def test_dueling_dqn_seeds_train_on_car_racings_discrete_actions_then_evaluate_and_export(workdir: Path, capsys,
                                                                                           monkeypatch) -> None:
    proc = run_cli(["train", "algo=dqn", "env.id=CarRacing-v3", "+env.kwargs.continuous=false",
                    "+env.kwargs.max_episode_steps=20", "algo.dueling=true", "seeds=[0,1]", "total_steps=40",
                    "algo.learning_starts=30", "algo.buffer_size=50", "algo.batch_size=4", "network.hidden_sizes=[16]",
                    "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "log.progress=none",
                    "log.heldout_states=8", "torch_threads=1", "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "seeds: 0 completed" in proc.stderr + proc.stdout
    evaluated = run_in_process(["eval", "run/seed_1", "episodes=1"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "dqn on CarRacing-v3, final.pt (step 40): mean return" in evaluated.stdout
    exported = run_in_process(["export", "run/seed_1", "format=torchscript", "states=8"], workdir, capsys, monkeypatch)
    assert exported.returncode == 0, exported.stderr
    policy = torch.jit.load(str(workdir / "run" / "seed_1" / "export" / "policy.pt"))
    assert policy(torch.zeros(2, 96, 96, 3, dtype=torch.uint8)).shape == (2,)   # the env's raw channel-last images


def test_sac_trains_on_car_racing_and_evaluates(workdir: Path, capsys, monkeypatch) -> None:
    proc = run_cli(["train", "algo=sac", "env.id=CarRacing-v3", "+env.kwargs.max_episode_steps=60", "env.num_envs=1",
                    "total_steps=120", "algo.learning_starts=100", "algo.buffer_size=200", "algo.batch_size=8",
                    "network.hidden_sizes=[16]", "eval.every=0", "eval.episodes=1", "checkpoint.every=0",
                    # (8 held-out states: the default 1,000 are as many CarRacing steps, most of the test's time)
                    "log.progress=none", "log.heldout_states=8", "torch_threads=1", "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    done = json.loads((workdir / "run" / "results.json").read_text())
    assert done["status"] == "completed" and done["total_steps"] == 120
    evaluated = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "sac on CarRacing-v3, final.pt (step 120): mean return" in evaluated.stdout


@pytest.mark.parametrize("name", ["sac", "td3"])   # (DDPG: TD3's members, one critic, no delay)
def test_off_policy_seeds_on_car_racing_learn_as_one_model_as_each_seed_alone(name: str, tmp_path: Path) -> None:
    """Each seed's actor and critic CNNs stacked as grouped convolutions: the batched seeds end where each seed's
    run alone ends (to the float error of a grouped convolution's other summation order)."""
    from rlexp.io.checkpoints import load_checkpoint
    from rlexp.runners.faults import StopRequest
    from rlexp.runners.job import Job

    spec = algorithms()[name]
    tiny = [f"algo={name}", "env.id=CarRacing-v3", "+env.kwargs.max_episode_steps=20", "total_steps=40",
            "algo.learning_starts=30", "algo.buffer_size=50", "algo.batch_size=4", "network.hidden_sizes=[16]",
            "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "log.progress=none", "log.heldout_states=8",
            "torch_threads=1"]
    config = {**resolved_config(compose_config(tiny)), "seeds": [0, 1]}

    def check(members: list, batched) -> None:
        for network in (batched.actor, batched.critic):
            assert network.encoder.convolutions.net[0].groups == 2

    train_seeds_in_lockstep(spec, config, tmp_path / "together", check)
    Job.prepare(resolved_config(compose_config([*tiny, "seed=1"])), spec, CPU).run(tmp_path / "alone", StopRequest(),
                                                                                   [])
    together, alone, other = (load_checkpoint(tmp_path / run / "checkpoints" / "final.pt")["agent"]
                              for run in ("together/seed_1", "alone", "together/seed_0"))
    for network in ("actor", "critic"):
        assert together[network].keys() == alone[network].keys()
        for key, value in alone[network].items():
            torch.testing.assert_close(together[network][key], value, rtol=1e-4, atol=1e-4)
    conv = "encoder.convolutions.net.0.weight"   # each seed learned its own CNN
    assert not torch.equal(together["critic"][conv], other["critic"][conv])


def test_the_memory_estimate_counts_an_image_replay_in_uint8_bytes_once() -> None:
    from rlexp.runners.memory import replay_bytes

    car_racing = describe_spaces(gym.spaces.Box(0, 255, (96, 96, 3), np.uint8),
                                 gym.spaces.Box(-1.0, 1.0, (3,), np.float32), "CarRacing-v3")
    device, host = replay_bytes(1000, 1, car_racing, prioritized=False)
    # each observation once in uint8 (27,648 bytes), in a ring of 1000 + 1000 // 32 + 4 + 64 images (episode
    # starts write their first observation too); per transition the action (3 float32), reward, termination and
    # episode end (float32 each) and the image's number (int64) on the device, its mirror on the host
    assert device == (1000 + 31 + 68) * 96 * 96 * 3 + 1000 * (3 * 4 + 12 + 8) and host == 1000 * 8


def test_many_seeds_cnns_stacked_read_channel_last_images_as_each_alone() -> None:
    # (PPO's and A2C's many seeds as one model: each seed's CNN a block of grouped convolutions)
    torch.manual_seed(0)
    members = [FramesEncoder((40, 40, 3), channels_last=True) for _ in range(2)]
    stacked = FramesEncoder.stack_members(members)
    images = torch.randint(0, 256, (2, 3, 40, 40, 3), dtype=torch.uint8)   # (seeds, batch, H, W, C)
    together = stacked(images)
    for k, member in enumerate(members):
        torch.testing.assert_close(together[k], member(images[k]))
