"""The off-policy runner: act in every env, store the transitions, update from replay, repeat.

Budgets and schedules count as SB3 counts them with vector envs: `total_steps` and `learning_starts` in env steps
summed over the envs (a vector step of N envs is N steps), `train_freq` in vector steps, and a round of updates
makes `gradient_steps` updates per env (`-1`: one per env step collected in the round). So the update-to-data
ratio is gradient_steps / train_freq whatever the number of envs: more envs change the wall time, not how much
is learned per sample. (SB3 makes `gradient_steps` updates per round whatever the number of envs.)

With `env.vectorization=async` the envs step in their worker processes while the learner runs the round's updates:
send the actions, update, then collect. The updates of a round then sample a replay that lacks the vector step in
flight (its N transitions are stored right after), which is the one difference from sync; the order is fixed, so
the same seed gives the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlexp.agents.contracts import OffPolicyAgent
from rlexp.config.schema import OffPolicyConfig
from rlexp.errors import EnvFault
from rlexp.replay import ReplayBuffer
from rlexp.replay.members import sample
from rlexp.runners.collector import Collector
from rlexp.runners.context import RunContext, RunResult
from rlexp.runners.requests import Steps, ask, serve


@dataclass(frozen=True)
class OffPolicySettings:
    total_steps: int        # env steps, summed over the envs
    learning_starts: int    # uniformly random actions, and no updates, for this many env steps
    train_freq: int         # vector steps (or finished episodes, see train_freq_unit) between rounds of updates
    gradient_steps: int     # updates per env per round; -1: one per env step collected in the round
    batch_size: int
    num_envs: int
    # "episode": a round of updates after every `train_freq` finished episodes, with the policy fixed while they
    # run (SB3 < 2.3's default, and the TD3 paper's original code); one env only.
    train_freq_unit: str = "step"


def planned_updates(algo: OffPolicyConfig, total_steps: int, num_envs: int) -> int:
    """The gradient updates a run of `total_steps` makes, as schedules over them (learning rate, PER's beta) count
    them: one per env step after learning starts with gradient_steps=-1, else gradient_steps per train_freq env
    steps. (Episode rounds of a fixed size are not known in advance: validation keeps schedules off them.)"""
    collected = total_steps - algo.learning_starts
    if algo.gradient_steps == -1:
        return collected
    if algo.train_freq_unit == "episode":
        return collected * algo.gradient_steps  # an upper bound: one-step episodes
    return collected // (algo.train_freq * num_envs) * algo.gradient_steps * num_envs


class OffPolicyRunner:
    def __init__(self, agent: OffPolicyAgent, collector: Collector, replay: ReplayBuffer, settings: OffPolicySettings,
                 context: RunContext) -> None:
        self.agent = agent
        self.collector = collector
        self.replay = replay
        self.settings = settings
        self.context = context
        self.step = 0                  # env steps, summed over the envs
        self.episodes = 0              # training episodes finished
        self.steps_since_train = 0     # env steps, and finished episodes, since the last round of updates
        self.episodes_since_train = 0

    def run(self, resume: dict[str, Any] | None = None) -> RunResult:
        """Train until `total_steps` env steps; `resume` is a checkpoint whose agent the caller has loaded."""
        return serve(self.steps(resume), self.agent)

    def steps(self, resume: dict[str, Any] | None = None) -> Steps[RunResult]:
        """`run` as a generator of the calls it makes to the agent to act and to learn (runners/requests.py)."""
        s, context, collector = self.settings, self.context, self.collector
        if resume is None:
            collector.start()
            self.agent.episodes_started(np.ones(s.num_envs, dtype=bool))
        else:
            self.load_state_dict(resume["runner"])
            context.restore(resume)
        # An episode-unit round is due only once the step's episodes are known: it cannot overlap the step.
        overlap = collector.overlaps and s.train_freq_unit == "step"
        context.start(self.step, self.agent)
        while self.step < s.total_steps and not context.should_stop():
            before, step = self.step, self.step + s.num_envs
            if before < s.learning_starts:
                actions = collector.random_actions()
            else:
                assert collector.obs is not None   # set by collector.start() or a resumed run's load_state_dict
                actions = yield ask(OffPolicyAgent.act, collector.obs, explore=True, step=step)
            collector.send(actions)
            if overlap:
                yield from self.train_round(step)   # while the envs step in their workers
            try:
                t = collector.receive(step)
            except EnvFault:
                context.guard.check()  # a diverged agent acting NaN is the root cause: name it rather than the env
                raise
            self.replay.add(t.obs, t.actions, t.rewards, t.next_obs, t.terminations, t.truncations)
            self.step = step
            self.steps_since_train += s.num_envs
            if t.ended.any():
                context.episodes_ended(t.episode_returns, t.episode_lengths, step)
                self.episodes += len(t.episode_returns)
                self.episodes_since_train += len(t.episode_returns)
                self.agent.episodes_started(t.ended)
            if not overlap:
                yield from self.train_round(step)
            context.after_step(before, step, self)
        return context.finish(self.step, self.episodes, self)

    def train_round(self, step: int) -> Steps[None]:
        """The round of updates due at env step `step`, if one is due."""
        s = self.settings
        if s.train_freq_unit == "episode":
            due = self.episodes_since_train >= s.train_freq
        else:
            due = (step // s.num_envs) % s.train_freq == 0
        if not due:
            return
        if step > s.learning_starts:
            if s.gradient_steps != -1:
                updates = s.gradient_steps * s.num_envs
            elif s.train_freq_unit == "episode":
                updates = self.steps_since_train
            else:
                updates = s.train_freq * s.num_envs
            for _ in range(updates):
                self.context.observe((yield ask(OffPolicyAgent.update, sample(self.replay, s.batch_size))), step)
        self.steps_since_train = self.episodes_since_train = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "episodes": self.episodes, "steps_since_train": self.steps_since_train,
                "episodes_since_train": self.episodes_since_train, "replay": self.replay.state_dict(),
                "collector": self.collector.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.episodes = int(state["step"]), int(state["episodes"])
        self.steps_since_train = int(state["steps_since_train"])
        self.episodes_since_train = int(state["episodes_since_train"])
        self.replay.load_state_dict(state["replay"])
        fresh = self.collector.load_state_dict(state["collector"], self.episodes, self.step)
        if fresh.any():
            self.agent.episodes_started(fresh)
