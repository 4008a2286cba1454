"""The affine map from a tanh's [-1, 1] to a Box action space's bounds."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def scale_and_bias(action_low: np.ndarray, action_high: np.ndarray) -> tuple[Tensor, Tensor]:
    """((high - low) / 2, (high + low) / 2), flat float32: action = scale * tanh(...) + bias.

    Computed in numpy (float32, the same roundings as torch's): the networks are also built on the meta device to
    count their parameters, where a torch division would import torch._dynamo (rlexp/networks/optimizers.py)."""
    low = np.asarray(action_low, dtype=np.float32).flatten()
    high = np.asarray(action_high, dtype=np.float32).flatten()
    return torch.as_tensor((high - low) / np.float32(2)), torch.as_tensor((high + low) / np.float32(2))
