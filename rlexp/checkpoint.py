"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only=True."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(bundle: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`.

    A crash mid-write leaves the previous file at `path` intact: os.replace is atomic.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(bundle, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a bundle without executing code from it (weights_only=True)."""
    return torch.load(path, map_location=map_location, weights_only=True)


class CheckpointManager:
    """`step_<N>.pt` every so often (only the newest `keep` kept), `best.pt` and `final.pt`."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep

    def save_periodic(self, bundle: dict[str, Any], step: int) -> Path:
        path = self.directory / f"step_{step}.pt"
        save_checkpoint(bundle, path)
        periodic = sorted(self.directory.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in periodic[: max(len(periodic) - self.keep, 0)]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, bundle: dict[str, Any]) -> Path:
        path = self.directory / "best.pt"
        save_checkpoint(bundle, path)
        return path

    def save_final(self, bundle: dict[str, Any]) -> Path:
        path = self.directory / "final.pt"
        save_checkpoint(bundle, path)
        return path
