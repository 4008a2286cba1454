"""DQN's Q-networks: one forward pass gives the value of every discrete action.

What the last layer outputs per action is the value head's (`ValueHead`): Q(s, a) itself (DQN), the logits of a
categorical distribution of returns on a fixed support (C51: Bellemare et al. 2017), or quantiles of that
distribution (QR-DQN: Dabney et al. 2018). `forward` always gives Q(s, .), the distribution's mean, so acting,
evaluation, export and the paper instruments read every head alike; `outputs` gives what the head learns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from rlexp.networks.noisy import NoisyLinear
from rlexp.networks.torsos import ACTIVATIONS, NatureConvolutions, mlp

#: A fully connected layer's maker, (inputs, outputs) -> layer: nn.Linear, or a NoisyLinear (algo.noisy).
Linear = Callable[[int, int], nn.Module]


def linear_layer(noisy_sigma: float | None) -> Linear:
    """nn.Linear, or noisy layers with sigma0 = `noisy_sigma` (Fortunato et al. 2018)."""
    if noisy_sigma is None:
        return nn.Linear
    return lambda inputs, outputs: NoisyLinear(inputs, outputs, noisy_sigma)


class ValueHead(nn.Module):
    """What the network outputs per action, `atoms` numbers, and Q(s, a) from them. This one: Q itself."""

    atoms = 1

    def q_values(self, outputs: Tensor) -> Tensor:
        """(..., actions, atoms) -> Q (..., actions)."""
        return outputs.squeeze(-1)


class CategoricalHead(ValueHead):
    """C51: logits of p_i(s, a) on the support z_i = v_min + i (v_max - v_min) / (N - 1), i = 0 .. N-1;
    Q(s, a) = sum_i z_i p_i(s, a) (Bellemare et al. 2017, section 4)."""

    support: Tensor   # z (a buffer, not saved: the config makes it)

    def __init__(self, atoms: int, v_min: float, v_max: float) -> None:
        super().__init__()
        self.atoms = atoms
        self.register_buffer("support", torch.linspace(v_min, v_max, atoms), persistent=False)

    def q_values(self, outputs: Tensor) -> Tensor:
        return (outputs.softmax(dim=-1) * self.support).sum(dim=-1)


class QuantileHead(ValueHead):
    """QR-DQN: N quantiles theta_i(s, a) of the return, at the midpoints tau_i = (2i + 1) / 2N; Q(s, a) is their
    mean (Dabney et al. 2018, section 4)."""

    def __init__(self, quantiles: int) -> None:
        super().__init__()
        self.atoms = quantiles

    def q_values(self, outputs: Tensor) -> Tensor:
        return outputs.mean(dim=-1)


class QNetwork(nn.Module):
    """Q(s, .): one forward pass gives the value of every discrete action (Mnih et al. 2015).

    On flat observations an MLP; on stacked frames (`image_shape`) the Nature CNN: the convolutions, then a
    512-unit layer and one output per action (and atom); on an image encoder's features (no `hidden_sizes`) a
    linear layer. `linear` makes the fully connected layers (noisy ones, algo.noisy), `head` reads their outputs.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int],
                 image_shape: Sequence[int] | None = None, activation: str = "relu",
                 encoder: nn.Module | None = None, head: ValueHead | None = None,
                 linear: Linear = nn.Linear) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.head = head if head is not None else ValueHead()
        outputs = n_actions * self.head.atoms
        # `encoder`: observations to `obs_dim` features (rlexp/networks/encoders.py); none for frames or features
        self.encoder = encoder if encoder is not None else nn.Identity()
        if image_shape is not None:
            convolutions = NatureConvolutions(image_shape)
            self.net = nn.Sequential(convolutions, linear(convolutions.out_features, 512), nn.ReLU(),
                                     linear(512, outputs))
        else:
            self.net = mlp(obs_dim, hidden_sizes, outputs, activation, linear)

    def outputs(self, observations: Tensor) -> Tensor:
        """(..., actions, atoms): what the head learns for each action."""
        return self.net(self.encoder(observations)).unflatten(-1, (self.n_actions, self.head.atoms))

    def forward(self, observations: Tensor) -> Tensor:
        return self.head.q_values(self.outputs(observations))


class DuelingQNetwork(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a') over a shared torso (Wang et al. 2016, eq. 9).

    Subtracting the mean advantage makes V and A identifiable without changing the greedy action. On frames,
    as in the paper: the Nature convolutions, then a value and an advantage stream of 512 units each; on flat
    observations an MLP torso (all hidden layers but the last) with linear value and advantage heads; on an image
    encoder's features (no `hidden_sizes`: rlexp/agents/dqn.py's images) linear value and advantage heads. With a
    distributional head the streams give one value and one advantage per atom, combined atom by atom before the
    head reads them (Rainbow: Hessel et al. 2018, section 3).
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int],
                 image_shape: Sequence[int] | None = None, activation: str = "relu",
                 encoder: nn.Module | None = None, head: ValueHead | None = None,
                 linear: Linear = nn.Linear) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.head = head if head is not None else ValueHead()
        atoms = self.head.atoms
        self.encoder = encoder if encoder is not None else nn.Identity()   # as QNetwork's
        self.torso: nn.Module
        self.value: nn.Module
        self.advantage: nn.Module
        if image_shape is not None:
            self.torso = convolutions = NatureConvolutions(image_shape)
            width = convolutions.out_features
            self.value = nn.Sequential(linear(width, 512), nn.ReLU(), linear(512, atoms))
            self.advantage = nn.Sequential(linear(width, 512), nn.ReLU(), linear(512, n_actions * atoms))
            return
        if not hidden_sizes:   # features of an image encoder's CNN (its own 512 units): linear heads on them
            self.torso = nn.Identity()
            self.value = linear(obs_dim, atoms)
            self.advantage = linear(obs_dim, n_actions * atoms)
            return
        *torso, last = hidden_sizes
        self.torso = nn.Sequential(mlp(obs_dim, torso, last, activation, linear), ACTIVATIONS[activation]())
        self.value = linear(last, atoms)
        self.advantage = linear(last, n_actions * atoms)

    def outputs(self, observations: Tensor) -> Tensor:
        features = self.torso(self.encoder(observations))
        atoms = self.head.atoms
        advantages = self.advantage(features).unflatten(-1, (self.n_actions, atoms))
        value = self.value(features).unflatten(-1, (1, atoms))
        return value + advantages - advantages.mean(dim=-2, keepdim=True)

    def forward(self, observations: Tensor) -> Tensor:
        return self.head.q_values(self.outputs(observations))
