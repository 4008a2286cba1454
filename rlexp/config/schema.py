"""The typed schema of `rlexp train`'s config (registered in Hydra's ConfigStore by rlexp/commands/configstore.py).

The YAML files under conf/ hold the values; these dataclasses hold the types. Each YAML file names its
schema in its defaults list (`/dqn_schema@_here_`), so Hydra checks every key and type while it
composes: `algo.lrr=1` (no such key), `algo.gamma=abc` (not a float) or `algo.lr_schedule=cosine`
(not one of the choices) fail before any code of ours runs. Ranges and cross-field rules, which a
type cannot express, are checked by `rlexp.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


class GpuPlacement(Enum):
    spread = "spread"    # job i of a sweep on cuda:(i mod number of GPUs)
    pack = "pack"        # every job on cuda:0


#: torch.compile's modes (`compile_mode=`); null picks reduce-overhead on CUDA, default elsewhere.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class LrSchedule(Enum):
    constant = "constant"
    linear = "linear"    # anneal to 0 over the run's planned updates


class Activation(Enum):
    relu = "relu"
    tanh = "tanh"


class Optimizer(Enum):
    adam = "adam"
    rmsprop = "rmsprop"   # A2C's, as SB3 configures it (alpha 0.99, eps algo.rms_prop_eps)


class TrainFreqUnit(Enum):
    step = "step"
    episode = "episode"  # a round of updates after every train_freq finished episodes


#: sync: the envs step one after the other, in this process; async: each env steps in a worker process, while
#: the learner updates; envpool: EnvPool's C++ threads step them, while the learner updates. (The functional
#: form: `async` is a Python keyword, and OmegaConf matches member names.)
Vectorization = Enum("Vectorization", [("sync", "sync"), ("async", "async"), ("envpool", "envpool")])


class Progress(Enum):
    auto = "auto"        # a bar in a terminal, log lines otherwise
    bar = "bar"
    lines = "lines"
    none = "none"


@dataclass
class OffPolicyConfig:
    """Keys every off-policy algorithm has: the runner's and the replay memory's."""

    name: str = MISSING
    gamma: float = MISSING
    batch_size: int = MISSING
    buffer_size: int = MISSING
    learning_starts: int = MISSING
    train_freq: int = MISSING
    train_freq_unit: TrainFreqUnit = MISSING
    gradient_steps: int = MISSING
    n_step: int = MISSING


@dataclass
class OnPolicyConfig:
    """Keys every on-policy actor-critic has (PPO, A2C): the rollout's, the advantage estimate's, the loss's."""

    name: str = MISSING
    gamma: float = MISSING
    gae_lambda: float = MISSING             # GAE's lambda: 1 = Monte Carlo advantages (cut by the rollout), 0 = TD
    n_steps: int = MISSING                  # vector steps per rollout: a rollout is n_steps * env.num_envs samples
    lr: float = MISSING
    lr_schedule: LrSchedule = MISSING       # linear: annealed to 0 over the run's rollouts
    ent_coef: float = MISSING               # weight of the entropy bonus
    vf_coef: float = MISSING                # weight of the value loss
    max_grad_norm: float = MISSING          # the global gradient norm is clipped to this
    normalize_advantage: bool = MISSING     # advantages to zero mean, unit std within each minibatch
    log_std_init: float = MISSING           # continuous actions: the Gaussian's initial (state-independent) log std
    ortho_init: bool = MISSING              # orthogonal initialisation (SB3's default); false: PyTorch's
    use_sde: bool = MISSING                 # continuous actions: gSDE's state-dependent exploration (networks/gsde.py)
    sde_sample_freq: int = MISSING          # gSDE: new exploration matrices every N steps of a rollout (-1: at start)


@dataclass
class NormalizeConfig:
    """SB3's VecNormalize, for every algorithm: statistics shared by the training envs, saved in checkpoints."""

    obs: bool = False          # observations to (x - mean) / sqrt(var + 1e-8) by running statistics, clipped
    reward: bool = False       # rewards divided by the running std of the discounted return (algo.gamma), clipped
    clip_obs: float = 10.0
    clip_reward: float = 10.0


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
    num_envs: int = 1                        # training envs stepping together (a gymnasium vector env)
    vectorization: Vectorization = Vectorization["sync"]
    atari: Optional[AtariConfig] = None  # the DQN paper's preprocessing (conf/env/atari.yaml)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)


@dataclass
class NetworkConfig:
    hidden_sizes: List[int] = MISSING
    activation: Activation = MISSING


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
    heldout_states: int = 1000     # the learning index's held-out states (charts/avg_q_heldout); 0 turns it off


@dataclass
class StopConfig:
    """Ending a run once it is solved (rlexp/runners/stopping.py)."""

    window: int = 100                       # training episodes the mean_return rule averages over
    mean_return: Optional[float] = None     # solved when the last `window` training episodes average this
    eval_return: Optional[float] = None     # solved when a deterministic evaluation averages this


@dataclass
class TrainConfig:
    algo: Any = MISSING                  # an algorithm's schema (its module in rlexp/agents/), chosen by `algo=`
    env: EnvConfig = field(default_factory=EnvConfig)
    seed: int = MISSING
    seeds: Optional[List[int]] = None    # many seeds as one model in one process: seed_<s>/ per seed
    device: str = MISSING
    gpu_placement: GpuPlacement = MISSING   # a sweep's jobs on several GPUs: spread | pack
    total_steps: int = MISSING
    total_episodes: Optional[int] = None     # a budget in training episodes (total_steps stays the cap)
    stop: StopConfig = field(default_factory=StopConfig)
    torch_threads: int = MISSING
    compile: Any = MISSING               # true | false | auto: the agent's updates through torch.compile
    compile_mode: Optional[str] = None   # torch.compile's mode; null: reduce-overhead on CUDA, default elsewhere
    resume: Optional[str] = None         # a run directory to continue
    network: NetworkConfig = field(default_factory=NetworkConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
