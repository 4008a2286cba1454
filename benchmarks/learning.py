"""Learning benchmark: train the default presets over seeds through the real CLI and compare with references.

    python benchmarks/learning.py                      # every preset at its budget, 2 jobs at a time: seeds 0-9
                                                       # for the cheap rows, 0-2 for the rest
    python benchmarks/learning.py --only td3_Pendulum-v1 --seeds 0 1 2 3 4 --jobs 1
    python benchmarks/learning.py --only td3_HalfCheetah-v5 --steps 50000   # a smaller budget (a CPU's)
    python benchmarks/learning.py --override algo.lr=1e-3   # extra Hydra overrides for every run
    python benchmarks/learning.py --only td3_BipedalWalker-v3 --resume   # continue killed runs, keep finished ones
    python benchmarks/learning.py --only dqn_LunarLander-v3 --batched    # the row's 10 seeds as one batched model

A target is checked only at the preset's own budget; with --steps the table compares against the published
figure at that budget where there is one (e.g. the TD3 paper's curves), and says so.

Each run is `rlexp train algo=... env=... seed=... torch_threads=<threads>` in a subprocess; the table is
printed and written to <out>/results.md and <out>/results.csv, with each row's mean over seeds and its 95%
percentile-bootstrap interval (the statistic `rlexp plot` draws). The exit code is 1 when a target is missed.

The seeds: a row whose run takes under about 15 minutes on a 2-core CPU (`cheap`) is measured on seeds 0-9, since
three seeds can all be lucky (DQN LunarLander-v3 scored 215 on seeds 0-2 and about 104 on two others); the 1M-step
MuJoCo and Box2D rows and Atari keep 3 seeds (0-2), for lack of machine time. `--seeds` sets them for every row.

With --batched, each row's seeds train as one process, one batched model (`rlexp train seeds=[...]`, in
<out>/<row>_<steps>/batched_<seeds>): every seed is still its own run, and learns what its separate run learns
(benchmarks/learns_same.py measures that) without equalling it bit for bit, so a table says which way it was made.

With --resume, long budgets can run over several sittings: a run of the same config and budget already finished
in <out> is read back instead of trained again, and one that was killed or interrupted continues from its newest
checkpoint (`rlexp train resume=...`, identical to an uninterrupted run); one killed before its first checkpoint
is moved aside (<seed dir>.unfinished-<time>) and trained anew. A run directory holding another config (a preset
changed since) is reported as an error, never reused.
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
    steps: int               # the preset's budget
    min_mean: float          # the mean over seeds must reach this
    min_each: float          # and no seed may fall below this
    reference: str           # the published figure at the same budget
    at_budget: dict[int, float] | None = None   # published means at smaller budgets (learning curves)
    env_id: str | None = None  # a game of a generic env config (env=atari): its env.id
    cheap: bool = False      # a run takes under about 15 minutes on 2 CPU cores: measured on 10 seeds

    @property
    def default_seeds(self) -> list[int]:
        return list(range(10 if self.cheap else 3))

    @property
    def task(self) -> str:
        return self.env_id.removeprefix("ALE/") if self.env_id else self.env

    @property
    def name(self) -> str:
        return f"{self.algo}_{self.task}"

    def train_args(self, seed: int, steps: int, threads: int, overrides: list[str]) -> list[str]:
        """The `rlexp train` arguments of one run."""
        game = [f"env.id={self.env_id}"] if self.env_id else []
        return [f"algo={self.algo}", f"env={self.env}", *game, f"total_steps={steps}", f"seed={seed}",
                f"torch_threads={threads}", "log.progress=lines", *overrides]


INF = float("-inf")
# Published figures: RL Zoo's benchmark.md (SB3, one run per task, v3 MuJoCo / v2 Box2D envs) and the TD3 paper
# (Fujimoto et al. 2018: Table 2 at 1M steps, Figure 2 for the early curve). Targets are the published mean.
TARGETS = [
    Target("dqn", "CartPole-v1", 50_000, 475.0, 475.0, "RL Zoo DQN: 500 (one run)", cheap=True),
    # sb3-contrib's QR-DQN with RL Zoo's presets (benchmarks/sb3_qrdqn_side_by_side.py runs it on the same seeds)
    Target("qrdqn", "CartPole-v1", 50_000, 475.0, 475.0, "RL Zoo QR-DQN: 500 (one run)", cheap=True),
    Target("qrdqn", "LunarLander-v3", 100_000, 70.2, INF, "RL Zoo QR-DQN: 70.236 +/- 225.491 (v2)"),
    # Rainbow: no SB3 or RL Zoo figure; the reference is sb3-contrib's QR-DQN on its schedule, side by side
    Target("rainbow", "CartPole-v1", 50_000, 475.0, 475.0, "RL Zoo QR-DQN: 500 (one run)", cheap=True),
    Target("rainbow", "LunarLander-v3", 100_000, 70.2, INF, "RL Zoo QR-DQN: 70.236 +/- 225.491 (v2)"),
    Target("dqn", "Acrobot-v1", 100_000, -76.6, -150.0, "RL Zoo DQN: -76.6 +/- 11.8", cheap=True),
    Target("dqn", "LunarLander-v3", 200_000, 200.0, 100.0,
           "RL Zoo DQN: 154.4 +/- 79.2 (the bar: mean 200, no seed under 100)", cheap=True),
    # Discrete observations (one-hot in the network): the optimal policies' figures, no published DQN run fits.
    Target("dqn", "FrozenLake-v1", 100_000, 0.70, INF, "optimal policy: about 0.74 (slippery 4x4)", cheap=True),
    Target("dqn", "Taxi-v4", 200_000, 7.5, INF, "optimal policy: about 7.9", cheap=True),
    Target("td3", "Pendulum-v1", 20_000, -180.0, -250.0, "RL Zoo TD3: -151.9 +/- 90.2", cheap=True),
    Target("ddpg", "Pendulum-v1", 20_000, -180.0, -250.0, "RL Zoo DDPG: -152.1 +/- 94.3", cheap=True),
    Target("sac", "Pendulum-v1", 20_000, -157.0, -250.0, "RL Zoo SAC: -157.0 +/- 88.7", cheap=True),
    # RL Zoo has no TQC Pendulum figure: its SAC's is the bar, sb3-contrib's TQC side by side the reference
    # (benchmarks/sb3_sac_side_by_side.py --algo tqc)
    Target("tqc", "Pendulum-v1", 20_000, -157.0, -250.0, "RL Zoo SAC: -157.0 +/- 88.7 (no TQC figure)", cheap=True),
    # nor a CrossQ one: sb3-contrib's CrossQ side by side (benchmarks/sb3_sac_side_by_side.py --algo crossq)
    Target("crossq", "Pendulum-v1", 20_000, -157.0, -250.0, "RL Zoo SAC: -157.0 +/- 88.7 (no CrossQ figure)",
           cheap=True),
    Target("td3", "MountainCarContinuous-v0", 100_000, 90.0, INF, "RL Zoo TD3: 93.5 (at 300k)", cheap=True),
    Target("ddpg", "MountainCarContinuous-v0", 100_000, 90.0, INF, "RL Zoo DDPG: 93.5 (at 300k)", cheap=True),
    Target("td3", "LunarLanderContinuous-v3", 300_000, 207.5, INF, "RL Zoo TD3: 207.5 +/- 67.6"),
    Target("ddpg", "LunarLanderContinuous-v3", 300_000, 230.2, INF, "RL Zoo DDPG: 230.2 +/- 92.4"),
    Target("sac", "LunarLanderContinuous-v3", 500_000, 260.0, INF, "RL Zoo SAC: 260.4 +/- 65.5"),
    Target("td3", "BipedalWalker-v3", 1_000_000, 306.0, INF, "RL Zoo TD3: 306.0 +/- 56.9"),
    Target("ddpg", "BipedalWalker-v3", 1_000_000, 197.5, INF, "RL Zoo DDPG: 197.5 +/- 141.6"),
    Target("td3", "HalfCheetah-v5", 1_000_000, 9655.7, INF, "RL Zoo TD3: 9655.7; TD3 paper: 9637",
           {50_000: 3350.0, 100_000: 5500.0}),
    Target("td3", "Hopper-v5", 1_000_000, 3606.4, INF, "RL Zoo TD3: 3606.4; TD3 paper: 3564"),
    Target("td3", "Walker2d-v5", 1_000_000, 4717.8, INF, "RL Zoo TD3: 4717.8; TD3 paper: 4683"),
    Target("sac", "HalfCheetah-v5", 1_000_000, 9535.5, INF, "RL Zoo SAC: 9535.5 +/- 100.5 (v3); CleanRL: 9634.9"),
    Target("sac", "MountainCarContinuous-v0", 50_000, 90.0, INF, "RL Zoo SAC: 94.7 +/- 1.1 (with gSDE)", cheap=True),
    Target("ppo", "CartPole-v1", 100_000, 475.0, 475.0, "RL Zoo PPO: 500.0 +/- 0.0", cheap=True),
    Target("ppo", "LunarLander-v3", 1_000_000, 242.0, INF, "RL Zoo PPO: 242.1 +/- 31.8"),
    Target("ppo", "Pendulum-v1", 100_000, -172.0, INF, "RL Zoo PPO: -172.2 +/- 104.2 (with gSDE)", cheap=True),
    Target("ppo", "HalfCheetah-v5", 1_000_000, 5819.1, INF, "RL Zoo PPO: 5819.1 +/- 663.5 (v3); CleanRL: 1442.6 (v4)"),
    Target("ppo", "Hopper-v5", 1_000_000, 2410.4, INF, "RL Zoo PPO: 2410.4 +/- 10.0 (v3); CleanRL: 2382.9 (v4)"),
    Target("a2c", "CartPole-v1", 500_000, 475.0, 475.0, "RL Zoo A2C: 500.0 +/- 0.0", cheap=True),
    Target("a2c", "LunarLander-v3", 200_000, 156.0, INF, "RL Zoo A2C: 155.8 +/- 80.4", cheap=True),
    # TQC and CrossQ at 1M are GPU rows; at a CPU budget (`--steps 100000`) the reference is sb3-contrib's run of the
    # same preset on the same seeds (benchmarks/sb3_sac_side_by_side.py --algo tqc|crossq --steps 100000)
    Target("tqc", "HalfCheetah-v5", 1_000_000, 12089.9, INF, "RL Zoo TQC: 12089.9 +/- 127.4 (v3)"),
    Target("tqc", "Hopper-v5", 1_000_000, 3754.2, INF, "RL Zoo TQC: 3754.2 +/- 8.3 (v3)"),
    Target("crossq", "HalfCheetah-v5", 1_000_000, 9535.5, INF, "RL Zoo SAC: 9535.5 +/- 100.5 (v3; no CrossQ figure)"),
    Target("crossq", "Hopper-v5", 1_000_000, 2325.5, INF, "RL Zoo SAC: 2325.5 +/- 1129.7 (v3; no CrossQ figure)"),
    Target("ddpg", "HalfCheetah-v5", 1_000_000, 8577.3, INF, "TD3 paper, its DDPG: 8577"),
    Target("ddpg", "Hopper-v5", 1_000_000, 1860.0, INF, "TD3 paper, its DDPG: 1860"),
    Target("ddpg", "Walker2d-v5", 1_000_000, 3098.1, INF, "TD3 paper, its DDPG: 3098"),
    # The Nature DQN paper (Mnih et al. 2015, Extended Data Table 2): 30 episodes with epsilon 0.05 after 50M frames
    # (12.5M steps); rlexp scores greedy episodes after its preset's 10M steps (40M frames).
    Target("dqn", "atari", 10_000_000, 18.9, INF, "Nature DQN: 18.9 +/- 1.3 (at 50M frames)",
           env_id="ALE/Pong-v5"),
    # RL Zoo's benchmark.md (one run each, NoFrameskip-v4, a stochastic policy in its evaluation); rlexp scores 10
    # greedy episodes of the v5 game without sticky actions.
    Target("ppo", "atari", 10_000_000, 21.0, INF, "RL Zoo PPO: 20.989 +/- 0.105", env_id="ALE/Pong-v5"),
    Target("ppo", "atari", 10_000_000, 398.0, INF, "RL Zoo PPO: 398.033 +/- 33.328", env_id="ALE/Breakout-v5"),
    Target("a2c", "atari", 10_000_000, 17.3, INF, "RL Zoo A2C: 17.292 +/- 3.214", env_id="ALE/Pong-v5"),
    Target("a2c", "atari", 10_000_000, 279.8, INF, "RL Zoo A2C: 279.793 +/- 122.177", env_id="ALE/Breakout-v5"),
    # Images and Dict observations through env.wrappers (issue 36): RL Zoo's presets and benchmark.md figures; at a
    # CPU budget (--steps) the reference is SB3 side by side (benchmarks/sb3_on_policy_side_by_side.py).
    Target("ppo", "CarRacing-v3", 4_000_000, 153.9, INF, "RL Zoo PPO: 153.938 +/- 74.465 (CarRacing-v0, 4M)"),
    Target("ppo", "MiniGrid-DoorKey-5x5-v0", 100_000, 0.964, INF, "RL Zoo PPO: 0.964 +/- 0.006", cheap=True),
]


def mean_interval(returns: list[float]) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean over seeds: `rlexp plot`'s statistic."""
    import numpy as np

    from rlexp.analysis.statistics import bootstrap_ci

    low, high = bootstrap_ci(np.asarray(returns, dtype=float)[:, None], np.mean)
    return float(low[0]), float(high[0])


