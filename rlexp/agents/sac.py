"""Soft Actor-Critic: Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications".

https://arxiv.org/abs/1812.05905

The maximum-entropy objective, sum_t E[r_t + alpha * H(pi(.|s_t))], learned with:

1. a tanh-squashed Gaussian policy, a = tanh(u), u ~ N(mu(s), sigma(s)), whose log-probability carries the
   change of variables of the squash: log pi(a|s) = log N(u) - sum_i log(1 - tanh(u_i)^2) (the paper's
   appendix C);
2. twin critics, each regressing to the soft target y = r + gamma * (1 - d) * (min_i Q_target_i(s', a') -
   alpha * log pi(a'|s')), a' ~ pi(.|s') drawn from the current policy (there is no target actor);
3. the policy minimising E[alpha * log pi(a|s) - min_i Q_i(s, a)] through the reparameterised sample;
4. alpha tuned automatically (section 5) by minimising -log(alpha) * (log pi(a|s) + target_entropy), with a
   target entropy of -dim(A), or held at a fixed value;
5. Polyak-averaged target critics.

With `use_sde`, the policy's noise is gSDE's (rlexp/networks/gsde.py, as SB3's SAC with use_sde): u = mu(s) +
z(s)^T W on the actor's last hidden features z (learned through, here), mu clipped to [-2, 2], one matrix W per
env drawn at each round of collection (and every `sde_sample_freq` steps within it), and one drawn for each
update's reparameterised samples.

Log-probabilities and the target entropy are those of the squashed action in [-1, 1]^dim(A), as in SB3; the
env's bounds only rescale what is sent to the env and to the critics. With n-step returns the target bootstraps
from step t+m with gamma^m and leaves out the entropy bonus of the steps in between (as SB3 does).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor, nn

from rlexp.agents.base import (
    BuildContext,
    features,
    fork_global_generator,
    grad_norm,
    input_of,
    learning_rates,
    load_state,
    make_adam,
    obs_tensor,
    observation_encoder,
    rebound,
    set_learning_rates,
    share_settings,
    state_of,
)
from rlexp.config.actions import ActionKind
from rlexp.config.checks import (
    check_log_std_init,
    check_positive,
    check_range,
    check_schedule_span,
    check_sde_sample_freq,
    check_tau,
)
from rlexp.config.registry import AlgoSpec, Family, count_parameters
from rlexp.config.schema import LrSchedule, OffPolicyConfig
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.networks.actor_critic import CriticEnsemble
from rlexp.networks.batch_renorm import Renorm
from rlexp.networks.deterministic import DeterministicPolicy
from rlexp.networks.gsde import resample_due
from rlexp.networks.members import MemberOptimizers, grad_norm_per_member, stack_members, standard_normal
from rlexp.networks.squashed import SquashedGaussianActor
from rlexp.networks.targets import polyak_update
from rlexp.networks.user_torso import Torso
from rlexp.replay import ReplayBatch

#: alpha lives as log(alpha) in float32: beyond this its exp would overflow to inf.
MAX_ENT_COEF = 1e6


class SAC:
    """Soft Actor-Critic with twin critics and, with `ent_coef=None`, automatic entropy tuning."""

    #: whether the agent keeps Polyak-averaged target critics (CrossQ learns without them)
    target_critics = True
    critic_target: CriticEnsemble

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray, *,
                 hidden_sizes: Sequence[int], actor_lr: float, critic_lr: float, ent_coef_lr: float, tau: float,
                 ent_coef: float | None, ent_coef_init: float, target_entropy: float, n_critics: int,
                 device: torch.device, lr_schedule: str = "constant", total_updates: int = 0,
                 activation: str = "relu", use_sde: bool = False, sde_sample_freq: int = -1,
                 log_std_init: float = -3.0, train_freq: int = 1, num_envs: int = 1,
                 encoder: nn.Module | None = None, n_quantiles: int = 1,
                 critic_hidden_sizes: Sequence[int] | None = None, renorm: Renorm | None = None,
                 adam_betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.tau = tau
        self.device = device
        self.action_low = action_low.astype(np.float32).flatten()
        self.action_high = action_high.astype(np.float32).flatten()
        action_dim = self.action_low.size
        # `encoder`: the observations to `obs_dim` features (rlexp/networks/encoders.py), each network its own copy
        # (`renorm`: batch renormalisation in the actor and the critics, CrossQ's: rlexp/agents/crossq.py)
        self.actor = SquashedGaussianActor(obs_dim, self.action_low, self.action_high, hidden_sizes,
                                           activation, use_sde, log_std_init, copy.deepcopy(encoder),
                                           renorm).to(device)
        # gSDE: each env's exploration matrix, drawn anew at each round of collection (every train_freq vector
        # steps) and every sde_sample_freq steps within it
        self.sde_sample_freq, self.train_freq, self.num_envs = sde_sample_freq, train_freq, num_envs
        self.sde_eps: Tensor | None = None
        # (n_quantiles: each critic's quantiles of the return, TQC's; 1: SAC's Q. critic_hidden_sizes: critics
        # of their own width, CrossQ's wide ones; None: the actor's)
        self.critic = CriticEnsemble(obs_dim, action_dim, critic_hidden_sizes or hidden_sizes, n_critics,
                                     activation=activation, encoder=copy.deepcopy(encoder), outputs=n_quantiles,
                                     renorm=renorm).to(device)
        if self.target_critics:
            self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = make_adam(self.actor.parameters(), actor_lr, device, betas=adam_betas)
        self.critic_optimizer = make_adam(self.critic.parameters(), critic_lr, device, betas=adam_betas)
        self.target_entropy = target_entropy
        self.auto_ent_coef = ent_coef is None
        # alpha = exp(log_alpha): optimised in log space so it stays positive.
        self.log_ent_coef = torch.tensor(math.log(ent_coef_init if ent_coef is None else ent_coef),
                                         device=device, requires_grad=self.auto_ent_coef)
        # (alpha's Adam keeps torch's betas: `adam_betas` are the networks', as sb3-contrib's CrossQ sets them)
        self.ent_coef_optimizer = make_adam([self.log_ent_coef], ent_coef_lr, device) if self.auto_ent_coef \
            else None
        # the policy's draws, acting and updating (a members agent: each member's generator, SACMembers)
        self.generator: torch.Generator | list[torch.Generator] = fork_global_generator(device)
        # `linear` anneals all three learning rates to 0 over the planned updates (RL Zoo's `lin_<lr>`).
        self.learning_rates = learning_rates([self.actor_optimizer, self.critic_optimizer, self.ent_coef_optimizer],
                                             lr_schedule, total_updates)
        self.n_updates = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """A draw from pi(.|s) per env when exploring, tanh(mu(s)) otherwise; in the env's bounds."""
        observations = obs_tensor(obs, self.device)
        if explore and self.actor.sde is not None:
            vector_step = step // self.num_envs - 1     # `step` counts the env steps this vector step brings
            envs = observations.shape[-2]
            new_batch = self.sde_eps is None or self.sde_eps.shape[-3] != envs
            if new_batch or resample_due(vector_step % self.train_freq, self.sde_sample_freq):
                self.sde_eps = self.actor.sde.draw(envs, self.generator)
        squashed = self.actor.sample(observations, self.generator, self.sde_eps)[0] if explore \
            else self.actor.deterministic(observations)
        return np.clip(self.actor.to_env(squashed).cpu().numpy(), self.action_low, self.action_high)

    @torch.no_grad()
    def act_sampled(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        observations = obs_tensor(obs, self.device)
        sde_eps = None if self.actor.sde is None else self.actor.sde.draw(observations.shape[-2], generator)
        squashed = self.actor.sample(observations, generator, sde_eps)[0]
        return np.clip(self.actor.to_env(squashed).cpu().numpy(), self.action_low, self.action_high)

    @torch.no_grad()
    def td_target(self, batch: ReplayBatch, ent_coef: Tensor, sde_eps: Tensor | None = None,
                  eps: Tensor | None = None) -> Tensor:
        """y = r + gamma * (1 - terminated) * (min_i Q_target_i(s', a') - alpha * log pi(a'|s')), a' ~ pi(.|s').

        `batch.discounts` is gamma * (1 - terminated) (gamma^m for an m-step return). The critics' axis is the
        second to last, so a batch with a leading member axis (many seeds, SACMembers) gives each member's.
        """
        next_squashed, next_log_prob = self.actor.sample(batch.next_observations, self.generator, sde_eps, eps)
        min_qf_next_target = self.critic_target(batch.next_observations,
                                                self.actor.to_env(next_squashed)).min(dim=-2).values
        return batch.rewards + batch.discounts * (min_qf_next_target - ent_coef * next_log_prob)

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        set_learning_rates(self.learning_rates, self.n_updates)
        # gSDE: one exploration matrix for this update's draws (SB3 resets the noise at every gradient step)
        sde_eps = self.actor.sde.draw(1, self.generator) if self.actor.sde is not None else None
        # 1. The temperature, on a fresh draw from the current policy (as SB3 orders the three losses).
        squashed, log_prob = self.actor.sample(batch.observations, self.generator, sde_eps)
        ent_coef_loss = self.temperature_step(log_prob)
        ent_coef = self.log_ent_coef.detach().exp()   # (alpha after its step)

        # 2. The critics, each towards the soft target.
        self.critic_optimizer.zero_grad(set_to_none=True)
        # a' ~ pi(.|s')'s noise, drawn here: the compiled critic update takes it as an input
        next_eps = None if sde_eps is not None else standard_normal(batch.actions.shape, self.generator, self.device)
        critic_loss, qf_values = self.critic_gradients(batch, ent_coef, sde_eps, next_eps)
        critic_grad_norm = self.grad_norm(self.critic)
        self.critic_optimizer.step()

        # 3. The policy, through the reparameterised draw of step 1 and the minimum of the updated critics.
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss = self.actor_gradients(batch.observations, squashed, log_prob, ent_coef)
        actor_grad_norm = self.grad_norm(self.actor)
        self.actor_optimizer.step()

        polyak_update(self.critic_target, self.critic, self.tau)
        self.n_updates += 1
        return {
            "losses/critic_loss": critic_loss,
            "losses/actor_loss": actor_loss,
            "losses/ent_coef": ent_coef.reshape(log_prob.shape[:-1]),
            "losses/ent_coef_loss": ent_coef_loss,
            "losses/entropy": -log_prob.detach().mean(-1),
            "losses/q_values": qf_values[..., 0, :].mean(-1),
            "losses/critic_grad_norm": critic_grad_norm,
            "losses/actor_grad_norm": actor_grad_norm,
        }

    def temperature_step(self, log_prob: Tensor) -> Tensor:
        """alpha's step towards the target entropy, -log(alpha) (log pi(a|s) + target entropy) on the policy's draw
        (when alpha is tuned): its loss, detached (zeros for a fixed alpha)."""
        if not self.auto_ent_coef:
            return torch.zeros(log_prob.shape[:-1], device=self.device)
        assert self.ent_coef_optimizer is not None   # made when alpha is tuned
        ent_coef_loss = -(self.log_ent_coef * (log_prob.detach() + self.target_entropy)).mean(-1)
        self.ent_coef_optimizer.zero_grad(set_to_none=True)
        ent_coef_loss.sum().backward()   # (a sum over members: each member's gradient is its own loss's)
        self.ent_coef_optimizer.step()
        return ent_coef_loss.detach()

    def critic_gradients(self, batch: ReplayBatch, ent_coef: Tensor, sde_eps: Tensor | None,
                         next_eps: Tensor | None) -> tuple[Tensor, Tensor]:
        """Each critic regresses to the soft target: (the loss, the critics' Q(s, a)), detached, with the critics'
        gradients."""
        y = self.td_target(batch, ent_coef, sde_eps, next_eps)
        qf_values = self.critic(batch.observations, batch.actions)             # (n_critics, batch)
        critic_loss = 0.5 * (qf_values - y.unsqueeze(-2)).pow(2).mean(dim=-1).sum(-1)
        critic_loss.sum().backward()
        return critic_loss.detach(), qf_values.detach()

    def actor_gradients(self, observations: Tensor, squashed: Tensor, log_prob: Tensor, ent_coef: Tensor) -> Tensor:
        """E[alpha log pi(a|s) - min_i Q_i(s, a)] on the reparameterised draw: the loss, detached, with the actor's
        gradients only."""
        min_qf_pi = self.critic(observations, self.actor.to_env(squashed)).min(dim=-2).values
        actor_loss = (ent_coef * log_prob - min_qf_pi).mean(-1)
        actor_loss.sum().backward(inputs=list(self.actor.parameters()))
        return actor_loss.detach()

    #: the methods `compile=` compiles (rlexp/agents/compiled.py)
    compiled = ("critic_gradients", "actor_gradients")

    def grad_norm(self, module: nn.Module) -> Tensor:
        return grad_norm(module.parameters())

    def episodes_started(self, envs: np.ndarray) -> None:
        """The policy's noise has no memory across steps: nothing to reset."""

    def exploration_metrics(self, step: int) -> dict[str, float]:
        return {}

    def representation(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """The first critic's last hidden layer at (s, tanh(mu(s))), and min_i Q_i(s, tanh(mu(s)))."""
        actions = self.actor.to_env(self.actor.deterministic(observations))
        features, q_values = input_of(self.critic.layers[-1], lambda: self.critic(observations, actions))
        return features[0], q_values.min(dim=0).values

    def policy_network(self) -> nn.Module:
        return DeterministicPolicy(self.actor, "deterministic_env_action", low=self.action_low,
                                   high=self.action_high)

    #: What a checkpoint holds of this agent (with alpha, the update counter and the generator).
    checkpointed: tuple[str, ...] = ("actor", "critic", "critic_target", "actor_optimizer", "critic_optimizer")

    #: the policy's draws, gSDE's matrices in use
    exploration_state: tuple[str, ...] = ("generator", "sde_eps")

    def state_dict(self) -> dict[str, Any]:
        assert isinstance(self.generator, torch.Generator)   # a single run's agent (members save their own)
        return {**state_of(self, self.checkpointed), "log_ent_coef": self.log_ent_coef.detach().clone(),
                "ent_coef_optimizer": self.ent_coef_optimizer.state_dict() if self.ent_coef_optimizer else None,
                "generator": self.generator.get_state(),
                **({"sde_eps": self.sde_eps} if self.sde_eps is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state(self, self.checkpointed, state)
        with torch.no_grad():
            self.log_ent_coef.copy_(state["log_ent_coef"])
        if self.ent_coef_optimizer is not None:
            self.ent_coef_optimizer.load_state_dict(state["ent_coef_optimizer"])
        assert isinstance(self.generator, torch.Generator)
        self.generator.set_state(state["generator"])
        self.sde_eps = state.get("sde_eps")


class SACMembers(SAC):
    """N seeds' SAC agents learning as one: actors, critic ensembles (one of seeds x critics) and target critics
    stacked on a member axis (rlexp/networks/members.py), each seed's log(alpha) one entry of a (seeds, 1) tensor,
    one Adam per part (elementwise, so each member's moments are its own), gradient norms per member. Each member
    draws the policy's noise from its own generator and keeps its own agent object (`members[k]`), whose
    parameters, alpha and optimizer state are its slices of the stacked ones. With gSDE, each seed draws its
    exploration matrices from its own generator."""

    def __init__(self, members: Sequence[SAC]) -> None:
        first = members[0]
        share_settings(self, first)
        self.members = list(members)
        eps = [m.sde_eps for m in members if m.sde_eps is not None]   # gSDE's matrices in use (a resumed run's)
        self.sde_eps = torch.stack(eps) if len(eps) == len(members) else None   # None while any has none
        self.actor = stack_members([m.actor for m in members], "the policy")
        self.critic = stack_members([m.critic for m in members], "the critic")
        if first.target_critics:
            self.critic_target = stack_members([m.critic_target for m in members], "the critic") \
                .requires_grad_(False)
        self.log_ent_coef = torch.stack([m.log_ent_coef.detach() for m in members]).view(len(members), 1) \
            .requires_grad_(self.auto_ent_coef)
        for k, member in enumerate(members):   # its alpha is its entry (a view, as its parameters are)
            member.log_ent_coef = self.log_ent_coef.data[k, 0]
        group = first.actor_optimizer.param_groups[0]   # (the actor's and the critics' betas are the same)
        self.actor_optimizer = make_adam(self.actor.parameters(), group["lr"], self.device, betas=group["betas"])
        self.critic_optimizer = make_adam(self.critic.parameters(), first.critic_optimizer.param_groups[0]["lr"],
                                          self.device, betas=group["betas"])
        # (the members tune alpha, and have an ent_coef_optimizer, exactly when auto_ent_coef)
        self.ent_coef_optimizer = make_adam([self.log_ent_coef], first.ent_coef_optimizer.param_groups[0]["lr"],
                                            self.device) if first.ent_coef_optimizer is not None else None
        self.learning_rates = rebound(first.learning_rates,
                                      [self.actor_optimizer, self.critic_optimizer, self.ent_coef_optimizer])
        self._optimizers = MemberOptimizers([
            (self.actor_optimizer, list(self.actor.parameters()), "actor_optimizer"),
            (self.critic_optimizer, list(self.critic.parameters()), "critic_optimizer"),
            *([(self.ent_coef_optimizer, [self.log_ent_coef], "ent_coef_optimizer")]
              if self.ent_coef_optimizer is not None else [])], members)
        # each member's policy noise from its own (the members are single runs' agents: one generator each)
        self.generator = [m.generator for m in members if isinstance(m.generator, torch.Generator)]
        assert len(self.generator) == len(members)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """(members, envs, obs) -> (members, envs, actions), each member's draws (and gSDE's matrices) from its own
        generator."""
        actions = super().act(obs, explore, step)
        if self.sde_eps is not None:   # each seed's matrices, in its own agent's checkpoint
            for k, member in enumerate(self.members):
                member.sde_eps = self.sde_eps[k]
        return actions

    def grad_norm(self, module: nn.Module) -> Tensor:
        return grad_norm_per_member(list(module.parameters()), len(self.members))

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        metrics = super().update(batch)
        self._optimizers.stepped(self.n_updates)
        return metrics


# --- config, checks and builder -----------------------------------------------------------------------------

@dataclass
class SoftActorCriticConfig(OffPolicyConfig):
    """The keys of SAC and of the agents extending it (TQC, CrossQ) but the target critics'."""

    actor_lr: float = MISSING
    """Adam's learning rate of the actor"""
    critic_lr: float = MISSING
    """Adam's learning rate of the critics"""
    lr_schedule: LrSchedule = MISSING
    """constant | linear (the three learning rates annealed to 0 over the updates)"""
    ent_coef: Any = MISSING
    """alpha: auto (tuned towards target_entropy) or a fixed positive number"""
    ent_coef_init: float = MISSING
    """alpha's starting value when tuned"""
    ent_coef_lr: float = MISSING
    """Adam's learning rate of log(alpha)"""
    target_entropy: Any = MISSING
    """auto (-dim(A)) or a number"""
    use_sde: bool = MISSING
    """gSDE's state-dependent exploration (rlexp/networks/gsde.py)"""
    sde_sample_freq: int = MISSING
    """gSDE: new exploration matrices every N steps (-1: at each round of collection)"""
    log_std_init: float = MISSING
    """gSDE: the initial log std of the exploration matrices' entries"""


@dataclass
class SACConfig(SoftActorCriticConfig):
    tau: float = MISSING
    """Polyak averaging of the target critics"""


def fixed_ent_coef(value: Any) -> float | None:
    """None for "auto" (tuned), else the fixed alpha."""
    return None if value == "auto" else float(value)


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_soft_actor_critic(algo)
    check_tau(algo)


def check_soft_actor_critic(algo: dict[str, Any]) -> None:
    """The checks of SoftActorCriticConfig's keys."""
    check_schedule_span(algo, "algo.lr_schedule=linear" if algo["lr_schedule"] != "constant" else None)
    check_sde_sample_freq(algo)
    check_log_std_init(algo)
    if algo["use_sde"] and algo["sde_sample_freq"] == -1 and algo["train_freq_unit"] == "episode":
        raise ConfigError("algo.use_sde=true with algo.sde_sample_freq=-1 draws gSDE's exploration matrices at each "
                          "round of collection, which algo.train_freq_unit=episode makes episodes long; set "
                          "algo.sde_sample_freq to a number of steps")
    check_positive(algo, "actor_lr", "critic_lr", "ent_coef_lr")
    # alpha lives as log(alpha) in float32: beyond MAX_ENT_COEF its exp would overflow to inf.
    check_range("algo.ent_coef_init", algo["ent_coef_init"], 0.0, MAX_ENT_COEF, low_inclusive=False)
    ent_coef = algo["ent_coef"]
    if ent_coef != "auto":
        if isinstance(ent_coef, bool) or not isinstance(ent_coef, (int, float)):
            raise ConfigError(f"algo.ent_coef={ent_coef!r} must be auto (tuned towards algo.target_entropy) or a "
                              f"positive number (a fixed alpha)")
        check_range("algo.ent_coef", ent_coef, 0.0, MAX_ENT_COEF, low_inclusive=False)
    target = algo["target_entropy"]
    if target != "auto" and (isinstance(target, bool) or not isinstance(target, (int, float))
                             or not math.isfinite(target)):
        raise ConfigError(f"algo.target_entropy={target!r} must be auto (-dim(A)) or a finite number")


def build(algo: SACConfig, context: BuildContext) -> SAC:
    return build_agent(SAC, algo, context, n_critics=2, tau=algo.tau)


A = TypeVar("A", bound=SAC)


def build_agent(agent: type[A], algo: SoftActorCriticConfig, context: BuildContext, n_critics: int,
                **extra: Any) -> A:
    """SAC, or an agent extending it (TQC, CrossQ, with their `extra` arguments: tau among them), from SAC's
    keys."""
    spaces = context.spaces
    assert spaces.action_low is not None and spaces.action_high is not None   # a Box action space (ALGORITHM.actions)
    action_dim = spaces.action_low.size
    target = algo.target_entropy
    # images: the actor and the critic each their own Nature CNN (copies of it: SB3's off-policy
    # share_features_extractor=False), the critic's targets copies of the critic's
    encoder = observation_encoder(spaces, frames=True, torso=context.torso)
    return agent(features(encoder, spaces), spaces.action_low, spaces.action_high, hidden_sizes=context.hidden_sizes,
               actor_lr=algo.actor_lr, critic_lr=algo.critic_lr, ent_coef_lr=algo.ent_coef_lr,
               ent_coef=fixed_ent_coef(algo.ent_coef), ent_coef_init=algo.ent_coef_init,
               target_entropy=-float(action_dim) if target == "auto" else float(target), n_critics=n_critics,
               device=context.device, lr_schedule=algo.lr_schedule, total_updates=context.planned_updates,
               activation=context.activation, use_sde=algo.use_sde, sde_sample_freq=algo.sde_sample_freq,
               log_std_init=algo.log_std_init, train_freq=algo.train_freq, num_envs=context.num_envs,
               encoder=encoder, **extra)


def parameters(algo: SACConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
               torso: Torso | None = None) -> int:
    return count_agent_parameters(algo, spaces, hidden_sizes, torso, n_critics=2)


def count_agent_parameters(algo: SoftActorCriticConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
                           torso: Torso | None, n_critics: int, n_quantiles: int = 1,
                           critic_hidden_sizes: Sequence[int] | None = None, renorm: Renorm | None = None) -> int:
    """SAC's parameters, or those of an agent extending it with `n_critics` critics of `n_quantiles` outputs (of
    `critic_hidden_sizes`, and batch renormalisation layers, CrossQ's)."""
    assert spaces.action_low is not None and spaces.action_high is not None   # a Box action space
    with torch.device("meta"):
        # (parameters only for images, the CNN's, and network.torso's)
        encoder = observation_encoder(spaces, frames=True, torso=torso)
        width = features(encoder, spaces)
        actor = SquashedGaussianActor(width, spaces.action_low, spaces.action_high, hidden_sizes,
                                      use_sde=algo.use_sde, renorm=renorm)
        critics = CriticEnsemble(width, spaces.action_low.size, critic_hidden_sizes or hidden_sizes, n_critics,
                                 outputs=n_quantiles, renorm=renorm)
        return count_parameters(actor, critics) + 2 * count_parameters(*([encoder] if encoder else []))


ALGORITHM = AlgoSpec(name="sac", family=Family.OFF_POLICY, schema=SACConfig, check=check, build=build,
                     parameters=parameters, actions=frozenset({ActionKind.CONTINUOUS}), bounded_actions=True,
                     members=SACMembers, frames=True, channels_last=True, stochastic=True)
