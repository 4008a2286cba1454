"""One training job, from its validated config (a plain dict) to its results: build everything, run, report."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Generator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from rlexp.agents.base import BuildContext
from rlexp.agents.compiled import compile_agent, compile_enabled, compile_mode
from rlexp.agents.contracts import OffPolicyAgent, OnPolicyAgent
from rlexp.agents.registry import check_fits
from rlexp.config import registry
from rlexp.config.schema import OffPolicyConfig, TrainConfig
from rlexp.config.typed import train_config
from rlexp.config.validate import EVAL_SEED_OFFSET
from rlexp.envs import SpaceInfo, atari_settings, describe_spaces, make_env, make_vector_env
from rlexp.envs.checks import EnvCallError
from rlexp.envs.normalization import make_normalization, standardised
from rlexp.envs.workers import EnvWaitAbandoned
from rlexp.errors import ConfigError, RunFailure, TrainingInterrupted
from rlexp.io import shown_path
from rlexp.io.checkpoints import CheckpointManager
from rlexp.io.metrics import RunLogger
from rlexp.io.trackers import MlflowSettings, WandbSettings
from rlexp.networks.user_torso import check_user_torso, resolve_torso
from rlexp.replay import Hindsight, Priorities, ReplayBuffer, make_replay
from rlexp.rollouts.storage import RolloutStorage
from rlexp.runners.callbacks import Callbacks, Entry, Run, build_callbacks
from rlexp.runners.collector import Collector
from rlexp.runners.context import Evaluator, Every, RunContext
from rlexp.runners.faults import Stop, signal_of
from rlexp.runners.goals import goals_of
from rlexp.runners.heldout import HELDOUT_SEED_OFFSET, collect_heldout_states
from rlexp.runners.memory import check_host_memory, check_memory
from rlexp.runners.off_policy import OffPolicyRunner, OffPolicySettings, planned_updates
from rlexp.runners.on_policy import OnPolicyRunner, OnPolicySettings, planned_steps
from rlexp.runners.requests import Built, Call, Steps, serve
from rlexp.runners.stopping import StopRules, StopWatch

log = logging.getLogger("rlexp")

#: The key of every checkpoint: the seeds of the many-seeds run that trained it as one model, None for a single run's
#: (a seed resumed alone). A batch resume tells by it a seed's own later training from the batch's (accept.py).
BATCH_KEY = "batch_seeds"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_deterministic(device: torch.device) -> None:
    """cuDNN picks convolution algorithms by timing them, and some are not deterministic: fix them, so that the
    same seed gives the same run on a GPU too (the Nature CNN is the one convolutional network here)."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def obs_dtype(spaces: SpaceInfo) -> torch.dtype:
    """The torch dtype replay and rollouts keep observations in: their own (SpaceInfo.obs_dtype)."""
    return torch.from_numpy(np.zeros(0, spaces.obs_dtype)).dtype


