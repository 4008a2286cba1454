"""CrossQ: Bhatt et al. 2024, "CrossQ: Batch Normalization in Deep Reinforcement Learning for Greater Sample
Efficiency and Simplicity".

https://arxiv.org/abs/1902.05605

SAC's policy and temperature (rlexp/agents/sac.py) with:

1. no target networks: the critics bootstrap from themselves;
2. batch renormalisation (rlexp/networks/batch_renorm.py) before every linear layer of the critics and in the
   actor's torso;
3. the joint forward pass: (s, a) and (s', a'), a' ~ pi(.|s'), go through the critics as one batch of 2B, so the
   normalisation layers see both distributions together (the paper's key step: normalised separately, the
   on-policy next actions are out of distribution for the statistics of the replayed ones). The target is
   y = r + gamma (1 - terminated) (min_i Q_i(s', a') - alpha log pi(a'|s')), the Q_i(s', a') of that same pass,
   held constant in the gradient;
4. the policy (and alpha) updated every `policy_delay`-th update only, the actor in training mode on its own
   batch, the critics read with their running statistics;
5. wide critics (`critic_hidden_sizes`: the paper's 2048 units), the networks' Adam with beta1 = 0.5, and one
   update per env step: CrossQ's sample efficiency comes at an update-to-data ratio of 1.

Acting, evaluation and exports read both networks with their running statistics (evaluation mode), as the
updates read the actor for a' and the critics for the policy loss. Every reduction keeps a leading member axis,
so many seeds learn as one model, each seed's normalisation statistics its own (CrossQMembers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import MISSING
from torch import Tensor

from rlexp.agents.base import BuildContext, set_learning_rates
from rlexp.agents.sac import (
    SAC,
    SACMembers,
    SoftActorCriticConfig,
    build_agent,
    check_soft_actor_critic,
    count_agent_parameters,
)
from rlexp.config.actions import ActionKind
from rlexp.config.checks import check_positive_int, check_range
from rlexp.config.registry import AlgoSpec, Family
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.networks.batch_renorm import Renorm
from rlexp.networks.members import standard_normal
from rlexp.networks.user_torso import Torso
from rlexp.replay import ReplayBatch

#: what the policy's updates report
POLICY_METRICS = ("losses/actor_loss", "losses/ent_coef_loss", "losses/entropy", "losses/actor_grad_norm")


class CrossQ(SAC):
    """SAC without target critics, with batch renormalisation and the joint forward pass of (s, a) and (s', a')."""

    target_critics = False
    #: what a checkpoint holds of this agent (no target critics)
    checkpointed: tuple[str, ...] = ("actor", "critic", "actor_optimizer", "critic_optimizer")

    def __init__(self, *args: Any, policy_delay: int, **kwargs: Any) -> None:
        super().__init__(*args, tau=0.0, **kwargs)   # (no target critics to average)
        self.policy_delay = policy_delay
        # the policy's last metrics, reported by the updates between policy updates too (as TD3's)
        self._last_policy_metrics = {name: torch.zeros((), device=self.device) for name in POLICY_METRICS}
        # evaluation mode (running statistics) but inside the updates' training passes
        self.actor.eval()
        self.critic.eval()

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        set_learning_rates(self.learning_rates, self.n_updates)
        self.n_updates += 1
        ent_coef = self.log_ent_coef.detach().exp()
        sde_eps = self.actor.sde.draw(1, self.generator) if self.actor.sde is not None else None

        # 1. The critics: (s, a) and (s', a') in one pass, normalised together.
        self.critic_optimizer.zero_grad(set_to_none=True)
        next_eps = None if sde_eps is not None else standard_normal(batch.actions.shape, self.generator, self.device)
        critic_loss, qf_values = self.critic_gradients(batch, ent_coef, sde_eps, next_eps)
        critic_grad_norm = self.grad_norm(self.critic)
        self.critic_optimizer.step()
        metrics = {
            "losses/critic_loss": critic_loss,
            "losses/ent_coef": ent_coef.reshape(critic_loss.shape),
            "losses/q_values": qf_values[..., 0, :].mean(-1),
            "losses/critic_grad_norm": critic_grad_norm,
        }
        if self.n_updates % self.policy_delay:
            return {**metrics, **self._last_policy_metrics}

        # 2. Every policy_delay-th update: the policy's draw in training mode, then alpha and the policy.
        self.actor.train()
        squashed, log_prob = self.actor.sample(batch.observations, self.generator, sde_eps)
        self.actor.eval()
        ent_coef_loss = self.temperature_step(log_prob)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss = self.actor_gradients(batch.observations, squashed, log_prob, ent_coef)
        actor_grad_norm = self.grad_norm(self.actor)
        self.actor_optimizer.step()
        self._last_policy_metrics = dict(zip(POLICY_METRICS, (actor_loss, ent_coef_loss,
                                                              -log_prob.detach().mean(-1), actor_grad_norm)))
        return {**metrics, **self._last_policy_metrics}

    def critic_gradients(self, batch: ReplayBatch, ent_coef: Tensor, sde_eps: Tensor | None,
                         next_eps: Tensor | None) -> tuple[Tensor, Tensor]:
        """Each critic towards y = r + gamma (1 - d) (min_i Q_i(s', a') - alpha log pi(a'|s')), Q_i(s', a') from the
        joint pass: (the loss, the critics' Q(s, a)), detached, with the critics' gradients."""
        with torch.no_grad():   # a' ~ pi(.|s'), the actor read with its running statistics
            next_squashed, next_log_prob = self.actor.sample(batch.next_observations, self.generator, sde_eps,
                                                             next_eps)
        axis = batch.rewards.dim() - 1   # the batch axis (1 with a leading member axis)
        self.critic.train()
        q_joint = self.critic(torch.cat([batch.observations, batch.next_observations], dim=axis),
                              torch.cat([batch.actions, self.actor.to_env(next_squashed)], dim=axis))
        self.critic.eval()
        qf_values, qf_next = q_joint.split(batch.rewards.shape[-1], dim=-1)   # (..., n_critics, batch) each
        with torch.no_grad():
            y = batch.rewards + batch.discounts * (qf_next.min(dim=-2).values - ent_coef * next_log_prob)
        critic_loss = 0.5 * (qf_values - y.unsqueeze(-2)).pow(2).mean(dim=-1).sum(-1)
        critic_loss.sum().backward()
        return critic_loss.detach(), qf_values.detach()

    #: the methods `compile=` compiles (rlexp/agents/compiled.py)
    compiled = ("critic_gradients", "actor_gradients")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_policy_metrics": self._last_policy_metrics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._last_policy_metrics = {name: value.to(self.device)
                                     for name, value in state["last_policy_metrics"].items()}


class CrossQMembers(SACMembers, CrossQ):
    """N seeds' CrossQ agents learning as one: SACMembers' stacking (actors, critic ensembles and their batch
    renormalisation statistics, each seed's rows; each seed's alpha and generator), CrossQ's update."""

    def __init__(self, members: Sequence[CrossQ]) -> None:
        super().__init__(members)
        self._last_policy_metrics = {name: torch.stack([m._last_policy_metrics[name] for m in members])
                                     for name in POLICY_METRICS}

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        metrics = super().update(batch)
        for k, member in enumerate(self.members):   # what each member's checkpoint holds
            assert isinstance(member, CrossQ)
            member._last_policy_metrics = {name: value[k] for name, value in self._last_policy_metrics.items()}
        return metrics


# --- config, checks and builder -----------------------------------------------------------------------------

@dataclass
class CrossQConfig(SoftActorCriticConfig):
    policy_delay: int = MISSING
    """updates between policy (and alpha) updates"""
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [1024, 1024])
    """the critics' hidden layers (the actor's are network.hidden_sizes)"""
    adam_beta1: float = MISSING
    """Adam's beta1 for the actor and the critics (the paper's 0.5; alpha's Adam keeps 0.9, as sb3-contrib's)"""
    batch_renorm_momentum: float = MISSING
    """how far each training pass moves the running statistics towards the batch's"""
    batch_renorm_warmup_steps: int = MISSING
    """training passes of plain batch normalisation before the running statistics correct it"""
    tau: Any = None
    """refused: CrossQ has no target networks"""


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    if algo["tau"] is not None:
        raise ConfigError(f"algo.tau={algo['tau']!r} asks for target networks, which CrossQ learns without (its "
                          f"critics bootstrap from the joint pass); remove algo.tau, or use algo=sac")
    check_soft_actor_critic(algo)
    check_positive_int("algo.policy_delay", algo["policy_delay"])
    hidden = algo["critic_hidden_sizes"]
    if not hidden or any(isinstance(width, bool) or not isinstance(width, int) or width < 1 for width in hidden):
        raise ConfigError(f"algo.critic_hidden_sizes={list(hidden)} must be a non-empty list of positive widths "
                          f"(the paper's [2048, 2048])")
    check_range("algo.adam_beta1", algo["adam_beta1"], 0.0, 1.0, high_inclusive=False)
    check_range("algo.batch_renorm_momentum", algo["batch_renorm_momentum"], 0.0, 1.0, low_inclusive=False)
    check_positive_int("algo.batch_renorm_warmup_steps", algo["batch_renorm_warmup_steps"], allow_zero=True)


def renorm(algo: CrossQConfig) -> Renorm:
    return Renorm(momentum=algo.batch_renorm_momentum, warmup_steps=algo.batch_renorm_warmup_steps)


def build(algo: CrossQConfig, context: BuildContext) -> CrossQ:
    return build_agent(CrossQ, algo, context, n_critics=2, policy_delay=algo.policy_delay,
                       critic_hidden_sizes=list(algo.critic_hidden_sizes), renorm=renorm(algo),
                       adam_betas=(algo.adam_beta1, 0.999))


def parameters(algo: CrossQConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
               torso: Torso | None = None) -> int:
    return count_agent_parameters(algo, spaces, hidden_sizes, torso, n_critics=2,
                                  critic_hidden_sizes=list(algo.critic_hidden_sizes), renorm=renorm(algo))


ALGORITHM = AlgoSpec(name="crossq", family=Family.OFF_POLICY, schema=CrossQConfig, check=check, build=build,
                     parameters=parameters, actions=frozenset({ActionKind.CONTINUOUS}), bounded_actions=True,
                     members=CrossQMembers, frames=True, channels_last=True, stochastic=True)
