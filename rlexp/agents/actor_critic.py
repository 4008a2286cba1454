"""The deterministic actor-critic learner of DDPG and TD3 (TD3's class: DDPG is it with TD3's three additions
off), its many-seeds form, the keys both algorithms have, their checks and their builder. rlexp/agents/ddpg.py and
rlexp/agents/td3.py are the two registry entries over it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
from rlexp.agents.exploration import ActionNoise, make_action_noise
from rlexp.config.checks import check_positive, check_range, check_schedule_span, check_tau
from rlexp.config.registry import count_parameters
from rlexp.config.schema import Choice, LrSchedule, OffPolicyConfig
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.networks.actor_critic import Actor, CriticEnsemble
from rlexp.networks.deterministic import DeterministicPolicy
from rlexp.networks.members import MemberOptimizers, grad_norm_per_member, stack_members, standard_normal
from rlexp.networks.targets import polyak_update
from rlexp.networks.user_torso import Torso
from rlexp.replay import ReplayBatch


class TD3:
    """Deterministic actor-critic with TD3's three additions to DDPG:

    1. clipped double Q-learning: `n_critics` critics, the target is the minimum of their targets;
    2. target policy smoothing: clipped Gaussian noise on the target action;
    3. delayed updates: the actor and all targets move once every `policy_delay` critic updates.

    DDPG is this class with n_critics=1, target_noise=0 and policy_delay=1. The DDPG paper's details are
    switches: L2 weight decay on the critic, batch normalization, the action entering the critic at its
    second layer (`critic_action_layer=1`) and final layers initialised in [-3e-3, 3e-3].
    """

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray, *,
                 hidden_sizes: Sequence[int], actor_lr: float, critic_lr: float, tau: float,
                 policy_delay: int, target_noise: float, target_noise_clip: float, n_critics: int,
                 exploration_noise: ActionNoise, device: torch.device, critic_weight_decay: float = 0.0,
                 batch_norm: bool = False, critic_action_layer: int = 0, final_layer_init: float = 0.0,
                 activation: str = "relu", lr_schedule: str = "constant", total_updates: int = 0,
                 encoder: nn.Module | None = None) -> None:
        self.tau = tau
        self.batch_norm = batch_norm
        self.policy_delay = policy_delay
        self.target_noise = target_noise
        self.target_noise_clip = target_noise_clip
        self.exploration_noise = exploration_noise
        self.device = device
        self.action_low = action_low.astype(np.float32).flatten()
        self.action_high = action_high.astype(np.float32).flatten()
        action_dim = self.action_low.size
        self._action_scale = (self.action_high - self.action_low) / 2  # exploration noise is in these units

        # `encoder`: the observations to `obs_dim` features (rlexp/networks/encoders.py), each network its own copy
        self.actor = Actor(obs_dim, self.action_low, self.action_high, hidden_sizes, batch_norm,
                           final_layer_init, activation, copy.deepcopy(encoder)).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False).eval()
        self.critic = CriticEnsemble(obs_dim, action_dim, hidden_sizes, n_critics, critic_action_layer, batch_norm,
                                     final_layer_init, activation, copy.deepcopy(encoder)).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False).eval()  # running statistics
        self.actor_optimizer = make_adam(self.actor.parameters(), actor_lr, device)
        # The DDPG paper's L2 penalty on the critic's weights (Adam's weight_decay adds it to the gradient).
        self.critic_optimizer = make_adam(self.critic.parameters(), critic_lr, device, critic_weight_decay)
        # `linear` anneals both learning rates to 0 over the planned updates (RL Zoo's `lin_<lr>`).
        self.learning_rates = learning_rates([self.actor_optimizer, self.critic_optimizer], lr_schedule,
                                             total_updates)
        # target policy smoothing's noise (a members agent: each member's generator, TD3Members)
        self.generator: torch.Generator | list[torch.Generator] = fork_global_generator(device)
        self._low = torch.as_tensor(self.action_low, device=device)
        self._high = torch.as_tensor(self.action_high, device=device)
        self.n_updates = 0
        # The actor moves every `policy_delay` updates; its last figures are reported in between.
        self._last_actor_loss = torch.zeros((), device=device)
        self._last_actor_grad_norm = torch.zeros((), device=device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """mu(s) for the batch; exploring, plus each env's own noise, clipped to the action bounds."""
        if self.batch_norm:
            self.actor.eval()  # acting: normalize with the running statistics
        actions = self.policy_actions(obs_tensor(obs, self.device)).cpu().numpy()
        if explore:
            actions = actions + self.exploration_noise(len(actions)) * self._action_scale
        return np.clip(actions, self.action_low, self.action_high)

    @torch.no_grad()
    def policy_actions(self, observations: Tensor) -> Tensor:
        """mu(s) for a batch."""
        return self.actor(observations)

    @torch.no_grad()
    def target_actions(self, next_observations: Tensor, noise: Tensor | None) -> Tensor:
        """mu_target(s') plus target policy smoothing: clipped noise in units of the action half-range (`noise`: a
        standard normal draw, `smoothing_noise`'s)."""
        next_actions = self.actor_target(next_observations)
        if noise is not None:
            clipped_noise = (noise * self.target_noise).clamp(
                -self.target_noise_clip, self.target_noise_clip) * self.actor_target.action_scale
            next_actions = (next_actions + clipped_noise).clamp(self._low, self._high)
        return next_actions

    def smoothing_noise(self, shape: torch.Size) -> Tensor | None:
        """The target policy smoothing's N(0, I) draw for a batch of actions of `shape` (None without smoothing:
        DDPG), from the agent's generator: drawn outside the compiled critic update, which takes it as an input."""
        if self.target_noise <= 0:
            return None
        return standard_normal(shape, self.generator, self.device)

    @torch.no_grad()
    def td_target(self, batch: ReplayBatch, noise: Tensor | None) -> Tensor:
        """y = r + gamma * (1 - terminated) * min_i Q_target_i(s', a~): the clipped double-Q target.

        `batch.discounts` is gamma * (1 - terminated) (gamma^m for an m-step return). The critics' axis is the
        second to last, so a batch with a leading member axis (many seeds, TD3Members) gives each member's.
        """
        min_qf_next_target = self.critic_target(batch.next_observations,
                                                self.target_actions(batch.next_observations, noise)).min(dim=-2).values
        return batch.rewards + batch.discounts * min_qf_next_target

    def critic_gradients(self, batch: ReplayBatch, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        """Each critic regresses to y: (the loss, the critics' Q(s, a)), detached, with the critics' gradients."""
        y = self.td_target(batch, noise)
        qf_values = self.critic(batch.observations, batch.actions)             # (n_critics, batch)
        critic_loss = (qf_values - y.unsqueeze(-2)).pow(2).mean(dim=-1).sum(-1)
        critic_loss.sum().backward()   # (a sum over members: each member's gradient is its own loss's)
        return critic_loss.detach(), qf_values.detach()

    def actor_gradients(self, observations: Tensor) -> Tensor:
        """The deterministic policy gradient through the first critic only: the loss, detached, with the actor's
        gradients (the critic's weight gradients are neither computed nor kept)."""
        actor_loss = -self.critic.q1(observations, self.actor(observations)).mean(-1)
        actor_loss.sum().backward(inputs=list(self.actor.parameters()))
        return actor_loss.detach()

    #: the methods `compile=` compiles (rlexp/agents/compiled.py)
    compiled = ("critic_gradients", "actor_gradients", "policy_actions")

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        set_learning_rates(self.learning_rates, self.n_updates)
        if self.batch_norm:
            self.actor.train()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss, qf_values = self.critic_gradients(batch, self.smoothing_noise(batch.actions.shape))
        critic_grad_norm = self.grad_norm(self.critic)
        self.critic_optimizer.step()
        self.n_updates += 1

        if self.n_updates % self.policy_delay == 0:
            self.actor_optimizer.zero_grad(set_to_none=True)
            self._last_actor_loss = self.actor_gradients(batch.observations)
            self._last_actor_grad_norm = self.grad_norm(self.actor)
            self.actor_optimizer.step()
            polyak_update(self.actor_target, self.actor, self.tau)
            polyak_update(self.critic_target, self.critic, self.tau)

        return {
            "losses/critic_loss": critic_loss,
            "losses/actor_loss": self._last_actor_loss,
            "losses/q_values": qf_values[..., 0, :].mean(-1),
            "losses/critic_grad_norm": critic_grad_norm,
            "losses/actor_grad_norm": self._last_actor_grad_norm,
        }

    def grad_norm(self, module: nn.Module) -> Tensor:
        return grad_norm(module.parameters())

    def episodes_started(self, envs: np.ndarray) -> None:
        self.exploration_noise.reset(envs)

    def exploration_metrics(self, step: int) -> dict[str, float]:
        return {}

    def representation(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """The first critic's last hidden layer at (s, mu(s)), and Q_1(s, mu(s))."""
        self.actor.eval()
        self.critic.eval()
        features, q_values = input_of(self.critic.layers[-1], lambda: self.critic(observations,
                                                                                   self.actor(observations)))
        self.critic.train()
        return features[0], q_values[0]

    def policy_network(self) -> nn.Module:
        """mu(s) (batch normalization, if any, with its running statistics), clipped to the bounds as `act`."""
        return DeterministicPolicy(self.actor, low=self.action_low, high=self.action_high).eval()

    #: What a checkpoint holds of this agent (with the update counter, generator and exploration noise).
    checkpointed = ("actor", "actor_target", "critic", "critic_target", "actor_optimizer",
                    "critic_optimizer")

    #: the actions' noise, target smoothing's draws
    exploration_state: tuple[str, ...] = ("exploration_noise", "generator")

    def state_dict(self) -> dict[str, Any]:
        assert isinstance(self.generator, torch.Generator)   # a single run's agent (members save their own)
        return {**state_of(self, self.checkpointed), "exploration_noise": self.exploration_noise.state_dict(),
                "generator": self.generator.get_state(), "last_actor_loss": self._last_actor_loss,
                "last_actor_grad_norm": self._last_actor_grad_norm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state(self, self.checkpointed, state)
        self.exploration_noise.load_state_dict(state["exploration_noise"])
        assert isinstance(self.generator, torch.Generator)
        self.generator.set_state(state["generator"])
        self._last_actor_loss = state["last_actor_loss"].to(self.device)
        self._last_actor_grad_norm = state["last_actor_grad_norm"].to(self.device)


class TD3Members(TD3):
    """N seeds' TD3 (or DDPG) agents learning as one: actors, critic ensembles and their targets stacked on a member
    axis (rlexp/networks/members.py; the critics as one ensemble of seeds x critics), one Adam each for the actors
    and the critics (elementwise, so each member's moments are its own), gradient norms per member. Each member
    draws its target smoothing and exploration noise from its own generators, and keeps its own agent object
    (`members[k]`), whose parameters and optimizer state are its slices of the stacked ones."""

    def __init__(self, members: Sequence[TD3]) -> None:
        first = members[0]   # (batch normalization is refused by the critic ensemble's stacking)
        share_settings(self, first)
        self.members = list(members)
        self.actor = stack_members([m.actor for m in members], "the actor")
        self.actor_target = stack_members([m.actor_target for m in members], "the actor").requires_grad_(False)
        self.critic = stack_members([m.critic for m in members], "the critic")
        self.critic_target = stack_members([m.critic_target for m in members], "the critic").requires_grad_(False)
        self.actor_optimizer = make_adam(self.actor.parameters(), first.actor_optimizer.param_groups[0]["lr"],
                                         self.device)
        critic_group = first.critic_optimizer.param_groups[0]
        self.critic_optimizer = make_adam(self.critic.parameters(), critic_group["lr"], self.device,
                                          critic_group["weight_decay"])
        self.learning_rates = rebound(first.learning_rates, [self.actor_optimizer, self.critic_optimizer])
        # each member's target smoothing from its own (the members are single runs' agents: one generator each)
        self.generator = [m.generator for m in members if isinstance(m.generator, torch.Generator)]
        assert len(self.generator) == len(members)
        self._optimizers = MemberOptimizers([
            (self.actor_optimizer, list(self.actor.parameters()), "actor_optimizer"),
            (self.critic_optimizer, list(self.critic.parameters()), "critic_optimizer")], members)
        self._last_actor_loss = torch.stack([m._last_actor_loss for m in members])
        self._last_actor_grad_norm = torch.stack([m._last_actor_grad_norm for m in members])

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """(members, envs, obs) -> (members, envs, actions), each member exploring with its own noise."""
        actions = self.policy_actions(obs_tensor(obs, self.device)).cpu().numpy()
        if explore:
            noise = np.stack([member.exploration_noise(actions.shape[1]) for member in self.members])
            actions = actions + noise * self._action_scale
        return np.clip(actions, self.action_low, self.action_high)

    def grad_norm(self, module: nn.Module) -> Tensor:
        return grad_norm_per_member(list(module.parameters()), len(self.members))

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        metrics = super().update(batch)
        self._optimizers.stepped(self.n_updates)
        for k, member in enumerate(self.members):   # what each member's checkpoint holds
            member._last_actor_loss = self._last_actor_loss[k]
            member._last_actor_grad_norm = self._last_actor_grad_norm[k]
        return metrics


# --- the config, checks and builder of the deterministic actor-critics (DDPG's and TD3's) ------------------

class NoiseType(Choice):
    gaussian = "gaussian"
    ou = "ou"            # Ornstein-Uhlenbeck, as in the DDPG paper


@dataclass
class NoiseConfig:
    type: NoiseType = MISSING
    """gaussian | ou (Ornstein-Uhlenbeck, as in the DDPG paper)"""
    sigma: float = MISSING
    """the noise's std, as a fraction of the action half-range"""
    theta: float = MISSING
    """Ornstein-Uhlenbeck's mean reversion"""


@dataclass
class ActorCriticConfig(OffPolicyConfig):
    """The keys DDPG has, and TD3 too."""

    tau: float = MISSING
    """Polyak averaging of the target networks"""
    actor_lr: float = MISSING
    """Adam's learning rate of the actor"""
    critic_lr: float = MISSING
    """Adam's learning rate of the critics"""
    lr_schedule: LrSchedule = MISSING
    """constant | linear (both learning rates annealed to 0 over the run's updates)"""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """exploration noise on the actor's actions"""
    critic_weight_decay: float = MISSING
    """L2 penalty on the critic's weights (the DDPG paper: 1e-2)"""
    batch_norm: bool = MISSING
    """batch normalization in the actor and critic (the DDPG paper)"""
    critic_action_layer: int = MISSING
    """the critic layer the action enters: 0 = with the state, 1 = the second (the DDPG paper)"""
    final_layer_init: float = MISSING
    """final layers U(-x, x) (the DDPG paper: 3e-3); 0 = fan-in uniform like the hidden layers"""


def check_actor_critic(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_schedule_span(algo, "algo.lr_schedule=linear" if algo["lr_schedule"] != "constant" else None)
    check_tau(algo)
    check_positive(algo, "actor_lr", "critic_lr")
    check_range("algo.noise.sigma", algo["noise"]["sigma"], 0.0)
    check_range("algo.noise.theta", algo["noise"]["theta"], 0.0, low_inclusive=False)
    check_range("algo.critic_weight_decay", algo["critic_weight_decay"], 0.0)
    check_range("algo.final_layer_init", algo["final_layer_init"], 0.0)
    depth = len(cfg["network"]["hidden_sizes"])
    if not isinstance(algo["critic_action_layer"], int) or not 0 <= algo["critic_action_layer"] <= depth:
        raise ConfigError(f"algo.critic_action_layer={algo['critic_action_layer']!r} must be a layer of the "
                          f"critic: 0 (with the state) to {depth} (network.hidden_sizes has {depth} layers)")


def build_actor_critic(algo: ActorCriticConfig, context: BuildContext, *, n_critics: int, policy_delay: int,
                       target_noise: float, target_noise_clip: float) -> TD3:
    spaces, noise = context.spaces, algo.noise
    assert spaces.action_low is not None and spaces.action_high is not None   # a Box action space (ALGORITHM.actions)
    # Exploration has its own generator, so changing the update code never changes what is explored.
    exploration_noise = make_action_noise(noise.type, noise.sigma, noise.theta, context.num_envs,
                                          spaces.action_low.size, np.random.default_rng(context.seed))
    # images: the actor and the critic each their own Nature CNN (copies of it: SB3's off-policy
    # share_features_extractor=False), the critic's targets copies of the critic's
    encoder = observation_encoder(spaces, frames=True, torso=context.torso)
    return TD3(features(encoder, spaces), spaces.action_low, spaces.action_high, hidden_sizes=context.hidden_sizes,
               actor_lr=algo.actor_lr, critic_lr=algo.critic_lr, tau=algo.tau, policy_delay=policy_delay,
               target_noise=target_noise, target_noise_clip=target_noise_clip, n_critics=n_critics,
               exploration_noise=exploration_noise, device=context.device,
               critic_weight_decay=algo.critic_weight_decay, batch_norm=algo.batch_norm,
               critic_action_layer=algo.critic_action_layer, final_layer_init=algo.final_layer_init,
               activation=context.activation, lr_schedule=algo.lr_schedule, total_updates=context.planned_updates,
               encoder=encoder)


def actor_critic_parameters(algo: ActorCriticConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
                            n_critics: int, torso: Torso | None = None) -> int:
    assert spaces.action_low is not None and spaces.action_high is not None   # a Box action space
    with torch.device("meta"):
        # (parameters only for images, the CNN's, and network.torso's)
        encoder = observation_encoder(spaces, frames=True, torso=torso)
        width = features(encoder, spaces)
        actor = Actor(width, spaces.action_low, spaces.action_high, hidden_sizes, algo.batch_norm)
        critics = CriticEnsemble(width, spaces.action_low.size, hidden_sizes, n_critics,
                                 algo.critic_action_layer, algo.batch_norm)
        return count_parameters(actor, critics) + 2 * count_parameters(*([encoder] if encoder else []))
