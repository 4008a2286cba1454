"""Twin Delayed DDPG: Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods".

https://arxiv.org/abs/1802.09477
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from rlexp.agents.actor_critic import (
    TD3,
    ActorCriticConfig,
    TD3Members,
    actor_critic_parameters,
    build_actor_critic,
    check_actor_critic,
)
from rlexp.agents.base import BuildContext
from rlexp.config.actions import ActionKind
from rlexp.config.checks import check_positive_int, check_range
from rlexp.config.registry import AlgoSpec, Family
from rlexp.envs.spaces import SpaceInfo
from rlexp.networks.user_torso import Torso


@dataclass
class TD3Config(ActorCriticConfig):
    policy_delay: int = MISSING
    """critic updates per actor and target update"""
    target_noise: float = MISSING
    """std of the smoothing noise on target actions, in units of the action half-range"""
    target_noise_clip: float = MISSING
    """the smoothing noise is clipped to +-this (units of the action half-range)"""


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_actor_critic(algo, cfg)
    check_positive_int("algo.policy_delay", algo["policy_delay"])
    check_range("algo.target_noise", algo["target_noise"], 0.0)
    check_range("algo.target_noise_clip", algo["target_noise_clip"], 0.0)


def parameters(algo: TD3Config, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
               torso: Torso | None = None) -> int:
    return actor_critic_parameters(algo, spaces, hidden_sizes, n_critics=2, torso=torso)


def build(algo: TD3Config, context: BuildContext) -> TD3:
    return build_actor_critic(algo, context, n_critics=2, policy_delay=algo.policy_delay,
                              target_noise=algo.target_noise, target_noise_clip=algo.target_noise_clip)


ALGORITHM = AlgoSpec(name="td3", family=Family.OFF_POLICY, schema=TD3Config, check=check, build=build,
                     parameters=parameters, actions=frozenset({ActionKind.CONTINUOUS}), bounded_actions=True,
                     members=TD3Members, frames=True, channels_last=True)
