"""Target networks: Polyak averaging (or a hard copy) fused over all tensors."""

from __future__ import annotations

import weakref

import torch
from torch import nn

_running_stats: weakref.WeakKeyDictionary[nn.Module, list[str]] = weakref.WeakKeyDictionary()


def running_stat_names(module: nn.Module) -> list[str]:
    """Names of the batch-norm running statistics in `module` (cached: this runs every update)."""
    if module not in _running_stats:
        _running_stats[module] = [name for name, m in module.named_modules()
                                  if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return _running_stats[module]


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta_target <- tau * theta + (1 - tau) * theta_target, fused over all tensors.

    tau = 1 is a hard copy. Batch-norm running statistics are copied (they are estimates, not weights, as in
    SB3); other buffers (e.g. action bounds) never change.
    """
    target_params: list[torch.Tensor] = list(target.parameters())
    online_params: list[torch.Tensor] = list(online.parameters())
    if tau == 1.0:
        torch._foreach_copy_(target_params, online_params)
    else:
        torch._foreach_lerp_(target_params, online_params, tau)
    names = running_stat_names(online)
    if names:
        target_modules, online_modules = dict(target.named_modules()), dict(online.named_modules())
        for name in names:
            for stat in ("running_mean", "running_var", "num_batches_tracked"):
                getattr(target_modules[name], stat).copy_(getattr(online_modules[name], stat))
