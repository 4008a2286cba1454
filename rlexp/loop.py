"""The one off-policy loop every agent runs in: act, step, store, update, log, evaluate, checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlexp.agents.base import Agent
from rlexp.buffers import ReplayBuffer
from rlexp.checkpoint import CheckpointManager
from rlexp.evaluate import evaluate
from rlexp.metrics import RunLogger, StepTimer


@dataclass(frozen=True)
class LoopSettings:
    total_steps: int        # environment steps
    learning_starts: int    # uniformly random actions, and no updates, for this many steps
    train_freq: int         # env steps between rounds of updates
    gradient_steps: int     # updates per round
    batch_size: int
    eval_every: int         # env steps between evaluations (0: only at the end)
    eval_episodes: int
    checkpoint_every: int   # env steps between periodic checkpoints (0: none)
    log_every: int          # env steps between scalar writes
    seed: int


@dataclass(frozen=True)
class LoopResult:
    eval_returns: np.ndarray   # returns of the final evaluation's episodes
    best_eval_return: float
    steps: int
    episodes: int
    wall_time_s: float
    sps: float


def run(agent: Agent, env: gym.Env, eval_env: gym.Env, buffer: ReplayBuffer, settings: LoopSettings,
        logger: RunLogger, checkpoints: CheckpointManager,
        bundle: Callable[[int], dict[str, Any]]) -> LoopResult:
    """Train `agent` on `env` for `settings.total_steps` environment steps.

    `bundle(step)` returns the checkpoint dict for the current state (the agent's state plus run metadata).
    """
    s = settings
    env.action_space.seed(s.seed)
    obs, _ = env.reset(seed=s.seed)
    agent.on_episode_start()
    episode_return, episode_length, episodes = 0.0, 0, 0
    best_eval = -np.inf
    metrics: dict[str, Any] = {}
    timer = StepTimer()

    def evaluate_and_keep_best(step: int) -> np.ndarray:
        nonlocal best_eval
        returns = evaluate(lambda o: agent.act(o, explore=False), eval_env, s.eval_episodes, seed=s.seed + 10_000)
        logger.evaluation(float(returns.mean()), float(returns.std()), step)
        if returns.mean() > best_eval:
            best_eval = float(returns.mean())
            checkpoints.save_best(bundle(step))
        return returns

    for global_step in range(1, s.total_steps + 1):
        if global_step <= s.learning_starts:
            action = env.action_space.sample()
        else:
            action = agent.act(obs, explore=True, step=global_step)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Store `terminated` only: a time-limit truncation is not a terminal state, so targets still bootstrap.
        buffer.add(obs, action, float(reward), next_obs, bool(terminated))
        episode_return += float(reward)
        episode_length += 1
        if terminated or truncated:
            episodes += 1
            logger.episode(episode_return, episode_length, global_step)
            episode_return, episode_length = 0.0, 0
            obs, _ = env.reset()
            agent.on_episode_start()
        else:
            obs = next_obs

        if global_step > s.learning_starts and global_step % s.train_freq == 0:
            for _ in range(s.gradient_steps):
                metrics = agent.update(buffer.sample(s.batch_size))

        if global_step % s.log_every == 0:
            sps = timer.sps(global_step)
            # The only device-to-host sync of the metrics: once per log_every steps.
            scalars = {tag: float(value) for tag, value in metrics.items()}
            scalars.update(agent.exploration_metrics(global_step))
            scalars["charts/SPS"] = sps
            logger.scalars(scalars, global_step)
            logger.progress(global_step, sps)
        if s.eval_every and global_step % s.eval_every == 0 and global_step < s.total_steps:
            evaluate_and_keep_best(global_step)
        if s.checkpoint_every and global_step % s.checkpoint_every == 0 and global_step < s.total_steps:
            checkpoints.save_periodic(bundle(global_step), global_step)

    wall_time = timer.elapsed()
    logger.progress(s.total_steps, timer.sps(s.total_steps))
    final_returns = evaluate_and_keep_best(s.total_steps)
    checkpoints.save_final(bundle(s.total_steps))
    return LoopResult(final_returns, best_eval, s.total_steps, episodes, wall_time, s.total_steps / wall_time)
