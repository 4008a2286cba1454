"""TD3 on a GPU, one update per env step: eager, compiled, compiled with CUDA graphs, and 16 seeds as one model.

    python benchmarks/gpu.py --out DIR                        # on a CUDA machine: the issue's rows
    python benchmarks/gpu.py --device cpu --steps 3000 --envs Pendulum-v1 --seeds 4   # the same rows on a CPU

Each row is one `rlexp train algo=td3 env=<env> device=<device> algo.train_freq=1 algo.gradient_steps=1 ...` in
a subprocess. Its speed is the steady state, read from the run's TensorBoard events: the env steps per second of
wall time between the logs of the second half of its learning, so compiling (which happens at the first updates) and the
random steps before learning_starts are left out. For many seeds, the aggregate: seeds x one seed's rate (they
move in lockstep). The table goes to stdout and <out>/gpu.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROWS = {   # name -> the extra overrides of the row
    "eager": ["compile=false"],
    "compiled": ["compile=true", "compile_mode=max-autotune-no-cudagraphs"],
    "compiled + CUDA graphs": ["compile=true", "compile_mode=reduce-overhead"],
}


LEARNING_STARTS = 2000


def steady_rate(run_dir: Path) -> float:
    """Env steps per second between the logged steps of the second half of the run's learning (their events' wall
    times)."""
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    events = accumulator.Scalars("charts/SPS")
    half = [e for e in events if e.step >= (LEARNING_STARTS + events[-1].step) / 2]
    if len(half) < 2:
        raise RuntimeError(f"{run_dir}: too few logs for a steady-state rate; use more --steps")
    return (half[-1].step - half[0].step) / (half[-1].wall_time - half[0].wall_time)


def train(args: list[str], run_dir: Path) -> None:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    proc = subprocess.run([sys.executable, "-m", "rlexp", "train", *args, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{run_dir}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    for line in proc.stderr.splitlines():
        if "could not be compiled" in line:
            print(f"  ({run_dir.name}) {line.strip()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_gpu"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--envs", nargs="*", default=["Pendulum-v1", "HalfCheetah-v5"])
    parser.add_argument("--steps", type=int, default=30_000, help="env steps per run (learning starts at 2,000)")
    parser.add_argument("--seeds", type=int, default=16, help="seeds of the batched row (0: no such row)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    common = [f"device={args.device}", f"total_steps={args.steps}", f"algo.learning_starts={LEARNING_STARTS}",
              "algo.train_freq=1", "algo.gradient_steps=1", "eval.every=0", "eval.episodes=1",
              "checkpoint.every=0", f"log.every={max(args.steps // 20, 100)}", "log.progress=none"]
    lines = ["| env | run | steps/s (steady state) |", "|---|---|---|"]
    for env in args.envs:
        rows = dict(ROWS)
        if args.seeds:
            rows[f"{args.seeds} seeds, compiled + CUDA graphs"] = [
                "compile=true", "compile_mode=reduce-overhead", f"seeds=[{','.join(map(str, range(args.seeds)))}]"]
        for name, extra in rows.items():
            if args.device == "cpu":   # no CUDA graphs on a CPU: the compiled row's mode instead
                extra = [e.replace("reduce-overhead", "max-autotune-no-cudagraphs") for e in extra]
            run_dir = args.out / env / name.replace(" ", "_").replace(",", "").replace("+", "and")
            try:
                train(["algo=td3", f"env={env}", *common, *extra], run_dir)
                seeds = args.seeds if "seeds" in name else 1
                rate = steady_rate(run_dir / "seed_0" if seeds > 1 else run_dir) * seeds
                cell = f"{rate:,.0f}" + (" (aggregate)" if seeds > 1 else "")
            except RuntimeError as error:
                cell = f"failed: {error}"
            lines.append(f"| {env} | {name} | {cell} |")
            print(lines[-1], flush=True)
    (args.out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
