"""The on-policy runner: roll the current policy out in every env, learn from the rollout, drop it, repeat.

Budgets count as SB3 counts them: a rollout is `n_steps` vector steps of `num_envs` envs (n_steps * num_envs env
steps, the samples the learner's minibatches split), and `total_steps` (env steps summed over the envs) is reached
with whole rollouts: the run collects ceil(total_steps / (n_steps * num_envs)) of them, so the last may end past
`total_steps` by less than one rollout.

Each step stores s_t, a_t, log pi_old(a_t|s_t) and V_old(s_t) as the policy was when it acted. An episode that a
time limit truncates bootstraps from V(final observation), computed here right away since the env has already
reset; one that terminates does not (rlexp/rollouts/advantages.py). The rollout lives on the training device.
The envs wait while the learner learns: the next actions need the updated policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlexp.agents.base import obs_tensor
from rlexp.agents.contracts import OnPolicyAgent
from rlexp.errors import EnvFault
from rlexp.rollouts.storage import RolloutStorage
from rlexp.runners.collector import Collector
from rlexp.runners.context import RunContext, RunResult
from rlexp.runners.requests import Steps, ask, ask_some, serve


@dataclass(frozen=True)
class OnPolicySettings:
    total_steps: int    # env steps summed over the envs: a whole number of rollouts
    n_steps: int        # vector steps per rollout
    num_envs: int
    gamma: float
    gae_lambda: float


def planned_steps(total_steps: int, n_steps: int, num_envs: int) -> int:
    """The env steps a run of `total_steps` takes: whole rollouts, the last one completing past the budget."""
    rollout = n_steps * num_envs
    return -(-total_steps // rollout) * rollout


class OnPolicyRunner:
    def __init__(self, agent: OnPolicyAgent, collector: Collector, storage: RolloutStorage, settings: OnPolicySettings,
                 context: RunContext) -> None:
        self.agent = agent
        self.collector = collector
        self.storage = storage
        self.settings = settings
        self.context = context
        self.device = storage.device
        self.step = 0          # env steps, summed over the envs
        self.episodes = 0      # training episodes finished

    def run(self, resume: dict[str, Any] | None = None) -> RunResult:
        """Train until `total_steps` env steps; `resume` is a checkpoint whose agent the caller has loaded."""
        return serve(self.steps(resume), self.agent)

    def steps(self, resume: dict[str, Any] | None = None) -> Steps[RunResult]:
        """`run` as a generator of the calls it makes to the agent to act and to learn (runners/requests.py)."""
        s, context = self.settings, self.context
        if resume is None:
            self.collector.start()
        else:
            self.load_state_dict(resume["runner"])
            context.restore(resume)
        context.start(self.step, self.agent)
        while self.step < s.total_steps and not context.should_stop():
            before, step = self.step, self.step + s.num_envs
            yield from self.collect(step)
            self.step = step
            learned = self.storage.full
            if learned:
                yield from self.learn(step)
            context.after_step(before, step, self, rollout_done=learned)
        return context.finish(self.step, self.episodes, self)

    def collect(self, step: int) -> Steps[None]:
        """One vector step of the rollout, bringing the run to env step `step`."""
        collector, agent, device = self.collector, self.agent, self.device
        assert collector.obs is not None   # set by collector.start() or a resumed run's load_state_dict
        observations = obs_tensor(collector.obs, device)
        actions, log_probs, values = yield ask(OnPolicyAgent.rollout_step, observations, self.storage.pos)
        collector.send(agent.to_env(actions))
        try:
            t = collector.receive(step)
        except EnvFault:
            self.context.guard.check()  # a diverged agent acting NaN is the root cause: name it rather than the env
            raise
        ended = torch.as_tensor(t.ended, dtype=torch.float32, device=device)
        # V(s'_t) of the envs a time limit truncated (their final observation; the env has reset already): what
        # such a step bootstraps from. A terminated step bootstraps from nothing; where no episode ended, the next
        # step's V(s_t) fills it in.
        final_values = (yield ask_some(OnPolicyAgent.values, obs_tensor(t.next_obs, device))) if t.truncations.any() \
            else torch.zeros_like(ended)
        self.storage.add(observations, actions, log_probs, values,
                         torch.as_tensor(t.rewards, dtype=torch.float32, device=device),
                         torch.as_tensor(t.terminations, dtype=torch.float32, device=device), ended, final_values)
        if t.ended.any():
            self.context.episodes_ended(t.episode_returns, t.episode_lengths, step)
            self.episodes += len(t.episode_returns)

    def learn(self, step: int) -> Steps[None]:
        """Close the rollout with V(s_T), learn from it, and start the next one."""
        s = self.settings
        assert self.collector.obs is not None
        last_values = yield ask(OnPolicyAgent.values, obs_tensor(self.collector.obs, self.device))
        self.storage.finish(last_values, s.gamma, s.gae_lambda)
        self.context.observe((yield ask(OnPolicyAgent.learn, self.storage)), step,
                             undefined_ok=("losses/explained_variance",))
        self.storage.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "episodes": self.episodes, "rollout": self.storage.state_dict(),
                "collector": self.collector.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.episodes = int(state["step"]), int(state["episodes"])
        self.storage.load_state_dict(state["rollout"])
        fresh = self.collector.load_state_dict(state["collector"], self.episodes, self.step)
        if fresh.any() and self.storage.pos > 0:
            # An env that could not replay its episode starts a new one: its last stored step ends an episode
            # there (a cut, as a time limit: it bootstraps from V of the observation it had reached).
            self.storage.cut(torch.as_tensor(np.asarray(fresh), device=self.device),
                             self.agent.values(obs_tensor(state["collector"]["obs"].numpy(), self.device)))
