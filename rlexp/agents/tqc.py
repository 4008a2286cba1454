"""Truncated Quantile Critics: Kuznetsov et al. 2020, "Controlling Overestimation Bias with Truncated Mixture of
Continuous Distributional Quantile Critics".

https://arxiv.org/abs/2005.04269

SAC's policy, temperature and target updates (rlexp/agents/sac.py) with distributional critics:

1. N critics, each giving M quantiles theta_n^m(s, a) of the return at tau_m = (2m - 1) / 2M (the critic ensemble
   with M outputs per critic);
2. the target: a' ~ pi(.|s'), the N M quantiles of the target critics at (s', a') pooled into one mixture and
   sorted, the largest d N dropped (d = `top_quantiles_to_drop_per_net`): truncating the mixture is how TQC
   controls overestimation, in place of SAC's minimum over twin critics; the k N = (M - d) N kept atoms z_(i) give
   y_i = r + gamma (1 - terminated) (z_(i) - alpha log pi(a'|s'));
3. each critic's quantiles fitted to all kept atoms with the quantile Huber loss (kappa = 1,
   rlexp/agents/distributional.py), averaged over critics, quantiles, atoms and the batch (as sb3-contrib);
4. the policy minimising E[alpha log pi(a|s) - the mean of all critics' quantiles at (s, a)].

Every reduction keeps a leading member axis, so many seeds learn as one model (TQCMembers, SACMembers' stacking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import MISSING
from torch import Tensor

from rlexp.agents.base import BuildContext, input_of
from rlexp.agents.distributional import quantile_huber
from rlexp.agents.sac import SAC, SACConfig, SACMembers, build_agent, count_agent_parameters
from rlexp.agents.sac import check as sac_check
from rlexp.config.actions import ActionKind
from rlexp.config.checks import check_positive_int
from rlexp.config.registry import AlgoSpec, Family
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.networks.user_torso import Torso
from rlexp.replay import ReplayBatch


class TQC(SAC):
    """SAC with N critics of M quantiles each and a truncated mixture as the target."""

    def __init__(self, *args: Any, top_quantiles_to_drop_per_net: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.top_quantiles_to_drop_per_net = top_quantiles_to_drop_per_net

    @torch.no_grad()
    def td_target(self, batch: ReplayBatch, ent_coef: Tensor, sde_eps: Tensor | None = None,
                  eps: Tensor | None = None) -> Tensor:
        """The k N kept atoms of the truncated target mixture, through the soft Bellman operator: (..., batch, kN).
        `batch.discounts` is gamma * (1 - terminated) (gamma^m for an m-step return)."""
        next_squashed, next_log_prob = self.actor.sample(batch.next_observations, self.generator, sde_eps, eps)
        next_quantiles = self.critic_target(batch.next_observations, self.actor.to_env(next_squashed))
        mixture = next_quantiles.movedim(-3, -2).flatten(-2)   # (..., N, batch, M) -> (..., batch, N M)
        kept = mixture.sort(dim=-1).values[..., :mixture.shape[-1] - self.top_quantiles_to_drop_per_net
                                           * self.critic.n_critics]
        entropy_bonus = (ent_coef * next_log_prob).unsqueeze(-1)
        return batch.rewards.unsqueeze(-1) + batch.discounts.unsqueeze(-1) * (kept - entropy_bonus)

    def critic_gradients(self, batch: ReplayBatch, ent_coef: Tensor, sde_eps: Tensor | None,
                         next_eps: Tensor | None) -> tuple[Tensor, Tensor]:
        """Every critic's quantiles towards every kept atom: (the loss, each critic's mean quantile at (s, a)),
        detached, with the critics' gradients."""
        atoms = self.td_target(batch, ent_coef, sde_eps, next_eps)             # (..., batch, kN)
        quantiles = self.critic(batch.observations, batch.actions)           # (..., N, batch, M)
        # rho over (..., N, batch, M, kN), averaged over all but the member axis
        critic_loss = quantile_huber(quantiles, atoms.unsqueeze(-3)).mean(dim=(-1, -2, -3, -4))
        critic_loss.sum().backward()   # (a sum over members: each member's gradient is its own loss's)
        return critic_loss.detach(), quantiles.mean(-1).detach()

    def actor_gradients(self, observations: Tensor, squashed: Tensor, log_prob: Tensor, ent_coef: Tensor) -> Tensor:
        """E[alpha log pi(a|s) - mean_n,m theta_n^m(s, a)] on the reparameterised draw: the loss, detached, with the
        actor's gradients only."""
        q_pi = self.critic(observations, self.actor.to_env(squashed)).mean(dim=(-3, -1))   # (..., batch)
        actor_loss = (ent_coef * log_prob - q_pi).mean(-1)
        actor_loss.sum().backward(inputs=list(self.actor.parameters()))
        return actor_loss.detach()

    def representation(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """The first critic's last hidden layer at (s, tanh(mu(s))), and the mean of all quantiles there."""
        actions = self.actor.to_env(self.actor.deterministic(observations))
        features, quantiles = input_of(self.critic.layers[-1], lambda: self.critic(observations, actions))
        return features[0], quantiles.mean(dim=(0, -1))


class TQCMembers(SACMembers, TQC):
    """N seeds' TQC agents learning as one: SACMembers' stacking (actors, critic ensembles, each seed's alpha and
    generator), TQC's targets and losses."""


# --- config, checks and builder -----------------------------------------------------------------------------

@dataclass
class TQCConfig(SACConfig):
    n_critics: int = MISSING
    """N: how many critics"""
    n_quantiles: int = MISSING
    """M: quantiles per critic"""
    top_quantiles_to_drop_per_net: int = MISSING
    """d: the target mixture's largest d N atoms dropped (of N M)"""


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    sac_check(algo, cfg)
    check_positive_int("algo.n_critics", algo["n_critics"])
    check_positive_int("algo.n_quantiles", algo["n_quantiles"])
    check_positive_int("algo.top_quantiles_to_drop_per_net", algo["top_quantiles_to_drop_per_net"], allow_zero=True)
    if algo["top_quantiles_to_drop_per_net"] >= algo["n_quantiles"]:
        raise ConfigError(f"algo.top_quantiles_to_drop_per_net={algo['top_quantiles_to_drop_per_net']} drops every "
                          f"quantile of algo.n_quantiles={algo['n_quantiles']}; drop fewer (the paper's 2 of 25)")


def build(algo: TQCConfig, context: BuildContext) -> TQC:
    return build_agent(TQC, algo, context, n_critics=algo.n_critics, n_quantiles=algo.n_quantiles, tau=algo.tau,
                       top_quantiles_to_drop_per_net=algo.top_quantiles_to_drop_per_net)


def parameters(algo: TQCConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
               torso: Torso | None = None) -> int:
    return count_agent_parameters(algo, spaces, hidden_sizes, torso, n_critics=algo.n_critics,
                                  n_quantiles=algo.n_quantiles)


ALGORITHM = AlgoSpec(name="tqc", family=Family.OFF_POLICY, schema=TQCConfig, check=check, build=build,
                     parameters=parameters, actions=frozenset({ActionKind.CONTINUOUS}), bounded_actions=True,
                     members=TQCMembers, frames=True, channels_last=True, stochastic=True)
