"""`python -m rlexp <args>` as a forked copy of a warm interpreter: the tests' CLI runs without each new interpreter
importing torch, Hydra and gymnasium again (about 2.5 of the 3 s a short CLI run costs on 2 cores).

A server (one per pytest process, started at its first run) imports what every `rlexp` command imports on its way
to work, then forks a child for each run. The child is a process of its own, as a subprocess is: its own pid, stdin,
stdout and stderr (pipes the test reads), working directory, environment and, when asked, session (a process group
to signal as a whole); it runs rlexp's `__main__` as `python -m rlexp` does (sys.argv, sys.path[0] the working
directory), then ends as an interpreter ends (threads joined, atexit functions, streams flushed, the exit status of
SystemExit; an uncaught exception's traceback and status 1; Ctrl-C's SIGINT). Signals reach it as they reach any
process. The server reaps it and hands its exit status (-N for signal N, as subprocess reports it) to the test.

What a fork cannot reproduce stays with a new interpreter (`fork=False` in conftest's helpers, and any environment
other than the server's own): what a fresh interpreter imports, or imports from its working directory before
rlexp's own modules (tests/test_startup.py, the run-directory imports of tests/test_untrusted_runs.py), and
environment variables that a preloaded module reads at import. tests/test_forkserver.py checks that a forked run and
a new interpreter's give the same output and the same results.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import Any

#: Imported once by the server: what any `rlexp` run imports before it trains (and nothing a test checks a run
#: does not import: the tests that check imports run in new interpreters).
PRELOAD = ["numpy", "torch", "gymnasium", "omegaconf", "hydra", "rlexp.commands"]

#: Environment variables that differ between a test's runs without changing what a preloaded module did at import.
VOLATILE = {"PYTEST_CURRENT_TEST"}

_SERVER = r"""
import importlib, io, json, os, select, signal, socket, sys

for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
sock = socket.socket(fileno=int(sys.argv[2]))
children = {}                            # pid -> the write end of the pipe its exit status goes to
wake_r, wake_w = os.pipe()
os.set_blocking(wake_r, False)
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)


def reap():
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = children.pop(pid, None)
        if fd is not None:
            os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
            os.close(fd)


