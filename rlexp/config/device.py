"""The device a run trains on: `auto` picks CUDA when there is one; an explicit device must exist."""

from __future__ import annotations

import torch

from rlexp.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device={device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but CUDA is not available on this machine; use device=cpu or "
                              f"device=auto")
        index = resolved.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                f"use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
        resolved = torch.device("cuda", index)
    return resolved
