"""When a run ends before `total_steps`: an episode budget, and "solved".

- `total_episodes`: the run ends after the vector step in which its training episodes reach this count (with
  several envs, others may finish an episode in that same step: results.json counts them all). `total_steps`
  stays the cap, and what the step schedules (epsilon, learning-rate decay, PER's beta) span, as with SB3's
  StopTrainingOnMaxEpisodes: the run ends at whichever budget comes first.
- `stop.mean_return`: solved once the mean return of the last `stop.window` training episodes reaches the bar
  (the course's rule: LunarLander is solved at 200 over 100 consecutive episodes); judged only once `window`
  episodes have finished, after each episode in the order the envs report them.
- `stop.eval_return`: solved once a deterministic evaluation's mean return reaches the bar.

The window of returns, the episode count and the solved record are part of every resumable checkpoint, so a
resumed run stops where the uninterrupted one does. A resume may change the rules: a larger `total_episodes`
extends a run, and a solved run goes on once its bar is raised or removed (a longer window fills up first).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class StopRules:
    total_episodes: int | None = None
    window: int = 100
    mean_return: float | None = None
    eval_return: float | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StopRules:
        stop = config.get("stop") or {}
        return cls(total_episodes=config.get("total_episodes"), window=int(stop.get("window", 100)),
                   mean_return=stop.get("mean_return"), eval_return=stop.get("eval_return"))


@dataclass(frozen=True)
class Solved:
    step: int
    episode: int          # training episodes finished when it was solved
    rule: str             # stop.mean_return | stop.eval_return
    value: float          # the mean return that reached the bar
    bar: float
    window: int = 0       # the training episodes averaged (stop.mean_return)

    def describe(self) -> str:
        what = (f"mean return of the last {self.window} training episodes" if self.rule == "stop.mean_return"
                else "eval return")
        return (f"solved at step {self.step} (episode {self.episode}): {what} {self.value:.2f} >= "
                f"{self.rule}={self.bar:g}")


class StopWatch:
    """Watches the episodes and evaluations a runner reports for a reason to end the run early."""

    def __init__(self, rules: StopRules) -> None:
        self.rules = rules
        self.recent: deque[float] = deque(maxlen=rules.window)
        self.episodes = 0
        self.solved: Solved | None = None

    def episodes_ended(self, returns: np.ndarray, step: int) -> Solved | None:
        """Training episodes that ended at env step `step`; the Solved record if one of them solved the task."""
        bar = self.rules.mean_return
        newly: Solved | None = None
        for episodic_return in returns:
            self.episodes += 1
            self.recent.append(float(episodic_return))
            if (bar is not None and self.solved is None and len(self.recent) == self.rules.window
                    and (mean := float(np.mean(self.recent))) >= bar):
                self.solved = newly = Solved(step, self.episodes, "stop.mean_return", mean, bar,
                                                    self.rules.window)
        return newly

    def evaluated(self, mean_return: float, step: int) -> Solved | None:
        bar = self.rules.eval_return
        if bar is None or self.solved is not None or mean_return < bar:
            return None
        self.solved = Solved(step, self.episodes, "stop.eval_return", mean_return, bar)
        return self.solved

    def reason(self) -> str | None:
        """Why the run should end now (None: go on to total_steps)."""
        if self.solved is not None:
            return "solved"
        if self.rules.total_episodes is not None and self.episodes >= self.rules.total_episodes:
            return "total_episodes"
        return None

    def results(self) -> dict[str, Any]:
        solved = self.solved
        return {"solved_at_step": solved.step if solved else None,
                "solved_at_episode": solved.episode if solved else None,
                "solved_by": solved.rule if solved else None}

    def state_dict(self) -> dict[str, Any]:
        solved = self.solved
        return {"recent": torch.tensor(list(self.recent), dtype=torch.float64), "episodes": self.episodes,
                "solved": None if solved is None else {"step": solved.step, "episode": solved.episode,
                                                       "rule": solved.rule, "value": solved.value,
                                                       "bar": solved.bar, "window": solved.window}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque(state["recent"].tolist(), maxlen=self.rules.window)
        self.episodes = int(state["episodes"])
        solved = None if state["solved"] is None else Solved(**state["solved"])
        # A resumed run may change its stop rules: a solved record holds only while its rule and bar are the same.
        bar = {"stop.mean_return": self.rules.mean_return, "stop.eval_return": self.rules.eval_return}
        self.solved = solved if solved is not None and bar[solved.rule] == solved.bar else None
