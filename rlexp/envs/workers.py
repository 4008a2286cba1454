"""gymnasium's AsyncVectorEnv, watched: a worker that dies, hangs or fails ends the run with one line.

gymnasium's AsyncVectorEnv blocks on its pipes without a limit (a hung worker hangs the run, a killed one is an
EOFError), logs a worker's traceback on stderr, and its workers die of SIGTERM and print an EOFError traceback when
the main process is killed. Here (a subclass, and gymnasium's `worker=` hook):

- every wait polls the pipes together with the worker processes' sentinels, in short slices: a worker that dies
  (the OOM killer's SIGKILL) is named at once, one that does not answer a step or reset within `step_timeout`
  seconds after it, and a stop request (`stop_requested`, the run's Ctrl-C or SIGTERM) gives the step at most
  STOP_GRACE more seconds before the wait is abandoned (`EnvWaitAbandoned`, the runner's to report);
- an error a worker sends back is raised as one EnvCallError naming the env's index, without gymnasium's log;
- `close` kills workers that cannot answer (a call pending, or a hung or dead worker): they ignore SIGTERM, so
  SIGKILL, and no process is left behind;
- workers ignore SIGINT and SIGTERM, which reach the whole process group (Ctrl-C, `timeout`, `scancel`, systemd):
  the main process finishes its step and saves; and a worker whose main process is gone exits without a word.
"""

from __future__ import annotations

import contextlib
import multiprocessing.forkserver
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import gymnasium as gym
from gymnasium.vector.async_vector_env import AsyncState, _async_worker

from rlexp.envs.checks import EnvCallError
from rlexp.errors import one_line

#: Seconds between two looks at a stop request while waiting for the workers (an answer ends a wait at once).
SLICE = 0.1
#: Seconds a pending step may still take once a signal came, before the run stops without it.
STOP_GRACE = 5.0
#: Seconds `close` waits for the workers' goodbye before it kills them.
CLOSE_WAIT = 5.0


class EnvWaitAbandoned(Exception):
    """A stop request came while the workers were stepping, and the step did not finish within STOP_GRACE."""

    def __init__(self, signum: int, waiting: str) -> None:
        super().__init__(signum, waiting)
        self.signum, self.waiting = signum, waiting


class _ParentGone(BaseException):
    """The main process went away (killed): the worker ends quietly (BaseException: gymnasium's worker catches
    Exception to report it to the main process, which is gone)."""


class _WorkerPipe:
    """A worker's end of its pipe: EOF or a broken pipe means the main process is gone."""

    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe

    def recv(self) -> Any:
        try:
            return self._pipe.recv()
        except (EOFError, OSError):
            raise _ParentGone from None

    def send(self, value: Any) -> None:
        try:
            self._pipe.send(value)
        except OSError:
            raise _ParentGone from None

    def close(self) -> None:
        self._pipe.close()