def child(request, fds, ready):
    # In the forked child: become `python -m rlexp <args>` in its directory, environment and streams; never return.
    import atexit, runpy, threading, traceback
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in (wake_r, wake_w, fds[3]):
        os.close(fd)
    sock.close()
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    # The standard streams anew over the new fds, as an interpreter makes them at its start (the server's are over
    # whatever it inherited, a seekable file maybe).
    for fd, name, mode in ((0, "stdin", "rb"), (1, "stdout", "wb"), (2, "stderr", "wb")):
        old = getattr(sys, name)
        stream = io.TextIOWrapper(io.open(fd, mode, closefd=False), encoding=old.encoding, errors=old.errors,
                                  line_buffering=fd == 2 or os.isatty(fd))
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    if request["new_session"]:
        os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["-m", *request["args"]]
    sys.path[0] = os.getcwd()            # as `python -m` puts it (the server's '' would follow later chdirs)
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    sys.modules["numpy"].random.seed()   # a new interpreter's global numpy stream is not the server's
    os.write(ready, b"1")                # set up (its session too, as Popen's start_new_session before it returns)
    os.close(ready)
    code = 0
    try:
        runpy.run_module("rlexp", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = code or 120           # as an interpreter that cannot flush its output at exit
    if code == -signal.SIGINT:           # an uncaught Ctrl-C ends a new interpreter by SIGINT itself
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


sock.send(b"ready")
while True:
    ready, _, _ = select.select([sock, wake_r], [], [])
    if wake_r in ready:
        while True:
            try:
                if not os.read(wake_r, 512):
                    break
            except BlockingIOError:
                break
        reap()
    if sock in ready:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
        if not message:                  # the tests' process has ended
            break
        request = json.loads(message)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                child(request, fds, ready_w)
            finally:
                os._exit(1)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        for fd in fds[:3]:
            os.close(fd)
        children[pid] = fds[3]
        sock.send(str(pid).encode())
        reap()
"""


class _Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, json.dumps(PRELOAD), str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        if self.sock.recv(16) != b"ready":
            raise RuntimeError("the fork server did not start")
        atexit.register(self.close)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_servers: dict[int, _Server] = {}


def _comparable(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key not in VOLATILE}


def server_for(env: dict[str, str], base: dict[str, str]) -> _Server | None:
    """This process's server, started with the environment `base` on first use; None when a run's `env` differs from
    it (a test that set a variable), or off Linux: then a new interpreter runs the command."""
    if not sys.platform.startswith("linux"):   # (SOCK_SEQPACKET, /proc: a new interpreter elsewhere)
        return None
    server = _servers.get(os.getpid())
    if server is None:
        server = _servers[os.getpid()] = _Server(base)
    return server if _comparable(server.env) == _comparable(env) else None


class Forked:
    """The part of `subprocess.Popen` (text mode, stdout and stderr piped) the tests use, for a forked run."""

    def __init__(self, server: _Server, args: list[str], cwd: str | os.PathLike, env: dict[str, str],
                 start_new_session: bool = False) -> None:
        self.args = [sys.executable, "-m", "rlexp", *args]
        self.returncode: int | None = None
        stdin = os.open(os.devnull, os.O_RDONLY)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self._status, status_w = os.pipe()
        request = {"args": list(args), "cwd": os.path.abspath(cwd), "env": env, "new_session": start_new_session}
        socket.send_fds(server.sock, [json.dumps(request).encode()], [stdin, out_w, err_w, status_w])
        for fd in (stdin, out_w, err_w, status_w):
            os.close(fd)
        self.pid = int(server.sock.recv(32))
        self.stdout = open(out_r, encoding=locale.getpreferredencoding(False))   # as Popen's text mode
        self.stderr = open(err_r, encoding=locale.getpreferredencoding(False))
        self._read: dict[int, list[bytes]] = {out_r: [], err_r: []}   # what communicate() read of each, so far
        self._open = {out_r, err_r}                                     # the streams not yet at their end

    def poll(self) -> int | None:
        if self.returncode is None:
            self._wait(0)
        return self.returncode

    def _wait(self, timeout: float | None) -> bool:
        with selectors.DefaultSelector() as selector:
            selector.register(self._status, selectors.EVENT_READ)
            if not selector.select(timeout):
                return False
        data = b""
        while chunk := os.read(self._status, 32):
            data += chunk
        os.close(self._status)
        if not data:
            raise RuntimeError(f"the fork server ended before process {self.pid}")
        self.returncode = int(data)
        return True

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        assert self.returncode is not None
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Read stdout and stderr to their ends, then wait: Popen.communicate's contract, TimeoutExpired included
        (what was read so far is kept for the next call)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for fd in self._open:
                selector.register(fd, selectors.EVENT_READ)
            while self._open:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        self._read[key.fd].append(chunk)
                    else:
                        selector.unregister(key.fd)
                        self._open.discard(key.fd)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        out, err = (self._decode(b"".join(self._read[stream.fileno()])) for stream in (self.stdout, self.stderr))
        self.stdout.close()
        self.stderr.close()
        return out, err

    @staticmethod
    def _decode(data: bytes) -> str:
        return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start(args: list[str], cwd: str | os.PathLike, env: dict[str, str], base: dict[str, str], fork: bool = True,
          **popen: Any) -> Forked | subprocess.Popen:
    """`rlexp <args>` started with the environment `env`: forked from this process's server (started with `base`,
    the tests' usual environment), or by a new interpreter where the caller asks for one (`fork=False`), `env` is
    not the server's, or the caller asks for more of Popen than start_new_session."""
    server = server_for(env, base) if fork else None
    if server is not None and set(popen) <= {"start_new_session"}:
        return Forked(server, args, cwd, env, **popen)
    return subprocess.Popen([sys.executable, "-m", "rlexp", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **popen)
