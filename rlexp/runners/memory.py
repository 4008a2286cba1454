"""What a run will allocate, estimated before anything is built, against the memory of the machine it runs on.

A size typed wrong (`algo.buffer_size=1e10`, `network.hidden_sizes=[1000000000]`, `algo.n_step=100000000`,
`eval.episodes=100000000000`) would otherwise end in an allocation failure, some of them hours into a run (the
first sample of an n-step window, the first checkpoint's copy of the replay). The estimate counts what rlexp
allocates for each part, from the same sizes the builders use; tests/test_memory.py holds it against the real
allocation of a few configs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from rlexp.agents.base import features, observation_encoder
from rlexp.config.registry import AlgoSpec, Family
from rlexp.config.schema import OffPolicyConfig, TrainConfig
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.networks.user_torso import resolve_torso
from rlexp.replay.frames import frames_per_env

GB = 1e9

#: A worker process of AsyncVectorEnv: an interpreter with gymnasium and the env's library loaded.
ASYNC_WORKER_BYTES = 120_000_000


@dataclass(frozen=True)
class Need:
    key: str          # the setting that sizes it
    what: str
    bytes: float
    on_device: bool   # on the training device (False: host memory)


def replay_bytes(capacity: int, num_envs: int, spaces: SpaceInfo, prioritized: bool,
                 hindsight: bool = False) -> tuple[float, float]:
    """(device bytes, host bytes) of the replay memory: its storage as rlexp/replay/ allocates it."""
    rows = max(capacity // num_envs, 1)
    slots = rows * num_envs
    action = 8 if spaces.discrete else 4 * int(np.prod(spaces.action_shape))
    per_slot = action + 12                               # rewards, terminations, episode ends (float32)
    if hindsight:
        per_slot += 16                                   # HER: each slot's episode step and length (int64)
    host = 0.0
    if spaces.stored_once:   # each frame stored once: Atari's stacks of k frames, other images (and Dict/Tuple
        # observations with image entries, packed in bytes) a frame each
        stack, frame = (spaces.obs_shape[0], int(np.prod(spaces.obs_shape[1:]))) if spaces.stacked else \
            (1, int(np.prod(spaces.obs_shape)) * spaces.obs_dtype.itemsize)   # (float images: float32)
        frames = num_envs * frames_per_env(rows, stack) * frame
        device = frames + slots * (per_slot + 8)         # + each transition's newest frame number
        host = slots * 8                                 # its host mirror, for eviction
    else:
        # observations and next observations, in their own dtype (float32; integers for Discrete ones)
        device = slots * (per_slot + 2 * spaces.obs_dtype.itemsize * spaces.obs_dim)
    if prioritized:
        device += 32 * (1 << (slots - 1).bit_length())   # the sum tree: [sum, min] float64 per node
    return float(device), host


#: The memory one env instance takes, by the package its class lives in: measured in a fresh process as the mean
#: over 32 instances (tests/test_memory.py measures them again). An env of another package is not counted.
ENV_INSTANCE_BYTES = {
    "ale_py": 1_300_000,                          # an emulator and its frame buffers
    "gymnasium.envs.mujoco": 1_200_000,           # a MuJoCo model and its data
    "gymnasium.envs.box2d": 110_000,              # a Box2D world
    "gymnasium.envs.classic_control": 5_000,      # a few Python objects
}


def env_instance_bytes(env_id: str) -> float:
    """The memory one instance of `env_id` takes (0 for an env of a package not in ENV_INSTANCE_BYTES)."""
    import gymnasium as gym

    try:
        entry_point = gym.spec(env_id).entry_point
    except gym.error.Error:
        return 0.0
    module = entry_point if isinstance(entry_point, str) else getattr(entry_point, "__module__", "") or ""
    return float(next((size for package, size in ENV_INSTANCE_BYTES.items()
                       if module == package or module.startswith(package + ".")), 0.0))


def off_policy_needs(config: TrainConfig, spaces: SpaceInfo, device: torch.device) -> list[Need]:
    """The replay memory, its checkpoint copy, and an update's n-step windows."""
    algo: OffPolicyConfig = config.algo
    num_envs = config.env.num_envs
    capacity = min(algo.buffer_size, config.total_steps)
    replay_device, replay_host = replay_bytes(capacity, num_envs, spaces, algo.prioritized, algo.her)
    return [
        Need("algo.buffer_size", "the replay memory", replay_device, True),
        Need("algo.buffer_size", "the replay memory's host side", replay_host, False),
        # A resumable checkpoint copies the replay to the host, in order (the frame rings as they are).
        Need("algo.buffer_size", "a checkpoint's copy of the replay",
             replay_device if device.type != "cpu" or not spaces.frames else 0.0, False),
        Need("algo.n_step", "an n-step sample's windows", 40 * algo.batch_size * algo.n_step, True),
    ]


