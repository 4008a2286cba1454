"""Whether a command can write where it means to, found out before its work rather than after it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rlexp.errors import ConfigError


def check_writable(directory: Path, what: str, advice: str = "") -> None:
    """A ConfigError naming `directory` and the reason (then `advice`) unless files can be made in it (a read-only
    run, a path under a file or under /proc, no permission): tried for real, by making and removing a file there (as
    root, permissions say little), and `directory` with the parents it needs, removed again if they were made here."""
    missing: list[Path] = []   # the directories to make, deepest first
    for existing in (directory, *directory.parents):
        if existing.exists():
            break
        if existing.is_symlink():   # (mkdir would say `File exists`)
            raise ConfigError(f"cannot write {what} to {directory}: {existing} is a link that leads nowhere (a loop, "
                              f"or its target is gone){advice}")
        missing.append(existing)
    if not existing.is_dir():
        raise ConfigError(f"cannot write {what} to {directory}: {existing} is a file, not a directory{advice}")
    made: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            made.append(path)
        fd, probe = tempfile.mkstemp(prefix=".rlexp-write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(f"cannot write {what} to {directory}: {error.strerror or error}{advice}") from None
    finally:
        for path in reversed(made):
            try:
                path.rmdir()
            except OSError:
                pass
