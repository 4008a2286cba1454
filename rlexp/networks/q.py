"""DQN's Q-networks: one forward pass gives the value of every discrete action."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from rlexp.networks.torsos import ACTIVATIONS, NatureConvolutions, mlp


class QNetwork(nn.Module):
    """Q(s, .): one forward pass gives the value of every discrete action (Mnih et al. 2015).

    On flat observations an MLP; on stacked frames (`image_shape`) the Nature CNN: the convolutions, then a
    512-unit layer and one output per action; on an image encoder's features (no `hidden_sizes`) a linear layer.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int],
                 image_shape: Sequence[int] | None = None, activation: str = "relu",
                 encoder: nn.Module | None = None) -> None:
        super().__init__()
        # `encoder`: observations to `obs_dim` features (rlexp/networks/encoders.py); none for frames or features
        self.encoder = encoder if encoder is not None else nn.Identity()
        if image_shape is not None:
            convolutions = NatureConvolutions(image_shape)
            self.net = nn.Sequential(convolutions, nn.Linear(convolutions.out_features, 512), nn.ReLU(),
                                     nn.Linear(512, n_actions))
        else:
            self.net = mlp(obs_dim, hidden_sizes, n_actions, activation)

    def forward(self, observations: Tensor) -> Tensor:
        return self.net(self.encoder(observations))


class DuelingQNetwork(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a') over a shared torso (Wang et al. 2016, eq. 9).

    Subtracting the mean advantage makes V and A identifiable without changing the greedy action. On frames,
    as in the paper: the Nature convolutions, then a value and an advantage stream of 512 units each; on flat
    observations an MLP torso (all hidden layers but the last) with linear value and advantage heads; on an image
    encoder's features (no `hidden_sizes`: rlexp/agents/dqn.py's images) linear value and advantage heads.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int],
                 image_shape: Sequence[int] | None = None, activation: str = "relu",
                 encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else nn.Identity()   # as QNetwork's
        self.torso: nn.Module
        self.value: nn.Module
        self.advantage: nn.Module
        if image_shape is not None:
            self.torso = convolutions = NatureConvolutions(image_shape)
            width = convolutions.out_features
            self.value = nn.Sequential(nn.Linear(width, 512), nn.ReLU(), nn.Linear(512, 1))
            self.advantage = nn.Sequential(nn.Linear(width, 512), nn.ReLU(), nn.Linear(512, n_actions))
            return
        if not hidden_sizes:   # features of an image encoder's CNN (its own 512 units): linear heads on them
            self.torso = nn.Identity()
            self.value = nn.Linear(obs_dim, 1)
            self.advantage = nn.Linear(obs_dim, n_actions)
            return
        *torso, last = hidden_sizes
        self.torso = nn.Sequential(mlp(obs_dim, torso, last, activation), ACTIVATIONS[activation]())
        self.value = nn.Linear(last, 1)
        self.advantage = nn.Linear(last, n_actions)

    def forward(self, observations: Tensor) -> Tensor:
        features = self.torso(self.encoder(observations))
        advantages = self.advantage(features)
        return self.value(features) + advantages - advantages.mean(dim=-1, keepdim=True)
