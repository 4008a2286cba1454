"""Advantage Actor-Critic: Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning", in its
synchronous form (A2C): the envs step together and one learner updates from all of them.

https://arxiv.org/abs/1602.01783

Every rollout of `n_steps` vector steps makes one gradient step on

    L = -E[A_t log pi(a_t|s_t)] + vf_coef * E[(R_t - V(s_t))^2] - ent_coef * E[H(pi(.|s_t))]

where R_t are the n-step returns, bootstrapped from V at the end of the rollout (gae_lambda=1, the paper's; a
lambda below 1 gives GAE), and A_t = R_t - V(s_t). RMSprop as SB3 configures it (alpha 0.99, eps 1e-5), or Adam.
It is PPO's learner (rlexp/agents/ppo.py) with this policy loss, one epoch and one minibatch: the whole rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import MISSING
from torch import Tensor

from rlexp.agents.base import BuildContext
from rlexp.agents.ppo import ON_POLICY_ACTIONS, PPO, PPOMembers, learner_arguments, parameters
from rlexp.config.checks import check_positive
from rlexp.config.registry import AlgoSpec, Family
from rlexp.config.schema import OnPolicyConfig, Optimizer
from rlexp.rollouts.losses import PolicyLoss


class A2C(PPO):
    """PPO's learner with the plain policy-gradient loss; the ratio diagnostics mean nothing here."""

    POLICY_DIAGNOSTICS = ()

    def policy_loss(self, log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor,
                    clip_range: Tensor | float) -> PolicyLoss:
        """-E[A_t log pi(a_t|s_t)]: the policy gradient with the advantage as its baseline-corrected return."""
        zero = torch.zeros((), device=log_prob.device)
        return PolicyLoss(-(advantages * log_prob).mean(-1), approx_kl=zero, clip_fraction=zero)


class A2CMembers(PPOMembers, A2C):
    """A2C's seeds as one model: PPOMembers' batching over A2C's loss (the order of the bases puts A2C's
    policy_loss and diagnostics over PPO's)."""


@dataclass
class A2CConfig(OnPolicyConfig):
    optimizer: Optimizer = MISSING
    """rmsprop (alpha 0.99, eps rms_prop_eps, as SB3) | adam (eps 1e-5)"""
    rms_prop_eps: float = MISSING
    """RMSprop's epsilon"""


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_positive(algo, "rms_prop_eps")


def build(algo: A2CConfig, context: BuildContext) -> A2C:
    # one epoch over the whole rollout as one batch, the policy gradient unclipped
    return A2C(**learner_arguments(algo, context), n_epochs=1, batch_size=algo.n_steps * context.num_envs,
               clip_range=1.0, clip_range_vf=None, target_kl=None, optimizer=algo.optimizer,
               rms_prop_eps=algo.rms_prop_eps)


ALGORITHM = AlgoSpec(name="a2c", family=Family.ON_POLICY, schema=A2CConfig, check=check, build=build,
                     parameters=parameters, actions=ON_POLICY_ACTIONS,
                     members=A2CMembers, frames=True, channels_last=True, stochastic=True)
