"""Generalized state-dependent exploration (gSDE): Raffin et al. 2022, "Smooth Exploration for Robotic
Reinforcement Learning". https://arxiv.org/abs/2005.05719

The Gaussian policy's noise is a linear function of the policy's last hidden features z(s):

    u = mu(s) + z(s)^T W,    W_jk ~ N(0, sigma_jk^2), sigma = exp(log_std), a learned (features x actions) matrix

with W drawn per env and kept for several steps (`sde_sample_freq`), so the exploration is smooth in time and
consistent in state rather than white noise at every step. Over W the action is Gaussian with the state-dependent
variance Var[u_k] = sum_j z_j(s)^2 sigma_jk^2 (+1e-6, as SB3), which is what log-probabilities and the entropy use.
As SB3's StateDependentNoiseDistribution with full_std=True and use_expln=False.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rlexp.networks.gaussian import LOG_SQRT_2PI, diagonal_gaussian_log_prob

VARIANCE_EPSILON = 1e-6


class StateDependentNoise(nn.Module):
    def __init__(self, features: int, action_dim: int, log_std_init: float) -> None:
        super().__init__()
        self.log_std = nn.Parameter(torch.full((features, action_dim), float(log_std_init)))
        self.seeds: int | None = None   # many seeds' stacked (stack_members): log_std (seeds, features, actions)

    @classmethod
    def stack_members(cls, members: list[StateDependentNoise]) -> StateDependentNoise:
        """Many seeds' noise as one (rlexp/networks/members.py): every tensor with the seed axis in front."""
        stacked = copy.deepcopy(members[0])
        stacked.seeds = len(members)
        stacked.log_std = nn.Parameter(torch.stack([m.log_std.detach() for m in members]))
        return stacked

    def draw(self, n: int, generator: torch.Generator | Sequence[torch.Generator]) -> Tensor:
        """n standard-normal matrices (for stacked seeds, n per seed from each seed's generator); W = sigma * eps
        (computed when used, so a draw is reparameterised)."""
        shape = (n, *self.log_std.shape[-2:])
        if isinstance(generator, torch.Generator):
            return torch.randn(shape, generator=generator, device=self.log_std.device)
        return torch.stack([torch.randn(shape, generator=g, device=self.log_std.device) for g in generator])

    def noise(self, latent: Tensor, eps: Tensor) -> Tensor:
        """z(s)^T W: each row with its own env's matrix when there is one per row, else with the first."""
        if self.seeds is None:
            matrices = self.log_std.exp() * eps
            if len(eps) == len(latent) and len(eps) > 1:
                return torch.bmm(latent.unsqueeze(1), matrices).squeeze(1)
            return latent @ matrices[0]
        # stacked seeds: latent (seeds, rows, features), eps (seeds, n, features, actions)
        matrices = self.log_std.exp().unsqueeze(1) * eps
        seeds, rows, features = latent.shape
        if eps.shape[1] == rows and rows > 1:
            return torch.bmm(latent.reshape(seeds * rows, 1, features),
                             matrices.reshape(seeds * rows, features, -1)).view(seeds, rows, -1)
        return torch.bmm(latent, matrices[:, 0])

    def log_std_of(self, latent: Tensor) -> Tensor:
        """log of the state-dependent std of u, per action dimension."""
        variance = (latent ** 2) @ (2 * self.log_std).exp()
        return 0.5 * torch.log(variance + VARIANCE_EPSILON)

    def log_prob(self, u: Tensor, mean: Tensor, latent: Tensor) -> Tensor:
        return diagonal_gaussian_log_prob(u, mean, self.log_std_of(latent))

    def entropy(self, latent: Tensor) -> Tensor:
        return (0.5 + LOG_SQRT_2PI + self.log_std_of(latent)).sum(-1)


def resample_due(step_in_period: int, sample_freq: int) -> bool:
    """Whether the exploration matrices are drawn anew at this step of a period (a rollout, a collection round):
    at its start, and every `sample_freq` steps within it when sample_freq > 0 (-1: at the start only)."""
    return step_in_period == 0 or (sample_freq > 0 and step_in_period % sample_freq == 0)
