"""stdout that cannot be written: closed by the caller (`rlexp ... >&-`), on a full disk (`> /dev/full`), an I/O
error, or a terminal that cannot show a character of a path (`PYTHONIOENCODING=ascii`).

Every command's record is on disk (a run's train.log and results.json, eval's json, export's file, plot's figure):
stdout is a view of it. So its first write that fails raises `OutputLost` once, which a command reports in one line
(rlexp eval, export and plot: exit 1, their files written; rlexp train's console log: a warning, the run goes on
into train.log), and later writes go nowhere: without this, Python prints a traceback, and logging a `--- Logging
error ---` block for every line.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TextIO

from rlexp.errors import OutputLost


def guard_standard_streams() -> None:
    """At the entry point: a standard descriptor the caller closed is pointed at /dev/null, so that no file the
    command opens gets it (a C library, or an env worker, writing to descriptor 1 would write into a checkpoint);
    sys.stdout becomes a `GuardedStdout`, which reports a closed stdout as EBADF at its first write."""
    closed = [fd for fd in (0, 1, 2) if not _is_open(fd)]
    for fd in closed:
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if not isinstance(sys.stdout, GuardedStdout):
        sys.stdout = GuardedStdout(None if 1 in closed or sys.stdout is None else sys.stdout)


class GuardedStdout(io.TextIOBase):
    """sys.stdout, whose first failing write or flush raises `OutputLost` (a closed pipe stays BrokenPipeError:
    the entry point ends quietly with 141, as other Unix tools do); after it, output is dropped. A character the
    stream's encoding cannot hold is written escaped (`\\u2713`), as Python writes it on stderr."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        if stream is not None and isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
        self.stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        self._guarded(lambda stream: stream.write(text))
        return len(text)

    def flush(self) -> None:
        if self.stream is not None:   # (a closed stdout holds nothing to flush)
            self._guarded(lambda stream: stream.flush())

    def close(self) -> None:   # (at exit: a failure there was reported, or is no longer anyone's to report)
        self.lost = True
        super().close()

    def _guarded(self, call: Callable[[TextIO], object]) -> None:
        if self.lost:
            return
        if self.stream is None:
            self._lose(OSError(errno.EBADF, "stdout is closed"))
        try:
            call(self.stream)
        except BrokenPipeError:
            self.lost = True   # (after the entry point, or rlexp train's console, has reported it once)
            raise
        except OSError as error:
            self._lose(error)

    def _lose(self, error: OSError) -> NoReturn:
        self.lost = True
        if self.stream is not None:
            # What the failed write left in the buffer would be flushed again at exit, with Python's own report.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            except (OSError, ValueError):
                pass
        raise OutputLost(f"could not write to stdout: {error.strerror or error}") from None

    def fileno(self) -> int:
        if self.stream is None:
            raise io.UnsupportedOperation("stdout is closed")
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> object:   # (buffer, name, mode, ...: a library may read them)
        if self.stream is None:
            raise AttributeError(f"stdout is closed: it has no {name}")
        return getattr(self.stream, name)

    @property
    def encoding(self) -> str:   # type: ignore[override]
        return self.stream.encoding if self.stream is not None else "utf-8"


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
