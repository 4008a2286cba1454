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
