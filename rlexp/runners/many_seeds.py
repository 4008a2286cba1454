"""A many-seeds run (`rlexp train seeds=[...]`) around the lockstep driver (rlexp/runners/seeds.py): each seed's
config, directory and .hydra/ files, and the results of all the seeds in the run's results.json."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlexp.agents.compiled import compile_agent
from rlexp.errors import Interrupted, RunFailure, TrainingInterrupted
from rlexp.io import override_key, seed_dir
from rlexp.io.results import read_results, write_results
from rlexp.runners.faults import HeldStop, StopRequest
from rlexp.runners.job import Job
from rlexp.runners.seeds import run_in_lockstep

log = logging.getLogger("rlexp")


def config_of_seed(config: dict[str, Any], seed: int, index: int) -> dict[str, Any]:
    """One seed's config in a many-seeds run: a single run's (its progress shown for the first seed only)."""
    log_cfg = {**config["log"], "progress": config["log"]["progress"] if index == 0 else "none"}
    return {**config, "seed": seed, "seeds": None, "log": log_cfg}


def train_seeds(jobs: list[Job], spec: Any, run_dir: Path, stop: StopRequest, overrides: list[str],
                all_seeds: list[int], resumes: dict[int, dict[str, Any]],
                error_message: Callable[[BaseException], str]) -> dict[str, Any]:
    """Many seeds as one model (rlexp/runners/seeds.py): each seed's run in <run_dir>/seed_<s>/, with the .hydra/
    files of a single run of that seed (so `rlexp plot`, `rlexp eval` and `resume=` treat it as one), from its
    checkpoint in `resumes` when resuming; the results of all the seeds (those that ended before too) in
    <run_dir>/results.json, a failed seed's error there as `error_message` words it. A failed seed is a RunFailure
    (exit 1) once every other seed has finished, the seeds' table kept in its `results`."""
    started = time.perf_counter()
    held = HeldStop(stop)   # every seed takes a signal in at the same step
    seed_dirs, steps = [], []
    for job in jobs:
        if stop.signum is not None:   # a signal while a large batch's directories are made: no seed has trained
            raise Interrupted(stop.signum, "while the seeds' directories were made; no seed has trained")
        seed = job.config["seed"]
        directory = seed_dir(run_dir, seed)
        seed_overrides = [o for o in overrides if override_key(o) not in ("seeds", "seed")] + [f"seed={seed}"]
        try:
            (directory / ".hydra").mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(job.config), directory / ".hydra" / "config.yaml")
            OmegaConf.save(OmegaConf.create(seed_overrides), directory / ".hydra" / "overrides.yaml")
        except OSError as unwritable:   # a full disk: before any seed trained
            raise RunFailure(f"could not write {directory / '.hydra'}: {unwritable.strerror or unwritable}; no "
                             f"seed has trained") from None
        seed_dirs.append(directory)
        steps.append(job.steps(directory, held, seed_overrides, resumes.get(seed)))
    seeds = [job.config["seed"] for job in jobs]
    log.info("%d seeds as one model: %s -> %s/seed_<s>", len(seeds), seeds, run_dir)
    config = jobs[0].config
    for job in jobs:   # the batched agent compiles (compile=), not each seed's
        job.compiles = False
        job.batch = seeds   # its checkpoints say so: a seed resumed alone later writes its own (accept.py)
    outcomes = run_in_lockstep(seeds, steps, lambda agents: compile_agent(
        spec.members(agents), config["compile"], config["compile_mode"], jobs[0].device), held)
    for outcome, directory in zip(outcomes, seed_dirs):
        if isinstance(outcome.error, TrainingInterrupted):
            write_results(directory / "results.json", {"status": "interrupted", "error": str(outcome.error),
                                                       "step": outcome.error.step})
        elif outcome.error is not None:
            write_results(directory / "results.json", {"status": "failed", "error": error_message(outcome.error)})
    interrupted = [o.error for o in outcomes if isinstance(o.error, TrainingInterrupted)]
    if interrupted:
        raise interrupted[0]
    per_seed: dict[str, Any] = {}
    for seed in all_seeds:
        results = read_results(seed_dir(run_dir, seed)) or {"status": "no result"}
        per_seed[str(seed)] = {key: results[key] for key in ("status", "eval_return_mean", "error") if key in results}
    returns = [row["eval_return_mean"] for row in per_seed.values() if row["status"] == "completed"]
    failed = [int(seed) for seed, row in per_seed.items() if row["status"] != "completed"]
    summary = {"status": "completed" if not failed else "failed", "seeds": per_seed,
               "eval_return_mean": sum(returns) / len(returns) if returns else float("nan"),
               "wall_time_s": round(time.perf_counter() - started, 3)}
    if failed:
        summary["error"] = f"seeds {failed} failed (see their results.json); the others completed"
    write_results(run_dir / "results.json", summary)
    log.info("seeds: %s", ", ".join(f"{seed} {row['status']}" + (f" {row['eval_return_mean']:.2f}"
                                                                   if row.get("eval_return_mean") is not None else "")
                                    for seed, row in per_seed.items()))
    if failed:   # exit 1, with the seeds' table kept in results.json
        error = RunFailure(summary["error"])
        error.results = summary   # type: ignore[attr-defined]
        raise error
    return summary
