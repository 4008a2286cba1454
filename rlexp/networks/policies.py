"""The stochastic policies and value function of the on-policy actor-critics (PPO, A2C).

As SB3's and CleanRL's MlpPolicy: a policy network and a value network that share nothing, each an MLP with
orthogonal initialisation (gain sqrt(2) on hidden layers, 0.01 on the policy's output, 1 on the value's); on
stacked frames, as SB3's CnnPolicy and CleanRL's ppo_atari, one Nature CNN torso (the observation encoder,
rlexp/networks/encoders.py) that the policy and value heads share, with no hidden layers after it; a
categorical distribution over discrete actions, or a diagonal Gaussian over continuous ones whose log std is a
learned parameter independent of the state, or, with `use_sde`, gSDE's state-dependent noise on the policy's
features (rlexp/networks/gsde.py; the features detached, as SB3's on-policy gSDE). The two MLPs' hidden layers
are evaluated as one batched module
(member 0 the policy's, member 1 the value's, as TD3's twin critics): the same functions with half the kernel
launches, which is most of a small network's cost on a CPU. Draws take an explicit generator, so a run's random
stream is the agent's own and is checkpointed with it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from rlexp.networks.actor_critic import EnsembleLinear
from rlexp.networks.gaussian import LOG_SQRT_2PI, diagonal_gaussian_log_prob
from rlexp.networks.gsde import StateDependentNoise
from rlexp.networks.members import MemberLinear, stack_members, standard_normal
from rlexp.networks.multi_actions import MultiActions

ACTIVATION_FUNCTIONS = {"tanh": torch.tanh, "relu": torch.relu}
POLICY, VALUE = 0, 1   # the members of the batched hidden layers


class ActorCriticPolicy(nn.Module):
    """pi(a|s) and V(s). `n_actions` for a categorical policy, `action_dim` for a diagonal Gaussian, or `multi` for
    independent categoricals or Bernoullis over MultiDiscrete or MultiBinary actions (networks/multi_actions.py)."""

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int], activation: str, *, n_actions: int | None = None,
                 action_dim: int | None = None, log_std_init: float = 0.0, ortho_init: bool = True,
                 use_sde: bool = False, encoder: nn.Module | None = None, multi: MultiActions | None = None) -> None:
        super().__init__()
        # `encoder`: observations to `obs_dim` features (rlexp/networks/encoders.py); none: they are features
        self.encoder = encoder if encoder is not None else nn.Identity()
        if [n_actions, action_dim, multi].count(None) != 2:
            raise ValueError("give n_actions (discrete), action_dim (continuous) or multi (MultiDiscrete, MultiBinary)")
        self.discrete = n_actions is not None
        self.multi = multi
        self.activation = ACTIVATION_FUNCTIONS[activation]
        widths = [obs_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(EnsembleLinear(2, fan_in, width) for fan_in, width in zip(widths, widths[1:]))
        out_features = n_actions or action_dim or (multi.logits if multi is not None else None)
        assert out_features is not None   # one of them is given (checked above)
        self.policy_head: nn.Linear | MemberLinear = nn.Linear(widths[-1], out_features)
        self.value_head: nn.Linear | MemberLinear = nn.Linear(widths[-1], 1)
        if ortho_init:   # else PyTorch's default, as SB3's ortho_init=False (RL Zoo's MuJoCo presets)
            with torch.no_grad():
                for module in self.encoder.modules():   # a CNN torso's layers, gain sqrt(2) (SB3's, CleanRL's)
                    if isinstance(module, (nn.Linear, nn.Conv2d)):
                        nn.init.orthogonal_(module.weight, math.sqrt(2))
                        if module.bias is not None:
                            module.bias.zero_()
                for layer in self.hidden_layers():
                    for member in (POLICY, VALUE):   # each (in, out) slice: orthonormal columns, as nn.Linear's rows
                        nn.init.orthogonal_(layer.weight[member], math.sqrt(2))
                    layer.bias.zero_()
                for head, gain in ((self.policy_head, 0.01), (self.value_head, 1.0)):
                    nn.init.orthogonal_(head.weight, gain)
                    head.bias.zero_()
        # action_dim is None exactly when the policy is discrete
        self.log_std = None if action_dim is None or use_sde else \
            nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.sde = StateDependentNoise(widths[-1], action_dim, log_std_init) if use_sde and action_dim is not None \
            else None
        self.sde_eps: Tensor | None = None   # gSDE's current exploration matrices (standard normal), one per env
        self.seeds: int | None = None   # many seeds' policies stacked as one (stack_members): their number

    def hidden_layers(self) -> Sequence[EnsembleLinear]:
        """`hidden`, typed: a ModuleList of EnsembleLinear."""
        return cast("Sequence[EnsembleLinear]", self.hidden)

    @classmethod
    def stack_members(cls, members: list[ActorCriticPolicy]) -> ActorCriticPolicy:
        """Many seeds' policies as one (rlexp/networks/members.py), member-major: the hidden layers one ensemble of
        seeds x (policy, value), the heads MemberLinear layers, log std (seeds, actions), an image torso's CNN
        stacked by its own `stack_members`. It takes (seeds, batch, obs) inputs and gives every output with the
        seed axis in front."""
        stacked = copy.deepcopy(members[0])
        stacked.seeds = len(members)
        if any(True for _ in stacked.encoder.parameters()):   # an image torso: each seed's CNN, stacked
            stacked.encoder = stack_members([m.encoder for m in members], "the image torso")
        for i, layer in enumerate(stacked.hidden_layers()):
            layer.weight = nn.Parameter(torch.cat([m.hidden_layers()[i].weight.detach() for m in members]))
            layer.bias = nn.Parameter(torch.cat([m.hidden_layers()[i].bias.detach() for m in members]))
        # The members are single runs' policies (nn.Linear heads), built alike: log_std and sde are None in all
        # of them or in none.
        policy_heads = [m.policy_head for m in members if isinstance(m.policy_head, nn.Linear)]
        value_heads = [m.value_head for m in members if isinstance(m.value_head, nn.Linear)]
        assert len(policy_heads) == len(value_heads) == len(members)
        stacked.policy_head = MemberLinear(policy_heads)
        stacked.value_head = MemberLinear(value_heads)
        if stacked.log_std is not None:
            log_stds = [m.log_std.detach() for m in members if m.log_std is not None]
            assert len(log_stds) == len(members)
            stacked.log_std = nn.Parameter(torch.stack(log_stds))
        if stacked.sde is not None:   # each seed's exploration matrices: (seeds, envs, features, actions)
            noises = [m.sde for m in members if m.sde is not None]
            assert len(noises) == len(members)
            stacked.sde = StateDependentNoise.stack_members(noises)
            eps = [m.sde_eps for m in members if m.sde_eps is not None]
            stacked.sde_eps = torch.stack(eps) if len(eps) == len(members) else None   # None while any has none
        return stacked

    def _log_std(self) -> Tensor:
        """log std, broadcastable against (.., batch, actions) outputs: (actions,), or (seeds, 1, actions)."""
        assert self.log_std is not None   # a Gaussian policy without gSDE
        return self.log_std if self.seeds is None else self.log_std.unsqueeze(-2)

    def reset_noise(self, n: int, generator: torch.Generator | Sequence[torch.Generator]) -> None:
        """Draw gSDE's exploration matrices anew for n envs (stacked seeds: n for each, from its own generator)."""
        assert self.sde is not None
        self.sde_eps = self.sde.draw(n, generator)

    def features(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """The last hidden layer of the policy's MLP and of the value's, computed together."""
        observations = self.encoder(observations)
        if self.seeds is None:
            x = observations.unsqueeze(0).expand(2, *observations.shape)
        else:   # (seeds, batch, obs) -> (seeds * 2, batch, obs), member-major as the stacked layers
            x = observations.unsqueeze(1).expand(-1, 2, -1, -1).reshape(2 * self.seeds, *observations.shape[1:])
        for layer in self.hidden:
            x = self.activation(layer(x))
        if self.seeds is not None:
            x = x.view(self.seeds, 2, *x.shape[1:]).transpose(0, 1)
        return x[POLICY], x[VALUE]

    def forward(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """(the policy's logits or Gaussian mean, V(s))."""
        return self.heads(observations)[:2]

    def heads(self, observations: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits or mean, V(s), the policy's last hidden features, detached: gSDE's z(s))."""
        policy, value = self.features(observations)
        return self.policy_head(policy), self.value_head(value).squeeze(-1), policy.detach()

    def policy_output(self, observations: Tensor) -> Tensor:
        """The logits (discrete) or the Gaussian's mean (continuous)."""
        return self(observations)[0]

    def values(self, observations: Tensor) -> Tensor:
        return self(observations)[1]

    def sample(self, observations: Tensor, generator: torch.Generator | Sequence[torch.Generator]
               ) -> tuple[Tensor, Tensor, Tensor]:
        """(actions, log pi(a|s), V(s)) for a batch: one draw per row (stacked seeds: each seed's rows from its own
        generator, the draws its single run makes)."""
        out, values, latent = self.heads(observations)
        if self.multi is not None:
            actions = self.multi.sample(out, generator)
            return actions, self.multi.log_prob(out, actions), values
        if self.discrete:
            log_probs = out.log_softmax(-1)
            if isinstance(generator, torch.Generator):
                actions = torch.multinomial(log_probs.exp(), 1, generator=generator)
            else:   # a diverged seed (its run is failing) draws uniformly, so its NaNs never stop the others' draws
                probs = log_probs.exp()
                probs = torch.where(probs.isfinite().all(-1, keepdim=True), probs, torch.ones_like(probs))
                actions = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generator)])
            return actions.squeeze(-1), log_probs.gather(-1, actions).squeeze(-1), values
        if self.sde is not None:   # the noise of each env's current exploration matrix
            assert self.sde_eps is not None, "reset_noise draws the exploration matrices first"
            actions = out + self.sde.noise(latent, self.sde_eps)
            return actions, self.sde.log_prob(actions, out, latent), values
        log_std = self._log_std()
        actions = out + log_std.exp() * standard_normal(out.shape, generator, out.device)
        return actions, diagonal_gaussian_log_prob(actions, out, log_std), values

    def deterministic(self, observations: Tensor) -> Tensor:
        """The mode: argmax of the logits, or the Gaussian's mean (what evaluation acts with)."""
        out = self.policy_output(observations)
        if self.multi is not None:
            return self.multi.mode(out)
        return out.argmax(-1) if self.discrete else out

    def evaluate(self, observations: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log pi(a|s), entropy of pi(.|s), V(s)) for stored actions: what the losses need."""
        out, values, latent = self.heads(observations)
        if self.multi is not None:
            entropy, log_prob = self.multi.entropy(out), self.multi.log_prob(out, actions)
        elif self.discrete:
            log_probs = out.log_softmax(-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1)
            log_prob = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        elif self.sde is not None:
            entropy, log_prob = self.sde.entropy(latent), self.sde.log_prob(actions, out, latent)
        else:
            log_std = self._log_std()
            entropy = (0.5 + LOG_SQRT_2PI + log_std).sum(-1).expand(out.shape[:-1])
            log_prob = diagonal_gaussian_log_prob(actions, out, log_std)
        return log_prob, entropy, values
