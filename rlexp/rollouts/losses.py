"""The losses of the on-policy actor-critics, term by term.

PPO's clipped surrogate objective (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7,
https://arxiv.org/abs/1707.06347):

    r_t(theta) = pi_theta(a_t|s_t) / pi_theta_old(a_t|s_t)
    L^CLIP     = E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)]       (maximised; the loss is its negative)

The value loss is the squared error to the lambda-returns, optionally on a prediction kept within `clip_range_vf`
of the old value (as SB3 clips it). The diagnostics are SB3's: approx_kl = E[(r - 1) - log r] (an unbiased,
non-negative estimator of KL(old || new)), and the fraction of samples whose ratio was clipped.

Every mean is over the last axis (the minibatch's samples), so many seeds' minibatches stacked on a leading axis
give each seed its own loss (rlexp/networks/members.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PolicyLoss:
    loss: Tensor            # -L^CLIP
    approx_kl: Tensor       # E[(r - 1) - log r], without gradient
    clip_fraction: Tensor   # share of samples with |r - 1| > eps, without gradient


def normalize(advantages: Tensor, eps: float = 1e-8) -> Tensor:
    """Advantages scaled to zero mean and unit std within a minibatch (a one-sample batch is left as it is)."""
    if advantages.shape[-1] < 2:
        return advantages
    return (advantages - advantages.mean(-1, keepdim=True)) / (advantages.std(-1, keepdim=True) + eps)


def clipped_surrogate(log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor,
                      clip_range: Tensor | float) -> PolicyLoss:
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    # min and max are both tensors or both floats, as clip_range is: a pairing the overloads cannot see
    clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantages  # type: ignore[arg-type]
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean(-1)
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean(-1)
    return PolicyLoss(-torch.min(unclipped, clipped).mean(-1), approx_kl, clip_fraction)


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip_range_vf: float | None) -> Tensor:
    """E[(R_t - V(s_t))^2], V kept within `clip_range_vf` of the value at collection when given."""
    if clip_range_vf is not None:
        values = old_values + (values - old_values).clamp(-clip_range_vf, clip_range_vf)
    return (returns - values).pow(2).mean(-1)
