"""PPO and A2C on image frames: the Nature CNN as the shared torso of their actor-critic (the observation encoder
of rlexp/networks/encoders.py), the rollout keeping the frames in uint8, and a run on Atari that trains,
evaluates and exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rlexp.agents.contracts import Members
from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config.validate import validate
from rlexp.networks.encoders import FramesEncoder
from rlexp.networks.members import stack_members
from rlexp.networks.q import DuelingQNetwork
from rlexp.rollouts.storage import RolloutStorage
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from rlexp.runners.requests import Sample
from tests.conftest import compose_config, run_cli, run_in_process, train_seeds_in_lockstep

CPU = torch.device("cpu")
#: Pong with episodes of 100 agent steps (400 frames), so that training sees episodes end and an evaluation is short.
TINY = ["env=atari", "env.id=ALE/Pong-v5", "+env.kwargs.max_episode_steps=400", "total_steps=64", "env.num_envs=2",
        "algo.n_steps=16", "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "log.progress=none",
        "log.heldout_states=8", "torch_threads=1"]


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_ppo_and_a2c_learn_from_stacked_frames_through_the_nature_cnn_kept_in_uint8(name: str, tmp_path: Path) -> None:
    spec = algorithms()[name]
    config = resolved_config(compose_config([f"algo={name}", *TINY, "total_steps=32",
                                             *(["algo.batch_size=16"] if name == "ppo" else [])]))
    assert validate(config, algorithms()) is spec
    job = Job.prepare(config, spec, CPU)
    assert job.spaces.frames and job.spaces.obs_shape == (4, 84, 84)
    steps = job.steps(tmp_path / "run", StopRequest(), [])
    agent = next(steps).agent
    policy = agent.policy
    # One Nature CNN (convolutions, 512 units) that the policy and value heads share, no MLP after it.
    assert isinstance(policy.encoder, FramesEncoder) and policy.encoder.out_features == 512
    assert len(policy.hidden) == 0 and policy.policy_head.in_features == policy.value_head.in_features == 512
    first_conv = policy.encoder.convolutions.net[0].weight.detach().clone()

    rollouts: list[RolloutStorage] = []
    reply = None
    while True:   # serve the run's calls (rlexp/runners/requests.py), noting each rollout the agent learns from
        try:
            call = steps.send(reply)
        except StopIteration as done:
            results = done.value
            break
        args = [arg.draw() if isinstance(arg, Sample) else arg for arg in call.args]
        if call.name == "learn":
            rollouts.append(args[0])
            assert rollouts[-1].observations.dtype == torch.uint8   # 28,224 bytes a step and env, not 4 times that
        reply = getattr(agent, call.name)(*args, **call.kwargs)
    assert results["status"] == "completed" and len(rollouts) == 1   # 32 steps: one rollout of 16 x 2 envs
    assert not torch.equal(first_conv, policy.encoder.convolutions.net[0].weight)   # the torso learned too


def test_ppo_trains_on_atari_then_evaluates_and_exports(workdir: Path, capsys, monkeypatch) -> None:
    proc = run_cli(["train", "algo=ppo", *TINY, "algo.batch_size=16", "hydra.run.dir=run"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    done = json.loads((workdir / "run" / "results.json").read_text())
    assert done["status"] == "completed" and done["total_steps"] == 64

    evaluated = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "ppo on ALE/Pong-v5, final.pt (step 64): mean return" in evaluated.stdout
    exported = run_in_process(["export", "run", "format=torchscript", "states=32"], workdir, capsys, monkeypatch)
    assert exported.returncode == 0, exported.stderr
    assert "its actions match the agent's on 32 evaluation states" in exported.stdout
    # The file takes the raw uint8 frames.
    policy = torch.jit.load(str(workdir / "run" / "export" / "policy.pt"))
    actions = policy(torch.zeros(3, 4, 84, 84, dtype=torch.uint8))
    assert actions.shape == (3,) and actions.dtype == torch.int64


def test_ppo_seeds_on_atari_frames_train_as_one_model_each_acting_as_it_does_alone(tmp_path: Path) -> None:
    spec = algorithms()["ppo"]
    config = {**resolved_config(compose_config(["algo=ppo", *TINY, "algo.batch_size=16", "total_steps=32"])),
              "seeds": [0, 1]}
    assert validate(config, algorithms()) is spec
    def check(members: list, batched: Members) -> None:
        # each seed's CNN a block of one grouped convolution; one forward pass acts as each member does alone
        assert batched.policy.encoder.convolutions.net[0].groups == 2
        frames = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 84, 84), dtype=np.uint8)
        together = batched.act(frames, explore=False)
        for k, member in enumerate(members):
            np.testing.assert_array_equal(together[k], member.act(frames[k], explore=False))

    _, agents, outcomes = train_seeds_in_lockstep(spec, config, tmp_path, check)
    assert all(o.results["status"] == "completed" for o in outcomes)
    # each seed learned its own CNN, and checkpoints it as a single run's agent
    first, second = (a.state_dict()["policy"]["encoder.convolutions.net.0.weight"] for a in agents)
    assert first.shape == (32, 4, 8, 8) and not torch.equal(first, second)


def test_dqn_seeds_on_atari_frames_train_as_one_model_each_valuing_as_it_does_alone(tmp_path: Path) -> None:
    spec = algorithms()["dqn"]
    dqn = [key for key in TINY if not key.startswith(("algo.n_steps", "env.num_envs"))]
    config = {**resolved_config(compose_config(["algo=dqn", *dqn, "algo.learning_starts=32",
                                                "algo.buffer_size=1000"])), "seeds": [0, 1]}
    assert validate(config, algorithms()) is spec

    def check(members: list, batched: Members) -> None:
        # the Q-network's own Nature convolutions (DQN's Atari layout) stacked: one grouped convolution
        assert batched.q_network.net[0].net[0].groups == 2
        frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 4, 84, 84), dtype=np.uint8))
        together = batched.q_network(frames)
        for k, member in enumerate(members):
            torch.testing.assert_close(together[k], member.q_network(frames[k]), rtol=1e-5, atol=1e-6)

    _, agents, outcomes = train_seeds_in_lockstep(spec, config, tmp_path, check)
    assert all(o.results["status"] == "completed" for o in outcomes)
    first, second = (a.state_dict()["q_network"]["net.0.net.0.weight"] for a in agents)
    assert first.shape == (32, 4, 8, 8) and not torch.equal(first, second)


@pytest.mark.parametrize("network", ["dueling", "impala"])
def test_stacked_convolutions_compute_each_seeds_own(network: str) -> None:
    # DQN's dueling streams read the Nature convolutions directly; IMPALA's residual blocks hold convolutions too
    torch.manual_seed(0)
    if network == "dueling":
        members = [DuelingQNetwork(0, 6, (), image_shape=(4, 84, 84)) for _ in range(3)]
    else:
        members = [FramesEncoder((4, 64, 64), cnn="impala") for _ in range(3)]
    stacked = stack_members(members, "the network")
    frames = torch.randint(0, 256, (3, 5, 4, *([84, 84] if network == "dueling" else [64, 64])), dtype=torch.uint8)
    together = stacked(frames)
    for k, member in enumerate(members):
        torch.testing.assert_close(together[k], member(frames[k]), rtol=1e-5, atol=1e-5)
    together.sum().backward()   # each member's gradient lands in its own block of the stacked parameters
    assert all(p.grad is None for p in members[0].parameters())
    assert all(p.grad is not None for p in stacked.parameters())


@pytest.mark.parametrize("name, expected", [
    ("ppo", {"env.num_envs": 8, "algo.n_steps": 128, "algo.n_epochs": 4, "algo.batch_size": 256, "algo.lr": 2.5e-4,
             "algo.lr_schedule": "linear", "algo.clip_range": 0.1, "algo.clip_range_schedule": "linear",
             "algo.ent_coef": 0.01, "algo.vf_coef": 0.5, "env.atari.terminal_on_life_loss": True}),
    ("a2c", {"env.num_envs": 16, "algo.n_steps": 5, "algo.lr": 7e-4, "algo.ent_coef": 0.01, "algo.vf_coef": 0.25,
             "algo.optimizer": "rmsprop", "algo.rms_prop_eps": 1e-5, "env.atari.terminal_on_life_loss": True}),
])
def test_ppo_and_a2c_on_any_atari_game_take_rl_zoos_atari_preset(name: str, expected: dict) -> None:
    config = resolved_config(compose_config([f"algo={name}", "env=atari", "env.id=ALE/Breakout-v5"]))
    assert validate(config, algorithms()) is algorithms()[name]

    def value(key: str):
        node = config
        for part in key.split("."):
            node = node[part]
        return node

    assert {key: value(key) for key in expected} == expected and config["total_steps"] == 10_000_000


def test_ppo_on_atari_resumes_mid_rollout_to_the_same_end(tmp_path: Path) -> None:
    """The rollout's frames go through a checkpoint in uint8 and the run goes on exactly."""
    from rlexp.io.checkpoints import load_checkpoint

    spec = algorithms()["ppo"]
    config = resolved_config(compose_config(["algo=ppo", *TINY, "algo.batch_size=16", "checkpoint.every=40"]))
    Job.prepare(config, spec, CPU).run(tmp_path / "reference", StopRequest(), [])
    checkpoint = load_checkpoint(tmp_path / "reference" / "checkpoints" / "step_40.pt")
    rollout = checkpoint["runner"]["rollout"]
    assert rollout["pos"] == 4 and rollout["observations"].dtype == torch.uint8   # 40 = a rollout of 32, then 4 x 2
    assert rollout["observations"].shape == (4, 2, 4, 84, 84)
    Job.prepare(config, spec, CPU).run(tmp_path / "resumed", StopRequest(), [], resume=checkpoint)
    final = [load_checkpoint(tmp_path / run / "checkpoints" / "final.pt")["agent"]["policy"]
             for run in ("reference", "resumed")]
    assert final[0].keys() == final[1].keys() and all(torch.equal(final[0][k], final[1][k]) for k in final[0])
