"""One process per run directory: an OS lock on the directory itself.

Two `rlexp train resume=<run>` at once would train the same steps into the same files. The lock is `flock` on the
directory's own file descriptor: the kernel releases it when the process dies, however it dies (SIGKILL leaves no
stale lock), and it writes nothing into the run. The holder's PID comes from /proc/locks where there is one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType

from rlexp.errors import ConfigError


def lock_holder(path: Path) -> int | None:
    """The PID holding a lock on `path`, from /proc/locks (Linux); None where it cannot be told."""
    try:
        inode = os.stat(path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 fd:01:9876 0 EOF" (blocked waiters are marked "->")
        if "->" in fields or len(fields) < 6:
            continue
        if fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            return int(fields[4])
    return None


class RunDirLock:
    """`with RunDirLock(run_dir):` holds the run directory for this process, or raises a ConfigError naming
    the process that holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        fd = os.open(self.run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = lock_holder(self.run_dir)
            holder = f"process {pid}" if pid is not None else "another process"
            raise ConfigError(f"{self.run_dir} is in use by {holder} (an rlexp run training there); wait for it "
                              f"to end or stop it, then run this again") from None
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextmanager
def holding(run_dirs: Iterable[Path]) -> Iterator[None]:
    """A RunDirLock on each directory (made if missing) for the block: a many-seeds run holds each seed's, so
    `resume=<run>/seed_<s>` is refused while the batch trains that seed, and the batch while the seed trains."""
    with ExitStack() as stack:
        for run_dir in run_dirs:
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(RunDirLock(run_dir))
        yield
