"""Many seeds in one process, as one model: `rlexp train seeds=[0,1,2,3]`.

Each seed runs the job it would run alone (its own envs, replay, exploration generators, evaluation, checkpoints,
results.json and TensorBoard events, in <run_dir>/seed_<s>/), and its runner's loop is a generator of the calls it
makes to its agent (runners/requests.py). The seeds' runners move in lockstep: they share every setting but the
seed, so at each point they all ask the same thing (act at step t, one update). One batched agent (the algorithm's
`members` builder: its networks stacked on a member axis, rlexp/networks/members.py) answers each call for all
seeds at once, and each seed gets its slice. The seeds' replays share one memory the same way
(rlexp/replay/members.py), so an update's batches are drawn by each seed and gathered for all in one op.
Whatever needs no batching (evaluation, checkpoints, exploration noise resets) a seed's runner does with its own
agent, whose parameters are views of its slice.

A signal stops every seed after the same step: the seeds read it through one HeldStop (runners/faults.py) that
takes it in only between rounds in which all of them move.

A seed that fails (a non-finite loss, an env error) ends with its own error in its results.json; the others go on.
A seed that ends early (solved, its episode budget) leaves the lockstep; the batched agent keeps computing its
slice from another seed's inputs, which it never reads again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlexp.errors import Interrupted, TrainingInterrupted
from rlexp.replay.batch import ReplayBatch, stack_batches
from rlexp.replay.members import MemberReplays, Sample, sample_members
from rlexp.rollouts.storage import RolloutStorage
from rlexp.runners.faults import HeldStop
from rlexp.runners.requests import Built, Call

log = logging.getLogger("rlexp")

JobSteps = Generator[Built | Call, Any, dict[str, Any]]


@dataclass
class SeedOutcome:
    seed: int
    results: dict[str, Any] | None = None   # what the seed's job returned (results.json)
    error: BaseException | None = None      # or how it failed (TrainingInterrupted: stopped by a signal)


def stack_argument(values: Sequence[Any], what: str, replays: MemberReplays | None = None) -> Any:
    """The members' values of one argument as the batched agent takes it: arrays and tensors stacked on a new
    leading axis, replay batches field by field (samples drawn from `replays`, the seeds' shared memory, in one
    gather); anything else (a step count, a flag) must be the same for all."""
    first = values[0]
    if isinstance(first, Sample):
        return sample_members(values, replays)
    if isinstance(first, np.ndarray):
        return np.stack(values)
    if isinstance(first, ReplayBatch):
        return stack_batches(values)
    if isinstance(first, torch.Tensor):
        return torch.stack(list(values))
    if isinstance(first, RolloutStorage):   # each member learns from its own rollout
        return list(values)
    if any(value != first for value in values[1:]):
        raise RuntimeError(f"the seeds' runners fell out of step: {what} differs ({values})")
    return first


def member_part(result: Any, k: int) -> Any:
    """Member k's part of a batched agent's answer."""
    if isinstance(result, (np.ndarray, torch.Tensor)):
        return result[k]
    if isinstance(result, dict):
        return {key: member_part(value, k) for key, value in result.items()}
    if isinstance(result, tuple):
        return tuple(member_part(value, k) for value in result)
    return result


def run_in_lockstep(seeds: Sequence[int], jobs: Sequence[JobSteps],
                    batch: Callable[[list[Any]], Any], stop: HeldStop | None = None) -> list[SeedOutcome]:
    """Drive every seed's job generator to its end, answering their calls with the agent `batch` makes of their
    agents. A seed that fails while it is built fails the whole batch (its agent is one of the members). `stop`,
    the HeldStop the jobs were given, takes in a signal before each round in which every live seed moves."""
    outcomes = [SeedOutcome(seed) for seed in seeds]
    agents, replays = [], []
    for job in jobs:
        if stop is not None and stop.request.signum is not None:
            # A signal while the seeds are built (a large batch takes a while): none has trained, so none saves.
            for made in jobs:
                made.close()   # (each closes its envs)
            raise Interrupted(stop.request.signum, "while the seeds' agents were built; no seed has trained")
        built = next(job)
        assert isinstance(built, Built)   # a job yields its agent first, then only calls
        agents.append(built.agent)
        replays.append(built.replay)
    batched = batch(agents)
    shared = MemberReplays.share(replays)   # before a resumed run loads its replay: it loads into the shared memory
    pending: dict[int, Call] = {}

    def advance(k: int, reply: Any) -> None:
        try:
            call = jobs[k].send(reply)
            assert isinstance(call, Call)   # after its Built, a job yields only calls
            pending[k] = call
        except StopIteration as done:
            outcomes[k].results = done.value
        except TrainingInterrupted as stop:   # every seed stops at the same step, each saving its checkpoint
            outcomes[k].error = stop
        except Exception as error:   # this seed's failure; KeyboardInterrupt and SystemExit end them all
            outcomes[k].error = error
            log.error("seed %d failed: %s", seeds[k], str(error).splitlines()[0] if str(error) else
                      type(error).__name__)

    if stop is not None:
        stop.hold()
    for k in range(len(jobs)):
        advance(k, None)
    while pending:
        # A call only some seeds make here (a truncated episode's bootstrap) is answered first: those seeds are a
        # call behind the others, whose calls wait.
        some = {k: call for k, call in pending.items() if call.only_some}
        calls = some or dict(pending)
        if not some and stop is not None:   # all live seeds are at the same call: none is between two checks
            stop.hold()
        for k in calls:
            del pending[k]
        first = next(iter(calls.values()))
        if any(call.name != first.name for call in calls.values()):
            raise RuntimeError(f"the seeds' runners fell out of step: {sorted({c.name for c in calls.values()})}")
        # Seeds that have ended still fill their slot, with a live seed's inputs.
        full = [calls.get(k, first) for k in range(len(jobs))]
        args = [stack_argument([call.args[i] for call in full], f"argument {i} of {first.name}", shared)
                for i in range(len(first.args))]
        kwargs = {key: stack_argument([call.kwargs[key] for call in full], f"{first.name}'s {key}", shared)
                  for key in first.kwargs}
        answer = getattr(batched, first.name)(*args, **kwargs)
        for k in calls:
            advance(k, member_part(answer, k))
    return outcomes