def on_policy_needs(config: TrainConfig, spaces: SpaceInfo) -> list[Need]:
    """The rollout (rlexp/rollouts/storage.py: float32 fields, int64 discrete actions), its advantages and
    returns, an epoch's shuffled copy of it, and a checkpoint's host copy."""
    samples = config.algo.n_steps * config.env.num_envs
    action = 8 if spaces.discrete else 4 * int(np.prod(spaces.action_shape))
    per_sample = spaces.obs_dtype.itemsize * spaces.obs_dim + action + 4 * 8
    return [
        Need("algo.n_steps", "the rollout", samples * per_sample, True),
        Need("algo.n_steps", "an epoch's shuffled rollout", samples * (per_sample + 8), True),
        Need("algo.n_steps", "a checkpoint's copy of the rollout", samples * per_sample, False),
    ]


def estimate(config: TrainConfig, spec: AlgoSpec, spaces: SpaceInfo, device: torch.device) -> list[Need]:
    """Each part a run allocates (the env must have been made once, so that its id is registered)."""
    algo, env = config.algo, config.env
    num_envs, hidden = env.num_envs, config.network.hidden_sizes
    on_policy = spec.family is Family.ON_POLICY
    # The largest batch a forward and backward pass sees: a minibatch, or the whole rollout (A2C has no
    # batch_size: it learns from the rollout at once).
    batch = getattr(algo, "batch_size", None) or algo.n_steps * num_envs
    obs_bytes = 4 * spaces.obs_dim
    torso = resolve_torso(config.network.torso)
    # What the first layer reads: a one-hot is wider; network.torso's out_features (read off its module, built on
    # the meta device).
    with torch.device("meta"):
        encoded = features(observation_encoder(spaces, torso=torso), spaces)
    env_bytes = env_instance_bytes(env.id)
    needs = [
        *(on_policy_needs(config, spaces) if on_policy else off_policy_needs(config, spaces, device)),
        # Every network with its target, gradient and Adam's two moments, float32.
        Need("network.hidden_sizes", "the networks and their optimizers",
             5 * 4 * spec.parameters(algo, spaces, tuple(hidden), torso), True),
        # An update's activations: forward and backward through the online and target networks.
        Need("network.hidden_sizes", "an update's activations",
             6 * 4 * batch * (sum(hidden) + encoded) + 2 * batch * obs_bytes, True),
        Need("eval.episodes", "the evaluation returns", 8 * config.eval.episodes, False),
        # the evaluation's other envs (one is made before the check: the job's)
        Need("eval.num_envs", "the evaluation's env instances",
             (min(config.eval.num_envs, config.eval.episodes) - 1) * env_bytes, False),
        Need("env.num_envs", "the envs' observation buffers", 8 * num_envs * obs_bytes, False),
    ]
    if env.vectorization == "async":
        needs.append(Need("env.num_envs", "the envs' worker processes", num_envs * (ASYNC_WORKER_BYTES + env_bytes),
                          False))
    else:  # a sync vector env holds every instance in this process (an ALE emulator: about 1.2 MB each)
        needs.append(Need("env.num_envs", "the env instances", num_envs * env_bytes, False))
    return needs


def available_host_bytes() -> float:
    """Memory this process can still have: MemAvailable (Linux), else the physical pages that are free."""
    try:
        with open("/proc/meminfo") as meminfo:   # (closed: an open file left to the collector is a ResourceWarning)
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def check_host_memory(key: str, value: Any, needed: float, what: str) -> None:
    """Refuse, in one line, one allocation the host cannot make (`rlexp eval episodes=...`)."""
    limit = available_host_bytes()
    if needed > limit:
        raise ConfigError(f"{key}={value}: {what} would need about {needed / GB:,.1f} GB of memory but "
                          f"{limit / GB:,.1f} GB are available; lower {key}")


def check_memory(config: TrainConfig, spec: AlgoSpec, spaces: SpaceInfo, device: torch.device,
                 copies: int = 1) -> None:
    """Refuse, in one line naming the key, the estimate and the limit, a run that cannot fit (`copies` of it: the
    seeds of a many-seeds run, each with its own replay and networks)."""
    needs = [replace(n, bytes=n.bytes * copies) for n in estimate(config, spec, spaces, device)]
    on_gpu = device.type != "cpu"
    places = [("host", [n for n in needs if not (n.on_device and on_gpu)], available_host_bytes())]
    if on_gpu:
        free, _ = torch.cuda.mem_get_info(device)
        places.append((f"{device}", [n for n in needs if n.on_device], float(free)))
    for place, part, limit in places:
        total = sum(n.bytes for n in part)
        if total > limit or not math.isfinite(total):
            largest = max(part, key=lambda n: n.bytes)
            value: Any = config
            for name in largest.key.split("."):
                value = getattr(value, name)
            memory = "memory" if place == "host" else f"memory on {place}"
            run = "the run" if copies == 1 else f"the {copies} seeds"
            raise ConfigError(f"{largest.key}={value}: {run} would need about {total / GB:,.1f} GB of {memory} "
                              f"({largest.what}: {largest.bytes / GB:,.1f} GB) but {limit / GB:,.1f} GB are "
                              f"available; lower {largest.key}")
