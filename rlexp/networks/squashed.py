"""SAC's policy: a tanh-squashed diagonal Gaussian (Haarnoja et al. 2018, appendix C), or gSDE's state-dependent
noise on its features (rlexp/networks/gsde.py), rescaled to the env's bounds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlexp.networks.batch_renorm import Renorm
from rlexp.networks.bounds import scale_and_bias
from rlexp.networks.gaussian import diagonal_gaussian_log_prob
from rlexp.networks.gsde import StateDependentNoise
from rlexp.networks.members import standard_normal
from rlexp.networks.torsos import ACTIVATIONS, mlp

#: The range of log sigma(s) (SB3's and the authors' code): keeps sigma away from 0 and from overflowing exp.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def squashed_log_prob(u: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log pi(tanh(u) | s) summed over action dimensions: the Gaussian's log-density of u minus
    sum_i log(1 - tanh(u_i)^2), the latter written as 2 * (log 2 - u - softplus(-2u)), which is exact and stays
    finite where tanh(u) rounds to +-1."""
    squash = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(dim=-1)
    return diagonal_gaussian_log_prob(u, mean, log_std) - squash


#: gSDE's mean is kept in [-CLIP_MEAN, CLIP_MEAN] before the squash (SB3's clip_mean), away from tanh's flat tails.
CLIP_MEAN = 2.0


class SquashedGaussianActor(nn.Module):
    """pi(a|s): an MLP torso, then a mean head and a log-std head (or gSDE's noise, `use_sde`); a = tanh(u) in
    [-1, 1], rescaled to the env's bounds by `to_env`. `renorm` puts a batch renormalisation layer on the torso's
    input and after each of its hidden layers (CrossQ's actor, as sb3-contrib's and SBX's)."""

    action_scale: Tensor   # buffers (register_buffer)
    action_bias: Tensor

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 hidden_sizes: Sequence[int], activation: str = "relu", use_sde: bool = False,
                 log_std_init: float = -3.0, encoder: nn.Module | None = None,
                 renorm: Renorm | None = None) -> None:
        super().__init__()
        # `encoder`: observations to `obs_dim` features (rlexp/networks/encoders.py); none: they are features
        self.encoder = encoder if encoder is not None else nn.Identity()
        action_dim = int(np.prod(action_low.shape))
        if renorm is None:
            self.torso = nn.Sequential(mlp(obs_dim, hidden_sizes[:-1], hidden_sizes[-1], activation),
                                       ACTIVATIONS[activation]())
        else:
            layers: list[nn.Module] = []
            for fan_in, width in zip([obs_dim, *hidden_sizes[:-1]], hidden_sizes):
                layers += [renorm.layer(fan_in), nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
            self.torso = nn.Sequential(*layers, renorm.layer(hidden_sizes[-1]))
        self.mean: nn.Module
        self.sde: StateDependentNoise | None
        if use_sde:
            self.mean = nn.Sequential(nn.Linear(hidden_sizes[-1], action_dim), nn.Hardtanh(-CLIP_MEAN, CLIP_MEAN))
            self.sde = StateDependentNoise(hidden_sizes[-1], action_dim, log_std_init)
        else:
            self.mean = nn.Linear(hidden_sizes[-1], action_dim)
            self.log_std = nn.Linear(hidden_sizes[-1], action_dim)
            self.sde = None
        scale, bias = scale_and_bias(action_low, action_high)
        self.register_buffer("action_scale", scale)
        self.register_buffer("action_bias", bias)

    def distribution(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """mu(s) and log sigma(s) of the Gaussian before the squash."""
        latent = self.torso(self.encoder(observations))
        return self.mean(latent), self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, observations: Tensor, generator: torch.Generator | list[torch.Generator] | None,
               sde_eps: Tensor | None = None, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A reparameterised draw a = tanh(mu + sigma * eps), eps ~ N(0, I), and log pi(a|s); with gSDE,
        a = tanh(mu + z^T W) for the exploration matrices W = sigma * `sde_eps` (one per row, or one for all).
        Stacked seeds draw eps with one generator each (`generator` a list); `eps` given is used as it is."""
        if self.sde is not None:
            assert sde_eps is not None   # gSDE draws with the exploration matrices
            latent = self.torso(self.encoder(observations))
            mean = self.mean(latent)
            u = mean + self.sde.noise(latent, sde_eps)
            return torch.tanh(u), squashed_log_prob(u, mean, self.sde.log_std_of(latent))
        mean, log_std = self.distribution(observations)
        if eps is None:
            assert generator is not None   # (None only where `eps` is given)
            eps = standard_normal(mean.shape, generator, mean.device)
        u = mean + log_std.exp() * eps
        return torch.tanh(u), squashed_log_prob(u, mean, log_std)

    def deterministic(self, observations: Tensor) -> Tensor:
        """tanh(mu(s)): the action evaluation takes."""
        return torch.tanh(self.mean(self.torso(self.encoder(observations))))

    def to_env(self, squashed: Tensor) -> Tensor:
        """An action in [-1, 1] mapped to the env's bounds."""
        return squashed * self.action_scale + self.action_bias

    def deterministic_env_action(self, observations: Tensor) -> Tensor:
        return self.to_env(self.deterministic(observations))