def run_worker(index: int, env_fn: Callable[[], gym.Env], pipe: Connection, parent_pipe: Connection,
               shared_memory: Any, error_queue: Any, autoreset_mode: Any, semaphore: Any) -> None:
    """gymnasium's worker, ignoring SIGINT and SIGTERM, quiet when its main process is gone, and reporting an
    error making its env as it reports the env's errors."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _async_worker(index, env_fn, cast(Connection, _WorkerPipe(pipe)), parent_pipe, shared_memory, error_queue,
                      autoreset_mode, semaphore)
    except _ParentGone:
        pass
    except Exception as error:   # making the env (gymnasium's worker catches what happens after)
        try:
            error_queue.put((index, type(error), error, ""))
            pipe.send((None, False))
        except OSError:
            pass


def exit_cause(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"was killed by {name}" + (" (as by the OS's out-of-memory killer)" if name == "SIGKILL" else "")
    return f"exited with code {exitcode}"


class WatchedAsyncVectorEnv(gym.vector.AsyncVectorEnv):
    """AsyncVectorEnv whose waits are bounded and whose workers are watched (see the module's docstring)."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], env_id: str, step_timeout: float,
                 **kwargs: Any) -> None:
        self.env_id, self.step_timeout = env_id, step_timeout
        #: The signal number of a stop request, once one came (set by the runner), else None.
        self.stop_requested: Callable[[], int | None] = lambda: None
        try:
            super().__init__(env_fns, worker=cast(Any, run_worker), **kwargs)
        except (EOFError, OSError):   # a worker that died while it made its env (gymnasium reads its pipe at once)
            processes = getattr(self, "processes", [])
            wait([process.sentinel for process in processes], timeout=1.0)   # (the dead one's exit, reported)
            dead = [i for i, process in enumerate(processes) if process.exitcode is not None]
            self._kill_workers()
            cause = exit_cause(self.processes[dead[0]].exitcode) if dead else "ended"
            raise EnvCallError(self.env_id, f"its worker process {cause} while it made the env",
                               dead[0] if dead else None) from None
        except BaseException:
            self._kill_workers()
            raise

    # --- waiting ----------------------------------------------------------------------------------------------

    def _poll_pipe_envs(self, timeout: float | None = None) -> bool:
        """Wait until every live worker has answered (gymnasium then reads the pipes), or raise."""
        self._assert_is_running()
        call = self._state.value
        limit = timeout if timeout is not None else self.step_timeout if call in ("step", "reset") else None
        started = time.monotonic()
        deadline = started + limit if limit is not None else float("inf")
        stopping: float | None = None
        pending = {i for i, pipe in enumerate(self.parent_pipes) if pipe is not None}
        while pending:
            now = time.monotonic()
            signum = self.stop_requested()
            if signum is not None and stopping is None:
                stopping = now + STOP_GRACE
            if stopping is not None and now >= min(stopping, deadline):
                raise EnvWaitAbandoned(signum or signal.SIGINT, self._waiting_for(pending, call, now - started))
            if now >= deadline:
                if timeout is not None:
                    return False   # a wait with gymnasium's own timeout (close)
                index = min(pending)
                raise EnvCallError(self.env_id, f"its {call} did not return within env.step_timeout="
                                                f"{self.step_timeout:g} s (its worker hangs); the workers were "
                                                f"stopped", index)
            sentinels = {self.processes[i].sentinel: i for i in pending}
            pipes = {self.parent_pipes[i]: i for i in pending}
            ready = wait([*pipes, *sentinels], timeout=max(0.0, min(SLICE, deadline - now)))
            for i in sorted(sentinels[obj] for obj in ready if obj in sentinels):
                if self.processes[i].exitcode != 0:   # (0: a worker that reported its env's error, then ended)
                    raise self._died(i, call)
            pending -= {pipes[obj] for obj in ready if obj in pipes}
        return True

    def _waiting_for(self, pending: set[int], call: str, waited: float) -> str:
        envs = ", ".join(map(str, sorted(pending)))
        return f"while env {envs} of {self.num_envs} had not finished its {call} after {waited:.0f} s"

    def _died(self, index: int, call: str) -> EnvCallError:
        cause = exit_cause(self.processes[index].exitcode)
        return EnvCallError(self.env_id, f"its worker process {cause} during its {call}", index)

    def _raise_if_errors(self, successes: Any) -> None:
        """An error a worker sent back, as one EnvCallError (gymnasium logs each worker's traceback first)."""
        successes = list(successes)
        if all(successes):
            return
        errors = []
        for _ in range(len(successes) - sum(successes)):
            try:
                index, kind, value, _trace = self.error_queue.get(timeout=CLOSE_WAIT)
            except queue.Empty:   # (an error that could not be pickled)
                index = successes.index(False)
                kind, value = RuntimeError, "its worker failed, and its error could not be sent back"
            pipes: list[Connection | None] = cast(Any, self.parent_pipes)   # (gymnasium's own None for a failed one)
            if pipes[index] is not None:
                cast(Connection, pipes[index]).close()
                pipes[index] = None
            errors.append((index, kind, value))
        self._state = AsyncState.DEFAULT
        index, kind, value = min(errors, key=lambda error: error[0])
        if isinstance(value, EnvCallError):
            value.index = index
            raise value
        raise EnvCallError(self.env_id, f"its worker raised {kind.__name__}: {one_line(str(value))}", index)

    def _dead_worker(self, call: str) -> EnvCallError | None:
        """The worker whose pipe just closed, once the OS says how it ended: the pipe can close a moment before the
        process can be reaped, so its exit code is waited for (briefly) rather than read at once."""
        deadline = time.monotonic() + CLOSE_WAIT
        while True:
            dead = [i for i, process in enumerate(self.processes) if process.exitcode not in (None, 0)]
            running = [process.sentinel for process in self.processes if process.exitcode is None]
            if dead or not running or time.monotonic() >= deadline:
                return self._died(dead[0], call) if dead else None
            wait(running, timeout=SLICE)

    def step_async(self, actions: Any) -> None:
        try:
            super().step_async(actions)
        except OSError as error:   # a worker that died between two steps
            raise self._dead_worker("step") or error from None

    def step_wait(self, timeout: float | None = None) -> Any:
        try:
            return super().step_wait(timeout)
        except EOFError:   # a worker that ended without an answer
            raise self._dead_worker("step") or EnvCallError(self.env_id, "its worker process ended during its step"
                                                            ) from None

    # --- closing ------------------------------------------------------------------------------------------------

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Close the workers politely when they are idle; kill them when a call is pending or they do not answer
        within CLOSE_WAIT (they ignore SIGTERM). No process is left behind either way."""
        if not terminate and self._state == AsyncState.DEFAULT:
            live = [pipe for pipe in self.parent_pipes if pipe is not None and not pipe.closed]
            try:
                for pipe in live:
                    pipe.send(("close", None))
                deadline = time.monotonic() + CLOSE_WAIT
                for pipe in live:
                    if pipe.poll(max(0.0, deadline - time.monotonic())):
                        pipe.recv()
            except (OSError, EOFError):
                pass
        self._kill_workers(CLOSE_WAIT if not terminate and self._state == AsyncState.DEFAULT else 0.0)

    def _kill_workers(self, grace: float = 0.0) -> None:
        for pipe in getattr(self, "parent_pipes", []):
            if pipe is not None:
                pipe.close()
        deadline = time.monotonic() + grace
        for process in getattr(self, "processes", []):
            process.join(max(0.0, deadline - time.monotonic()))
            # (255: the forkserver, which reports its children's exit, is gone; the worker may still run)
            if process.exitcode in (None, 255):
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGKILL)
                process.join()



def start_forkserver() -> None:
    """Start multiprocessing's forkserver and resource tracker, if they are not running yet:

    - the forkserver with SIGTERM ignored, as it already ignores SIGINT: a SIGTERM to the process group must not
      kill it, since it reports its children's (the workers') exit (a disposition of SIG_IGN is kept across the
      fork and exec that start it; handlers can be set in the main thread only);
    - the resource tracker without its warning about the semaphores it cleans up after a main process that was
      killed (`kill -9`): the workers' queue's, which it removes, as it should, and reports in two lines of noise.
    """
    quiet = "ignore:resource_tracker:UserWarning"   # (the tracker's interpreter gets this process's -W options)
    sys.warnoptions.append(quiet)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if main else None
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        sys.warnoptions.remove(quiet)
        if main:
            signal.signal(signal.SIGTERM, previous)
