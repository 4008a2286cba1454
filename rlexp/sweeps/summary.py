"""The end of a multirun: one table of every job (stdout and <sweep_dir>/summary.csv), failures named.

A Hydra callback (registered in conf/config.yaml) that reads what each job left in its directory, so it
works the same whichever launcher ran the jobs (in this process, in worker processes, on a cluster).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, cast

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rlexp.analysis.tables import shorten_floats, text_table
from rlexp.errors import Interrupted, SweepFailed
from rlexp.io import shown_path
from rlexp.io.results import read_results
from rlexp.sweeps.interrupt import SweepSignals, clear, interrupted_by

log = logging.getLogger("rlexp")


@dataclass(frozen=True)
class JobRow:
    job: int
    overrides: str               # the overrides that differ between the sweep's jobs
    status: str                  # completed | failed | interrupted | no result (killed, or still running)
    eval_return: float | None
    wall_time_s: float | None
    error: str
    run_dir: str


def read_job(job_dir: Path, shown: Callable[[str], bool] = lambda override: True) -> JobRow | None:
    """A job's row, from <job_dir>/.hydra/ and results.json (with the overrides `shown` keeps); None for a
    directory that is not a job."""
    hydra_file = job_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.is_file():
        return None
    hydra_cfg = OmegaConf.load(hydra_file).hydra
    task = cast("list[str]", OmegaConf.to_container(hydra_cfg.overrides.task))   # a list of override strings
    overrides = " ".join(o for o in task if shown(o))
    results = read_results(job_dir) or {}
    eval_return = results.get("eval_return_mean")
    return JobRow(job=int(hydra_cfg.job.num), overrides=overrides, status=results.get("status", "no result"),
                  eval_return=None if eval_return is None or not math.isfinite(eval_return) else eval_return,
                  wall_time_s=results.get("wall_time_s"), error=results.get("error", ""), run_dir=str(job_dir))


def summarize(sweep_dir: Path) -> list[JobRow]:
    """Every job of the sweep, by job number; overrides shared by all jobs are left out of each row."""
    job_dirs = [d for d in sweep_dir.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()]
    per_job = [set(cast("list[str]", OmegaConf.to_container(OmegaConf.load(d / ".hydra" / "overrides.yaml"))))
               for d in job_dirs]
    shared = set.intersection(*per_job) if len(per_job) > 1 else set()
    rows = (read_job(d, lambda override: override not in shared and not override.startswith("optuna_trial="))
            for d in job_dirs)   # (a search's trial is its directory's name)
    return sorted((r for r in rows if r is not None), key=lambda r: r.job)


def best_job(rows: list[JobRow]) -> JobRow | None:
    """The completed job with the highest final eval return."""
    scored = [r for r in rows if r.status == "completed" and r.eval_return is not None]

    def score(row: JobRow) -> float:
        assert row.eval_return is not None   # (scored rows have one)
        return row.eval_return

    return max(scored, key=score) if scored else None


def format_table(rows: list[JobRow]) -> str:
    header = ("job", "overrides", "status", "eval return", "wall s")
    lines = [(str(r.job), shorten_floats(r.overrides) or "(none)", r.status,
              "" if r.eval_return is None else f"{r.eval_return:.2f}",
              "" if r.wall_time_s is None else f"{r.wall_time_s:.1f}") for r in rows]
    table = text_table(header, lines)
    table += [f"job {r.job} {r.status}: {r.error}" for r in rows if r.status != "completed" and r.error]
    best = best_job(rows)
    if best is not None and len(rows) > 1:
        table.append(f"best: job {best.job}, eval return {best.eval_return:.2f} ({best.run_dir})")
    return "\n".join(table)


def write_csv(rows: list[JobRow], path: Path) -> str | None:
    """Written beside and renamed over (never half a table); what kept it from being written, if anything did (a
    full disk: the sweep still prints its table and exits non-zero)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(JobRow.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)
        os.replace(tmp, path)
        return None
    except OSError as error:
        tmp.unlink(missing_ok=True)
        return f"{path} could not be written ({error.strerror or error}); the table above is the summary"


#: The sweep this process runs (set when it starts): Hydra calls no callback once its launcher raises.
running: list[Path] = []


def report(sweep_dir: Path) -> tuple[list[JobRow], str | None, str]:
    """The summary at a sweep's end: its rows, written to <sweep_dir>/summary.csv and printed as a table; with what
    could not be written (None: all of it) and where a message sends the reader (`see <summary.csv>`, as the
    command named the directory)."""
    rows = summarize(sweep_dir) if sweep_dir.is_dir() else []
    unwritten = write_csv(rows, sweep_dir / "summary.csv") if sweep_dir.is_dir() else None
    print(f"\nsweep summary ({shown_path(sweep_dir / 'summary.csv')}):\n{format_table(rows)}", flush=True)
    return rows, unwritten, unwritten or f"see {shown_path(sweep_dir / 'summary.csv')}"


def summary_after_launcher_failure(sweep_dir: Path, what: str) -> SweepFailed:
    """A launcher that stopped the sweep itself (joblib, when the OS killed one of its workers: it ends the others
    with it, and Hydra calls no callback after): the summary is made as at the sweep's end (the table, summary.csv),
    and the SweepFailed to raise says `what` happened."""
    rows, _, see = report(sweep_dir)
    failed = [r for r in rows if r.status != "completed"]
    return SweepFailed(f"{what}; {len(failed)} of {len(rows)} jobs did not complete ("
                       + ", ".join(f"job {r.job}: {r.status}" for r in failed) + f"); resume=<job dir> continues one "
                       f"that saved a checkpoint; {see}")


class SweepSummary(Callback):
    """Registered in conf/config.yaml. When jobs failed it raises SweepFailed, a BaseException: Hydra turns an
    Exception from a callback into a warning, and `rlexp train` must exit 1. A signal during the sweep
    (rlexp/sweeps/interrupt.py) ends it with the summary and then `Interrupted` (exit 130/143)."""

    def __init__(self) -> None:
        self.signals: SweepSignals | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        running[:] = [sweep_dir]
        if sweep_dir.is_dir():
            clear(sweep_dir)   # a stale marker of an earlier sweep there
        self.signals = SweepSignals(sweep_dir)
        self.signals.install()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.signals is not None:
            self.signals.restore()
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows, unwritten, see = report(sweep_dir)
        failed = [r for r in rows if r.status != "completed"]
        signum = interrupted_by(sweep_dir)
        if signum is not None:
            clear(sweep_dir)
            interrupted = [r for r in rows if r.status == "interrupted"]
            not_run = [r for r in interrupted if r.error.startswith("not run")]
            raise Interrupted(signum, f"during the sweep: {len(interrupted)} of {len(rows)} jobs interrupted"
                                      + (f" ({len(not_run)} before they started)" if not_run else "")
                                      + f"; resume=<job dir> continues one that trained; {see}")
        if failed:
            raise SweepFailed(f"{len(failed)} of {len(rows)} jobs did not complete ("
                              + ", ".join(f"job {r.job}: {r.status}" for r in failed) + f"); {see}")
        if unwritten:
            raise SweepFailed(f"every job completed, but {unwritten}")