class Job:
    """One training run of a validated config. `prepare` checks what only the env and the machine can tell (the
    algorithm fits the env's spaces, the run fits in memory) and writes nothing; `run` trains in the run
    directory."""

    def __init__(self, config: dict[str, Any], settings: TrainConfig, spec: registry.AlgoSpec,
                 device: torch.device, eval_env: gym.Env, spaces: SpaceInfo, callbacks: list[Entry]) -> None:
        # `config` as the train command validated it: plain data, what the run saves (checkpoints, TensorBoard's
        # hyperparameters, a seed's .hydra/); `settings`, the same as its schema's objects, what the job reads.
        self.config, self.settings, self.spec, self.device = config, settings, spec, device
        # compile= applies to this job's agent; a seed of a many-seeds run leaves it to the batched agent
        self.compiles = True
        self.batch: list[int] | None = None   # the seeds of the many-seeds run it is one of
        # a sweep's directory: its trackers group its jobs' runs by it (W&B's group, MLflow's store and experiment)
        self.tracking_group: str | None = None
        self.eval_env, self.spaces = eval_env, spaces
        self.callbacks = callbacks   # built from the config's `callbacks`, before anything trains

    @classmethod
    def prepare(cls, config: dict[str, Any], spec: registry.AlgoSpec, device: torch.device, copies: int = 1) -> Job:
        settings = train_config(config, spec.schema)
        env_cfg = settings.env
        atari = atari_settings(env_cfg.atari)
        if atari is not None:  # making the env allocates its observation space: (frame_stack, size, size) bounds
            check_host_memory("env.atari.screen_size", atari.screen_size,
                              8.0 * atari.frame_stack * atari.screen_size ** 2, "the Atari observation space")
        eval_env = make_env(env_cfg.id, env_cfg.kwargs, atari, wrappers=env_cfg.wrappers)
        try:
            torso = settings.network.torso.get("_target_") if settings.network.torso else None
            spaces = describe_spaces(eval_env.observation_space, eval_env.action_space, env_cfg.id,
                                     image_channels_first=settings.network.image.channels_first,
                                     image_enabled=settings.network.image.enabled,
                                     image_cnn=settings.network.image.cnn,
                                     stacked=atari is not None, torso=torso is not None)
            check_fits(spec, spaces)
            # network.torso: the user's module built and tried on a batch of the env's observations
            check_user_torso(settings.network.torso, spaces.obs_space)
            if getattr(settings.algo, "use_sde", False) and not spaces.continuous:   # (PPO's, A2C's, SAC's key)
                raise ConfigError(f"algo.use_sde=true is gSDE, exploration noise for continuous actions, but "
                                  f"{spaces.description} has discrete actions; use algo.use_sde=false")
            if env_cfg.normalize.obs and spaces.frames:
                raise ConfigError(f"env.normalize.obs=true on {spaces.description}: images are read by the CNN as "
                                  f"they are (uint8 ones scaled to [0, 1]), not standardised; use "
                                  f"env.normalize.obs=false")
            if env_cfg.normalize.obs and spaces.multi_input and not standardised(spaces.entries):
                raise ConfigError(f"env.normalize.obs=true on {spaces.description}: only its float vector entries "
                                  f"would be standardised, and it has none; use env.normalize.obs=false")
            if env_cfg.normalize.obs and not isinstance(spaces.obs_space, gym.spaces.Box):
                raise ConfigError(f"env.normalize.obs=true on {spaces.description}: only Box observations are "
                                  f"standardised (Discrete and MultiDiscrete are one-hot encoded, MultiBinary is "
                                  f"0/1); use env.normalize.obs=false")
            if getattr(settings.algo, "her", False):   # (an off-policy algorithm's key)
                goals_of(spaces, eval_env)
            check_memory(settings, spec, spaces, device, copies)   # copies: the seeds of a many-seeds run
            callbacks = build_callbacks(config.get("callbacks") or [])
        except BaseException:
            eval_env.close()
            raise
        return cls(config, settings, spec, device, eval_env, spaces, callbacks)

    def run(self, run_dir: Path, stop: Stop, overrides: list[str],
            resume: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train (or continue, from the `resume` checkpoint) in `run_dir`; returns the results written to
        results.json."""
        steps = self.steps(run_dir, stop, overrides, resume)
        built = next(steps)
        assert isinstance(built, Built)   # a job yields its agent first, then only calls
        return serve(cast("Steps[dict[str, Any]]", steps), built.agent)

    def steps(self, run_dir: Path, stop: Stop, overrides: list[str],
              resume: dict[str, Any] | None = None) -> Generator[Built | Call, Any, dict[str, Any]]:
        """`run` as a generator: it yields its agent once built (`Built`), then the calls its runner makes to the
        agent (runners/requests.py), so a driver may answer them for many seeds' jobs at once."""
        with ExitStack() as cleanup:
            cleanup.callback(self.eval_env.close)
            started = time.perf_counter()
            config, spec, device, spaces = self.settings, self.spec, self.device, self.spaces
            algo, env_cfg, seed = config.algo, config.env, config.seed
            total_steps, num_envs = config.total_steps, env_cfg.num_envs
            # Before anything starts a thread (TensorBoard's writer).
            envs = make_vector_env(env_cfg.id, env_cfg.kwargs, atari_settings(env_cfg.atari), num_envs,
                                   env_cfg.vectorization, seed, env_cfg.step_timeout, env_cfg.wrappers)
            cleanup.callback(envs.close)
            make_deterministic(device)
            seed_everything(seed)
            normalization = make_normalization(env_cfg.normalize, algo.gamma, spaces.obs_shape, num_envs,
                                               spaces.entries)
            on_policy = spec.family is registry.Family.ON_POLICY
            if on_policy:
                total_steps = planned_steps(total_steps, algo.n_steps, num_envs)
                replay, updates = None, 0
            else:
                replay, updates = self.make_replay(total_steps)
            agent = spec.build(algo, BuildContext(
                spaces=spaces, hidden_sizes=tuple(config.network.hidden_sizes), total_steps=total_steps,
                planned_updates=updates, num_envs=num_envs, device=device, seed=seed, replay=replay,
                activation=config.network.activation, torso=resolve_torso(config.network.torso)))
            if resume is not None:
                agent.load_state_dict(resume["agent"])
            if self.compiles:
                agent = compile_agent(agent, config.compile, config.compile_mode, device)
            yield Built(agent, replay)

            start_step = resume["step"] if resume is not None else 0
            compiled = compile_mode(config.compile_mode, device) if compile_enabled(config.compile, device) \
                else None
            log.info("%s on %s, %d steps, %d env(s) (%s), seed %d, device %s, %d torch threads, compile %s -> %s",
                     spec.name, env_cfg.id, total_steps, num_envs, env_cfg.vectorization, seed, device,
                     torch.get_num_threads(), f"on ({compiled})" if compiled else "off", run_dir)
            if total_steps != config.total_steps:
                log.info("total_steps=%d rounded up to whole rollouts of algo.n_steps=%d x env.num_envs=%d: %d",
                         config.total_steps, algo.n_steps, num_envs, total_steps)
            evaluator = Evaluator(self.eval_env, config.eval.episodes, seed + EVAL_SEED_OFFSET, normalization,
                                  config.eval.max_episode_steps, lambda: signal_of(stop), config.eval.deterministic,
                                  device, config.eval.num_envs,
                                  lambda: make_env(env_cfg.id, env_cfg.kwargs, atari_settings(env_cfg.atari),
                                                   wrappers=env_cfg.wrappers))
            cleanup.callback(evaluator.close)
            checkpoints = CheckpointManager(run_dir / "checkpoints", config.checkpoint.keep)
            wandb, mlflow = config.log.wandb, config.log.mlflow
            group = wandb.group or (shown_path(self.tracking_group) if self.tracking_group else None)
            logger = RunLogger(run_dir, total_steps, start_step, config.log.progress, self.config,
                               tuple(str(backend) for backend in config.log.backends),
                               WandbSettings(wandb.project, wandb.entity, group, wandb.name,
                                             str(wandb.mode) if wandb.mode else None),
                               MlflowSettings(mlflow.tracking_uri, mlflow.experiment, mlflow.run_name,
                                              self.tracking_group, self.batch is not None))
            context = RunContext(
                run_dir=run_dir, logger=logger, checkpoints=checkpoints,
                evaluator=evaluator,
                stop=stop,
                every=Every(log=config.log.every, eval=config.eval.every, checkpoint=config.checkpoint.every),
                total_steps=total_steps, device=device, watch=StopWatch(StopRules.from_config(self.config)),
                heldout=self.heldout_states(),
                callbacks=Callbacks(self.callbacks, Run(run_dir, seed, total_steps, self.config,
                                                        _log=logger.scalars)) if self.callbacks else None,
                meta={"algo": spec.name, "env_id": env_cfg.id, "config": self.config, "overrides": overrides,
                      "device": str(device), BATCH_KEY: self.batch})
            collector = Collector(envs, seed, env_cfg.id, normalization, lambda: signal_of(stop))
            # The family's runner: its agents keep the family's protocol (the registry's contract,
            # tests/test_conformance.py), which AlgoSpec.build's type does not say.
            if on_policy:
                runner: OffPolicyRunner | OnPolicyRunner = OnPolicyRunner(
                    cast(OnPolicyAgent, agent), collector,
                    RolloutStorage(algo.n_steps, num_envs, spaces.obs_shape, spaces.action_shape, spaces.discrete,
                                   device, obs_dtype(spaces)),
                    OnPolicySettings(total_steps=total_steps, n_steps=algo.n_steps, num_envs=num_envs,
                                     gamma=algo.gamma, gae_lambda=algo.gae_lambda), context)
            else:
                assert replay is not None   # made for every off-policy run
                runner = OffPolicyRunner(cast(OffPolicyAgent, agent), collector, replay, OffPolicySettings(
                    total_steps=total_steps, learning_starts=algo.learning_starts, train_freq=algo.train_freq,
                    train_freq_unit=algo.train_freq_unit, gradient_steps=algo.gradient_steps,
                    batch_size=algo.batch_size, num_envs=num_envs), context)
            completed = False
            try:
                result = yield from runner.steps(resume)
                completed = True
            except RunFailure as error:
                last = checkpoints.latest()
                raise type(error)(f"{error}; " + (f"the last good checkpoint is {last}" if last else
                                                  "no checkpoint had been written yet")) from None
            except EnvWaitAbandoned as abandoned:   # a signal, and an env worker that cannot finish its step
                last = checkpoints.latest()
                raise TrainingInterrupted(abandoned.signum, runner.step, str(last) if last else None,
                                          abandoned.waiting) from None
            finally:
                try:
                    logger.close(completed)   # (raises only for a completed run: a failed one reports its own error)
                except RunFailure as error:
                    raise RunFailure(f"{error}; the run trained to the end: its last checkpoint is "
                                     f"{checkpoints.latest()}") from None
        try:
            results = context.write_results(result, start_step, time.perf_counter() - started)
        except RunFailure as error:   # a full disk: the training and its checkpoints are whole
            logger.end(completed=False)
            raise RunFailure(f"{error}; the run trained to the end: its checkpoints are saved (the last is "
                             f"{checkpoints.latest()}, the final agent {checkpoints.directory / 'final.pt'})") from None
        logger.end()   # the other trackers (W&B saves results.json)
        ended = {"solved": f"solved at step {results['solved_at_step']} (episode {results['solved_at_episode']}), ",
                 "total_episodes": f"{results['episodes']} episodes at step {results['total_steps']}, ",
                 "callback": f"stopped by {results.get('stop_reason')}, ", "total_steps": ""}[results["stopped_by"]]
        log.info("done: %seval return %.2f +/- %.2f over %d episodes, %.0f SPS, %.1f s -> %s", ended,
                 results["eval_return_mean"], results["eval_return_std"], len(result.eval_returns),
                 results["sps"], results["wall_time_s"], run_dir)
        context.run_ended(results)
        return results

    def heldout_states(self) -> np.ndarray | None:
        """The learning index's states, met by a random policy on the evaluation env before training (each
        evaluation resets that env with its own seed, so they change nothing there); a resumed run replaces them
        with its checkpoint's."""
        count = self.settings.log.heldout_states
        if not count:
            return None
        try:
            return collect_heldout_states(self.eval_env, count, self.settings.seed + HELDOUT_SEED_OFFSET)
        except EnvCallError as error:
            raise error.at(0, where=" (the evaluation env, collecting held-out states)") from None

    def make_replay(self, total_steps: int) -> tuple[ReplayBuffer, int]:
        """The off-policy replay memory, and the updates the run will make (what its schedules span)."""
        algo: OffPolicyConfig = self.settings.algo
        num_envs, spaces = self.settings.env.num_envs, self.spaces
        updates = planned_updates(algo, total_steps, num_envs)
        replay = make_replay(
            capacity=min(algo.buffer_size, total_steps), obs_shape=spaces.obs_shape,
            action_shape=spaces.action_shape, discrete=spaces.discrete, image=spaces.stacked,
            single_image=spaces.stored_once and not spaces.stacked,
            device=self.device, seed=self.settings.seed,
            num_envs=num_envs, n_step=algo.n_step, gamma=algo.gamma,
            obs_dtype=obs_dtype(spaces),
            priorities=Priorities(algo.priority_alpha, algo.priority_beta0, algo.priority_eps, updates)
            if algo.prioritized else None,
            # HER: the goals in the packed observations, the rewards from the (evaluation) env's compute_reward
            hindsight=Hindsight(goals_of(spaces, self.eval_env), algo.her_n_sampled_goal,
                                str(algo.her_goal_selection_strategy)) if algo.her else None)
        return replay, updates
