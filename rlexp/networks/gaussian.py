"""The diagonal Gaussian's log-density, shared by SAC's squashed policy, the on-policy Gaussian policy and gSDE."""

from __future__ import annotations

import math

from torch import Tensor

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def diagonal_gaussian_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(x; mean, diag(exp(log_std))^2), summed over the last dimension."""
    return (-0.5 * ((x - mean) / log_std.exp()).pow(2) - log_std - LOG_SQRT_2PI).sum(-1)
