"""What a runner asks of its agent, as values: the runner yields a `Call` and is sent the answer.

A runner's loop is a generator, so whoever drives it decides how a call is answered: `serve` answers one run's calls
with its own agent (a single run); the many-seeds driver (rlexp/runners/seeds.py) answers the same call of every
seed's runner with one batched agent. Calls that need no batching (evaluation, checkpoints, resetting
exploration noise) go to the run's own agent directly.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """The agent's method `name` with these arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def ask(name: str, *args: Any, **kwargs: Any) -> Call:
    return Call(name, args, kwargs)


@dataclass(frozen=True)
class Built:
    """What a job yields first, before any call: its agent, built (and loaded, when resuming)."""

    agent: Any


Steps = Generator[Call, Any, T]


def serve(steps: Steps[T], agent: Any) -> T:
    """Run `steps` to its end, answering each call with `agent`; returns what the generator returns."""
    reply = None
    while True:
        try:
            call = steps.send(reply)
        except StopIteration as done:
            return done.value
        reply = getattr(agent, call.name)(*call.args, **call.kwargs)
