"""What pruning and seed-batching buy a hyperparameter search: four searches of the same preset and the same number
of trials, their wall time, and their best configuration re-run on 10 fresh seeds.

    python benchmarks/search.py --out DIR [--preset ppo_cartpole] [--trials 20] [--fresh-seeds 100 ... 109]
                                [--override total_steps=20000 ...]

The four arms (rlexp's Optuna sweeper, `hparams_search=<preset>`, TPE seeded alike):

- K=1, no pruning: each trial one seed (seed 0), scored by its final evaluation (the usual search);
- K=1, median pruning: the same, the preset's median pruner on each evaluation;
- K=4, no pruning: each trial seeds 0-3 as one batched run, scored by their IQM;
- K=4, median pruning.

Each arm runs its trials two at a time (`hydra/launcher=joblib hydra.sweeper.n_jobs=2`, one torch thread each: the
2 cores busy), one arm after another; its wall time is the search's whole process. Its best trial's parameters are
then trained on the fresh seeds (never seen by any search) as one batched run at the search's own budget, and
scored by the mean and IQM of their final evaluations (10 episodes each); the preset's defaults (no search) on the
same fresh seeds are the baseline. Finished arms and re-runs are read back from DIR (the same command continues a
search that was stopped: rlexp's continuation). Writes DIR/search.md (the table) and DIR/search.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ARMS = {   # name -> the sweeper's overrides
    "K=1, no pruning": ["hydra.sweeper.seeds=[0]", "hydra.sweeper.pruner=null"],
    "K=1, median pruning": ["hydra.sweeper.seeds=[0]"],
    "K=4, no pruning": ["hydra.sweeper.seeds=[0,1,2,3]", "hydra.sweeper.pruner=null"],
    "K=4, median pruning": ["hydra.sweeper.seeds=[0,1,2,3]"],
}
COMMON = ["log.progress=none", "torch_threads=1", "checkpoint.every=0"]


def slug(name: str) -> str:
    return name.replace("=", "").replace(", ", "_").replace(" ", "_")


def rlexp(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rlexp", "train", *args], capture_output=True, text=True)
    return proc, time.perf_counter() - started


def search(preset: str, arm: list[str], trials: int, sweep_dir: Path, extra: list[str]) -> dict:
    """The arm's search (continued if it was stopped), its wall seconds summed over the invocations it took."""
    record = sweep_dir / "arm.json"
    done = json.loads(record.read_text()) if record.is_file() else {"seconds": 0.0, "invocations": 0}
    results = sweep_dir / "optimization_results.yaml"
    if not (results.is_file() and done.get("finished")):
        proc, seconds = rlexp(["--multirun", f"hparams_search={preset}", *extra, *arm,
                               f"hydra.sweeper.n_trials={trials}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                               "hydra.sweeper.n_jobs=2",
                               *COMMON, f"hydra.sweep.dir={sweep_dir}"])
        if proc.returncode != 0:
            raise SystemExit(f"the search {arm} failed: {proc.stderr.strip().splitlines()[-1:]}")
        done = {"seconds": done["seconds"] + seconds, "invocations": done["invocations"] + 1, "finished": True}
        record.write_text(json.dumps(done))
    best = OmegaConf.to_container(OmegaConf.load(results))
    return {**done, "best": best}


def fresh_run(args: list[str], seeds: list[int], run_dir: Path) -> dict:
    """`args` trained on `seeds` as one batched run: each seed's final mean evaluation return."""
    results = run_dir / "results.json"
    if not (results.is_file() and json.loads(results.read_text()).get("status") == "completed"):
        common = [c for c in COMMON if c.split("=")[0] not in {a.split("=")[0] for a in args}]
        proc, _ = rlexp([*args, f"seeds=[{','.join(map(str, seeds))}]", *common, f"hydra.run.dir={run_dir}"])
        if proc.returncode != 0:
            raise SystemExit(f"the re-run {args} failed: {proc.stderr.strip().splitlines()[-1:]}")
    per_seed = json.loads(results.read_text())["seeds"]
    returns = [per_seed[str(s)]["eval_return_mean"] for s in seeds]
    return {"returns": returns, "mean": statistics.fmean(returns), "iqm": iqm(returns)}


def iqm(values: list[float]) -> float:
    from scipy.stats import trim_mean

    return float(trim_mean(values, 0.25))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="ppo_cartpole", help="an hparams_search preset (conf/hparams_search/)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--fresh-seeds", type=int, nargs="*", default=list(range(100, 110)))
    parser.add_argument("--only", nargs="*", help="arm names, e.g. 'K=1, no pruning'")
    parser.add_argument("--override", nargs="*", default=[],
                        help="overrides of every search and re-run, e.g. total_steps=20000 (a budget few settings "
                             "solve in, so that trials differ)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, arm in ARMS.items():
        if args.only and name not in args.only:
            continue
        found = search(args.preset, arm, args.trials, args.out / slug(name), args.override)
        command = str(found["best"]["command"]).split()[2:]   # (rlexp train ...)
        chosen = [a for a in command if not a.startswith(("seed=", "seeds="))]
        rerun = fresh_run(chosen, args.fresh_seeds, args.out / f"{slug(name)}_fresh")
        rows[name] = {**found, "fresh": rerun}
        print(f"{name}: {found['seconds']:.0f} s, best trial {found['best'].get('best_trial')} "
              f"({found['best'].get('best_value')}), on fresh seeds mean {rerun['mean']:.1f} IQM {rerun['iqm']:.1f}",
              flush=True)
    baseline = fresh_run([f"hparams_search={args.preset}", *args.override], args.fresh_seeds,
                         args.out / "preset_fresh")
    (args.out / "search.json").write_text(json.dumps({"arms": rows, "preset": baseline}, indent=1))
    seeds = f"{args.fresh_seeds[0]}-{args.fresh_seeds[-1]}" if args.fresh_seeds else ""
    lines = [f"| arm | wall time of the search | trials complete / pruned | best trial's score (its seeds) | best "
             f"parameters on fresh seeds {seeds}: mean | IQM | per seed |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        trials = row["best"]["trials"]
        lines.append(f"| {name} | {row['seconds'] / 60:.1f} min | {trials.get('complete', 0)} / "
                     f"{trials.get('pruned', 0)} | {row['best'].get('best_value', float('nan')):.1f} | "
                     f"{row['fresh']['mean']:.1f} | {row['fresh']['iqm']:.1f} | "
                     f"{', '.join(f'{r:.0f}' for r in row['fresh']['returns'])} |")
    lines.append(f"| the preset's defaults (no search) | - | - | - | {baseline['mean']:.1f} | {baseline['iqm']:.1f} | "
                 f"{', '.join(f'{r:.0f}' for r in baseline['returns'])} |")
    (args.out / "search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
