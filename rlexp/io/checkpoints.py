"""Checkpoints: plain dicts of tensors and numbers, written atomically, verified and read with weights_only=True.

A run directory's checkpoints/ holds
- `step_<N>.pt`: everything needed to continue the run exactly (agent, replay buffer, loop counters,
  random generators); written every `checkpoint.every` steps, on SIGINT/SIGTERM and at the end; only the
  newest `keep` are kept. `rlexp train resume=<run_dir>` continues from the newest readable one.
- `best.pt`, `final.pt`: the agent only (small), for evaluation and deployment.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, cast

import torch

from rlexp.errors import CheckpointError

log = logging.getLogger("rlexp")

#: Bumped when the bundle layout changes; older files are refused with a clear message.
#: 2: vector envs (replay with an env axis, one episode record per env), agents' own generators, overrides.
FORMAT = 2

#: What each older format was, for the message that refuses it.
OLD_FORMATS = {1: "rlexp 0.1, before vectorized envs"}


def save_checkpoint(bundle: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`.

    A kill, a full disk or an exception mid-write leaves the previous file at `path` intact:
    os.replace is atomic, and the temp file is removed on failure.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CheckpointError(f"could not write checkpoint {path}: {error.strerror or error}") from error
    writer = _WriteErrorRecorder(os.fdopen(fd, "wb"))
    try:
        with writer.file:
            torch.save(own_storage(bundle), cast(IO[bytes], writer))   # (torch.save only writes and flushes)
            writer.file.flush()
            os.fsync(writer.file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        os_error = error if isinstance(error, OSError) else writer.error
        if os_error is not None:  # a full disk, a quota, a file-size limit, an I/O error
            raise CheckpointError(f"could not write checkpoint {path}: {os_error.strerror or os_error}; "
                                  f"the previous checkpoints are intact") from error
        raise
    _fsync_directory(path.parent)  # make the rename itself durable


def own_storage(value: Any) -> Any:
    """`value` with every tensor that views a larger one copied out: torch.save writes a view's whole storage, so a
    member of a many-seeds run (its parameters are slices of all seeds' stacked ones) would save every seed's."""
    if isinstance(value, torch.Tensor):
        return value.clone() if value.untyped_storage().nbytes() > value.nbytes else value
    if isinstance(value, dict):
        return {key: own_storage(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(own_storage(item) for item in value)
    return value


class _WriteErrorRecorder:
    """A file wrapper that remembers the OSError behind a failed write: torch.save reports it only as an
    opaque RuntimeError from its zip writer."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self) -> None:
        self.file.flush()


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform/filesystem
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify and load a bundle; never executes code from the file (weights_only=True).

    torch's reader does not check the CRCs its zip format stores, so a flipped byte in a tensor would load
    silently: zipfile checks them first. Any failure is a CheckpointError naming the file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
            names = archive.namelist()
        if bad_member is not None:
            raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch in {bad_member})")
        if any(name.split("/", 1)[-1].startswith("code/") for name in names):
            raise CheckpointError(f"{path} is a TorchScript module (an rlexp export?), not an rlexp checkpoint; load "
                                  f"it with torch.jit.load")
        bundle = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except zipfile.BadZipFile:
        raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint (not a valid zip archive)") \
            from None
    except pickle.UnpicklingError as error:   # weights_only refusing a global: code, or an object not plain data
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        raise CheckpointError(f"checkpoint {path} holds pickled code or objects that are not plain data"
                              + (f" ({refused.group(1)})" if refused else "") + ": rlexp never runs code from a "
                              "checkpoint, and writes none into one; it was not written by rlexp, or was altered "
                              "since") from None
    except Exception as error:  # a damaged record, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} cannot be loaded: {reason}") from None
    if not isinstance(bundle, dict) or "agent" not in bundle:
        raise CheckpointError(f"checkpoint {path} is not an rlexp checkpoint")
    found = bundle.get("format")
    if found != FORMAT:
        made_by = f" ({OLD_FORMATS[found]})" if found in OLD_FORMATS else ""
        raise CheckpointError(f"checkpoint {path} has format {found!r}{made_by}; this rlexp reads format {FORMAT} "
                              f"only: train the run again with this version")
    return bundle


PERIODIC = re.compile(r"step_[0-9]+\.pt")


def periodic_step(path: Path) -> int:
    """N of `step_<N>.pt`."""
    return int(path.name.split("_", 1)[1].split(".", 1)[0])


class CheckpointManager:
    """The checkpoints/ directory of one run (see the module docstring for what each file holds)."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep

    def periodic(self) -> list[Path]:
        """The `step_<N>.pt` files, oldest first. Other names (`step_abc.pt`, `step_300.pt.bak`, a copy made by hand)
        are no checkpoint of the run's: left alone, never picked."""
        return sorted((path for path in self.directory.glob("step_*.pt") if PERIODIC.fullmatch(path.name)),
                      key=periodic_step)

    def step_numbers(self) -> list[int]:
        return [periodic_step(path) for path in self.periodic()]

    def load_step(self, step: int, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """`step_<step>.pt` (a CheckpointError when it is unreadable)."""
        return load_checkpoint(self.directory / f"step_{step}.pt", map_location)

    def save_periodic(self, bundle: dict[str, Any], step: int) -> Path:
        path = self.directory / f"step_{step}.pt"
        save_checkpoint(bundle, path)
        periodic = self.periodic()
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

    def latest(self) -> Path | None:
        periodic = self.periodic()
        return periodic[-1] if periodic else None

    def load_latest(self, map_location: str | torch.device = "cpu") \
            -> tuple[dict[str, Any], Path, list[tuple[Path, str]]]:
        """The newest readable `step_<N>.pt`, its path, and why each newer one could not be read.

        Nothing on disk changes here, and nothing is logged (the log is a file in the run): a resume that is
        then refused must leave the run as it was. Once the run is accepted, `quarantine` reports and moves
        the unreadable ones aside.
        """
        candidates = self.periodic()
        unreadable: list[tuple[Path, str]] = []
        for path in reversed(candidates):
            try:
                bundle = load_checkpoint(path, map_location)
            except CheckpointError as error:
                unreadable.append((path, str(error)))
                continue
            if bundle.get("step") != periodic_step(path):   # a copy renamed by hand: resuming from it would rewind
                unreadable.append((path, f"checkpoint {path} holds step {bundle.get('step')!r}, not the step its "
                                         f"name says (renamed or copied by hand?)"))
                continue
            return bundle, path, unreadable
        raise CheckpointError(f"no readable checkpoint to resume from in {self.directory}"
                              + (f" (the newest: {unreadable[0][1]})" if unreadable else " (no step_<N>.pt files)"))

    def quarantine(self, unreadable: list[tuple[Path, str]], who: str = "") -> None:
        """Rename unreadable checkpoints `*.corrupt` (kept for inspection, never picked again) and remove the
        temp files of a process killed while saving. `who` begins the warnings (a many-seeds run's "seed 1: ")."""
        for path, error in unreadable:
            os.replace(path, path.with_name(path.name + ".corrupt"))
            log.warning("%s%s; moved it to %s and resumed from the previous checkpoint", who, error,
                        path.name + ".corrupt")
        for partial in self.directory.glob(".*.tmp"):
            partial.unlink(missing_ok=True)
