"""Noticing faults during a run: signals, non-finite numbers from the learner, bad output from the env."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from rlexp.errors import EnvFault, NonFiniteError

log = logging.getLogger("rlexp")


class StopRequest:
    """Within `with StopRequest() as stop:`, the first SIGINT/SIGTERM sets `stop.signum` so the loop can finish
    its step and save; a second one raises KeyboardInterrupt at once.

    Handlers can only be installed from the main thread; elsewhere (a launcher's worker thread) this does
    nothing and the default handling applies.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: finishing this step and saving a checkpoint (again to exit at once)",
                    signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


class Stop(Protocol):
    """What a run's loop reads to honour a signal: the signal's number once one came, else None."""

    signum: int | None


class HeldStop:
    """A StopRequest as the seeds of a lockstep run read it (rlexp/runners/seeds.py): the signal is taken in only
    between rounds in which every seed moves, so a signal that lands while one seed's step is done and the next
    seed's is not still stops them all after the same step."""

    def __init__(self, request: StopRequest) -> None:
        self.request = request
        self.signum: int | None = None

    def hold(self) -> None:
        self.signum = self.request.signum


def signal_of(stop: Stop) -> int | None:
    """The signal a run was asked to stop by, as soon as it came: what a wait or an evaluation reads to end early
    (a HeldStop's signal, before the lockstep takes it in)."""
    return stop.request.signum if isinstance(stop, HeldStop) else stop.signum


class NonFiniteGuard:
    """Watches the update metrics (losses, gradient norms, Q-values) for NaN or inf.

    The check runs on the device and never waits for it: updates' metrics are kept as they come (a list append,
    where four small kernels per update were a measurable share of a many-seeds step) and checked a block at a
    time, recording for each metric the first env step at which it was non-finite. `check()` checks what is
    pending and reads that record (one sync); it is called when the loop logs, and before every checkpoint, so no
    checkpoint holds a diverged agent.
    """

    NEVER = 2**62
    BLOCK = 1024   # updates checked together at most: what is pending stays small whatever log.every is

    def __init__(self) -> None:
        self._names: list[str] = []
        self._pending_steps: list[int] = []
        self._pending: list[Tensor] = []        # each update's metric values, in `_names` order
        self._first_bad: Tensor | None = None   # per metric: env step of its first non-finite value, or NEVER

    def observe(self, metrics: dict[str, Tensor], step: int) -> None:
        if not self._names:
            self._names = list(metrics)
        self._pending.extend(metrics.values())
        self._pending_steps.append(step)
        if len(self._pending_steps) >= self.BLOCK:
            self._check_pending()

    def _check_pending(self) -> None:
        if not self._pending_steps:
            return
        values = torch.stack(self._pending).view(len(self._pending_steps), len(self._names))
        steps = torch.tensor(self._pending_steps, dtype=torch.int64, device=values.device)
        bad = torch.where(torch.isfinite(values), self.NEVER, steps[:, None]).amin(dim=0)
        self._first_bad = bad if self._first_bad is None else torch.minimum(self._first_bad, bad)
        self._pending.clear()
        self._pending_steps.clear()

    def check(self) -> None:
        self._check_pending()
        if self._first_bad is None:
            return
        found = [(step, name) for step, name in zip(self._first_bad.tolist(), self._names) if step != self.NEVER]
        if found:
            step, name = min(found)
            raise NonFiniteError(f"{name} became non-finite (NaN or inf) at step {step}; the agent diverged "
                                 f"(try a lower learning rate, or a smaller algo.max_grad_norm for DQN)")


def check_transitions(step: int, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray) -> None:
    """Stop on a NaN/inf observation or reward from any env, naming the step, the env and the action that led to
    it. `step` is the env step count after this vector step; arrays have a leading env axis."""
    num_envs = len(rewards)
    finite = np.isfinite(rewards)
    if next_obs.dtype.kind in "fc":
        finite &= np.isfinite(next_obs.reshape(num_envs, -1)).all(axis=1)
    if finite.all():
        return
    env = int(np.flatnonzero(~finite)[0])
    obs_ok = next_obs.dtype.kind not in "fc" or bool(np.isfinite(next_obs[env]).all())
    what = f"reward {rewards[env]}" if obs_ok else \
        f"observation {np.array2string(np.asarray(next_obs[env]), precision=4)}"
    shown = np.array2string(np.asarray(actions[env]), precision=4)
    which = f" (env {env} of {num_envs})" if num_envs > 1 else ""
    raise EnvFault(f"the env returned a non-finite {what} at step {step}{which}, after action {shown}")
