"""Learning benchmark: train the default presets over seeds through the real CLI and compare with references.

    python benchmarks/learning.py                      # the issue's three targets, 5 seeds, 2 jobs at a time
    python benchmarks/learning.py --only td3_Pendulum-v1 --seeds 0 1 2 --jobs 1
    python benchmarks/learning.py --override algo.lr=1e-3   # extra Hydra overrides for every run

Each run is `rlexp train algo=... env=... seed=... torch_threads=<threads>` in a subprocess; the table is
printed and written to <out>/results.md and <out>/results.csv. The exit code is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    algo: str
    env: str
    steps: int
    min_mean: float          # the mean over seeds must reach this
    min_each: float          # and no seed may fall below this
    reference: str           # published figure at the same budget

    @property
    def name(self) -> str:
        return f"{self.algo}_{self.env}"


TARGETS = [
    Target("dqn", "CartPole-v1", 50_000, 475.0, 475.0, "RL Zoo SB3 DQN: 500 on some seeds, collapses on others"),
    Target("td3", "Pendulum-v1", 20_000, -180.0, -250.0, "RL Zoo TD3: -152 +/- 90"),
    Target("ddpg", "Pendulum-v1", 20_000, -180.0, -250.0, "RL Zoo DDPG: -152 +/- 90 (the TD3 bar)"),
]


def train_one(target: Target, seed: int, out: Path, threads: int, overrides: list[str]) -> dict:
    run_dir = out / target.name / f"seed{seed}"
    command = [sys.executable, "-m", "rlexp", "train", f"algo={target.algo}", f"env={target.env}",
               f"total_steps={target.steps}", f"seed={seed}", f"torch_threads={threads}", "log.progress=lines",
               f"hydra.run.dir={run_dir}", *overrides]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"seed": seed, "error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall": 0.0}
    results = json.loads((run_dir / "results.json").read_text())
    return {"seed": seed, "return": results["eval_return_mean"], "sps": results["sps"],
            "wall": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="target names, e.g. td3_Pendulum-v1")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/learning"))
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override for every run")
    args = parser.parse_args()

    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    jobs = [(t, s) for t in targets for s in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda job: train_one(*job, args.out, args.threads, args.override), jobs))

    header = ["algo", "env", "steps", "seeds", "mean", "std", "min", "per seed", "target", "pass",
              "wall s/run", "SPS", "reference"]
    rows, all_pass = [], True
    for t in targets:
        mine = [r for (tt, _), r in zip(jobs, runs) if tt is t]
        errors = [r for r in mine if "error" in r]
        for r in errors:
            print(f"{t.name} seed {r['seed']} failed: {r['error']}", file=sys.stderr)
        returns = [r["return"] for r in mine if "return" in r]
        ok = not errors and bool(returns) and statistics.fmean(returns) >= t.min_mean and min(returns) >= t.min_each
        all_pass &= ok
        rows.append([
            t.algo, t.env, t.steps, len(returns),
            f"{statistics.fmean(returns):.1f}" if returns else "-",
            f"{statistics.pstdev(returns):.1f}" if returns else "-",
            f"{min(returns):.1f}" if returns else "-",
            " ".join(f"{r:.0f}" for r in returns),
            f"mean >= {t.min_mean:g}, each >= {t.min_each:g}", "yes" if ok else "NO",
            f"{statistics.fmean(r['wall'] for r in mine if 'return' in r):.0f}" if returns else "-",
            f"{statistics.fmean(r['sps'] for r in mine if 'return' in r):.0f}" if returns else "-",
            t.reference,
        ])

    args.out.mkdir(parents=True, exist_ok=True)
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(table))
    (args.out / "results.md").write_text("\n".join(table) + "\n")
    with open(args.out / "results.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    print(f"\nmachine: {os.cpu_count()} CPU cores; {args.jobs} runs at a time, {args.threads} torch thread(s) each")
    return 0 if all_pass else 1


if __name__ == "__main__":
    raise SystemExit(main())
