"""Throughput of the run engine: env steps per second at num_envs 1, 4, 8, 16, sync, async and EnvPool.

    python benchmarks/throughput.py                       # every table, every task (about an hour on 2 cores)
    python benchmarks/throughput.py --table collection --tasks cartpole
    python benchmarks/throughput.py --device cuda         # the same on a GPU

- `collection`: updates off (random actions until the last step: learning_starts = total_steps - num_envs), so
  the figure is what the envs, acting and the replay's writes cost. The target: >= 5x at 16 envs over 1 env for
  CartPole and Pong.
- `training`: each task's preset (its update-to-data ratio, networks and batch) from the first steps on, num_envs
  1 and 8: what vectorizing gains at the presets' ratios, where on a CPU the updates take most of a step.
- `overlap`: HalfCheetah at 8 envs with small networks (64-64, batch 64), so that on a CPU env stepping is a real
  share of a step while updates still run at every vector step: what stepping the envs while the learner updates
  (async, EnvPool) gains over stepping them in turn (sync).

EnvPool's column is measured where it is installed (`pip install "rlexp[envpool]"`). Each run is `rlexp train` in a
subprocess with torch_threads=1; the figure is results.json's `sps` (the training
loop, without the final evaluation). Runs go one at a time, the tasks interleaved with their repeats, and the
median of --repeats is shown: absolute numbers are noisy on a shared machine, ratios within a table less so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TASKS = {
    "cartpole": (["algo=dqn", "env=CartPole-v1"], {"collection": 20_000, "training": 3_000}, 256),
    "halfcheetah": (["algo=td3", "env=HalfCheetah-v5"], {"collection": 10_000, "training": 1_500, "overlap": 6_000},
                    200),
    "pong": (["algo=dqn", "env=atari", "env.id=ALE/Pong-v5", "algo.buffer_size=20000"],
             {"collection": 4_000, "training": 2_000}, 500),
}
ENVS = {"collection": [1, 4, 8, 16], "training": [1, 8], "overlap": [8]}
EXTRA = {"overlap": {"halfcheetah": ["network.hidden_sizes=[64,64]", "algo.batch_size=64"]}}


def measure(task: str, table: str, num_envs: int, vectorization: str, device: str) -> float:
    overrides, steps, warmup = TASKS[task]
    overrides = [*overrides, *EXTRA.get(table, {}).get(task, [])]
    total = steps[table]
    starts = total - num_envs if table == "collection" else warmup
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        proc = subprocess.run(
            [sys.executable, "-m", "rlexp", "train", *overrides, f"total_steps={total}",
             f"algo.learning_starts={starts}", f"env.num_envs={num_envs}", f"env.vectorization={vectorization}",
             f"device={device}", "torch_threads=1", "eval.every=0", "eval.episodes=1", "checkpoint.every=0",
             "log.progress=none", f"hydra.run.dir={run_dir}"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"throughput.py: {task} failed: {proc.stderr.strip().splitlines()[-1]}")
        return json.loads((run_dir / "results.json").read_text())["sps"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=["collection", "training", "overlap", "all"], default="all")
    parser.add_argument("--tasks", nargs="*", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    tables = ["collection", "training", "overlap"] if args.table == "all" else [args.table]
    modes = ("sync", "async", "envpool") if importlib.util.find_spec("envpool") else ("sync", "async")
    for table in tables:
        tasks = [task for task in args.tasks if table in TASKS[task][1]]
        cases = [(task, n, v) for task in tasks for n in ENVS[table] for v in modes]
        figures: dict[tuple[str, int, str], list[float]] = {case: [] for case in cases}
        for _ in range(args.repeats):
            for case in cases:
                figures[case].append(measure(case[0], table, case[1], case[2], args.device))
                print(f"{table} {case}: {figures[case][-1]:.0f} SPS", file=sys.stderr, flush=True)
        print(f"\n{table} ({args.device}, {os.cpu_count()} cores, median of {args.repeats}):\n")
        print("| task | num_envs | " + " | ".join(f"{m} SPS" for m in modes) + " | "
              + " | ".join(f"{m} vs {min(ENVS[table])} env(s) sync" for m in modes) + " |")
        print("|---|---|" + "---|" * (2 * len(modes)))
        for task in tasks:
            base = statistics.median(figures[(task, min(ENVS[table]), "sync")])
            for n in ENVS[table]:
                sps = [statistics.median(figures[(task, n, m)]) for m in modes]
                print(f"| {task} | {n} | " + " | ".join(f"{x:.0f}" for x in sps) + " | "
                      + " | ".join(f"{x / base:.2f}x" for x in sps) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
