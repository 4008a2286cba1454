"""Evaluation episodes on an env instance kept apart from training: the deterministic policy, or draws from a
stochastic one (`eval.deterministic=false`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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


def start_seed(seed: int, j: int) -> int:
    """Evaluation env j's first reset seed: the evaluation seed itself for env 0 (so one env evaluates as the
    evaluation did before eval.num_envs), and for the others a 32-bit seed numpy's SeedSequence derives from the
    evaluation seed and j. Derived rather than `seed + j`: the evaluations of seeds 0 and 1 of a study would
    otherwise share start states (seed 0's env 1 would start where seed 1's env 0 does), and their returns would not
    be independent samples."""
    return seed if j == 0 else int(np.random.SeedSequence(seed, spawn_key=(j,)).generate_state(1)[0])


def evaluate(policy: Callable[[np.ndarray], np.ndarray], envs: Sequence[gym.Env], episodes: int, seed: int,
             record_first: Callable[[], None] | None = None, max_episode_steps: int = MAX_EPISODE_STEPS,
             stop: Callable[[], object] | None = None, episode_ended: Callable[[], None] | None = None
             ) -> np.ndarray:
    """Run `episodes` full episodes with `policy` (a batch of observations -> a batch of actions) and return their
    undiscounted returns.

    The episodes step together, one env each, up to k = min(len(envs), episodes) at a time: at each step one
    forward pass of the policy gives the actions of every env whose episode is running (an env whose episodes are
    done is no longer stepped). The pass always reads k observations (a done env's last one fills its row, its
    action unused), so its shape never changes: a compiled policy compiles once, and the rounding of the batch's
    arithmetic is the same at every step. Env j plays episodes j, j + k, j + 2k, ... (returns in that order); its
    first reset is seeded with `start_seed(seed, j)`, its later ones continue its own generator: every evaluation
    of a run starts from the same states, so their returns compare the policies, not the luck, whatever order the
    episodes end in. (Not a gymnasium vector env: it steps every env at every step, finished ones too, and resets
    them itself; an evaluation plays each episode once, to its end.)

    `record_first` is called at the start and at every step of env 0's first episode (e.g. to grab a video frame).
    An episode that has not ended after `max_episode_steps` (or the env's own limit: `episode_limit`) ends there,
    with a warning. `stop()` is asked at every step: once it is true, the evaluation is abandoned
    (EvaluationStopped). `episode_ended()` is called as each episode ends.
    """
    envs = list(envs)[:episodes]
    k = len(envs)
    limit, limited_by = episode_limit(envs[0], max_episode_steps)
    to_play = [len(range(j, episodes, k)) for j in range(k)]
    returns = np.zeros(episodes, dtype=np.float64)
    played, lengths, running = [0] * k, [0] * k, [0.0] * k
    cut = 0
    observations = [np.asarray(env.reset(seed=start_seed(seed, j))[0]) for j, env in enumerate(envs)]
    if record_first is not None:
        record_first()
    active = list(range(k))
    while active:
        if stop is not None and stop():
            raise EvaluationStopped
        actions = policy(np.stack(observations))
        still = []
        for j in active:
            obs, reward, terminated, truncated, _ = envs[j].step(actions[j])
            running[j] += float(reward)
            lengths[j] += 1
            if record_first is not None and j == 0 and played[0] == 0:
                record_first()
            done = terminated or truncated
            if not done and lengths[j] >= limit:
                done, cut = True, cut + 1
            if done:
                returns[j + played[j] * k] = running[j]
                played[j], lengths[j], running[j] = played[j] + 1, 0, 0.0
                if episode_ended is not None:
                    episode_ended()
                if played[j] == to_play[j]:
                    continue
                obs, _ = envs[j].reset()
            observations[j] = np.asarray(obs)
            still.append(j)
        active = still
    if cut:
        spec = envs[0].spec
        log.warning("%d of %d evaluation episodes of %s did not end within %s steps and were cut there (their "
                    "returns count those steps); give the env a time limit (gymnasium's max_episode_steps) or "
                    "set eval.max_episode_steps", cut, episodes, spec.id if spec else "the env", limited_by)
    return returns
