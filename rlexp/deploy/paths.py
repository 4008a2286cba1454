"""The files `rlexp eval` and `rlexp export` read and write, known without torch: a mistyped path or format is
refused at once, before torch is imported."""

from __future__ import annotations

from pathlib import Path

from rlexp.errors import ConfigError
from rlexp.io import seed_runs

CHECKPOINTS = ("final", "best")
#: What `rlexp export` writes, by format: the file's suffix.
FORMATS = {"torchscript": ".pt", "pt2": ".pt2", "onnx": ".onnx"}


def checkpoint_path(path: str | Path, checkpoint: str | None = None) -> Path:
    """The checkpoint file a run directory (its checkpoints/<checkpoint>.pt, final by default) or a file path
    names; `checkpoint` with a file path is refused, as it would be ignored."""
    path = Path(path).expanduser()
    if path.is_dir():
        checkpoint = checkpoint or "final"
        if checkpoint not in CHECKPOINTS:
            raise ConfigError(f"checkpoint={checkpoint!r} must be final or best (or give a .pt file as the path)")
        file = path / "checkpoints" / f"{checkpoint}.pt"
        if not file.is_file() and (file.exists() or file.is_symlink()):   # (a link to /dev/zero would be read forever)
            raise ConfigError(f"{file} is not a regular file (a directory, a device, a pipe, or a link to one or to "
                              f"nothing): a checkpoint is a file rlexp wrote")
        if not file.is_file():
            seeds = seed_runs(path)
            if seeds:   # the parent of a many-seeds run: each seed is its own run
                raise ConfigError(f"{path} is a many-seeds run: each seed has its own checkpoints; give one seed's "
                                  f"directory, e.g. {seeds[0]} (seeds here: {', '.join(d.name for d in seeds)})")
            raise ConfigError(f"{path} holds no checkpoints/{checkpoint}.pt; is it an rlexp run directory that has "
                              f"finished or evaluated once?")
        return file
    if not path.is_file():
        raise ConfigError(f"{path} is neither a run directory nor a checkpoint file")
    if checkpoint is not None:
        raise ConfigError(f"checkpoint={checkpoint} picks a checkpoint of a run directory, but {path} is a checkpoint "
                          f"file already; drop checkpoint= or give the run directory")
    return path
