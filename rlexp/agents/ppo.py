"""Proximal Policy Optimization: Schulman et al. 2017, "Proximal Policy Optimization Algorithms".

https://arxiv.org/abs/1707.06347

After each rollout of `n_steps` vector steps, `n_epochs` passes over it in shuffled minibatches, each minimising

    L = -L^CLIP + vf_coef * (R - V(s))^2 - ent_coef * H(pi(.|s))

with advantages normalised per minibatch (optional), the value prediction optionally clipped around the old one,
the global gradient norm clipped to `max_grad_norm`, and an optional early stop of the epochs once the
approximate KL to the rollout's policy passes 1.5 * target_kl (as SB3 stops). The learning rate and the clip range
can anneal linearly to 0 over the run's rollouts. The on-policy runner (rlexp/runners/on_policy.py) collects the
rollouts; A2C (rlexp/agents/a2c.py) is this learner with its own policy loss, one epoch and one minibatch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor, nn

from rlexp.agents.base import (
    BuildContext,
    features,
    fork_global_generator,
    input_of,
    learning_rates,
    make_adam,
    obs_tensor,
    observation_encoder,
    rebound,
    set_learning_rates,
    share_settings,
)
from rlexp.config.actions import ActionKind
from rlexp.config.checks import check_positive_int, check_range
from rlexp.config.registry import AlgoSpec, Family, count_parameters
from rlexp.config.schema import LrSchedule, OnPolicyConfig
from rlexp.envs.spaces import SpaceInfo
from rlexp.errors import ConfigError
from rlexp.networks.deterministic import DeterministicPolicy
from rlexp.networks.gsde import resample_due
from rlexp.networks.members import MemberAdam, MemberOptimizers, clip_grad_norm_per_member, stack_members
from rlexp.networks.multi_actions import Bernoulli, MultiCategorical
from rlexp.networks.optimizers import RMSprop
from rlexp.networks.policies import ActorCriticPolicy
from rlexp.networks.user_torso import Torso
from rlexp.rollouts.epochs import Epochs, MemberRollouts, OneRollout
from rlexp.rollouts.losses import PolicyLoss, clipped_surrogate, normalize, value_loss
from rlexp.rollouts.storage import RolloutBatch, RolloutStorage
from rlexp.schedules import annealed


class PPO:
    """The actor-critic learner of PPO (and, through `policy_loss`, of A2C)."""

    #: the diagnostics of the policy loss that mean something for this algorithm
    POLICY_DIAGNOSTICS: tuple[str, ...] = ("approx_kl", "clip_fraction")

    def __init__(self, policy: ActorCriticPolicy, *, lr: float, n_epochs: int, batch_size: int, clip_range: float,
                 clip_range_vf: float | None, ent_coef: float, vf_coef: float, max_grad_norm: float,
                 target_kl: float | None, normalize_advantage: bool, total_rollouts: int, device: torch.device,
                 action_low: np.ndarray | None = None, action_high: np.ndarray | None = None,
                 lr_schedule: str = "constant", clip_range_schedule: str = "constant",
                 optimizer: str = "adam", rms_prop_eps: float = 1e-5, sde_sample_freq: int = -1,
                 generator: torch.Generator | None = None) -> None:
        self.policy = policy.to(device)
        self.device = device
        self.n_epochs, self.batch_size = n_epochs, batch_size
        self.clip_range_vf, self.ent_coef, self.vf_coef = clip_range_vf, ent_coef, vf_coef
        self.max_grad_norm, self.target_kl, self.normalize_advantage = max_grad_norm, target_kl, normalize_advantage
        self.clip_range = annealed(clip_range, clip_range_schedule, total_rollouts)
        self.optimizer: torch.optim.Optimizer
        if optimizer == "rmsprop":   # A2C as SB3 configures it: RMSprop(alpha=0.99, eps=1e-5)
            self.optimizer = RMSprop(self.policy.parameters(), lr=lr, alpha=0.99, eps=rms_prop_eps,
                                                 foreach=True)
        else:   # SB3's eps for its on-policy algorithms
            self.optimizer = make_adam(self.policy.parameters(), lr, device, eps=1e-5)
        self.learning_rates = learning_rates([self.optimizer], lr_schedule, total_rollouts)
        self.action_low, self.action_high = action_low, action_high
        # (a members agent: each member's generator, PPOMembers)
        self.generator: torch.Generator | list[torch.Generator] = \
            generator if generator is not None else torch.Generator(device=device)
        self.n_updates = 0     # rollouts learned from
        self.sde_sample_freq = sde_sample_freq   # gSDE: draw new exploration matrices every this many steps

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """Env actions for a batch: a draw from pi when exploring, the mode otherwise (continuous ones clipped
        to the env's bounds: the Gaussian itself is unbounded, as in SB3)."""
        observations = obs_tensor(obs, self.device)
        if not explore:
            return self.to_env(self.policy.deterministic(observations))
        eps = self.policy.sde_eps
        if self.policy.sde is not None and (eps is None or len(eps) != len(observations)):   # a new set of envs
            self.policy.reset_noise(len(observations), self.generator)
        return self.to_env(self.policy.sample(observations, self.generator)[0])

    @torch.no_grad()
    def act_sampled(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        observations = obs_tensor(obs, self.device)
        kept = self.policy.sde_eps   # training's gSDE matrices, put back after the draw
        try:
            if self.policy.sde is not None:
                self.policy.reset_noise(observations.shape[-2], generator)
            return self.to_env(self.policy.sample(observations, generator)[0])
        finally:
            self.policy.sde_eps = kept

    @torch.no_grad()
    def rollout_step(self, observations: Tensor, t: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """(actions, log pi_old(a|s), V_old(s)) at step `t` of the rollout, drawn from the agent's generator (gSDE:
        new exploration matrices at the rollout's start and every sde_sample_freq steps, as SB3)."""
        if self.policy.sde is not None and (self.policy.sde_eps is None or resample_due(t, self.sde_sample_freq)):
            self.policy.reset_noise(observations.shape[-2], self.generator)
        return self.policy.sample(observations, self.generator)

    @torch.no_grad()
    def values(self, observations: Tensor) -> Tensor:
        return self.policy.values(observations)

    def to_env(self, actions: Tensor) -> np.ndarray:
        out = actions.cpu().numpy()
        return out if self.action_low is None else np.clip(out, self.action_low, self.action_high)

    def learn(self, rollout: RolloutStorage) -> dict[str, Tensor]:
        """The epochs over one finished rollout; returns the means of its losses and diagnostics."""
        assert isinstance(self.generator, torch.Generator)   # a single run's (PPOMembers shuffles per member)
        return self.learn_epochs(OneRollout(rollout, self.batch_size, self.generator))

    def learn_epochs(self, rollout: Epochs) -> dict[str, Tensor]:
        """PPO's epochs over the rollout(s): each minibatch's gradient step, until the epochs end or target_kl
        stops them (per member of many seeds: each meets it at its own minibatch)."""
        clip_range = self.clip_range(self.n_updates)
        set_learning_rates(self.learning_rates, self.n_updates)
        names = ("policy_loss", "value_loss", "entropy", *self.POLICY_DIAGNOSTICS, "grad_norm")
        rows: list[Tensor] = []    # each minibatch's metrics, in the order of `names`, on the device
        stepped: list[Tensor] = []  # and who stepped on it
        # The first minibatch's metrics, no gradient applied: those of whoever target_kl stopped at it, before any step.
        first: Tensor | None = None
        # Who is still learning from this rollout: True, or per member of a many-seeds agent (each meets
        # target_kl's stop at its own minibatch).
        learning = torch.ones(rollout.member_shape, dtype=torch.bool, device=self.device)
        clip = torch.tensor(clip_range, device=self.device)   # a tensor, so a compiled loss takes each value
        for _ in range(self.n_epochs):
            for batch in rollout.minibatches(learning):
                self.optimizer.zero_grad(set_to_none=True)
                learning, losses = self.minibatch_gradients(batch, clip, learning)
                if first is None:
                    first = torch.cat([losses, torch.zeros_like(losses[:1])])
                if self.target_kl is not None and not learning.any():
                    break   # this minibatch moved too far already: no step on it, and no more epochs
                grad_norm = self.clip_gradients()
                self.optimizer_step(learning)
                rows.append(torch.cat([losses, grad_norm.unsqueeze(0)]))
                stepped.append(learning)
            if self.target_kl is not None and not learning.any():
                break
        self.n_updates += 1
        returns, values = rollout.flat("returns"), rollout.flat("values")
        # 1 - Var[R - V] / Var[R]: how much of the returns' variance the value function explained (SB3's; NaN
        # when the returns do not vary). No host sync: it is read when logged.
        returns_var = returns.var(-1)
        explained = torch.where(returns_var > 0, 1.0 - (returns - values).var(-1) / returns_var,
                                torch.full_like(returns_var, float("nan")))
        assert first is not None   # every epoch has a minibatch (check_batch_size)
        if rows:
            weights = torch.stack(stepped).unsqueeze(1)   # (minibatches, 1[, members])
            counts = weights.sum(0)
            means = torch.where(weights, torch.stack(rows), 0.0).sum(0) / counts
            means = torch.where(counts > 0, means, first)   # a member that stepped on none: its first minibatch's
        else:   # target_kl stopped everyone at the first minibatch: it is the one they report
            means = first
        metrics = {f"losses/{name}": mean for name, mean in zip(names, means.unbind())}
        metrics.update({"losses/explained_variance": explained,
                        "losses/clip_range": torch.full(rollout.member_shape, clip_range, device=self.device),
                        "losses/learning_rate": torch.full(rollout.member_shape, self.optimizer.param_groups[0]["lr"],
                                                           device=self.device)})
        return metrics

    def minibatch_gradients(self, batch: RolloutBatch, clip_range: Tensor, learning: Tensor) -> tuple[Tensor, Tensor]:
        """L's gradients on one minibatch, for those still learning once target_kl's stop is checked on it: (who
        is still learning, the policy loss, value loss, entropy and diagnostics stacked, detached)."""
        log_prob, entropy, values = self.policy.evaluate(batch.observations, batch.actions)
        advantages = normalize(batch.advantages) if self.normalize_advantage else batch.advantages
        policy = self.policy_loss(log_prob, batch.old_log_probs, advantages, clip_range)
        if self.target_kl is not None:
            learning = learning & ~(policy.approx_kl > 1.5 * self.target_kl)
        v_loss = value_loss(values, batch.old_values, batch.returns, self.clip_range_vf)
        entropy_loss = -entropy.mean(-1)
        loss = policy.loss + self.vf_coef * v_loss + self.ent_coef * entropy_loss
        (loss * learning).sum().backward()
        return learning, torch.stack([policy.loss, v_loss, -entropy_loss,
                                      *(getattr(policy, name) for name in self.POLICY_DIAGNOSTICS)]).detach()

    #: the methods `compile=` compiles (rlexp/agents/compiled.py)
    compiled = ("minibatch_gradients",)

    def clip_gradients(self) -> Tensor:
        return torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)

    def optimizer_step(self, learning: Tensor) -> None:
        """A step of those still learning (one run: it is, or `learn_epochs` has stopped before this)."""
        self.optimizer.step()

    def policy_loss(self, log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor,
                    clip_range: Tensor | float) -> PolicyLoss:
        """-L^CLIP, the clipped surrogate (eq. 7)."""
        return clipped_surrogate(log_prob, old_log_prob, advantages, clip_range)

    def episodes_started(self, envs: np.ndarray) -> None:
        """A policy without memory: nothing to reset."""

    def exploration_metrics(self, step: int) -> dict[str, float]:
        return {}

    def representation(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """The value network's last hidden layer, and V(s)."""
        return input_of(self.policy.value_head, lambda: self.policy.values(observations))

    def policy_network(self) -> nn.Module:
        """The mode of pi: the argmax of the logits, or the Gaussian's mean clipped to the bounds as `act`."""
        return DeterministicPolicy(self.policy, "deterministic", low=self.action_low, high=self.action_high)

    #: the rollout's draws and shuffles, gSDE's matrices in use
    exploration_state: tuple[str, ...] = ("generator", "sde_eps")

    def state_dict(self) -> dict[str, Any]:
        assert isinstance(self.generator, torch.Generator)   # a single run's agent (members save their own)
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "n_updates": self.n_updates,
                **({"sde_eps": self.policy.sde_eps} if self.policy.sde_eps is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        assert isinstance(self.generator, torch.Generator)
        self.generator.set_state(state["generator"])
        self.n_updates = int(state["n_updates"])
        self.policy.sde_eps = state.get("sde_eps")


class PPOMembers(PPO):
    """N seeds' PPO (or A2C) agents learning as one: their policies stacked on a member axis
    (rlexp/networks/members.py), each seed's rollout its own, shuffled into minibatches by its own generator, its
    gradients clipped on their own, and its early stop (target_kl) its own: a seed that meets it sits out the rest
    of the rollout's steps (MemberAdam) while the others go on. Each member keeps its own agent object
    (`members[k]`), whose parameters and optimizer state are its slices of the stacked ones: it evaluates and
    checkpoints as a single run's agent. With gSDE, each seed draws its exploration matrices from its own
    generator."""

    generator: list[torch.Generator]

    def __init__(self, members: Sequence[PPO]) -> None:
        first = members[0]
        share_settings(self, first)
        self.members = list(members)
        self.policy = stack_members([m.policy for m in members], "the policy")
        self._params = list(self.policy.parameters())
        defaults = first.optimizer.defaults
        if isinstance(first.optimizer, RMSprop):   # A2C: no early stop, every member steps together
            self.optimizer = RMSprop(self._params, lr=defaults["lr"], alpha=defaults["alpha"],
                                                 eps=defaults["eps"], foreach=True)
        elif self.target_kl is None:   # every member steps at every minibatch: one fused Adam (elementwise)
            self.optimizer = make_adam(self._params, defaults["lr"], self.device, eps=defaults["eps"])
        else:   # each member meets target_kl at its own minibatch: step counts per member, and a step mask
            self.optimizer = MemberAdam(self._params, len(members), lr=defaults["lr"], betas=defaults["betas"],
                                        eps=defaults["eps"])
        self.learning_rates = rebound(first.learning_rates, [self.optimizer])
        self._optimizers = MemberOptimizers([(self.optimizer, self._params, "optimizer")], members)
        # each member's draws and shuffles from its own (the members are single runs' agents: one generator each)
        self.generator = [m.generator for m in members if isinstance(m.generator, torch.Generator)]
        assert len(self.generator) == len(members)

    @torch.no_grad()
    def rollout_step(self, observations: Tensor, t: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        out = super().rollout_step(observations, t)
        if self.policy.sde_eps is not None:   # each seed's matrices, in its own agent's checkpoint
            for k, member in enumerate(self.members):
                member.policy.sde_eps = self.policy.sde_eps[k]
        return out

    def learn(self, rollout: Sequence[RolloutStorage]) -> dict[str, Tensor]:   # type: ignore[override]
        """Each member's epochs over its own rollout."""
        metrics = self.learn_epochs(MemberRollouts(rollout, self.batch_size, self.generator))
        self._optimizers.stepped(self.n_updates)
        return metrics

    def clip_gradients(self) -> Tensor:
        return clip_grad_norm_per_member(self._params, self.max_grad_norm, len(self.members))

    def optimizer_step(self, learning: Tensor) -> None:
        if isinstance(self.optimizer, MemberAdam):
            self.optimizer.step(learning)
        else:
            self.optimizer.step()


# --- the registry entry -------------------------------------------------------------------------------------------

@dataclass
class PPOConfig(OnPolicyConfig):
    batch_size: int = MISSING
    """samples per minibatch; divides n_steps * env.num_envs"""
    n_epochs: int = MISSING
    """passes over each rollout"""
    clip_range: float = MISSING
    """epsilon of the clipped surrogate"""
    clip_range_schedule: LrSchedule = MISSING
    """constant | linear (annealed to 0 over the run's rollouts)"""
    clip_range_vf: Optional[float] = None
    """the value loss's clip around the old values (null: not clipped)"""
    target_kl: Optional[float] = None
    """the epochs stop once the approximate KL passes 1.5 x this (null: no early stop)"""


def total_rollouts(n_steps: int, total_steps: int, num_envs: int) -> int:
    """The rollouts a run of `total_steps` env steps collects, each of n_steps vector steps of num_envs envs: the
    last one completes past the budget, as SB3's."""
    return math.ceil(total_steps / (n_steps * num_envs))


def check_batch_size(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_positive_int("algo.batch_size", algo["batch_size"])
    num_envs, batch = cfg["env"]["num_envs"], algo["batch_size"]
    size = algo["n_steps"] * num_envs   # the samples of one rollout
    if size % batch:
        divisors = [d for d in range(1, size + 1) if size % d == 0]
        nearest = sorted(divisors, key=lambda d: (abs(d - batch), d))[:2]
        raise ConfigError(f"algo.batch_size={batch} does not divide the rollout's {size} samples (algo.n_steps="
                          f"{algo['n_steps']} x env.num_envs={num_envs}), so each epoch would end on a short "
                          f"minibatch; use algo.batch_size={' or '.join(map(str, sorted(nearest)))}")
    if algo["normalize_advantage"] and batch < 2:
        raise ConfigError("algo.batch_size=1 with algo.normalize_advantage=true normalises each advantage alone; "
                          "use a batch of 2 or more, or algo.normalize_advantage=false")


def check(algo: dict[str, Any], cfg: dict[str, Any]) -> None:
    check_batch_size(algo, cfg)
    check_positive_int("algo.n_epochs", algo["n_epochs"])
    check_range("algo.clip_range", algo["clip_range"], 0.0, low_inclusive=False)
    for key in ("clip_range_vf", "target_kl"):
        if algo[key] is not None:
            check_range(f"algo.{key}", algo[key], 0.0, low_inclusive=False)


#: PPO's and A2C's action spaces: a categorical, a diagonal Gaussian, independent categoricals or Bernoullis
ON_POLICY_ACTIONS = frozenset({ActionKind.DISCRETE, ActionKind.CONTINUOUS, ActionKind.MULTI_DISCRETE,
                               ActionKind.MULTI_BINARY})


def make_policy(algo: OnPolicyConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
                activation: str, torso: Torso | None = None) -> ActorCriticPolicy:
    actions: dict[str, Any]
    if spaces.discrete:
        actions = dict(n_actions=spaces.n_actions)
    elif spaces.action_nvec is not None or spaces.action_bits is not None:   # independent categoricals, Bernoullis
        actions = dict(multi=MultiCategorical(spaces.action_nvec) if spaces.action_nvec is not None else
                       Bernoulli(spaces.action_bits or 0))
    else:
        assert spaces.action_low is not None   # a Box action space
        actions = dict(action_dim=int(spaces.action_low.size))
    # stacked frames: the Nature CNN, shared by the policy and value heads, with no MLP after it (SB3's CnnPolicy)
    # (network.torso: the user's module, then the MLPs of network.hidden_sizes, whatever the observations)
    encoder = observation_encoder(spaces, frames=True, torso=torso)
    hidden_sizes = () if spaces.frames and torso is None else hidden_sizes
    return ActorCriticPolicy(features(encoder, spaces), hidden_sizes, activation, log_std_init=algo.log_std_init,
                             ortho_init=algo.ortho_init, use_sde=algo.use_sde, encoder=encoder, **actions)


def learner_arguments(algo: OnPolicyConfig, context: BuildContext) -> dict[str, Any]:
    """What PPO and A2C build alike: the policy, its generator, the action bounds and the schedules' span."""
    spaces = context.spaces
    policy = make_policy(algo, spaces, context.hidden_sizes, context.activation, context.torso)
    bounds: dict[str, np.ndarray] = {}
    if spaces.continuous:
        assert spaces.action_low is not None and spaces.action_high is not None   # a Box action space
        bounds = dict(action_low=spaces.action_low.astype(np.float32).flatten(),
                      action_high=spaces.action_high.astype(np.float32).flatten())
    return dict(policy=policy, lr=algo.lr, lr_schedule=algo.lr_schedule, ent_coef=algo.ent_coef,
                vf_coef=algo.vf_coef, max_grad_norm=algo.max_grad_norm,
                normalize_advantage=algo.normalize_advantage, device=context.device,
                sde_sample_freq=algo.sde_sample_freq,
                total_rollouts=total_rollouts(algo.n_steps, context.total_steps, context.num_envs),
                # the rollout's draws and the minibatches' shuffles: the agent's own stream, checkpointed with it
                generator=fork_global_generator(context.device), **bounds)


def build(algo: PPOConfig, context: BuildContext) -> PPO:
    return PPO(**learner_arguments(algo, context), n_epochs=algo.n_epochs, batch_size=algo.batch_size,
               clip_range=algo.clip_range, clip_range_schedule=algo.clip_range_schedule,
               clip_range_vf=algo.clip_range_vf, target_kl=algo.target_kl)


def parameters(algo: OnPolicyConfig, spaces: SpaceInfo, hidden_sizes: tuple[int, ...],
               torso: Torso | None = None) -> int:
    with torch.device("meta"):
        return count_parameters(make_policy(algo, spaces, hidden_sizes, "tanh", torso))


ALGORITHM = AlgoSpec(name="ppo", family=Family.ON_POLICY, schema=PPOConfig, check=check, build=build,
                     parameters=parameters, actions=ON_POLICY_ACTIONS,
                     members=PPOMembers, frames=True, channels_last=True, stochastic=True)
