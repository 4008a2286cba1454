"""Images beyond uint8 and the Nature CNN (issue 36, section 1): float images (a rank-3 Box of floats, channels
first or last) read by the CNN unscaled and stored as float32, as `network.image.enabled` decides."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlexp.envs import describe_spaces
from rlexp.errors import ConfigError
from rlexp.io.checkpoints import load_checkpoint
from rlexp.networks.encoders import FramesEncoder, make_encoder
from tests.conftest import compose_config, run_cli, run_in_process

ACTIONS = gym.spaces.Discrete(3)
UNIT_PIXELS = "tests.pixel_wrappers.UnitPixels"   # uint8 images as float32 in [0, 1]


def box(shape: tuple[int, ...], dtype: type = np.float32) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255 if dtype is np.uint8 else 1, shape, dtype)


@pytest.mark.parametrize("space, enabled, frames, channels_last", [
    (box((96, 96, 3), np.uint8), "auto", True, True),
    (box((96, 96, 3)), "auto", True, True),               # a pixel wrapper's floats, channels last
    (box((3, 64, 64), np.float64), "auto", True, False),   # channels first, any float dtype
    (box((40, 40, 40)), "auto", False, False),            # no channel axis: flattened, as SB3 does
    (box((3, 10, 10)), "auto", False, False),             # smaller than the Nature CNN reads: flattened
    (box((3, 64, 3)), "auto", False, False),              # channels at both ends: flattened, not guessed at
    (box((96, 96, 3)), "uint8", False, False),            # SB3's rule (and what runs made before the key meant)
    (box((96, 96, 3), np.uint8), False, False, False),    # an MLP on the pixels
    (box((40, 40, 40)), True, None, None),                # forced, and no channel axis: refused
])
def test_network_image_enabled_decides_which_rank_3_boxes_the_cnn_reads(space, enabled, frames,
                                                                       channels_last) -> None:
    if frames is None:
        with pytest.raises(ConfigError, match=r"network.image.enabled=true, and Img-v0's observations \(40, 40, 40\) "
                                              r"have no channel axis .*; set network.image.channels_first=true"):
            describe_spaces(space, ACTIONS, "Img-v0", image_enabled=enabled)
        return
    spaces = describe_spaces(space, ACTIONS, "Img-v0", image_enabled=enabled)
    assert (spaces.frames, spaces.channels_last, spaces.flat) == (frames, channels_last, not frames)
    # what replay and rollouts keep: uint8 images as uint8, float ones (and anything flattened) as float32
    assert spaces.obs_dtype == (np.uint8 if frames and space.dtype == np.uint8 else np.float32)


def test_a_forced_image_of_integers_is_refused_naming_the_cast() -> None:
    with pytest.raises(ConfigError, match=r"network.image.enabled=true reads uint8 or float images, and the "
                                          r"observations .* are int32; cast them"):
        describe_spaces(gym.spaces.Box(0, 9, (3, 40, 40), np.int32), ACTIONS, "Img-v0", image_enabled=True)


def test_float_images_are_not_divided_by_255_and_uint8_ones_are() -> None:
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (2, 40, 40, 3), dtype=torch.uint8)
    as_uint8 = make_encoder(box((40, 40, 3), np.uint8), frames=True, channels_last=True)
    as_float = make_encoder(box((40, 40, 3)), frames=True, channels_last=True)
    assert isinstance(as_float, FramesEncoder) and not as_float.convolutions.scaled and as_uint8.convolutions.scaled
    as_float.load_state_dict(as_uint8.state_dict())
    # the float encoder reads [0, 1] floats as the uint8 one reads the pixels they came from
    torch.testing.assert_close(as_float(pixels.float() / 255.0), as_uint8(pixels))


def test_float_images_are_stored_once_in_float32_and_counted_so(tmp_path: Path) -> None:
    from rlexp.agents.registry import algorithms
    from rlexp.commands.train import resolved_config
    from rlexp.replay.frames import frames_per_env
    from rlexp.replay.images import ImageReplayBuffer
    from rlexp.runners.job import Job
    from rlexp.runners.memory import replay_bytes

    spec = algorithms()["sac"]
    config = resolved_config(compose_config(["algo=sac", "env.id=CarRacing-v3", "algo.buffer_size=50",
                                             f"env.wrappers=[{{_target_: {UNIT_PIXELS}}}]"]))
    job = Job.prepare(config, spec, torch.device("cpu"))
    try:
        assert job.spaces.frames and job.spaces.channels_last and job.spaces.obs_dtype == np.float32
        replay, _ = job.make_replay(100)
        # each image once, as float32 (uint8 would truncate [0, 1] to 0 or 1)
        assert isinstance(replay, ImageReplayBuffer) and replay.frames.dtype == torch.float32
        device, host = replay_bytes(50, 1, job.spaces, prioritized=False)
        image = 96 * 96 * 3 * 4
        assert replay.frames.numel() * 4 == frames_per_env(50, 1) * image   # what the estimate counts is allocated
        assert device == frames_per_env(50, 1) * image + 50 * (3 * 4 + 12 + 8) and host == 50 * 8
    finally:
        job.eval_env.close()


def test_sac_trains_on_float_images_from_a_wrapper_then_evaluates(workdir: Path, capsys, monkeypatch) -> None:
    # CarRacing's pixels as float32 in [0, 1] (tests/pixel_wrappers.py): the CNN reads them, the replay keeps float32
    proc = run_cli(["train", "algo=sac", "env.id=CarRacing-v3", "+env.kwargs.max_episode_steps=20",
                    f"env.wrappers=[{{_target_: {UNIT_PIXELS}}}]", "total_steps=40",
                    "algo.learning_starts=30", "algo.buffer_size=50", "algo.batch_size=4", "network.hidden_sizes=[16]",
                    "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "log.progress=none",
                    "log.heldout_states=8", "torch_threads=1", "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "completed"
    actor = load_checkpoint(workdir / "run" / "checkpoints" / "final.pt")["agent"]["actor"]
    assert actor["encoder.convolutions.net.0.weight"].shape == (32, 3, 8, 8)   # the CNN, not an MLP on 27,648 floats
    evaluated = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "sac on CarRacing-v3, final.pt (step 40): mean return" in evaluated.stdout


# --- IMPALA's ResNet (network.image.cnn=impala) ---------------------------------------------------------------------

def conv(inputs: int, outputs: int) -> int:
    return 3 * 3 * inputs * outputs + outputs   # a 3x3 convolution's weights and biases


def test_the_impala_resnet_has_cleanrls_shape_and_parameters_counted_by_hand() -> None:
    # CleanRL's ppo_procgen torso on Procgen's 64x64x3: per stack a convolution and two residual blocks (two
    # convolutions each); the pools halve the sides, rounding up (64 -> 32 -> 16 -> 8); then 32 x 8 x 8 -> 256
    stacks = [(3, 16), (16, 32), (32, 32)]
    convolutions = sum(conv(i, o) + 4 * conv(o, o) for i, o in stacks)
    assert convolutions == 9_728 + 41_632 + 46_240
    linear = 32 * 8 * 8 * 256 + 256
    encoder = make_encoder(box((64, 64, 3), np.uint8), frames=True, channels_last=True, cnn="impala")
    assert isinstance(encoder, FramesEncoder) and encoder.convolutions.out_features == 2_048
    assert sum(p.numel() for p in encoder.parameters()) == convolutions + linear == 622_144
    pixels = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8)
    assert encoder(pixels).shape == (5, 256) and encoder(pixels[None]).shape == (1, 5, 256)
    # Atari's 4x84x84 frames: 84 -> 42 -> 21 -> 11, computed without a forward pass (built on the meta device too)
    with torch.device("meta"):
        atari = FramesEncoder((4, 84, 84), cnn="impala")
    assert atari.convolutions.out_features == 32 * 11 * 11
    assert sum(p.numel() for p in atari.parameters()) == conv(4, 16) - conv(3, 16) + convolutions + 3_872 * 256 + 256


def test_many_seeds_impala_resnets_stacked_read_images_as_each_alone() -> None:
    torch.manual_seed(0)
    members = [FramesEncoder((40, 40, 3), channels_last=True, cnn="impala") for _ in range(2)]
    stacked = FramesEncoder.stack_members(members)
    # every convolution, those inside the residual blocks too, one grouped convolution (a seed per group)
    grouped = [m for m in stacked.convolutions.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(grouped) == 15 and all(m.groups == 2 for m in grouped)
    images = torch.randint(0, 256, (2, 3, 40, 40, 3), dtype=torch.uint8)   # (seeds, batch, H, W, C)
    together = stacked(images)
    for k, member in enumerate(members):
        torch.testing.assert_close(together[k], member(images[k]))


@pytest.mark.parametrize("name", ["dqn", "ppo", "a2c", "sac", "td3", "ddpg"])
def test_every_algorithm_reads_images_through_the_impala_resnet_when_asked(name: str) -> None:
    from rlexp.agents.base import BuildContext
    from rlexp.agents.registry import algorithms
    from rlexp.commands.train import resolved_config
    from rlexp.config.typed import typed

    spec = algorithms()[name]
    actions = ACTIONS if name in ("dqn", "ppo", "a2c") else gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    spaces = describe_spaces(box((20, 20, 3), np.uint8), actions, "Img-v0", image_cnn="impala")   # (20x20: IMPALA's)
    config = resolved_config(compose_config([f"algo={name}", "env=CartPole-v1" if name in ("dqn", "ppo", "a2c")
                                             else "env=Pendulum-v1"]))
    algo = typed(config["algo"], spec.schema)
    agent = spec.build(algo, BuildContext(spaces=spaces, hidden_sizes=(16,), total_steps=100, planned_updates=100,
                                          num_envs=1, device=torch.device("cpu"), seed=0))
    networks = [agent.q_network] if name == "dqn" else [agent.policy] if name in ("ppo", "a2c") else \
        [agent.actor, agent.critic]
    for network in networks:
        assert isinstance(network.encoder, FramesEncoder) and network.encoder.out_features == 256
        assert any(type(m).__name__ == "ResidualBlock" for m in network.encoder.modules())
    # what the memory check counts, on the meta device: the networks (their targets are copies)
    assert spec.parameters(algo, spaces, (16,)) == sum(p.numel() for n in networks for p in n.parameters())
    images = np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    assert agent.act(images, explore=False).shape[0] == 2


def test_ppo_trains_on_atari_through_the_impala_resnet_then_evaluates_and_exports(workdir: Path, capsys,
                                                                                   monkeypatch) -> None:
    from tests.test_images import TINY  # Pong at a tiny budget

    proc = run_cli(["train", "algo=ppo", *TINY, "algo.batch_size=16", "network.image.cnn=impala",
                    "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    policy = load_checkpoint(workdir / "run" / "checkpoints" / "final.pt")["agent"]["policy"]
    assert policy["encoder.convolutions.net.2.conv0.weight"].shape == (16, 16, 3, 3)   # a residual block's
    evaluated = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "ppo on ALE/Pong-v5, final.pt (step 64): mean return" in evaluated.stdout
    exported = run_in_process(["export", "run", "format=torchscript", "states=8"], workdir, capsys, monkeypatch)
    assert exported.returncode == 0, exported.stderr
    assert "its actions match the agent's on 8 evaluation states" in exported.stdout
    exported_policy = torch.jit.load(str(workdir / "run" / "export" / "policy.pt"))
    assert exported_policy(torch.zeros(3, 4, 84, 84, dtype=torch.uint8)).shape == (3,)
