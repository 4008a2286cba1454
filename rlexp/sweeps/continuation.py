"""A sweep that died (SIGKILL, a preempted SLURM job, a machine restart) continues when its own command is run
again with its directory (`rlexp train --multirun <the same overrides> hydra.sweep.dir=<its directory>`; any other
command there is refused, rlexp/commands/arguments.py): each job finds its directory as the earlier run of the sweep
left it, and

- a finished job (results.json `completed`) is kept as it is, its result given to the sweep again;
- a job with a resumable checkpoint (its own, or each seed's of `seeds=[...]`) resumes from it exactly, as
  `rlexp train resume=<job>` does: a job interrupted by a signal, killed, or failed after a checkpoint;
- a job killed before its first checkpoint starts over, the files of that attempt removed first (its TensorBoard
  events, metrics, results, a batch's seed directories: nothing there could be resumed);
- a job that never started starts.

So the sweep's summary is complete at the end, every job counted once.
"""

from __future__ import annotations

import shutil
from enum import Enum
from pathlib import Path

from rlexp.io.results import results_status


class Found(Enum):
    NEW = "new"
    FINISHED = "finished"
    RESUMABLE = "resumable"
    RESTART = "restart"


#: What an attempt writes in a job's directory before its first checkpoint (besides Hydra's .hydra/ and log).
ATTEMPT_FILES = ("events.out.tfevents.*", "metrics.csv", "params.csv", "results.json", "wandb_run.json",
                 "mlflow_run.json")


def seed_dirs(run_dir: Path) -> list[Path]:
    """A batch's seed directories, however far their setup went."""
    return [d for d in run_dir.glob("seed_*") if d.is_dir()]


def found_in(run_dir: Path) -> Found:
    runs = [run_dir, *seed_dirs(run_dir)]
    if results_status(run_dir) == "completed":
        return Found.FINISHED
    if any(any((run / "checkpoints").glob("step_*.pt")) for run in runs):
        return Found.RESUMABLE
    if any(any(run.glob(pattern)) for run in runs for pattern in ATTEMPT_FILES):
        return Found.RESTART
    return Found.NEW


def clear_attempt(run_dir: Path) -> None:
    """Remove what a job killed before its first checkpoint wrote (it holds nothing to resume)."""
    for seed_run in seed_dirs(run_dir):
        shutil.rmtree(seed_run)
    for pattern in ATTEMPT_FILES:
        for path in run_dir.glob(pattern):
            path.unlink()
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)   # (best.pt or final.pt alone: nothing to resume)
