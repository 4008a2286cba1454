"""When each run first reached a bar: the step of its first evaluation whose mean return is at or above it, read
from the run's TensorBoard events, with its final evaluation and speed. For comparing candidate presets on the
steps they need (a figure the machine's load does not change) before timing the chosen one with
benchmarks/time_to_solve.py.

    python benchmarks/solve_steps.py --bar 475 outputs/tune/dqn_CartPole-v1_50000/seed*
    python benchmarks/solve_steps.py --bar 475 --groups DIR1 DIR2 ...   # one line per directory of seed runs

Per run: the first step at or above the bar (or "never"), the final evaluation's mean, and results.json's SPS;
with --groups, per directory (its seed* runs): the runs that reached the bar, the median first step over them, the
runs whose final evaluation is at or above it, and the median SPS. An estimate of the seconds to solve is the
median first step over the median SPS (the training loop's, evaluations included; time_to_solve.py measures the
whole process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlexp.analysis.curves import read_scalars  # noqa: E402


def first_at(run_dir: Path, bar: float) -> int | None:
    evaluations, _ = read_scalars(run_dir, "eval/mean_return")
    return next((step for step, value in sorted((evaluations or {}).items()) if value >= bar), None)


def run_figures(run_dir: Path, bar: float) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    return {"run": str(run_dir), "first": first_at(run_dir, bar), "final": results["eval_return_mean"],
            "sps": results["sps"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bar", type=float, required=True)
    parser.add_argument("--groups", action="store_true", help="each path is a directory of seed* runs")
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args()
    if not args.groups:
        for path in args.paths:
            r = run_figures(path, args.bar)
            print(f"{path}: first at {r['first'] if r['first'] is not None else 'never'}, final {r['final']:.1f}, "
                  f"{r['sps']:.0f} SPS")
        return 0
    print("| candidate | reached the bar | median first step | final >= bar | median SPS | est. seconds to solve |")
    print("|---|---|---|---|---|---|")
    for group in args.paths:
        runs = [run_figures(d, args.bar) for d in sorted(group.glob("seed*")) if (d / "results.json").is_file()]
        reached = [r["first"] for r in runs if r["first"] is not None]
        sps = statistics.median(r["sps"] for r in runs) if runs else 0.0
        first = statistics.median(reached) if reached else None
        print(f"| {group.name} | {len(reached)}/{len(runs)} | {first if first is not None else '-'} | "
              f"{sum(r['final'] >= args.bar for r in runs)}/{len(runs)} | {sps:.0f} | "
              f"{first / sps:.1f} |" if first is not None and sps else
              f"| {group.name} | {len(reached)}/{len(runs)} | - | {sum(r['final'] >= args.bar for r in runs)}/"
              f"{len(runs)} | {sps:.0f} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