def config_conflicts_with(run_dir: Path, train_args: list[str]) -> list[str]:
    """How the config saved in `run_dir` differs from the one `train_args` compose (keys a resume may not change)."""
    from omegaconf import OmegaConf

    from rlexp.config.compat import config_conflicts

    printed = subprocess.run([sys.executable, "-m", "rlexp", "train", "--cfg", "job", *train_args],
                             capture_output=True, text=True, check=True).stdout
    saved = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    return config_conflicts(saved, OmegaConf.to_container(OmegaConf.create(printed)))


def conflict_error(run_dir: Path, train_args: list[str]) -> str | None:
    """Why `run_dir` cannot be continued with `train_args` (it holds a run of another config), or None."""
    conflicts = config_conflicts_with(run_dir, train_args)
    return f"{run_dir} holds a run of another config ({'; '.join(conflicts)}); use another --out" if conflicts else None


def rlexp_train(args: list[str]) -> str | None:
    """`rlexp train <args>` in a subprocess; the last line of its error when it exits non-zero, else None."""
    proc = subprocess.run([sys.executable, "-m", "rlexp", "train", *args], capture_output=True, text=True)
    return (proc.stderr.strip().splitlines() or ["?"])[-1] if proc.returncode != 0 else None


def train_one(target: Target, seed: int, out: Path, threads: int, overrides: list[str], steps: int,
              resume: bool = False) -> dict:
    run_dir = out / f"{target.name}_{steps}" / f"seed{seed}"
    train_args = target.train_args(seed, steps, threads, overrides)
    extra = [f"hydra.run.dir={run_dir}"]
    if resume and (run_dir / ".hydra" / "config.yaml").is_file():
        conflict = conflict_error(run_dir, train_args)
        if conflict:
            return {"seed": seed, "error": conflict, "wall": 0.0}
        previous = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else {}
        # (results.json's total_steps are the steps taken: an on-policy run completes its last rollout past the
        # budget, so the budget is read from the run's config)
        from omegaconf import OmegaConf

        budget = OmegaConf.load(run_dir / ".hydra" / "config.yaml").get("total_steps")
        if previous.get("status") == "completed" and budget == steps and previous.get("total_steps", 0) >= steps:
            return {"seed": seed, "return": previous["eval_return_mean"], "sps": previous["sps"],
                    "wall": previous["wall_time_s"]}
        if any((run_dir / "checkpoints").glob("step_*.pt")):
            extra = [f"resume={run_dir}"]
        elif previous.get("status") != "completed":   # killed before its first checkpoint: nothing to continue
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.unfinished-{time.strftime('%Y%m%d-%H%M%S')}"))
    started = time.perf_counter()
    error = rlexp_train([*train_args, *extra])
    if error:
        return {"seed": seed, "error": error, "wall": 0.0}
    results = json.loads((run_dir / "results.json").read_text())
    return {"seed": seed, "return": results["eval_return_mean"], "sps": results["sps"],
            "wall": time.perf_counter() - started}


