"""The memory estimate a run is checked against, held against what rlexp really allocates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlexp.agents import registry
from rlexp.agents.base import BuildContext
from rlexp.config.typed import train_config, typed
from rlexp.envs import atari_settings, describe_spaces, make_env
from rlexp.replay import Goals, Hindsight, Priorities, make_replay
from rlexp.runners.job import obs_dtype
from rlexp.runners.memory import estimate, replay_bytes
from tests.conftest import compose_config

CPU = torch.device("cpu")


def config_for(overrides: list[str]) -> dict:
    from rlexp.commands.train import resolved_config

    return resolved_config(compose_config(overrides))


def spaces_of(config: dict):
    env = make_env(config["env"]["id"], config["env"]["kwargs"], atari_settings(config["env"].get("atari")))
    try:
        return describe_spaces(env.observation_space, env.action_space, config["env"]["id"],
                               stacked=bool(config["env"].get("atari")))
    finally:
        env.close()


def allocated(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("overrides", [
    ["algo=dqn", "env=CartPole-v1", "algo.buffer_size=100000"],
    ["algo=dqn", "env=CartPole-v1", "algo.buffer_size=30000", "algo.prioritized=true", "env.num_envs=3"],
    ["algo=td3", "env=HalfCheetah-v5", "algo.buffer_size=50000", "env.num_envs=4"],
    ["algo=dqn", "env=atari", "algo.buffer_size=20000", "total_steps=20000", "env.num_envs=2"],
    ["algo=dqn", "env=atari", "algo.buffer_size=5000", "total_steps=5000", "algo.prioritized=true"],
    ["algo=sac", "env.id=CarRacing-v3", "algo.buffer_size=3000", "total_steps=3000", "env.num_envs=2"],
    ["algo=td3", "env.id=tests.toy_envs:BitFlippingContinuous-v0", "algo.her=true", "algo.buffer_size=3000",
     "env.num_envs=2"],
])
def test_the_replay_estimate_is_what_the_replay_allocates(overrides):
    config = config_for(overrides)
    algo, spaces = config["algo"], spaces_of(config)
    capacity = min(algo["buffer_size"], config["total_steps"])
    replay = make_replay(capacity=capacity, obs_shape=spaces.obs_shape, action_shape=spaces.action_shape,
                         discrete=spaces.discrete, image=spaces.stacked,
                         single_image=spaces.frames and not spaces.stacked, device=CPU, seed=0,
                         num_envs=config["env"]["num_envs"], n_step=algo["n_step"], gamma=algo["gamma"],
                         obs_dtype=obs_dtype(spaces),
                         priorities=Priorities(0.6, 0.4, 1e-6, 10) if algo.get("prioritized") else None,
                         hindsight=Hindsight(Goals(slice(0), slice(0), torch.float32, lambda *_: 0.0), 4, "future")
                         if algo["her"] else None)
    tensors = list(replay.storage.values())
    if spaces.frames:
        tensors.append(replay.frames)
    if algo.get("prioritized"):
        tensors.append(replay.tree._nodes)
    device_bytes, host_bytes = replay_bytes(capacity, config["env"]["num_envs"], spaces, bool(algo.get("prioritized")),
                                            algo["her"])
    assert device_bytes == allocated(tensors)
    assert host_bytes == (replay._newest_frame.nbytes if spaces.frames else 0)


@pytest.mark.parametrize("overrides", [
    ["algo=dqn", "env=CartPole-v1"],
    ["algo=dqn", "env=LunarLander-v3"],                         # dueling
    ["algo=td3", "env=Pendulum-v1"],
    ["algo=ddpg", "env=Pendulum-v1", "experiment=ddpg_paper"],  # batch norm, the action at layer 2
    ["algo=dqn", "env=atari"],
])
def test_the_network_estimate_is_what_an_agent_allocates_after_an_update(overrides):
    config = config_for(overrides)
    spec, spaces = registry.get(config["algo"]["name"]), spaces_of(config)
    hidden = tuple(config["network"]["hidden_sizes"])
    estimated = next(n.bytes for n in estimate(train_config(config, spec.schema), spec, spaces, CPU)
                     if n.what.startswith("the networks"))
    agent = spec.build(typed(config["algo"], spec.schema), BuildContext(
        spaces=spaces, hidden_sizes=hidden, total_steps=1000, planned_updates=10, num_envs=1, device=CPU, seed=0))
    replay = make_replay(capacity=64, obs_shape=spaces.obs_shape, action_shape=spaces.action_shape,
                         discrete=spaces.discrete, image=spaces.stacked, device=CPU, seed=0, num_envs=1, n_step=1,
                         gamma=0.99)
    obs = np.zeros((1, *spaces.obs_shape), dtype=np.uint8 if spaces.frames else np.float32)
    action = np.zeros((1, *spaces.action_shape), dtype=np.int64 if spaces.discrete else np.float32)
    for _ in range(8):
        replay.add(obs, action, np.zeros(1, np.float32), obs, np.zeros(1, bool), np.zeros(1, bool))
    for _ in range(2):  # TD3's actor moves every second update
        agent.update(replay.sample(4))
    modules = [m for m in vars(agent).values() if isinstance(m, torch.nn.Module)]
    optimizers = [o for o in vars(agent).values() if isinstance(o, torch.optim.Optimizer)]
    real = allocated(p for m in modules for p in m.parameters())
    real += allocated(p.grad for m in modules for p in m.parameters() if p.grad is not None)
    real += allocated(v for o in optimizers for state in o.state.values() for v in state.values()
                      if isinstance(v, torch.Tensor) and v.dim() > 0)
    assert estimated == real   # online and target networks, gradients, Adam's two moments: 5 copies of the online


MEASURE_ENVS = """
import os, sys, gymnasium as gym, ale_py
gym.register_envs(ale_py)
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
for env_id in sys.argv[1:]:
    gym.make(env_id).reset(seed=0)                 # its libraries imported, as in a run
    before = resident()
    envs = [gym.make(env_id) for _ in range(32)]
    for env in envs:
        env.reset(seed=0)
    print(env_id, (resident() - before) / len(envs))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="measures resident memory through /proc")
def test_the_size_of_one_env_instance_is_what_32_instances_take_in_a_fresh_process():
    from rlexp.runners.memory import env_instance_bytes

    ids = ["CartPole-v1", "LunarLander-v3", "HalfCheetah-v5", "ALE/Pong-v5"]
    out = subprocess.run([sys.executable, "-c", MEASURE_ENVS, *ids], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    measured = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}
    for env_id in ids:
        make_env(env_id).close()   # registers the id here
        assert measured[env_id] / 2 < env_instance_bytes(env_id) < measured[env_id] * 2, (env_id, measured)
    assert env_instance_bytes("Nope-v0") == 0.0
