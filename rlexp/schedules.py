"""Schedules over a run: values annealed linearly, and events every N steps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearSchedule:
    """Anneal linearly from `start` to `end` over `duration` steps, then stay at `end`."""

    start: float
    end: float
    duration: int

    def __call__(self, step: int) -> float:
        if self.duration <= 0:
            return self.end
        fraction = min(step / self.duration, 1.0)
        return self.start + fraction * (self.end - self.start)


def annealed(value: float, schedule: str, span: int) -> LinearSchedule:
    """A setting over a run: `value` throughout (`constant`), or annealed linearly to 0 over `span` steps (`linear`:
    SB3's and RL Zoo's `lin_<value>`). Every learning rate and PPO's clip range follow it."""
    return LinearSchedule(value, 0.0, span) if schedule == "linear" else LinearSchedule(value, value, 0)


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: an event "every N steps" fires when a step of
    several envs passes it, not only when the count lands on it exactly. `every=0` never fires."""
    return every > 0 and before // every < after // every
