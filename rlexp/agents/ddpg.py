"""Deep Deterministic Policy Gradient: Lillicrap et al. 2015, "Continuous control with deep reinforcement learning".

https://arxiv.org/abs/1509.02971

DDPG is TD3 (rlexp/agents/actor_critic.py) with its three additions off: one critic, no target smoothing, the actor and
the targets updated at every critic update.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from rlexp.config.registry import AlgoSpec, Family
from rlexp.envs.spaces import SpaceInfo
from rlexp.networks.user_torso import Torso


@dataclass
class DDPGConfig(ActorCriticConfig):
    """DDPG's keys: the deterministic actor-critic's."""


def build(algo: DDPGConfig, context: BuildContext) -> TD3:
    return build_actor_critic(algo, context, n_critics=1, policy_delay=1, target_noise=0.0, target_noise_clip=0.0)


def parameters(algo: DDPGConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
               torso: Torso | None = None) -> int:
    return actor_critic_parameters(algo, spaces, hidden_sizes, n_critics=1, torso=torso)


ALGORITHM = AlgoSpec(name="ddpg", family=Family.OFF_POLICY, schema=DDPGConfig, check=check_actor_critic,
                     build=build, parameters=parameters, actions=frozenset({ActionKind.CONTINUOUS}),
                     bounded_actions=True, members=TD3Members, frames=True,
                     channels_last=True)
