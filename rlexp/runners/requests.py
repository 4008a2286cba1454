"""What a runner asks of its agent, as values: the runner yields a `Call` and is sent the answer.

A runner's loop is a generator, so whoever drives it decides how a call is answered: `serve` answers one run's calls
with its own agent (a single run); the many-seeds driver (rlexp/runners/seeds.py) answers the same call of every
seed's runner with one batched agent. An update's replay batch is asked for as a `Sample`, drawn by whoever
answers (rlexp/replay/members.py: all seeds' at once). Calls that need no batching (evaluation, checkpoints, resetting
exploration noise) go to the run's own agent directly.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from rlexp.replay.members import Sample

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Call:
    """The agent's method `name` with these arguments. `only_some`: a call a runner makes only when something
    happened to its own envs (V of a truncated episode's final observation), so of many seeds' runners only some
    make it at this point: a driver answers those before the others' next calls."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    only_some: bool = False


def ask(method: Callable[Concatenate[Any, P], Any], *args: P.args, **kwargs: P.kwargs) -> Call:
    """The call of an agent contract's method (`ask(OffPolicyAgent.update, sample)`, rlexp/agents/contracts.py):
    naming the protocol's method, not a string, lets a type checker check the name and the arguments."""
    return Call(method.__name__, args, kwargs)


def ask_some(method: Callable[Concatenate[Any, P], Any], *args: P.args, **kwargs: P.kwargs) -> Call:
    """`ask` for a call made only when the run's own envs call for it (see `Call.only_some`)."""
    return Call(method.__name__, args, kwargs, only_some=True)


@dataclass(frozen=True)
class Built:
    """What a job yields first, before any call: its agent, built (and loaded, when resuming), and its replay
    memory (off-policy runs), which a many-seeds driver may move into one memory for all seeds."""

    agent: Any
    replay: Any = None


Steps = Generator[Call, Any, T]


def serve(steps: Steps[T], agent: Any) -> T:
    """Run `steps` to its end, answering each call with `agent`; returns what the generator returns."""
    reply = None
    while True:
        try:
            call = steps.send(reply)
        except StopIteration as done:
            return done.value
        args = [arg.draw() if isinstance(arg, Sample) else arg for arg in call.args]
        reply = getattr(agent, call.name)(*args, **call.kwargs)
