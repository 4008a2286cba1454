"""An agent's deterministic policy as one torch module: a batch of (normalized) observations -> the env's actions.

It is what evaluation acts with, written so that torch.jit.trace and torch.onnx.export can carry it into a file of
its own (`rlexp export`): a network's mode (`method`), then the greedy action (discrete) or a clamp to the env's
bounds (continuous), with no numpy and no Python branching on tensor values.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class DeterministicPolicy(nn.Module):
    """`network.<method>(obs)`, then argmax over its last axis (`greedy`, Q-values) or clamped to [low, high]."""

    low: Tensor    # buffers (register_buffer), when bounded
    high: Tensor

    def __init__(self, network: nn.Module, method: str = "forward", *, greedy: bool = False,
                 low: np.ndarray | None = None, high: np.ndarray | None = None) -> None:
        super().__init__()
        self.network, self.method, self.greedy = network, method, greedy
        self.bounded = low is not None
        if low is not None and high is not None:
            self.register_buffer("low", torch.as_tensor(np.asarray(low, np.float32).flatten()))
            self.register_buffer("high", torch.as_tensor(np.asarray(high, np.float32).flatten()))

    def forward(self, observations: Tensor) -> Tensor:
        out = getattr(self.network, self.method)(observations)
        if self.greedy:
            return out.argmax(dim=-1)
        # minimum/maximum rather than clamp(min=tensor): every exporter maps them to one elementwise op.
        return torch.maximum(torch.minimum(out, self.high), self.low) if self.bounded else out
