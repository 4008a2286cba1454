"""The DQN paper's learning index: the mean predicted value of a fixed set of held-out states.

"We collected a fixed set of states by running a random policy before training starts and track the average of the
maximum predicted Q for these states" (Mnih et al. 2015, Figure 2): a smoother measure of progress than the episode
return. The states come from an env instance of their own (seeded apart from training and evaluation) stepped by
uniformly random actions, and are kept raw; each log step normalizes them with the run's statistics as they stand
and logs the mean of the values the agent's `representation` gives them (max_a Q(s, a), Q(s, pi(s)) or V(s))
as `charts/avg_q_heldout`.
They are part of every resumable checkpoint, so a resumed curve continues exactly.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

#: The held-out env's seed: apart from the training envs' (seed + i, i < num_envs) and the evaluation env's
#: (seed + 10000), and inside the range the seed check allows.
HELDOUT_SEED_OFFSET = 9_999


def collect_heldout_states(env: gym.Env, count: int, seed: int) -> np.ndarray:
    """`count` observations met by a uniformly random policy, episodes resetting as they end."""
    env.action_space.seed(seed)
    states: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    while len(states) < count:
        states.append(np.array(obs))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(states)
