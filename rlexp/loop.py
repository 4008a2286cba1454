"""The one off-policy loop every agent runs in: act, step, store, update, log, evaluate, checkpoint."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from rlexp.agents.base import Agent
from rlexp.buffers import ReplayBuffer
from rlexp.checkpoint import FORMAT, CheckpointManager
from rlexp.envs import episode_start, replay_episode
from rlexp.errors import EnvFault, TrainingInterrupted
from rlexp.evaluate import evaluate
from rlexp.faults import NonFiniteGuard, StopRequest, check_transition
from rlexp.metrics import RunLogger, StepTimer

log = logging.getLogger("rlexp")


@dataclass(frozen=True)
class LoopSettings:
    total_steps: int        # environment steps
    learning_starts: int    # uniformly random actions, and no updates, for this many steps
    train_freq: int         # env steps (or episodes, see train_freq_unit) between rounds of updates
    gradient_steps: int     # updates per round; -1: one per env step collected in the round (SB3's -1)
    batch_size: int
    eval_every: int         # env steps between evaluations (0: only at the end)
    eval_episodes: int
    checkpoint_every: int   # env steps between periodic checkpoints (0: none besides the end and interrupts)
    log_every: int          # env steps between scalar writes
    seed: int
    # "episode": a round of updates after every `train_freq` finished episodes, with the policy fixed while
    # they run (SB3 < 2.3's default, and the TD3 paper's original code).
    train_freq_unit: Literal["step", "episode"] = "step"


@dataclass(frozen=True)
class LoopResult:
    eval_returns: np.ndarray   # returns of the final evaluation's episodes
    best_eval_return: float
    steps: int
    episodes: int
    wall_time_s: float
    sps: float


@dataclass
class LoopState:
    """Where the loop stands: with the agent and the replay buffer, all a resumed run needs."""

    step: int = 0
    episodes: int = 0
    episode_return: float = 0.0
    episode_length: int = 0
    best_eval_return: float = -math.inf
    obs: np.ndarray | None = None
    episode_start: dict[str, Any] = field(default_factory=dict)   # how the current episode was reset
    episode_actions: list[Any] = field(default_factory=list)      # its actions so far, to rebuild the env
    steps_since_train: int = 0      # env steps, and finished episodes, since the last round of updates
    episodes_since_train: int = 0

    def state_dict(self, env: gym.Env) -> dict[str, Any]:
        actions = np.asarray(self.episode_actions) if self.episode_actions else np.zeros((0,))
        return {
            "step": self.step, "episodes": self.episodes, "episode_return": self.episode_return,
            "episode_length": self.episode_length, "best_eval_return": self.best_eval_return,
            "obs": torch.as_tensor(np.asarray(self.obs)), "episode_start": self.episode_start,
            "episode_actions": torch.as_tensor(actions),
            "action_space_rng": env.action_space.np_random.bit_generator.state,
            "steps_since_train": self.steps_since_train, "episodes_since_train": self.episodes_since_train,
        }


def _restore(state: dict[str, Any], env: gym.Env, seed: int) -> LoopState:
    """The loop state of a checkpoint, with the env brought back to the same point of the same episode."""
    loop = LoopState(step=int(state["step"]), episodes=int(state["episodes"]),
                     episode_return=float(state["episode_return"]), episode_length=int(state["episode_length"]),
                     best_eval_return=float(state["best_eval_return"]), episode_start=state["episode_start"],
                     # absent from checkpoints made before train_freq_unit existed, where 0 is exact
                     steps_since_train=int(state.get("steps_since_train", 0)),
                     episodes_since_train=int(state.get("episodes_since_train", 0)))
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    actions = [int(a) if discrete else a.numpy() for a in state["episode_actions"]]
    obs = replay_episode(env, loop.episode_start, actions, state["obs"].numpy(), loop.episode_return)
    if obs is None:
        log.warning("%s did not replay its current episode identically (its dynamics are not a function of "
                    "its seed and actions); the resumed run starts a fresh episode, so it will not match an "
                    "uninterrupted one exactly", env.spec.id if env.spec else "the env")
        loop.episode_start = {"seed": seed + loop.episodes + 1}
        obs, _ = env.reset(seed=seed + loop.episodes + 1)
        loop.episode_return, loop.episode_length, actions = 0.0, 0, []
    loop.obs, loop.episode_actions = obs, actions
    env.action_space.np_random.bit_generator.state = state["action_space_rng"]
    return loop


def run(agent: Agent, env: gym.Env, eval_env: gym.Env, buffer: ReplayBuffer, settings: LoopSettings,
        logger: RunLogger, checkpoints: CheckpointManager, meta: dict[str, Any], stop: StopRequest,
        resume: dict[str, Any] | None = None) -> LoopResult:
    """Train `agent` on `env` until `settings.total_steps` environment steps.

    `meta` (algo, env id, config) goes into every checkpoint. `resume` is a checkpoint bundle whose agent
    state the caller has loaded; the loop restores the rest (replay, counters, generators, env episode).
    Stops early, after saving a checkpoint, when `stop` has caught a signal.
    """
    s = settings
    guard = NonFiniteGuard()
    metrics: dict[str, torch.Tensor] = {}
    if resume is None:
        env.action_space.seed(s.seed)
        obs, _ = env.reset(seed=s.seed)
        state = LoopState(obs=obs, episode_start=episode_start(env, s.seed))
        agent.on_episode_start()
    else:
        buffer.load_state_dict(resume["replay"])
        state = _restore(resume["loop"], env, s.seed)
        metrics = resume["metrics"]
        torch.set_rng_state(resume["rng"]["torch"])
        if torch.cuda.is_available() and resume["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(resume["rng"]["cuda"])
    start_step = state.step
    timer = StepTimer(start_step)

    def policy_bundle() -> dict[str, Any]:
        return {"format": FORMAT, "kind": "policy", "step": state.step, **meta, "agent": agent.state_dict()}

    def resume_bundle() -> dict[str, Any]:
        guard.check()  # never write a diverged agent over a good checkpoint
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {**policy_bundle(), "kind": "resume", "replay": buffer.state_dict(), "loop": state.state_dict(env),
                "metrics": metrics, "rng": {"torch": torch.get_rng_state(), "cuda": cuda}}

    def evaluate_and_keep_best() -> np.ndarray:
        guard.check()
        returns = evaluate(lambda o: agent.act(o, explore=False), eval_env, s.eval_episodes, seed=s.seed + 10_000)
        logger.evaluation(float(returns.mean()), float(returns.std()), state.step)
        if returns.mean() > state.best_eval_return:
            state.best_eval_return = float(returns.mean())
            checkpoints.save_best(policy_bundle())
        return returns

    while state.step < s.total_steps:
        state.step += 1
        step = state.step
        if step <= s.learning_starts:
            action = env.action_space.sample()
        else:
            action = agent.act(state.obs, explore=True, step=step)
        next_obs, reward, terminated, truncated, info = env.step(action)
        try:
            check_transition(step, action, next_obs, float(reward))
        except EnvFault:
            guard.check()  # a diverged agent acting NaN is the root cause; name it rather than the env
            raise
        # Store `terminated` only: a time-limit truncation is not a terminal state, so targets still bootstrap.
        # Atari: training may see the clipped reward and treat a lost life as terminal (envs.TrainingSignals);
        # the returns logged below stay the raw game score.
        buffer.add(state.obs, action, float(info.get("training_reward", reward)), next_obs,
                   bool(terminated or info.get("life_lost", False)), bool(truncated))
        state.episode_actions.append(action)
        state.episode_return += float(reward)
        state.episode_length += 1
        state.steps_since_train += 1
        if terminated or truncated:
            state.episodes += 1
            state.episodes_since_train += 1
            logger.episode(state.episode_return, state.episode_length, step)
            state.episode_return, state.episode_length, state.episode_actions = 0.0, 0, []
            state.episode_start = episode_start(env, None)
            state.obs, _ = env.reset()
            agent.on_episode_start()
        else:
            state.obs = next_obs

        if s.train_freq_unit == "episode":
            train_now = state.episodes_since_train >= s.train_freq
        else:
            train_now = step % s.train_freq == 0
        if train_now:
            if step > s.learning_starts:
                n_updates = state.steps_since_train if s.gradient_steps == -1 else s.gradient_steps
                for _ in range(n_updates):
                    metrics = agent.update(buffer.sample(s.batch_size))
                    guard.observe(metrics, step)
            state.steps_since_train = state.episodes_since_train = 0

        if step % s.log_every == 0:
            guard.check()
            sps = timer.sps(step)
            # The only device-to-host sync of the metrics: once per log_every steps.
            scalars = {tag: float(value) for tag, value in metrics.items()}
            scalars.update(agent.exploration_metrics(step))
            scalars["charts/SPS"] = sps
            logger.scalars(scalars, step)
            logger.progress(step, sps)
        if s.eval_every and step % s.eval_every == 0 and step < s.total_steps:
            evaluate_and_keep_best()
        saved: Path | None = None
        if s.checkpoint_every and step % s.checkpoint_every == 0 and step < s.total_steps:
            saved = checkpoints.save_periodic(resume_bundle(), step)
        if stop.signum is not None:
            saved = saved or checkpoints.save_periodic(resume_bundle(), step)
            raise TrainingInterrupted(stop.signum, step, str(saved))

    wall_time = timer.elapsed()
    sps = (state.step - start_step) / max(wall_time, 1e-9)
    logger.progress(state.step, sps)
    final_returns = evaluate_and_keep_best()
    checkpoints.save_periodic(resume_bundle(), state.step)  # to extend the run later: resume with more steps
    checkpoints.save_final(policy_bundle())
    return LoopResult(final_returns, state.best_eval_return, state.step, state.episodes, wall_time, sps)
