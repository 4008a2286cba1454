"""Sweep benchmark: the same small sweep run serially, with joblib's per-job thread limits, and oversubscribed.

    python benchmarks/sweep.py                     # 4 TD3 Pendulum jobs of 3,000 steps each
    python benchmarks/sweep.py --jobs 4 --steps 3000 --n-jobs 2

Three ways to run the same `--jobs` jobs (seeds 0..jobs-1), each a full `rlexp train --multirun`:
  serial        the basic launcher: one job after another, each with torch's default threads (all cores)
  serial-1-thread  the same with torch_threads=1: what each job does alone on one core
  joblib        hydra/launcher=joblib with n_jobs workers; each job takes cores / n_jobs threads (rlexp's default)
  oversubscribed  the same joblib workers, each forced to use every core (torch_threads=<cores>), which is
                what happens without per-job limits
The figure is the wall time of the whole command; read the ratios, absolute times are noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlexp.sweeps.placement import available_cpus


def run_sweep(name: str, overrides: list[str], workdir: Path) -> tuple[float, list[float]]:
    """Wall time of the sweep and each job's SPS."""
    sweep_dir = workdir / name
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rlexp", "train", "--multirun", *overrides, f"hydra.sweep.dir={sweep_dir}"],
                   check=True, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - started
    sps = [json.loads(p.read_text())["sps"] for p in sorted(sweep_dir.glob("*/results.json"))]
    return wall, sps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="jobs in the sweep (seeds 0..jobs-1)")
    parser.add_argument("--steps", type=int, default=3000, help="environment steps per job")
    parser.add_argument("--n-jobs", type=int, default=available_cpus(), help="joblib workers (default: the cores)")
    args = parser.parse_args()

    cores = available_cpus()
    seeds = ",".join(str(s) for s in range(args.jobs))
    job = ["algo=td3", "env=Pendulum-v1", f"total_steps={args.steps}", "algo.learning_starts=500", "eval.every=0",
           "eval.episodes=2", "checkpoint.every=0", "log.progress=none", f"seed={seeds}"]
    joblib = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"]
    variants = {
        "serial": job,
        "serial-1-thread": [*job, "torch_threads=1"],
        "joblib": [*job, *joblib],
        "oversubscribed": [*job, *joblib, f"torch_threads={cores}"],
    }
    print(f"{args.jobs} jobs of TD3 Pendulum-v1, {args.steps} steps each, {cores} cores, joblib n_jobs={args.n_jobs}")
    print(f"{'launcher':<16}{'wall s':>8}{'speed-up':>10}{'mean job SPS':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        serial_wall = None
        for name, overrides in variants.items():
            wall, sps = run_sweep(name, overrides, Path(tmp))
            serial_wall = serial_wall or wall
            print(f"{name:<16}{wall:>8.1f}{serial_wall / wall:>9.2f}x{sum(sps) / len(sps):>14.0f}", flush=True)


if __name__ == "__main__":
    main()
