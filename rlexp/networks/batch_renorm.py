"""Batch renormalisation: Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch Dependence in
Batch-Normalized Models" (https://arxiv.org/abs/1702.03275), CrossQ's normalisation layer (Bhatt et al. 2024).

In training mode a layer normalises each feature with the batch's mean mu_B and standard deviation sigma_B, then
corrects towards the running statistics mu, sigma:

    x_hat = (x - mu_B) / sigma_B * r + d,   r = clip(sigma_B / sigma, 1/r_max, r_max),
                                            d = clip((mu_B - mu) / sigma, -d_max, d_max),
    y = gamma x_hat + beta,

with r and d held constant in the gradient (the paper's Algorithm 1). For its first `warmup_steps` training passes
r = 1 and d = 0: plain batch normalisation, while the running statistics settle (SBX's and sb3-contrib's warmup,
in place of the paper's schedule relaxing r_max and d_max). Every training pass moves the running statistics by
`momentum` towards the batch's. In evaluation mode the layer normalises with the running statistics alone: an
affine map, which is what acting, evaluation and exports use.

A layer may hold `members` independent sets of statistics and affine parameters, one per leading index of its
input (members, batch, features): the critics of an ensemble, and the seeds of a many-seeds run, each normalised
by its own batch (`stack_members`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rlexp.networks.members import member_view

#: The clipping of the corrections (the paper's r_max and d_max after its relaxation; SBX's and sb3-contrib's).
R_MAX, D_MAX = 3.0, 5.0


class BatchRenorm(nn.Module):
    """Batch renormalisation over the batch axis (the second to last) of (..., batch, features) inputs."""

    running_mean: Tensor   # buffers (register_buffer): mu, sigma^2 and the training passes so far
    running_var: Tensor
    steps: Tensor

    def __init__(self, features: int, members: int | None = None, momentum: float = 0.01, eps: float = 1e-3,
                 warmup_steps: int = 100_000) -> None:
        super().__init__()
        self.members = members   # None: one set of statistics for (batch, features) inputs
        shape = (features,) if members is None else (members, features)
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("steps", torch.zeros(shape[:-1], dtype=torch.long))
        self.weight = nn.Parameter(torch.ones(shape))    # gamma
        self.bias = nn.Parameter(torch.zeros(shape))     # beta
        self.momentum, self.eps, self.warmup_steps = momentum, eps, warmup_steps

    def _per_row(self, statistic: Tensor) -> Tensor:
        """A (members, features) statistic against (members, batch, features) inputs; (features,) ones broadcast."""
        return statistic if self.members is None else statistic.unsqueeze(-2)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            x_hat = (x - self._per_row(self.running_mean)) / self._per_row((self.running_var + self.eps).sqrt())
            return self._per_row(self.weight) * x_hat + self._per_row(self.bias)
        # (the unbiased variance, to normalise and for the running statistics alike, as sb3-contrib's and SBX's)
        batch_mean, batch_var = x.mean(dim=-2), x.var(dim=-2)
        batch_std = (batch_var + self.eps).sqrt()
        with torch.no_grad():
            running_std = (self.running_var + self.eps).sqrt()
            r = (batch_std / running_std).clamp(1 / R_MAX, R_MAX)
            d = ((batch_mean - self.running_mean) / running_std).clamp(-D_MAX, D_MAX)
            warm = (self.steps > self.warmup_steps).unsqueeze(-1)   # past the warmup: renormalise
            r = torch.where(warm, r, torch.ones_like(r))
            d = torch.where(warm, d, torch.zeros_like(d))
            self.running_mean.lerp_(batch_mean, self.momentum)
            self.running_var.lerp_(batch_var, self.momentum)
            self.steps += 1
        x_hat = (x - self._per_row(batch_mean)) / self._per_row(batch_std) * self._per_row(r) + self._per_row(d)
        return self._per_row(self.weight) * x_hat + self._per_row(self.bias)

    @classmethod
    def stack_members(cls, layers: Sequence[BatchRenorm]) -> BatchRenorm:
        """Many seeds' layers as one with a member axis in front (member-major: a layer of m members gives m rows
        per seed). Each seed's parameters and statistics become views of its rows, so its own checkpoint holds what
        the stacked layer learns (rlexp/networks/members.py)."""
        first, seeds = layers[0], len(layers)
        join = torch.stack if first.members is None else torch.cat
        features = first.running_mean.shape[-1]
        stacked = cls(features, seeds * (first.members or 1), first.momentum, first.eps, first.warmup_steps)
        stacked.train(first.training)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var", "steps"):
                getattr(stacked, name).copy_(join([getattr(layer, name) for layer in layers]))
            for k, layer in enumerate(layers):   # each seed's buffers its rows (share_storage binds the parameters)
                for name in ("running_mean", "running_var", "steps"):
                    own = getattr(layer, name)
                    setattr(layer, name, member_view(getattr(stacked, name), seeds, k, own.shape))
        return stacked

    def extra_repr(self) -> str:
        return (f"features={self.running_mean.shape[-1]}, members={self.members}, momentum={self.momentum}, "
                f"eps={self.eps}, warmup_steps={self.warmup_steps}")


@dataclass(frozen=True)
class Renorm:
    """The settings of a network's batch renormalisation layers (CrossQ's `algo.batch_renorm_*` keys)."""

    momentum: float = 0.01
    eps: float = 1e-3
    warmup_steps: int = 100_000

    def layer(self, features: int, members: int | None = None) -> BatchRenorm:
        return BatchRenorm(features, members, self.momentum, self.eps, self.warmup_steps)
