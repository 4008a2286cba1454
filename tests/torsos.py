"""Torsos of a user's own (`network.torso._target_=tests.torsos:SmallTorso`), and faulty ones the refusals name.

The form the README shows: an nn.Module built as `Torso(observation_space, **kwargs)`, with an int `out_features`,
mapping raw observations (batch, *obs_shape) to float32 features (batch, out_features).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn


class SmallTorso(nn.Module):
    """The observation, flattened, through a linear layer and a tanh: `width` features."""

    def __init__(self, observation_space: gym.Space, width: int = 16) -> None:
        super().__init__()
        self.out_features = width
        self.linear = nn.Linear(int(np.prod(observation_space.shape)), width)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(observations.flatten(1).float()))


class NoWidth(SmallTorso):
    """Forgets to say how wide its features are."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__(observation_space)
        del self.out_features


class WrongWidth(SmallTorso):
    """Says 8, gives 16."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__(observation_space, width=16)
        self.out_features = 8


class Float64Features(SmallTorso):
    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return super().forward(observations).double()


class NeedsAnImage(SmallTorso):
    """Built for images only: fails on a vector's batch."""

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return super().forward(observations.permute(0, 3, 1, 2))


class WithRunningStatistics(SmallTorso):
    """A batch norm: running statistics, state besides its parameters."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__(observation_space)
        self.norm = nn.BatchNorm1d(self.out_features)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(observations))


class BranchesOnData(SmallTorso):
    """Python control flow on the observations' values: torch.export cannot follow it."""

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        features = super().forward(observations)
        return features if bool(observations.sum() > 1e9) else features * 2


class NotATorso:
    """A class, but no nn.Module."""

    def __init__(self, observation_space: gym.Space) -> None:
        self.out_features = 4


def downsampled(env: gym.Env, every: int = 10) -> gym.Env:
    """A user's wrapper (env.wrappers) making a small image of an image env: every `every`-th pixel (84x84x3 ->
    9x9x3, a MiniGrid-like grid, smaller than the Nature CNN reads)."""
    space = env.observation_space
    small = gym.spaces.Box(0, 255, (len(range(0, space.shape[0], every)), len(range(0, space.shape[1], every)),
                                    space.shape[2]), np.uint8)
    return gym.wrappers.TransformObservation(env, lambda obs: obs[::every, ::every], small)


class MeasuresItsWidth(nn.Module):
    """Measures its features' width with a forward pass on a sample, through numpy (real numbers only: not on
    the meta device where rlexp counts parameters)."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__()
        self.linear = nn.Linear(int(np.prod(observation_space.shape)), 5)
        sample = torch.as_tensor(np.asarray(observation_space.sample(), np.float32)).reshape(1, -1)
        self.out_features = int(self.linear(sample).detach().numpy().shape[1])

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(observations.flatten(1).float())


def leaf_sizes(space: gym.Space) -> list[int]:
    """The number of values of each leaf of a Dict/Tuple space, in the order its entries come."""
    if isinstance(space, gym.spaces.Dict):
        return [size for sub in space.spaces.values() for size in leaf_sizes(sub)]
    if isinstance(space, gym.spaces.Tuple):
        return [size for sub in space.spaces for size in leaf_sizes(sub)]
    return [int(np.prod(space.shape)) if space.shape else 1]


def flattened(entries: object) -> list[torch.Tensor]:
    """A dict or tuple of (batch, ...) tensors, nested as its space, as a list of (batch, n) float tensors."""
    if isinstance(entries, dict):
        return [x for value in entries.values() for x in flattened(value)]
    if isinstance(entries, tuple):
        return [x for value in entries for x in flattened(value)]
    assert isinstance(entries, torch.Tensor)
    return [(entries.unsqueeze(-1) if entries.dim() == 1 else entries.flatten(1)).float()]   # (a Discrete: (batch,))


class EntriesTorso(nn.Module):
    """A torso of Dict and Tuple observations, written as an SB3 features extractor is: it is built with the Dict
    or Tuple space and called with a dict or tuple of tensors, each entry flattened to floats, concatenated, through
    a linear layer and a tanh."""

    def __init__(self, observation_space: gym.Space, width: int = 16) -> None:
        super().__init__()
        self.out_features = width
        self.linear = nn.Linear(sum(leaf_sizes(observation_space)), width)

    def forward(self, observations: object) -> torch.Tensor:
        return torch.tanh(self.linear(torch.cat(flattened(observations), dim=-1)))
