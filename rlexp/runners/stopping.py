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
resumed run stops where the uninterrupted one does. So are the rules in force, every training episode's return and
step, and every evaluation's mean: a resume may change the rules, and the run's past is then judged again under the
new ones. A larger `total_episodes` extends a run; a solved run goes on once its bar is raised or removed, its
solve kept in `solved_history` (never lost); a looser or other rule that the past already meets ends the run where
the past first met it (the resume is refused, saying where), as an uninterrupted run under the new rules would have.
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

    def record(self) -> dict[str, Any]:
        return {"step": self.step, "episode": self.episode, "rule": self.rule, "value": self.value, "bar": self.bar,
                "window": self.window}

    def same_solve(self, other: Solved) -> bool:
        """The same point and rule (the value may differ in its last bits: a window averaged another way)."""
        return (self.step, self.episode, self.rule, self.bar, self.window) == (other.step, other.episode, other.rule,
                                                                               other.bar, other.window)

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
        self.history: list[Solved] = []   # solves under rules a resume has changed since, first first
        # The run's past, judged again when a resume changes the rules: each training episode's return and the step
        # it ended at, and each evaluation's (step, episodes finished, mean return).
        self.returns: list[float] = []
        self.return_steps: list[int] = []
        self.returns_from = 0   # the episodes before the first of `returns` (a checkpoint made before they were kept)
        self.evaluations: list[tuple[int, int, float]] = []

    def episodes_ended(self, returns: np.ndarray, step: int) -> Solved | None:
        """Training episodes that ended at env step `step`; the Solved record if one of them solved the task."""
        bar = self.rules.mean_return
        newly: Solved | None = None
        for episodic_return in returns:
            self.episodes += 1
            self.recent.append(float(episodic_return))
            self.returns.append(float(episodic_return))
            self.return_steps.append(step)
            if (bar is not None and self.solved is None and len(self.recent) == self.rules.window
                    and (mean := float(np.mean(self.recent))) >= bar):
                self.solved = newly = Solved(step, self.episodes, "stop.mean_return", mean, bar,
                                                    self.rules.window)
        return newly

    def evaluated(self, mean_return: float, step: int) -> Solved | None:
        self.evaluations.append((step, self.episodes, mean_return))
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
        """results.json's record: the solve under the rules in force (its rule and bar beside it), and the solves
        under rules a resume changed since."""
        solved = self.solved
        return {"solved_at_step": solved.step if solved else None,
                "solved_at_episode": solved.episode if solved else None,
                "solved_by": solved.rule if solved else None,
                "solved_bar": solved.bar if solved else None,
                "solved_window": solved.window if solved and solved.rule == "stop.mean_return" else None,
                "solved_history": [earlier.record() for earlier in self.history]}

    def state_dict(self) -> dict[str, Any]:
        rules = self.rules
        return {"recent": torch.tensor(list(self.recent), dtype=torch.float64), "episodes": self.episodes,
                "solved": None if self.solved is None else self.solved.record(),
                "rules": {"window": rules.window, "mean_return": rules.mean_return, "eval_return": rules.eval_return},
                "history": [earlier.record() for earlier in self.history],
                "returns": torch.tensor(self.returns, dtype=torch.float64), "returns_from": self.returns_from,
                "return_steps": torch.tensor(self.return_steps, dtype=torch.int64),
                "evaluations": torch.tensor(self.evaluations, dtype=torch.float64).reshape(-1, 3)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque(state["recent"].tolist(), maxlen=self.rules.window)
        self.episodes = int(state["episodes"])
        solved = None if state["solved"] is None else Solved(**state["solved"])
        self.history = [Solved(**earlier) for earlier in state.get("history", [])]
        if "returns" not in state:   # a checkpoint made before the run's past was kept: its solve is all there is
            bar = {"stop.mean_return": self.rules.mean_return, "stop.eval_return": self.rules.eval_return}
            self.solved = solved if solved is not None and bar[solved.rule] == solved.bar else None
            if solved is not None and self.solved is None:
                self.history.append(solved)
            self.returns_from = self.episodes
            return
        self.returns, self.returns_from = state["returns"].tolist(), int(state["returns_from"])
        self.return_steps = [int(step) for step in state["return_steps"].tolist()]
        self.evaluations = [(int(step), int(episodes), mean) for step, episodes, mean in state["evaluations"].tolist()]
        rules = self.rules
        if state["rules"] == {"window": rules.window, "mean_return": rules.mean_return,
                              "eval_return": rules.eval_return}:
            self.solved = solved
            return
        # Other rules than the run had: its past is judged again, as if it had run under them from the start (the
        # window holds the last `window` returns; the solve is the first point of the past that meets a rule).
        self.recent = deque(self.returns[-rules.window:], maxlen=rules.window)
        self.solved = self.first_solve()
        if solved is not None and (self.solved is None or not solved.same_solve(self.solved)):
            self.history.append(solved)

    def first_solve(self) -> Solved | None:
        """Where the run's past first meets the rules (None: it does not)."""
        found: list[Solved] = []
        bar, window = self.rules.mean_return, self.rules.window
        if bar is not None and len(self.returns) >= window:
            # means[i]: episodes i+1 .. i+window, each averaged as episodes_ended averages its window
            means = np.lib.stride_tricks.sliding_window_view(np.asarray(self.returns), window).mean(axis=1)
            met = np.flatnonzero(means >= bar)
            if met.size:
                last = int(met[0]) + window   # the episode (of `returns`) that completes the window
                found.append(Solved(self.return_steps[last - 1], self.returns_from + last, "stop.mean_return",
                                    float(means[met[0]]), bar, window))
        eval_bar = self.rules.eval_return
        met_evals = [(step, episodes, mean) for step, episodes, mean in self.evaluations
                     if eval_bar is not None and mean >= eval_bar]
        if eval_bar is not None and met_evals:
            step, episodes, mean = met_evals[0]
            found.append(Solved(step, episodes, "stop.eval_return", mean, eval_bar))
        return min(found, key=lambda solve: (solve.step, solve.episode)) if found else None
