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


class Choice(str, Enum):
    """A key with a fixed set of values. A str enum: a typed config's value equals its string (`algo.loss ==
    "huber"`) and formats as it, so code and messages read the same whether they hold the typed config or the
    plain data it was made from."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class GpuPlacement(Choice):
    spread = "spread"    # job i of a sweep on cuda:(i mod number of GPUs)
    pack = "pack"        # every job on cuda:0


#: torch.compile's modes (`compile_mode=`); null picks reduce-overhead on CUDA, default elsewhere.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class LrSchedule(Choice):
    constant = "constant"
    linear = "linear"    # anneal to 0 over the run's planned updates


class Activation(Choice):
    relu = "relu"
    tanh = "tanh"


class Optimizer(Choice):
    adam = "adam"
    rmsprop = "rmsprop"   # A2C's, as SB3 configures it (alpha 0.99, eps algo.rms_prop_eps)


class GoalSelectionStrategy(Choice):
    future = "future"     # a goal achieved later in the same episode (the HER paper's best)
    final = "final"       # the goal achieved at the episode's end
    episode = "episode"   # a goal achieved anywhere in the episode


class TrainFreqUnit(Choice):
    step = "step"
    episode = "episode"  # a round of updates after every train_freq finished episodes


#: sync: the envs step one after the other, in this process; async: each env steps in a worker process, while
#: the learner updates; envpool: EnvPool's C++ threads step them, while the learner updates.
class Vectorization(Choice):
    sync = "sync"
    vars()["async"] = "async"   # (`async` is a Python keyword; OmegaConf matches member names)
    envpool = "envpool"


class Backend(Choice):
    tensorboard = "tensorboard"   # the events files (rlexp plot reads them)
    csv = "csv"                   # metrics.csv and params.csv in the run directory (rlexp/io/trackers.py)
    wandb = "wandb"               # Weights & Biases, online or offline (rlexp[wandb])
    mlflow = "mlflow"             # an MLflow run, in a local SQLite store or on a tracking server (rlexp[mlflow])


class WandbMode(Choice):
    online = "online"
    offline = "offline"
    disabled = "disabled"


class Progress(Choice):
    auto = "auto"        # a bar in a terminal, log lines otherwise
    bar = "bar"
    lines = "lines"
    none = "none"


@dataclass
class OffPolicyConfig:
    """Keys every off-policy algorithm has: the runner's and the replay memory's."""

    name: str = MISSING
    """the algorithm (`algo=<name>`, its module in rlexp/agents/)"""
    gamma: float = MISSING
    """the discount factor of future rewards, in [0, 1]"""
    batch_size: int = MISSING
    """transitions per gradient update, drawn from the replay memory"""
    buffer_size: int = MISSING
    """transitions the replay memory holds (the oldest are overwritten)"""
    learning_starts: int = MISSING
    """env steps of uniformly random actions, and no updates, at the start"""
    train_freq: int = MISSING
    """vector steps (or finished episodes, with train_freq_unit=episode) between rounds of updates"""
    train_freq_unit: TrainFreqUnit = MISSING
    """step | episode: what train_freq counts (episode: one env only, as SB3 < 2.3 and the TD3 paper's code)"""
    gradient_steps: int = MISSING
    """updates per round, per env; -1: one per env step collected in the round"""
    n_step: int = MISSING
    """n-step returns, computed by the replay memory; they stop at episode ends and time limits"""
    prioritized: bool = False
    """proportional prioritized replay (Schaul et al. 2016), for an algorithm whose update reports TD errors (DQN)"""
    priority_alpha: float = 0.6
    """how much prioritization: P(i) ~ p_i^alpha (0 = uniform)"""
    priority_beta0: float = 0.4
    """importance-sampling exponent, annealed linearly to 1 over the run's updates"""
    priority_eps: float = 1.0e-6
    """added to |TD error| so no transition gets priority 0"""
    her: bool = False
    """hindsight experience replay (Andrychowicz et al. 2017) for goal-conditioned Dict envs (rlexp/replay/her.py)"""
    her_n_sampled_goal: int = 4
    """HER: relabelled transitions per real one (each sampled transition relabelled with probability k / (k + 1))"""
    her_goal_selection_strategy: GoalSelectionStrategy = GoalSelectionStrategy.future
    """HER: future | final | episode: which achieved goal a relabelled transition aims at"""


@dataclass
class OnPolicyConfig:
    """Keys every on-policy actor-critic has (PPO, A2C): the rollout's, the advantage estimate's, the loss's."""

    name: str = MISSING
    """the algorithm (`algo=<name>`, its module in rlexp/agents/)"""
    gamma: float = MISSING
    """the discount factor of future rewards, in [0, 1]"""
    gae_lambda: float = MISSING
    """GAE's lambda: 1 = Monte Carlo advantages (cut by the rollout), 0 = one-step TD"""
    n_steps: int = MISSING
    """vector steps per rollout: a rollout is n_steps * env.num_envs samples"""
    lr: float = MISSING
    """the optimizer's learning rate"""
    lr_schedule: LrSchedule = MISSING
    """constant | linear (annealed to 0 over the run's rollouts)"""
    ent_coef: float = MISSING
    """weight of the entropy bonus"""
    vf_coef: float = MISSING
    """weight of the value loss"""
    max_grad_norm: float = MISSING
    """the global gradient norm is clipped to this"""
    normalize_advantage: bool = MISSING
    """advantages to zero mean and unit std within each minibatch"""
    log_std_init: float = MISSING
    """continuous actions: the Gaussian's initial (state-independent) log std"""
    ortho_init: bool = MISSING
    """orthogonal initialisation (SB3's default); false: PyTorch's"""
    use_sde: bool = MISSING
    """continuous actions: gSDE's state-dependent exploration (rlexp/networks/gsde.py)"""
    sde_sample_freq: int = MISSING
    """gSDE: new exploration matrices every N steps of a rollout (-1: only at its start)"""


@dataclass
class NormalizeConfig:
    """SB3's VecNormalize, for every algorithm: statistics shared by the training envs, saved in checkpoints."""

    obs: bool = False
    """observations to (x - mean) / sqrt(var + 1e-8) by running statistics, clipped to +-clip_obs"""
    reward: bool = False
    """rewards divided by the running std of the discounted return (with algo.gamma), clipped to +-clip_reward"""
    clip_obs: float = 10.0
    """the bound of normalized observations"""
    clip_reward: float = 10.0
    """the bound of normalized rewards"""


@dataclass
class AtariConfig:
    """The DQN paper's Atari preprocessing (conf/env/atari.yaml)."""

    noop_max: int = MISSING
    """up to this many no-op actions after each reset: varied starts"""
    frame_skip: int = MISSING
    """repeat each action this many frames; observe the max of the last two"""
    screen_size: int = MISSING
    """grayscale frames resized to screen_size x screen_size"""
    frame_stack: int = MISSING
    """the observation is the last frame_stack frames"""
    terminal_on_life_loss: bool = MISSING
    """a lost life ends the return for training (the game goes on)"""
    clip_rewards: bool = MISSING
    """train on the reward's sign; the raw score is still what is logged"""


@dataclass
class EnvConfig:
    """The environment: any gymnasium id, its keyword arguments, how many step together."""

    id: str = MISSING
    """a gymnasium id (`module:Env-v0` imports module first, which registers it)"""
    kwargs: Dict[str, Any] = field(default_factory=dict)
    """keyword arguments of gymnasium.make (`+env.kwargs.<name>=<value>`)"""
    wrappers: List[Dict[str, Any]] = field(default_factory=list)
    """gymnasium wrappers applied in order to every env the run makes (training, evaluation, eval, load, export),
    each `{_target_: <dotted path>, <its keyword arguments>}`: a gymnasium.Wrapper subclass, or a callable taking the
    env and returning one (rlexp/envs/wrappers.py); not with env.vectorization=envpool"""
    total_steps: int = MISSING
    """the env's default budget in env steps (what total_steps defaults to)"""
    num_envs: int = 1
    """training envs stepping together (a vector env); acting is one forward pass for all"""
    vectorization: Vectorization = Vectorization["sync"]
    """sync (in this process) | async (a worker process per env) | envpool (EnvPool's C++ threads)"""
    atari: Optional[AtariConfig] = None
    """the DQN paper's preprocessing (conf/env/atari.yaml); null for other envs"""
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    """SB3's VecNormalize of observations and rewards"""
    step_timeout: float = 300.0
    """seconds an async worker may take to answer a step or reset before the run ends, naming the env (a worker
    that dies ends it at once)"""


class ImageCnn(Choice):
    nature = "nature"
    impala = "impala"


@dataclass
class ImageConfig:
    """Image observations (a rank-3 Box of uint8 or floats), read by the Nature CNN."""

    enabled: Any = "auto"
    """auto | uint8 | true | false: which rank-3 Boxes the CNN reads, rather than an MLP their values flattened.
    auto: uint8 ones, and float ones shaped as images (a channel axis found, sides the CNN reads), not divided by 255;
    uint8: uint8 ones only (SB3's rule); true: every uint8 or float one; false: none"""
    cnn: ImageCnn = ImageCnn.nature
    """nature (the DQN paper's convolutions, then 512 units) | impala (IMPALA's ResNet: three stacks of a convolution,
    a max pool and two residual blocks, then 256 units; Espeholt et al. 2018, CleanRL's ppo_procgen)"""

    channels_first: Optional[bool] = None
    """null: the channel axis (1, 3 or 4 wide) detected as SB3 does, first (C, H, W) or last (H, W, C); true or
    false: the env's images are channel-first or channel-last, whatever their shape"""


@dataclass
class NetworkConfig:
    """The MLPs of every algorithm."""

    hidden_sizes: List[int] = MISSING
    """hidden layer widths of every MLP (Q-network, actor, critics, policy and value)"""
    activation: Activation = MISSING
    """relu | tanh, after every hidden layer"""
    image: ImageConfig = field(default_factory=ImageConfig)
    """image observations' CNN"""
    # (a dict with a null _target_ rather than null: Hydra sets `network.torso._target_=...` only inside a dict)
    torso: Dict[str, Any] = field(default_factory=lambda: {"_target_": None})
    """what reads the observations before the heads: _target_ null, the observation space decides (flattened,
    one-hot, the CNN for images); or `{_target_: my_package.nets.MyTorso, <its keyword arguments>}`, a torch.nn.Module
    built as MyTorso(observation_space, **kwargs), with an int `out_features`, taking raw (batch, *obs_shape)
    observations to (batch, out_features) float32 features (rlexp/networks/user_torso.py)"""


@dataclass
class EvalConfig:
    """Evaluation on an env of its own: the deterministic policy, or a stochastic policy's draws."""

    every: int = MISSING
    """env steps between evaluations (0: only at the end)"""
    episodes: int = MISSING
    """episodes per evaluation"""
    # Longer than any standard benchmark's episodes (classic control 500, MuJoCo 1000, Atari's 27,000 agent steps of
    # 108,000 frames), so it never cuts one of those; an evaluation of an env that never ends then takes seconds
    # per episode rather than forever.
    max_episode_steps: int = 100_000
    """steps after which an evaluation episode of an env without a time limit of its own is cut, with a warning
    (also rlexp eval's)"""
    num_envs: int = 16
    """how many of an evaluation's episodes step together (at most eval.episodes), one env each, their actions from
    one forward pass; env j plays episodes j, j + num_envs, ..., from its own first reset seed (the evaluation seed
    for env 0, one derived from it for the others: rlexp/runners/evaluation.py's start_seed)"""
    deterministic: bool = True
    """true: the policy's mode (SB3's deterministic=True); false: draws from a stochastic policy (PPO, A2C, SAC),
    from a generator seeded like the evaluation env, as RL Zoo scores Atari and MiniGrid (also rlexp eval's)"""


@dataclass
class CheckpointConfig:
    """Resumable checkpoints (checkpoints/step_<N>.pt)."""

    every: int = MISSING
    """env steps between resumable checkpoints (0: only at the end and on a signal)"""
    keep: int = MISSING
    """how many of them to keep"""


@dataclass
class WandbConfig:
    """Weights & Biases (log.backends=[...,wandb]; rlexp/io/trackers.py)."""

    project: str = "rlexp"
    """the W&B project"""
    entity: Optional[str] = None
    """the W&B team or user (null: your default entity)"""
    group: Optional[str] = None
    """the runs' group (null: a sweep's jobs are grouped by the sweep's directory, a single run has none)"""
    name: Optional[str] = None
    """the run's display name (null: its run directory's name)"""
    mode: Optional[WandbMode] = None
    """online | offline | disabled (null: WANDB_MODE, or online once `wandb login` was run)"""


@dataclass
class MlflowConfig:
    """MLflow (log.backends=[...,mlflow]; rlexp/io/trackers.py)."""

    tracking_uri: Optional[str] = None
    """the tracking server or database (null: MLFLOW_TRACKING_URI, else a local SQLite store, <dir>/mlflow.db, in the
    run's directory, a many-seeds run's, or a sweep's for all its jobs)"""
    experiment: Optional[str] = None
    """the experiment (null: rlexp; a sweep's jobs: the sweep directory's name)"""
    run_name: Optional[str] = None
    """the run's name (null: its run directory's name; a seed's of a many-seeds run: <run dir>/seed_<s>)"""


@dataclass
class LogConfig:
    """The run's scalars (TensorBoard and the other `backends`) and progress."""

    every: int = MISSING
    """env steps between writes of the loss scalars"""
    progress: Progress = MISSING
    """auto (a bar in a terminal, log lines otherwise) | bar | lines | none"""
    heldout_states: int = 1000
    """the learning index's held-out states (charts/avg_q_heldout, the DQN paper's Figure 2); 0 turns it off"""
    backends: List[Backend] = field(default_factory=lambda: [Backend.tensorboard])
    """where the scalars go, any combination: tensorboard (the events files) | csv (metrics.csv, params.csv) |
    wandb (Weights & Biases) | mlflow (MLflow)"""
    wandb: WandbConfig = field(default_factory=lambda: WandbConfig())
    """the W&B run, with log.backends=[...,wandb]"""
    mlflow: MlflowConfig = field(default_factory=lambda: MlflowConfig())
    """the MLflow run, with log.backends=[...,mlflow]"""


@dataclass
class StopConfig:
    """Ending a run once it is solved (rlexp/runners/stopping.py)."""

    window: int = 100
    """training episodes the mean_return rule averages over"""
    mean_return: Optional[float] = None
    """solved when the last `window` training episodes average this (null: no such rule)"""
    eval_return: Optional[float] = None
    """solved when a deterministic evaluation averages this (null: no such rule)"""


@dataclass
class OptunaTrialConfig:
    """The Optuna trial a run reports its evaluations to: set by the hparams_search sweeper (rlexp/sweeps/search.py),
    not typed by hand; the run's checkpoints keep it, so a resumed trial reports to the same trial."""

    storage: Optional[str] = None
    """the study's storage, an Optuna database URL (sqlite:///..., postgresql://...); null: the run is no trial"""
    study: Optional[str] = None
    """the study's name"""
    number: Optional[int] = None
    """the trial's number in the study"""
    seeds: List[int] = field(default_factory=list)
    """the trial's seeds: an evaluation step is reported once every seed has evaluated there"""
    aggregate: str = "iqm"
    """how the seeds' mean evaluation returns make the reported value: iqm | mean | median | min"""
    pruner: Any = None
    """the study's pruner, `{_target_: optuna.pruners.MedianPruner, <kwargs>}` (null: no pruning; typed Any so that
    the sweeper's override sets the whole mapping)"""


@dataclass
class TrainConfig:
    """`rlexp train`'s config: one config group per concern (conf/), every key typed and documented here."""

    algo: Any = MISSING
    """the algorithm's keys: its schema (in its module under rlexp/agents/), chosen by `algo=`"""
    env: EnvConfig = field(default_factory=EnvConfig)
    """the environment, chosen by `env=`"""
    seed: int = MISSING
    """seeds torch, numpy, the envs (env i with seed + i), replay sampling and exploration"""
    seeds: Optional[List[int]] = None
    """many seeds as one batched model in one process: seed_<s>/ per seed (null: one run, of `seed`)"""
    device: str = MISSING
    """auto (CUDA when available) | cpu | cuda | cuda:N"""
    gpu_placement: GpuPlacement = MISSING
    """a sweep's jobs on several GPUs: spread (job i on cuda:(i mod N)) | pack (all on cuda:0)"""
    total_steps: int = MISSING
    """env steps to train for, summed over the envs (default: the env's budget)"""
    total_episodes: Optional[int] = None
    """a budget in training episodes (total_steps stays the cap); null: none"""
    stop: StopConfig = field(default_factory=StopConfig)
    """ending the run once it is solved"""
    callbacks: List[Dict[str, Any]] = field(default_factory=list)
    """the user's code in the loop: `[{_target_: my_package.MyCallback, <kwargs>}]`, called at run start, each
    vector step, ended episodes, each evaluation and checkpoint, and run end (rlexp/runners/callbacks.py)"""
    torch_threads: int = MISSING
    """torch CPU threads; 0: all cores for a single run, the launcher's share in a sweep"""
    compile: Any = MISSING
    """true | false | auto (on for CUDA, off on the CPU): the agent's updates through torch.compile"""
    compile_mode: Optional[str] = None
    """torch.compile's mode; null: reduce-overhead on CUDA, default elsewhere"""
    resume: Optional[str] = None
    """a run directory to continue, exactly"""
    optuna_trial: OptunaTrialConfig = field(default_factory=OptunaTrialConfig)
    """set by the hparams_search sweeper: the Optuna trial this run reports its evaluations to (storage null:
    none)"""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """the MLPs' widths and activation"""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """deterministic evaluations during the run"""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """resumable checkpoints"""
    log: LogConfig = field(default_factory=LogConfig)
    """TensorBoard scalars and progress"""
