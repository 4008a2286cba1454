"""The stochastic policies and value function of the on-policy actor-critics (PPO, A2C).

As SB3's and CleanRL's MlpPolicy: a policy network and a value network that share nothing, each an MLP with
orthogonal initialisation (gain sqrt(2) on hidden layers, 0.01 on the policy's output, 1 on the value's); a
categorical distribution over discrete actions, or a diagonal Gaussian over continuous ones whose log std is a
learned parameter independent of the state. Draws take an explicit generator, so a run's random stream is the
agent's own and is checkpointed with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rlexp.networks.torsos import mlp

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def diagonal_gaussian_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(x; mean, diag(exp(log_std))^2), summed over the last dimension."""
    return (-0.5 * ((x - mean) / log_std.exp()).pow(2) - log_std - LOG_SQRT_2PI).sum(-1)


def orthogonal_init(net: nn.Sequential, output_gain: float) -> nn.Sequential:
    """SB3's orthogonal initialisation: gain sqrt(2) on the hidden layers, `output_gain` on the last, zero biases."""
    linears = [layer for layer in net if isinstance(layer, nn.Linear)]
    for layer in linears:
        nn.init.orthogonal_(layer.weight, output_gain if layer is linears[-1] else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return net


class ActorCriticPolicy(nn.Module):
    """pi(a|s) and V(s). `n_actions` for a categorical policy, else `action_dim` for a diagonal Gaussian."""

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int], activation: str, *, n_actions: int | None = None,
                 action_dim: int | None = None, log_std_init: float = 0.0, ortho_init: bool = True) -> None:
        super().__init__()
        if (n_actions is None) == (action_dim is None):
            raise ValueError("give n_actions (discrete) or action_dim (continuous)")
        self.discrete = n_actions is not None
        self.policy = mlp(obs_dim, hidden_sizes, n_actions or action_dim, activation)
        self.value = mlp(obs_dim, hidden_sizes, 1, activation)
        if ortho_init:   # else PyTorch's default, as SB3's ortho_init=False (RL Zoo's MuJoCo presets)
            orthogonal_init(self.policy, 0.01)
            orthogonal_init(self.value, 1.0)
        self.log_std = None if self.discrete else nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def values(self, observations: Tensor) -> Tensor:
        return self.value(observations).squeeze(-1)

    def sample(self, observations: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """(actions, log pi(a|s), V(s)) for a batch: one draw per row."""
        out = self.policy(observations)
        if self.discrete:
            log_probs = out.log_softmax(-1)
            actions = torch.multinomial(log_probs.exp(), 1, generator=generator)
            return actions.squeeze(-1), log_probs.gather(-1, actions).squeeze(-1), self.values(observations)
        eps = torch.randn(out.shape, generator=generator, device=out.device)
        actions = out + self.log_std.exp() * eps
        return actions, diagonal_gaussian_log_prob(actions, out, self.log_std), self.values(observations)

    def deterministic(self, observations: Tensor) -> Tensor:
        """The mode: argmax of the logits, or the Gaussian's mean (what evaluation acts with)."""
        out = self.policy(observations)
        return out.argmax(-1) if self.discrete else out

    def evaluate(self, observations: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log pi(a|s), entropy of pi(.|s), V(s)) for stored actions: what the losses need."""
        out = self.policy(observations)
        if self.discrete:
            log_probs = out.log_softmax(-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1)
            log_prob = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        else:
            entropy = (0.5 + LOG_SQRT_2PI + self.log_std).sum().expand(out.shape[0])
            log_prob = diagonal_gaussian_log_prob(actions, out, self.log_std)
        return log_prob, entropy, self.values(observations)
