"""Generalized advantage estimation: Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized
Advantage Estimation". https://arxiv.org/abs/1506.02438

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - ended_t) * A_{t+1}

where s'_t is the observation the step really led to. A time limit is not a terminal state: a truncated step still
bootstraps from the value of its final observation (gymnasium's `final_obs`), and only the sum over future steps
stops there, since the next step of that env belongs to a new episode. A termination stops both. The last step of
a rollout bootstraps from V(s_T), the observation the next rollout starts from. The value targets are
A_t + V(s_t) (the lambda-returns).
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def generalized_advantages(rewards: Tensor, values: Tensor, next_values: Tensor, terminations: Tensor,
                           episode_ends: Tensor, gamma: float, gae_lambda: float) -> tuple[Tensor, Tensor]:
    """(advantages, returns), each (n_steps, num_envs), from tensors of that shape.

    `next_values[t]` is V(s'_t): of the next observation, or of the final observation where the episode ended;
    `terminations` and `episode_ends` (terminated or truncated) are 0/1 floats.
    """
    deltas = rewards + gamma * (1.0 - terminations) * next_values - values
    carry = gamma * gae_lambda * (1.0 - episode_ends)
    running = torch.zeros_like(deltas[0])
    backwards = []
    for delta, keep in zip(reversed(deltas.unbind(0)), reversed(carry.unbind(0))):
        running = delta + keep * running
        backwards.append(running)
    advantages = torch.stack(backwards[::-1])
    return advantages, advantages + values
