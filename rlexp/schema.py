"""The typed schema of `rlexp train`'s config, registered in Hydra's ConfigStore.

The YAML files under conf/ hold the values; these dataclasses hold the types. Each YAML file names its
schema in its defaults list (`/dqn_schema@_here_`), so Hydra checks every key and type while it
composes: `algo.lrr=1` (no such key), `algo.gamma=abc` (not a float) or `algo.lr_schedule=cosine`
(not one of the choices) fail before any code of ours runs. Ranges and cross-field rules, which a
type cannot express, are checked by `rlexp.config.validate`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from rlexp.placement import GpuPlacement


class LrSchedule(Enum):
    constant = "constant"
    linear = "linear"    # anneal to 0 over the run's planned updates


class TrainFreqUnit(Enum):
    step = "step"
    episode = "episode"  # a round of updates after every train_freq finished episodes


class Loss(Enum):
    huber = "huber"
    mse = "mse"


class NoiseType(Enum):
    gaussian = "gaussian"
    ou = "ou"            # Ornstein-Uhlenbeck, as in the DDPG paper


class Progress(Enum):
    auto = "auto"        # a bar in a terminal, log lines otherwise
    bar = "bar"
    lines = "lines"
    none = "none"


@dataclass
class OffPolicyConfig:
    """Keys every algorithm has: the loop's and the replay buffer's, plus the discount and target rate."""

    name: str = MISSING
    gamma: float = MISSING
    tau: float = MISSING
    batch_size: int = MISSING
    buffer_size: int = MISSING
    learning_starts: int = MISSING
    train_freq: int = MISSING
    train_freq_unit: TrainFreqUnit = MISSING
    gradient_steps: int = MISSING


@dataclass
class DQNConfig(OffPolicyConfig):
    lr: float = MISSING
    lr_schedule: LrSchedule = MISSING
    target_update_interval: int = MISSING
    exploration_fraction: float = MISSING
    exploration_initial_eps: float = MISSING
    exploration_final_eps: float = MISSING
    max_grad_norm: float = MISSING
    loss: Loss = MISSING
    double: bool = MISSING
    dueling: bool = MISSING
    n_step: int = MISSING
    prioritized: bool = MISSING
    priority_alpha: float = MISSING
    priority_beta0: float = MISSING
    priority_eps: float = MISSING


@dataclass
class NoiseConfig:
    type: NoiseType = MISSING
    sigma: float = MISSING
    theta: float = MISSING


@dataclass
class DDPGConfig(OffPolicyConfig):
    actor_lr: float = MISSING
    critic_lr: float = MISSING
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    critic_weight_decay: float = MISSING
    batch_norm: bool = MISSING
    critic_action_layer: int = MISSING
    final_layer_init: float = MISSING


@dataclass
class TD3Config(DDPGConfig):
    policy_delay: int = MISSING
    target_noise: float = MISSING
    target_noise_clip: float = MISSING


@dataclass
class AtariConfig:
    noop_max: int = MISSING
    frame_skip: int = MISSING
    screen_size: int = MISSING
    frame_stack: int = MISSING
    terminal_on_life_loss: bool = MISSING
    clip_rewards: bool = MISSING


@dataclass
class EnvConfig:
    id: str = MISSING
    kwargs: Dict[str, Any] = field(default_factory=dict)
    total_steps: int = MISSING
    atari: Optional[AtariConfig] = None  # the DQN paper's preprocessing (conf/env/atari.yaml)


@dataclass
class NetworkConfig:
    hidden_sizes: List[int] = MISSING


@dataclass
class EvalConfig:
    every: int = MISSING
    episodes: int = MISSING


@dataclass
class CheckpointConfig:
    every: int = MISSING
    keep: int = MISSING


@dataclass
class LogConfig:
    every: int = MISSING
    progress: Progress = MISSING


@dataclass
class TrainConfig:
    algo: Any = MISSING                  # one of the algorithm schemas above, chosen by the `algo` group
    env: EnvConfig = field(default_factory=EnvConfig)
    seed: int = MISSING
    device: str = MISSING
    gpu_placement: GpuPlacement = MISSING   # a sweep's jobs on several GPUs: spread | pack
    total_steps: int = MISSING
    torch_threads: int = MISSING
    resume: Optional[str] = None         # a run directory to continue
    network: NetworkConfig = field(default_factory=NetworkConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)


#: The algorithm schemas by `algo.name`.
ALGO_SCHEMAS = {"dqn": DQNConfig, "ddpg": DDPGConfig, "td3": TD3Config}


def job_dirname(override_dirname: str, limit: int = 120) -> str:
    """A sweep job's directory name from its overrides: `/` (as in env.id=ALE/Pong-v5) would nest
    directories, and an Optuna trial's overrides easily pass the file system's 255-byte limit, so long
    names are cut and end in a hash of the whole (the full overrides are in the job's .hydra/)."""
    name = override_dirname.replace("/", "_")
    if len(name) <= limit:
        return name
    return f"{name[:limit - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def register() -> None:
    """Store the schemas where conf/ refers to them and the resolver conf/ uses for sweep job directories
    (idempotent: the ConfigStore is a singleton)."""
    OmegaConf.register_new_resolver("rlexp.job_dirname", job_dirname, replace=True)
    store = ConfigStore.instance()
    store.store(name="rlexp_schema", node=TrainConfig)
    for name, schema in ALGO_SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)  # no group: kept out of `--help`'s group list
