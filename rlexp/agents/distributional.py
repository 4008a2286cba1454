"""What DQN learns about the return of (s, a), `algo.distribution`: its expected value (DQN), a categorical
distribution on a fixed support (C51: Bellemare et al. 2017, https://arxiv.org/abs/1707.06887), or its quantiles
(QR-DQN: Dabney et al. 2018, https://arxiv.org/abs/1710.10044).

Each is a target and a loss on the Q-network's outputs at the taken actions, shaped (..., batch, atoms) (atoms = 1
for the expected value): `target` makes the Bellman target from the target network's outputs at s' for the
bootstrapped action, `loss` gives each transition's loss and the error prioritized replay reweighs it by. Every
operation is over the last axes, so a leading member axis (many seeds) gives each member's.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from rlexp.replay import ReplayBatch


class ReturnDistribution(Protocol):
    def target(self, batch: ReplayBatch, next_outputs: Tensor) -> Tensor:
        """The Bellman target, (..., batch, atoms), from the target network's outputs at s' (same shape)."""
        ...

    def loss(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(each transition's loss, its priority error), both (..., batch), from the online outputs at (s, a)."""
        ...


class ExpectedReturn:
    """y = r + gamma * (1 - terminated) * Q_target(s', a*), fitted with the Huber loss (the DQN paper's error
    clipping: gradients of |delta| > 1 clipped to +-1) or the squared error; the priority is |y - Q(s, a)|.
    `batch.discounts` is gamma * (1 - terminated) (gamma^m for an m-step return)."""

    def __init__(self, loss: str) -> None:
        self.elementwise = F.smooth_l1_loss if loss == "huber" else F.mse_loss

    def target(self, batch: ReplayBatch, next_outputs: Tensor) -> Tensor:
        return batch.rewards.unsqueeze(-1) + batch.discounts.unsqueeze(-1) * next_outputs

    def loss(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        loss = self.elementwise(outputs, target, reduction="none").squeeze(-1)
        return loss, (target - outputs).squeeze(-1).detach()


def categorical_projection(target_support: Tensor, probabilities: Tensor, support: Tensor) -> Tensor:
    """Phi: the distribution putting `probabilities` p_j on the points `target_support` Tz_j, projected onto the
    fixed `support` z_i (Bellemare et al. 2017, eq. 7):

        (Phi T z)_i = sum_j [1 - |clip(Tz_j, v_min, v_max) - z_i| / dz]_0^1 p_j

    Each point's mass is split between its two neighbouring atoms in proportion to its closeness (all of it to an
    atom it falls on): at b_j = (clip(Tz_j) - v_min) / dz, atom l = floor(b_j) gets p_j (u - b_j) and atom
    u = ceil(b_j) gets p_j (b_j - l), the only terms of the sum that are not 0 (Algorithm 1). Shapes: (..., N) for
    the first two, (N,) for the support; the result is (..., N)."""
    atoms = support.numel()
    v_min, v_max = support[0], support[-1]
    b = ((target_support.clamp(v_min, v_max) - v_min) / ((v_max - v_min) / (atoms - 1))).clamp(0, atoms - 1)
    lower, upper = b.floor(), b.ceil()
    projected = torch.zeros_like(probabilities)
    # (on an atom, l = u: all of p_j to it)
    projected.scatter_add_(-1, lower.long(), probabilities * (upper - b + (lower == upper).to(b.dtype)))
    projected.scatter_add_(-1, upper.long(), probabilities * (b - lower))
    return projected


class CategoricalReturn:
    """C51: the target distribution is the next state's, shifted and shrunk by the Bellman operator, r + gamma z,
    and projected back onto the support; the loss is the cross-entropy -sum_i m_i log p_i(s, a) (Algorithm 1),
    which is also what prioritized replay weighs by (Rainbow: Hessel et al. 2018, eq. 3's KL, which differs from
    it by the target's entropy, a constant of the network)."""

    def __init__(self, support: Tensor) -> None:
        self.support = support

    def target(self, batch: ReplayBatch, next_outputs: Tensor) -> Tensor:
        target_support = batch.rewards.unsqueeze(-1) + batch.discounts.unsqueeze(-1) * self.support
        return categorical_projection(target_support, next_outputs.softmax(dim=-1), self.support)

    def loss(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        cross_entropy = -(target * outputs.log_softmax(dim=-1)).sum(dim=-1)
        return cross_entropy, cross_entropy.detach()


def quantile_huber(quantiles: Tensor, target: Tensor) -> Tensor:
    """The quantile Huber loss with kappa = 1 of every pair of a quantile theta_i at tau_i = (2i + 1) / 2N and a
    target sample T theta_j (Dabney et al. 2018, eq. 10): u = T theta_j - theta_i and

        rho_tau(u) = |tau - 1{u < 0}| * Huber(u).

    Shapes (..., N) and (..., N'); the result is (..., N, N'), row i theta_i's."""
    n = quantiles.shape[-1]
    tau = ((torch.arange(n, device=quantiles.device, dtype=quantiles.dtype) + 0.5) / n).unsqueeze(-1)
    # theta_i against T theta_j as broadcast views: u is never formed (Huber is even in u), one pass fewer each way
    theta, target_samples = torch.broadcast_tensors(quantiles.unsqueeze(-1), target.unsqueeze(-2))
    huber = F.smooth_l1_loss(theta, target_samples, reduction="none")
    # |tau - 1{u < 0}|: 1 - tau where T theta_j < theta_i, tau elsewhere
    weight = torch.where(target_samples.detach() < theta.detach(), 1 - tau, tau)
    return weight * huber


def quantile_huber_loss(quantiles: Tensor, target: Tensor) -> Tensor:
    """QR-DQN's loss (Algorithm 1): `quantile_huber`, summed over the quantiles i and averaged over the target
    samples j. Shapes (..., N) and (..., N'); the result is (...)."""
    return quantile_huber(quantiles, target).mean(dim=-1).sum(dim=-1)


class QuantileReturn:
    """QR-DQN: the target quantiles are the next state's, r + gamma theta_j(s', a*), each a sample of the target
    distribution; the quantile Huber loss fits theta_i(s, a) to them, and is what prioritized replay weighs by."""

    def target(self, batch: ReplayBatch, next_outputs: Tensor) -> Tensor:
        return batch.rewards.unsqueeze(-1) + batch.discounts.unsqueeze(-1) * next_outputs

    def loss(self, outputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        loss = quantile_huber_loss(outputs, target)
        return loss, loss.detach()
