"""Evaluation episodes on an env instance kept apart from training: the deterministic policy, or draws from a
stochastic one (`eval.deterministic=false`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlexp.config.schema import EvalConfig

log = logging.getLogger("rlexp")

#: eval.max_episode_steps's default (rlexp/config/schema.py says why it is 100,000).
MAX_EPISODE_STEPS: int = EvalConfig.max_episode_steps


class EvaluationStopped(Exception):
    """A stop request (Ctrl-C, SIGTERM) came during an evaluation, which was abandoned."""


def agent_policy(agent: Any, deterministic: bool, seed: int, device: torch.device
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """A batch of observations -> a batch of actions: the agent's mode, or draws from its stochastic policy
    (a StochasticAgent's `act_sampled`) from a generator of their own seeded with `seed`."""
    if deterministic:
        return lambda obs: agent.act(obs, explore=False)
    generator = torch.Generator(device=device).manual_seed(seed)
    return lambda obs: agent.act_sampled(obs, generator)


def episode_limit(env: gym.Env, configured: int) -> tuple[int, str]:
    """The most steps an evaluation episode takes, and the key that sets it: the env's own time limit (its spec's
    max_episode_steps, which gymnasium's TimeLimit enforces) or, where it has none, `eval.max_episode_steps`."""
    own = env.spec.max_episode_steps if env.spec is not None else None
    if own:
        return own, f"the env's max_episode_steps={own}"
    return configured, f"eval.max_episode_steps={configured}"


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int, seed: int,
             record_first: Callable[[], None] | None = None, max_episode_steps: int = MAX_EPISODE_STEPS,
             stop: Callable[[], object] | None = None) -> np.ndarray:
    """Run `episodes` full episodes with `policy` (a batch of observations -> a batch of actions) and return their
    undiscounted returns.

    Seeding the first reset with the same `seed` every time makes successive evaluations of a run start from the
    same initial states, so their returns compare the policies, not the luck. `record_first` is called at every
    step of the first episode (e.g. to grab a video frame). An episode that has not ended after
    `max_episode_steps` (or the env's own limit: `episode_limit`) ends there, with a warning. `stop()` is asked at
    every step: once it is true, the evaluation is abandoned (EvaluationStopped).
    """
    limit, limited_by = episode_limit(env, max_episode_steps)
    returns = np.zeros(episodes, dtype=np.float64)
    cut = 0
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        record = record_first if episode == 0 else None
        if record is not None:
            record()
        done, length = False, 0
        while not done:
            if stop is not None and stop():
                raise EvaluationStopped
            obs, reward, terminated, truncated, _ = env.step(policy(np.asarray(obs)[None])[0])
            returns[episode] += float(reward)
            length += 1
            done = terminated or truncated
            if record is not None:
                record()
            if not done and length >= limit:
                done, cut = True, cut + 1
        obs, _ = env.reset()
    if cut:
        log.warning("%d of %d evaluation episodes of %s did not end within %s steps and were cut there (their "
                    "returns count those steps); give the env a time limit (gymnasium's max_episode_steps) or "
                    "set eval.max_episode_steps", cut, episodes, env.spec.id if env.spec else "the env", limited_by)
    return returns
