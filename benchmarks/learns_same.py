"""Do seeds batched into one model (and compiled updates) learn what the same seeds learn as separate runs?

    python benchmarks/learns_same.py --out DIR [--only td3_Pendulum-v1] [--seeds 0 1 2 3 4 5 6 7] [--no-compile]

For each task at its preset's budget (benchmarks/learning.py's rows): the seeds as separate runs (learning.py's
runs, reused from DIR when it holds them: point --out at a learning.py --out), the same seeds as one batched run
(`seeds=[...]`), and that batched run with `compile=true`. Each side's final evaluation return per seed, its mean
and 95% percentile-bootstrap interval (`rlexp plot`'s statistic), and Welch's t-test against the separate runs.
"Same" means the intervals overlap (a batched seed need not equal its separate run bit for bit: the batched
product rounds differently). With --resume semantics throughout: a finished run is read back, a killed one
continues. The table goes to stdout and <out>/learns_same.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from learning import TARGETS, Target, mean_interval, train_batch, train_one  # noqa: E402

DEFAULT = ["td3_Pendulum-v1", "dqn_CartPole-v1", "ppo_CartPole-v1"]


def batched(target: Target, seeds: list[int], out: Path, extra: list[str], label: str) -> list[float]:
    """The seeds as one run (continued if a previous one was killed); each seed's final evaluation return."""
    runs = train_batch(target, seeds, out, 1, extra, target.steps, resume=True, label=label)
    failed = [f"seed {run['seed']}: {run['error']}" for run in runs if "error" in run]
    if failed:
        raise RuntimeError(f"{target.name} {label}: {'; '.join(failed)}")
    return [float(run["return"]) for run in runs]


def describe(returns: list[float]) -> str:
    low, high = mean_interval(returns)
    return f"{statistics.fmean(returns):.1f} [{low:.1f}, {high:.1f}]"


def agreement(a: list[float], b: list[float]) -> str:
    from scipy.stats import ttest_ind

    (low_a, high_a), (low_b, high_b) = mean_interval(a), mean_interval(b)
    overlap = low_a <= high_b and low_b <= high_a
    p = ttest_ind(a, b, equal_var=False).pvalue
    return f"{'yes' if overlap else 'NO'} (Welch p = {p:.2f})" if p == p else ("yes" if overlap else "NO")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/learning"))
    parser.add_argument("--only", nargs="*", default=DEFAULT)
    parser.add_argument("--seeds", nargs="*", type=int, default=list(range(8)))
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled batched run")
    args = parser.parse_args()
    targets = {t.name: t for t in TARGETS}
    lines = ["| task | steps | separate runs | batched | compiled, batched | per seed: separate / batched / compiled | "
             "batched agrees | compiled agrees |", "|---|---|---|---|---|---|---|---|"]
    for name in args.only:
        target = targets[name]
        together = batched(target, args.seeds, args.out, [], f"batched_{len(args.seeds)}")
        compiled = None if args.no_compile else \
            batched(target, args.seeds, args.out, ["compile=true"], f"batched_{len(args.seeds)}_compiled")
        separate = []
        for seed in args.seeds:
            run = train_one(target, seed, args.out, 1, [], target.steps, resume=True)
            while "error" in run and "is in use by" in run["error"]:   # learning.py is training it: wait for it
                time.sleep(60)
                run = train_one(target, seed, args.out, 1, [], target.steps, resume=True)
            if "error" in run:
                raise SystemExit(f"{name} seed {seed}: {run['error']}")
            separate.append(float(run["return"]))
        per_seed = " / ".join(" ".join(f"{r:.0f}" for r in side) for side in (separate, together, compiled) if side)
        lines.append(f"| {name} | {target.steps:,} | {describe(separate)} | {describe(together)} | "
                     f"{describe(compiled) if compiled else '-'} | {per_seed} | {agreement(separate, together)} | "
                     f"{agreement(separate, compiled) if compiled else '-'} |")
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learns_same.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
