"""Callbacks the tests name in `callbacks=[{_target_: tests.toy_callbacks.<Name>, ...}]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlexp import Callback
from rlexp.runners.callbacks import Run


class Recorder(Callback):
    """Counts every hook's calls and writes them, with what it saw, to <run_dir>/hooks.json at the run's end; logs
    `recorder/steps` (the on_step calls so far) at each evaluation."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.calls: dict[str, int] = {}
        self.seen: dict[str, Any] = {"evaluations": [], "checkpoints": [], "episodes": 0, "seeds": set()}

    def count(self, hook: str) -> None:
        self.calls[hook] = self.calls.get(hook, 0) + 1

    def on_run_start(self, run: Run) -> None:
        self.count("on_run_start")
        self.seen["start"] = {"step": run.step, "resumed": run.resumed, "total_steps": run.total_steps,
                              "has_agent": run.agent is not None, "algo": run.config["algo"]["name"]}

    def on_step(self, run: Run) -> None:
        self.count("on_step")
        self.seen["seeds"].add(run.seed)
        if run.rollout_done:
            self.seen.setdefault("rollouts_done_at", []).append(run.step)

    def on_episodes(self, returns: np.ndarray, lengths: np.ndarray, run: Run) -> None:
        self.count("on_episodes")
        self.seen["episodes"] += len(returns)

    def on_evaluation(self, returns: np.ndarray, run: Run) -> None:
        self.count("on_evaluation")
        self.seen["evaluations"].append([run.step, float(returns.mean())])
        run.log({"recorder/steps": self.calls["on_step"]})

    def on_checkpoint(self, path: Path, run: Run) -> None:
        self.count("on_checkpoint")
        self.seen["checkpoints"].append(path.name)

    def on_run_end(self, results: dict[str, Any], run: Run) -> None:
        self.count("on_run_end")
        seen = {**self.seen, "seeds": sorted(self.seen["seeds"]), "results_steps": results["total_steps"]}
        (run.run_dir / "hooks.json").write_text(json.dumps({"label": self.label, "calls": self.calls,
                                                            "seen": seen}))


class Tally(Callback):
    """A callback with state: the steps and episode returns it has seen, logged at each evaluation
    (`tally/steps`, `tally/return_sum`); exact resume gives it back its state."""

    def __init__(self) -> None:
        self.steps = 0
        self.return_sum = torch.zeros((), dtype=torch.float64)

    def on_step(self, run: Run) -> None:
        self.steps += 1

    def on_episodes(self, returns: np.ndarray, lengths: np.ndarray, run: Run) -> None:
        self.return_sum += float(np.sum(returns))

    def on_evaluation(self, returns: np.ndarray, run: Run) -> None:
        run.log({"tally/steps": self.steps, "tally/return_sum": float(self.return_sum)})

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "return_sum": self.return_sum.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.return_sum = int(state["steps"]), state["return_sum"].clone()


class Raises(Callback):
    """Raises ValueError in `hook` from step `at_step` on."""

    def __init__(self, hook: str, at_step: int = 0) -> None:
        self.hook, self.at_step = hook, at_step

    def fail(self, hook: str, run: Run) -> None:
        if hook == self.hook and run.step >= self.at_step:
            raise ValueError(f"planned failure in {hook}")

    def on_step(self, run: Run) -> None:
        self.fail("on_step", run)

    def on_evaluation(self, returns: np.ndarray, run: Run) -> None:
        self.fail("on_evaluation", run)


class StopAt(Callback):
    """Asks the run to stop once it reaches `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, run: Run) -> None:
        if run.step >= self.step:
            run.stop(f"reached step {run.step}")


class NoHooks:
    """An object with none of the hooks."""


class Misspelt(Callback):
    def on_evaluate(self, returns: np.ndarray, run: Run) -> None:   # (on_evaluation)
        pass


class Unsaveable(Callback):
    """A state a checkpoint cannot hold (an object)."""

    def state_dict(self) -> dict[str, Any]:
        return {"when": object()}


def made_by_a_function(label: str) -> Recorder:
    """A function returning a callback, as a target."""
    return Recorder(label)


class RecordRayNode(Callback):
    """Writes the id of the Ray node the run is on to <run_dir>/ray_node.txt (a run outside Ray: none is written)."""

    def on_run_start(self, run: Run) -> None:
        import ray

        if ray.is_initialized():
            (run.run_dir / "ray_node.txt").write_text(ray.get_runtime_context().get_node_id())
