"""Function approximators: the MLP, DQN's Q-network, the deterministic actor and a critic ensemble."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


def mlp(in_features: int, hidden_sizes: Sequence[int], out_features: int) -> nn.Sequential:
    """Linear -> ReLU blocks, then a linear output layer."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Q(s, .): one forward pass gives the value of every discrete action (Mnih et al. 2015)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, n_actions)

    def forward(self, observations: Tensor) -> Tensor:
        return self.net(observations)


class DuelingQNetwork(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a') over a shared torso (Wang et al. 2016, eq. 9).

    Subtracting the mean advantage makes V and A identifiable without changing the greedy action.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        *torso, last = hidden_sizes
        self.torso = nn.Sequential(mlp(obs_dim, torso, last), nn.ReLU())
        self.value = nn.Linear(last, 1)
        self.advantage = nn.Linear(last, n_actions)

    def forward(self, observations: Tensor) -> Tensor:
        features = self.torso(observations)
        advantages = self.advantage(features)
        return self.value(features) + advantages - advantages.mean(dim=1, keepdim=True)


class Actor(nn.Module):
    """Deterministic policy mu(s): a tanh output rescaled to the env's action bounds."""

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        action_dim = int(np.prod(action_low.shape))
        self.net = mlp(obs_dim, hidden_sizes, action_dim)
        low = torch.as_tensor(action_low, dtype=torch.float32).flatten()
        high = torch.as_tensor(action_high, dtype=torch.float32).flatten()
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, observations: Tensor) -> Tensor:
        return torch.tanh(self.net(observations)) * self.action_scale + self.action_bias


class EnsembleLinear(nn.Module):
    """`n_members` independent linear layers evaluated as one batched matmul."""

    def __init__(self, n_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features))
        # Each member initialised exactly like nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        # x: (n_members, batch, in_features) -> (n_members, batch, out_features)
        return torch.baddbmm(self.bias, x, self.weight)


class CriticEnsemble(nn.Module):
    """`n_critics` independent critics Q_i(s, a), computed in one pass (TD3's twin critics as one module).

    Batching the critics halves the kernel launches of a TD3 update compared with two separate MLPs.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], n_critics: int) -> None:
        super().__init__()
        self.n_critics = n_critics
        sizes = [obs_dim + action_dim, *hidden_sizes, 1]
        self.layers = nn.ModuleList(
            EnsembleLinear(n_critics, fan_in, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, observations: Tensor, actions: Tensor) -> Tensor:
        """Returns Q-values of shape (n_critics, batch)."""
        x = torch.cat([observations, actions], dim=-1)
        x = x.unsqueeze(0).expand(self.n_critics, -1, -1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x).squeeze(-1)

    def q1(self, observations: Tensor, actions: Tensor) -> Tensor:
        """The first critic alone, Q_1(s, a) of shape (batch,): what the actor climbs."""
        x = torch.cat([observations, actions], dim=-1)
        for layer in self.layers[:-1]:
            x = torch.relu(torch.addmm(layer.bias[0], x, layer.weight[0]))
        last = self.layers[-1]
        return torch.addmm(last.bias[0], x, last.weight[0]).squeeze(-1)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta_target <- tau * theta + (1 - tau) * theta_target, fused over all tensors.

    tau = 1 is a hard copy. Buffers (e.g. action bounds) are copied as they are.
    """
    target_params = list(target.parameters())
    online_params = list(online.parameters())
    if tau == 1.0:
        torch._foreach_copy_(target_params, online_params)
    else:
        torch._foreach_lerp_(target_params, online_params, tau)
