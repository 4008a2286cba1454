"""The deterministic actor and the critic ensemble of DDPG and TD3.

They take the DDPG paper's options (Lillicrap et al. 2015, section 7): batch normalization of the state input
and of the layers before the action enters, the action entering the critic at its second layer, and final
layers initialised in [-3e-3, 3e-3]. Hidden layers are always initialised fan-in uniform,
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in the paper (and PyTorch's default).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from rlexp.errors import ConfigError
from rlexp.networks.batch_renorm import BatchRenorm, Renorm
from rlexp.networks.bounds import scale_and_bias
from rlexp.networks.members import stack_members
from rlexp.networks.torsos import ACTIVATIONS, mlp


def init_final_layer(weight: Tensor, bias: Tensor, bound: float) -> None:
    """U(-bound, bound) for a final layer (the DDPG paper's 3e-3), so initial outputs are near zero."""
    with torch.no_grad():
        weight.uniform_(-bound, bound)
        bias.uniform_(-bound, bound)


class Actor(nn.Module):
    """Deterministic policy mu(s): a tanh output rescaled to the env's action bounds."""

    action_scale: Tensor   # buffers (register_buffer)
    action_bias: Tensor

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 hidden_sizes: Sequence[int], batch_norm: bool = False, final_layer_init: float = 0.0,
                 activation: str = "relu", encoder: nn.Module | None = None) -> None:
        super().__init__()
        # `encoder`: observations to `obs_dim` features (rlexp/networks/encoders.py); none: they are features
        self.encoder = encoder if encoder is not None else nn.Identity()
        action_dim = int(np.prod(action_low.shape))
        if batch_norm:  # on the state input and after every hidden layer, before its nonlinearity
            layers: list[nn.Module] = [nn.BatchNorm1d(obs_dim)]
            for fan_in, width in zip([obs_dim, *hidden_sizes[:-1]], hidden_sizes):
                layers += [nn.Linear(fan_in, width), nn.BatchNorm1d(width), ACTIVATIONS[activation]()]
            self.net = nn.Sequential(*layers, nn.Linear(hidden_sizes[-1], action_dim))
        else:
            self.net = mlp(obs_dim, hidden_sizes, action_dim, activation)
        if final_layer_init:
            final = self.net[-1]
            assert isinstance(final, nn.Linear)
            init_final_layer(final.weight, final.bias, final_layer_init)
        scale, bias = scale_and_bias(action_low, action_high)
        self.register_buffer("action_scale", scale)
        self.register_buffer("action_bias", bias)

    def forward(self, observations: Tensor) -> Tensor:
        return torch.tanh(self.net(self.encoder(observations))) * self.action_scale + self.action_bias


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
    The action joins the input (`action_layer=0`, the modern default) or the output of the first hidden layer
    (`action_layer=1`, the DDPG paper); `batch_norm` normalizes the state input and the layers before the action
    enters, each critic with its own statistics. `renorm` puts a batch renormalisation layer before every linear
    layer, the input's included (CrossQ's critics: Bhatt et al. 2024, rlexp/networks/batch_renorm.py), each critic
    with its own statistics.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], n_critics: int,
                 action_layer: int = 0, batch_norm: bool = False, final_layer_init: float = 0.0,
                 activation: str = "relu", encoder: nn.Module | None = None, outputs: int = 1,
                 renorm: Renorm | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else nn.Identity()   # as the actor's
        self.n_critics = n_critics
        self.outputs = outputs   # per critic: 1 (Q) or a distribution's quantiles (TQC)
        self.seeds: int | None = None   # many seeds' ensembles stacked as one (stack_members): their number
        self.activation = torch.relu if activation == "relu" else torch.tanh
        self.action_layer = action_layer
        sizes = [obs_dim, *hidden_sizes, outputs]
        fan_ins = [size + (action_dim if i == action_layer else 0) for i, size in enumerate(sizes[:-1])]
        self.layers = nn.ModuleList(
            EnsembleLinear(n_critics, fan_in, fan_out) for fan_in, fan_out in zip(fan_ins, sizes[1:])
        )
        # One BatchNorm over (critic, feature) channels: per-critic statistics in a single kernel.
        self.norms = nn.ModuleList(nn.BatchNorm1d(n_critics * size) for size in sizes[:action_layer + 1]) \
            if batch_norm else None
        self.renorms = nn.ModuleList(renorm.layer(fan_in, n_critics) for fan_in in fan_ins) \
            if renorm is not None else None
        if final_layer_init:
            final = self.linear_layers()[-1]
            init_final_layer(final.weight, final.bias, final_layer_init)

    def linear_layers(self) -> Sequence[EnsembleLinear]:
        """`layers`, typed: a ModuleList of EnsembleLinear."""
        return cast("Sequence[EnsembleLinear]", self.layers)

    def _normalize(self, i: int, x: Tensor) -> Tensor:
        """Batch-normalize input i of the layers (before the action enters), if enabled."""
        if self.norms is None or i >= len(self.norms):
            return x
        members, batch, features = x.shape
        flat = x.permute(1, 0, 2).reshape(batch, members * features)
        return self.norms[i](flat).reshape(batch, members, features).permute(1, 0, 2)

    @classmethod
    def stack_members(cls, members: list[CriticEnsemble]) -> CriticEnsemble:
        """Many seeds' ensembles as one of seeds x n_critics members (rlexp/networks/members.py), member-major:
        it takes (seeds, batch, .) inputs and gives (seeds, n_critics, batch) Q-values."""
        if members[0].norms is not None:
            raise ConfigError("a critic ensemble with batch normalization cannot be batched over seeds yet")
        stacked = copy.deepcopy(members[0])
        stacked.seeds = len(members)
        if any(True for _ in stacked.encoder.parameters()):   # a torso of its own (network.torso's): each seed's
            stacked.encoder = stack_members([m.encoder for m in members], "the critic's torso")
        for i, layer in enumerate(stacked.linear_layers()):
            layer.weight = nn.Parameter(torch.cat([m.linear_layers()[i].weight.detach() for m in members]),
                                        requires_grad=layer.weight.requires_grad)
            layer.bias = nn.Parameter(torch.cat([m.linear_layers()[i].bias.detach() for m in members]),
                                      requires_grad=layer.bias.requires_grad)
        if stacked.renorms is not None:   # each seed's critics' statistics: their rows of the stacked layers
            stacked.renorms = nn.ModuleList(
                BatchRenorm.stack_members([cast(BatchRenorm, m.renorms[i]) for m in members if m.renorms is not None])
                for i in range(len(stacked.renorms)))
        return stacked

    def _members_input(self, x: Tensor) -> Tensor:
        """(batch, f) -> (n_critics, batch, f); stacked seeds: (seeds, batch, f) -> (seeds * n_critics, batch, f)."""
        if self.seeds is None:
            return x.unsqueeze(0).expand(self.n_critics, -1, -1)
        return x.unsqueeze(1).expand(-1, self.n_critics, -1, -1).reshape(self.seeds * self.n_critics, *x.shape[1:])

    def forward(self, observations: Tensor, actions: Tensor) -> Tensor:
        """Returns Q-values of shape (n_critics, batch), (seeds, n_critics, batch) for stacked seeds; with several
        `outputs` per critic, (n_critics, batch, outputs) and (seeds, n_critics, batch, outputs)."""
        x = self._members_input(self.encoder(observations))
        a = self._members_input(actions)
        for i, layer in enumerate(self.layers):
            x = self._normalize(i, x)
            if i == self.action_layer:
                x = torch.cat([x, a], dim=-1)
            if self.renorms is not None:
                x = self.renorms[i](x)
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        q_values = x.squeeze(-1) if self.outputs == 1 else x
        return q_values if self.seeds is None else q_values.view(self.seeds, self.n_critics, *q_values.shape[1:])

    def q1(self, observations: Tensor, actions: Tensor) -> Tensor:
        """The first critic alone, Q_1(s, a) of shape (batch,) ((seeds, batch) for stacked seeds): what the actor
        climbs."""
        if self.norms is not None or self.renorms is not None:   # per-critic statistics: take the batched path
            return self.forward(observations, actions)[0]
        x = self.encoder(observations)
        for i, layer in enumerate(self.linear_layers()):
            if i == self.action_layer:
                x = torch.cat([x, actions], dim=-1)
            if self.seeds is None:
                x = torch.addmm(layer.bias[0], x, layer.weight[0])
            else:   # each seed's first critic: member-major, so every n_critics-th member
                x = torch.baddbmm(layer.bias[::self.n_critics], x, layer.weight[::self.n_critics])
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x.squeeze(-1)