def train_batch(target: Target, seeds: list[int], out: Path, threads: int, overrides: list[str], steps: int,
                resume: bool = False, label: str | None = None) -> list[dict]:
    """The seeds as one run, one batched model (`rlexp train seeds=[...]`), in <out>/<row>_<steps>/<label>; each
    seed's row as `train_one` gives it, its wall time the batch's divided among the seeds. With `resume`, a finished
    batch is read back and a killed one continues from its seeds' newest checkpoints."""
    label = label or "batched_" + "-".join(map(str, seeds))
    run_dir = out / f"{target.name}_{steps}" / label
    train_args = [a for a in target.train_args(seeds[0], steps, threads, overrides) if not a.startswith("seed=")]
    train_args.append(f"seeds=[{','.join(map(str, seeds))}]")
    summary = run_dir / "results.json"
    finished = summary.is_file() and json.loads(summary.read_text()).get("status") == "completed"
    extra = [f"hydra.run.dir={run_dir}"]
    if resume and (run_dir / ".hydra" / "config.yaml").is_file():
        conflict = conflict_error(run_dir, train_args)
        if conflict:
            return [{"seed": seed, "error": conflict, "wall": 0.0} for seed in seeds]
        if not finished and any(run_dir.glob("seed_*/checkpoints/step_*.pt")):
            extra = [f"resume={run_dir}"]
    if not (resume and finished):
        started = time.time()
        error = rlexp_train([*train_args, *extra])
        # A batch whose seeds partly failed exits 1 with its summary written: the failed seeds are reported below.
        if error and not (summary.is_file() and summary.stat().st_mtime >= started):
            return [{"seed": seed, "error": error, "wall": 0.0} for seed in seeds]
    wall = json.loads(summary.read_text())["wall_time_s"] / len(seeds)
    runs = []
    for seed in seeds:   # a seed that failed (diverged) is reported as such; the others stand
        results = json.loads((run_dir / f"seed_{seed}" / "results.json").read_text())
        runs.append({"seed": seed, "return": results["eval_return_mean"], "sps": results["sps"], "wall": wall}
                    if results.get("status") == "completed" else
                    {"seed": seed, "error": results.get("error", results.get("status")), "wall": 0.0})
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="target names, e.g. td3_Pendulum-v1")
    parser.add_argument("--seeds", nargs="*", type=int,
                        help="seeds for every row (default: 0-9 for the cheap rows, 0-2 for the rest)")
    parser.add_argument("--steps", type=int, help="train for this many steps instead of each preset's budget")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/learning"))
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override for every run")
    parser.add_argument("--resume", action="store_true",
                        help="keep runs of the same config already finished in --out; continue killed ones")
    parser.add_argument("--batched", action="store_true",
                        help="each row's seeds as one process, one batched model (rlexp train seeds=[...])")
    args = parser.parse_args()

    unknown = sorted(set(args.only or []) - {t.name for t in TARGETS})
    if unknown:
        print(f"learning.py: unknown target {', '.join(unknown)}; choose from {', '.join(t.name for t in TARGETS)}",
              file=sys.stderr)
        return 2
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    jobs = [(t, s) for t in targets for s in (args.seeds if args.seeds is not None else t.default_seeds)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        if args.batched:   # one job per row: its seeds as one model
            batches = list(pool.map(lambda t: train_batch(
                t, [s for tt, s in jobs if tt is t], args.out, args.threads, args.override, args.steps or t.steps,
                args.resume), targets))
            runs = [run for batch in batches for run in batch]
        else:
            runs = list(pool.map(lambda job: train_one(*job, args.out, args.threads, args.override,
                                                       args.steps or job[0].steps, args.resume), jobs))

    header = ["algo", "env", "steps", "seeds", "mean", "95% CI", "std", "min", "per seed", "target", "pass",
              "wall s/run", "SPS", "reference"]
    rows, all_pass = [], True
    for t in targets:
        mine = [r for (tt, _), r in zip(jobs, runs) if tt is t]
        errors = [r for r in mine if "error" in r]
        for r in errors:
            print(f"{t.name} seed {r['seed']} failed: {r['error']}", file=sys.stderr)
        returns = [r["return"] for r in mine if "return" in r]
        steps = args.steps or t.steps
        if steps == t.steps:
            bar, reference = f"mean >= {t.min_mean:g}" + (f", each >= {t.min_each:g}" if t.min_each > INF else ""), \
                t.reference
            ok = not errors and bool(returns) and statistics.fmean(returns) >= t.min_mean and \
                min(returns) >= t.min_each
        elif t.at_budget and steps in t.at_budget:
            bar = f"mean >= {t.at_budget[steps]:g} (published at {steps:,})"
            reference = f"{t.reference} at {t.steps:,}; below the preset's budget of {t.steps:,}"
            ok = not errors and bool(returns) and statistics.fmean(returns) >= t.at_budget[steps]
        else:
            bar, reference, ok = "none at this budget", f"{t.reference} at {t.steps:,} (not comparable)", None
        all_pass &= ok is not False
        # returns of a few units (success rates, FrozenLake's, MiniGrid's) with three decimals, others with one
        d = 3 if returns and max(abs(r) for r in returns) < 10 else 1
        rows.append([
            t.algo, t.task, f"{steps:,}", len(returns),
            f"{statistics.fmean(returns):.{d}f}" if returns else "-",
            "[{:.{d}f}, {:.{d}f}]".format(*mean_interval(returns), d=d) if returns else "-",
            f"{statistics.pstdev(returns):.{d}f}" if returns else "-",
            f"{min(returns):.{d}f}" if returns else "-",
            " ".join(f"{r:.{d - 1}f}" for r in returns),
            bar, {True: "yes", False: "NO", None: "-"}[ok],
            f"{statistics.fmean(r['wall'] for r in mine if 'return' in r):.0f}" if returns else "-",
            f"{statistics.fmean(r['sps'] for r in mine if 'return' in r):.0f}" if returns else "-",
            reference,
        ])

    args.out.mkdir(parents=True, exist_ok=True)
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(table))
    (args.out / "results.md").write_text("\n".join(table) + "\n")
    with open(args.out / "results.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    print(f"\nmachine: {os.cpu_count()} CPU cores; {args.jobs} runs at a time, {args.threads} torch thread(s) each"
          + ("; each row's seeds as one batched model (wall s/run: the batch's time per seed)" if args.batched else ""))
    return 0 if all_pass else 1


if __name__ == "__main__":
    raise SystemExit(main())
