"""What every runner shares: logging, evaluation and the best checkpoint, checkpoint bundles, the stop request,
the non-finite guard, and results.json. A runner only runs its algorithm family's outer loop and tells the
context what happened (`observe`, `episodes_ended`, `after_step`); the context decides when to log, evaluate,
checkpoint or stop."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rlexp.agents.base import obs_tensor
from rlexp.envs.checks import EnvCallError
from rlexp.envs.normalization import Normalization
from rlexp.errors import TrainingInterrupted
from rlexp.io.checkpoints import FORMAT, CheckpointManager
from rlexp.io.metrics import RunLogger
from rlexp.io.results import write_results
from rlexp.runners.callbacks import Callbacks
from rlexp.runners.evaluation import MAX_EPISODE_STEPS, EvaluationStopped, agent_policy, evaluate
from rlexp.runners.faults import NonFiniteGuard, Stop, signal_of
from rlexp.runners.stopping import StopRules, StopWatch
from rlexp.schedules import crossed

log = logging.getLogger("rlexp")


class Runner(Protocol):
    """What the context needs of a runner: its agent, and the state it adds to a resumable checkpoint."""

    agent: Any

    def state_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Every:
    """Env steps between events (0: only at the end, or never for `log`)."""

    log: int
    eval: int
    checkpoint: int


@dataclass(frozen=True)
class RunResult:
    eval_returns: np.ndarray   # returns of the final evaluation's episodes
    best_eval_return: float
    steps: int
    episodes: int
    train_time_s: float
    sps: float


@dataclass
class Evaluator:
    """Episodes on envs of their own, stepping together (rlexp/runners/evaluation.py), from the same start states
    every time; observations normalized with the training statistics as they stand (frozen: evaluation never
    updates them). Episodes end at `max_episode_steps` where the env has no time limit; a `stop` request abandons
    the evaluation. The policy's mode, or (`deterministic` false) draws from the stochastic policy, from a
    generator seeded like the envs at every evaluation: successive evaluations draw alike, and the training's
    generators are never touched.

    `env` is the job's evaluation env; the other `num_envs - 1` (eval.num_envs, at most eval.episodes) are made by
    `make_env` at the first evaluation, so a run that never evaluates builds none, and closed by `close`."""

    env: gym.Env
    episodes: int
    seed: int
    normalization: Normalization | None = None
    max_episode_steps: int = MAX_EPISODE_STEPS
    stop: Callable[[], object] | None = None
    deterministic: bool = True
    device: torch.device = torch.device("cpu")
    num_envs: int = 1
    make_env: Callable[[], gym.Env] | None = None
    _more: list[gym.Env] = field(default_factory=list)

    def envs(self) -> list[gym.Env]:
        wanted = min(self.num_envs, self.episodes) - 1
        while len(self._more) < wanted:
            assert self.make_env is not None, "num_envs > 1 needs make_env"
            self._more.append(self.make_env())
        return [self.env, *self._more[:wanted]]

    def close(self) -> None:
        with ExitStack() as closing:   # (each is closed even if one's close raises)
            for env in self._more:
                closing.callback(env.close)
            self._more.clear()

    def __call__(self, agent: Any) -> np.ndarray:
        act, frozen = agent_policy(agent, self.deterministic, self.seed, self.device), self.normalization
        policy = act if frozen is None else lambda obs: act(frozen.observations(obs, update=False))
        return evaluate(policy, self.envs(), self.episodes, self.seed, max_episode_steps=self.max_episode_steps,
                        stop=self.stop)


@dataclass
class RunContext:
    run_dir: Path
    logger: RunLogger
    checkpoints: CheckpointManager
    evaluator: Evaluator
    stop: Stop
    every: Every
    total_steps: int
    device: torch.device
    meta: dict[str, Any]          # algo, env_id, config, overrides, device: written into every checkpoint
    guard: NonFiniteGuard = field(default_factory=NonFiniteGuard)
    watch: StopWatch = field(default_factory=lambda: StopWatch(StopRules()))   # episode budget, "solved"
    heldout: np.ndarray | None = None   # raw held-out states of the learning index (rlexp/runners/heldout.py)
    metrics: dict[str, Tensor] = field(default_factory=dict)   # the last update's (on the device)
    callbacks: Callbacks | None = None   # the user's (rlexp/runners/callbacks.py)
    best_eval_return: float = -math.inf
    _evaluated: tuple[int, np.ndarray] | None = None   # the last evaluation's step and returns
    _start_step: int = 0
    _started: float = 0.0

    # --- what a runner reports --------------------------------------------------------------------------------

    def start(self, step: int, agent: Any = None) -> None:
        self._start_step, self._started = step, time.perf_counter()
        if self.callbacks:
            self.callbacks.run.agent = agent
            self.callback("on_run_start", step)

    def observe(self, metrics: dict[str, Tensor], step: int, undefined_ok: tuple[str, ...] = ()) -> None:
        """An update's metrics: watched for NaN/inf on the device, logged at the next log step. `undefined_ok`
        names metrics whose NaN means "undefined" (explained variance when the returns do not vary), not a
        diverged agent."""
        self.metrics = metrics
        self.guard.observe({tag: value for tag, value in metrics.items() if tag not in undefined_ok}, step)

    def episodes_ended(self, returns: np.ndarray, lengths: np.ndarray, step: int) -> None:
        for episodic_return, length in zip(returns, lengths):
            self.logger.episode(float(episodic_return), int(length), step)
        solved = self.watch.episodes_ended(returns, step)
        if solved is not None:
            log.info("%s; ending the run", solved.describe())
        self.callback("on_episodes", step, returns, lengths)

    def should_stop(self) -> bool:
        """Whether the run ends before total_steps: solved, or its episode budget spent (rlexp/runners/stopping.py)."""
        return self.watch.reason() is not None or self.stopped_by_callback() is not None

    def callback(self, hook: str, step: int, *args: Any) -> None:
        """The callbacks' `hook`, the run as it stands at env step `step`."""
        if self.callbacks:
            self.callbacks.run.step, self.callbacks.run.episodes = step, self.watch.episodes
            self.callbacks.call(hook, *args)

    def stopped_by_callback(self) -> str | None:
        return self.callbacks.run.stop_reason if self.callbacks else None

    def after_step(self, before: int, step: int, runner: Runner, rollout_done: bool = False) -> None:
        """Log, evaluate, checkpoint and honour a stop request, for a step from `before` to `step` env steps
        (`rollout_done`: an on-policy rollout ended and was learned from)."""
        if self.callbacks:
            self.callbacks.run.rollout_done = rollout_done
            self.callback("on_step", step)
        if crossed(before, step, self.every.log):
            self.guard.check()
            sps = self.sps(step)
            # The only device-to-host sync of the metrics: once per log.every steps.
            scalars = {tag: float(value) for tag, value in self.metrics.items()}
            scalars.update(runner.agent.exploration_metrics(step))
            if self.heldout is not None:
                scalars["charts/avg_q_heldout"] = self.heldout_index(runner.agent)
            scalars["charts/SPS"] = sps
            self.logger.scalars(scalars, step)
            self.logger.progress(step, sps)
        # (the step that ends the run is evaluated and checkpointed by `finish`)
        last = step >= self.total_steps or self.should_stop()
        if crossed(before, step, self.every.eval) and not last:
            self.evaluate(step, runner.agent)
        saved: Path | None = None
        if crossed(before, step, self.every.checkpoint) and not last:
            saved = self.save(step, runner)
        if self.stop.signum is not None:
            saved = saved or self.save(step, runner)
            raise TrainingInterrupted(self.stop.signum, step, str(saved))

    def save(self, step: int, runner: Runner) -> Path:
        """A resumable checkpoint (then the callbacks' on_checkpoint); the trackers' points first."""
        self.logger.flush()
        saved = self.checkpoints.save_periodic(self.resume_bundle(step, runner), step)
        self.callback("on_checkpoint", step, saved)
        return saved

    def finish(self, step: int, episodes: int, runner: Runner) -> RunResult:
        """The final evaluation, the checkpoints that end a run (a resumable one, to extend it later, and the
        final agent), and the run's figures."""
        train_time = time.perf_counter() - self._started
        sps = (step - self._start_step) / max(train_time, 1e-9)
        self.logger.progress(step, sps)
        # A run that ends at an evaluation (solved by it) ends with that evaluation: the agent has not changed since
        # and the episodes start where they did, so evaluating again would play the same episodes.
        evaluated = self._evaluated
        returns = evaluated[1] if evaluated is not None and evaluated[0] == step else self.evaluate(step, runner.agent)
        saved = self.save(step, runner)
        if returns is None:   # a signal stopped the final evaluation: the resume does it
            signum = signal_of(self.stop)
            assert signum is not None   # what stopped the evaluation
            raise TrainingInterrupted(signum, step, str(saved))
        self.checkpoints.save_final(self.policy_bundle(step, runner.agent))
        return RunResult(returns, self.best_eval_return, step, episodes, train_time, sps)

    def heldout_index(self, agent: Any) -> float:
        """The agent's mean predicted value of the held-out states, normalized as its inputs are now."""
        normalization = self.evaluator.normalization
        assert self.heldout is not None   # asked for only when the run keeps held-out states
        states = self.heldout if normalization is None else normalization.observations(self.heldout, update=False)
        return float(agent.representation(obs_tensor(states, self.device))[1].mean())

    def sps(self, step: int) -> float:
        return (step - self._start_step) / max(time.perf_counter() - self._started, 1e-9)

    # --- evaluation and checkpoints -----------------------------------------------------------------------

    def evaluate(self, step: int, agent: Any) -> np.ndarray | None:
        """Evaluate the agent; a new best is saved as checkpoints/best.pt. None: a signal stopped it (the caller
        saves and ends the run)."""
        self.guard.check()
        try:
            returns = self.evaluator(agent)
        except EvaluationStopped:
            return None
        except EnvCallError as error:
            raise error.at(step, where=" (the evaluation env)") from None
        self._evaluated = (step, returns)
        self.logger.evaluation(float(returns.mean()), float(returns.std()), step)
        solved = self.watch.evaluated(float(returns.mean()), step)
        if solved is not None:
            log.info("%s; ending the run", solved.describe())
        if returns.mean() > self.best_eval_return:
            self.best_eval_return = float(returns.mean())
            self.checkpoints.save_best(self.policy_bundle(step, agent))
        self.callback("on_evaluation", step, returns)
        return returns

    def policy_bundle(self, step: int, agent: Any) -> dict[str, Any]:
        """What acting needs: the agent, and the observation statistics it was trained on (`rlexp eval`)."""
        normalization = self.evaluator.normalization
        return {"format": FORMAT, "kind": "policy", "step": step, **self.meta, "agent": agent.state_dict(),
                **({"normalization": normalization.state_dict()} if normalization is not None else {})}

    def resume_bundle(self, step: int, runner: Runner) -> dict[str, Any]:
        """Everything to continue exactly: the agent, the runner's state, the context's, torch's generators."""
        self.guard.check()  # never write a diverged agent over a good checkpoint
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":  # the training device's generator only: others may not exist on resume
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {**self.policy_bundle(step, runner.agent), "kind": "resume", "runner": runner.state_dict(),
                "context": {"metrics": self.metrics, "best_eval_return": self.best_eval_return,
                            "stop": self.watch.state_dict(),
                            **({"callbacks": self.callbacks.state_dict(),
                                "callback_stop": self.stopped_by_callback()} if self.callbacks else {}),
                            **({"heldout": torch.from_numpy(self.heldout)} if self.heldout is not None else {})},
                "rng": rng}

    def restore(self, bundle: dict[str, Any]) -> None:
        """The context's part of a resumable checkpoint (the runner restores its own)."""
        self.metrics = {tag: value.to(self.device) for tag, value in bundle["context"]["metrics"].items()}
        self.best_eval_return = float(bundle["context"]["best_eval_return"])
        if "heldout" in bundle["context"] and self.heldout is not None:   # the states the run began with
            self.heldout = bundle["context"]["heldout"].numpy()
        if "stop" in bundle["context"]:
            self.watch.load_state_dict(bundle["context"]["stop"])
        else:   # a checkpoint made before episode budgets: its episodes count from the runner's
            self.watch.episodes = int(bundle["runner"]["episodes"])
        if self.callbacks:
            self.restore_callbacks(bundle)
        torch.set_rng_state(bundle["rng"]["torch"])
        if "cuda" in bundle["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(bundle["rng"]["cuda"], self.device)

    def restore_callbacks(self, bundle: dict[str, Any]) -> None:
        """The callbacks' states, and a stop one of them asked for, where the run keeps the same callbacks."""
        assert self.callbacks   # (called only when there are some)
        self.callbacks.run.resumed = True
        saved = bundle["context"].get("callbacks", [])
        fresh = self.callbacks.load_state_dict(saved)
        if fresh and saved:
            log.info("%s: not in the checkpoint's callbacks; starting afresh", ", ".join(fresh))
        if bundle["config"].get("callbacks", []) == self.meta["config"].get("callbacks", []):
            self.callbacks.run.stop_reason = bundle["context"].get("callback_stop")

    # --- the end ---------------------------------------------------------------------------------------------

    def write_results(self, result: RunResult, resumed_from: int, wall_time_s: float) -> dict[str, Any]:
        config = self.meta["config"]
        results = {
            "status": "completed",
            "algo": self.meta["algo"],
            "env_id": self.meta["env_id"],
            "seed": config["seed"],
            "device": str(self.device),
            "num_envs": config["env"]["num_envs"],
            "eval_return_mean": float(result.eval_returns.mean()),
            "eval_return_std": float(result.eval_returns.std()),
            "eval_returns": [float(r) for r in result.eval_returns],
            "best_eval_return": result.best_eval_return,
            "total_steps": result.steps,
            "episodes": result.episodes,
            "stopped_by": self.watch.reason() or ("callback" if self.stopped_by_callback() else "total_steps"),
            **({"stop_reason": self.stopped_by_callback()} if self.stopped_by_callback() else {}),
            **self.watch.results(),
            "resumed_from_step": resumed_from,
            "train_time_s": round(result.train_time_s, 3),
            "wall_time_s": round(wall_time_s, 3),
            "sps": round(result.sps, 1),
        }
        write_results(self.run_dir / "results.json", results)
        return results

    def run_ended(self, results: dict[str, Any]) -> None:
        """The callbacks' on_run_end, once results.json is written."""
        self.callback("on_run_end", results["total_steps"], results)

