"""Time to solve: env steps and wall time until a run is solved, rlexp against SB3 side by side, the same rule.

    python benchmarks/time_to_solve.py --sb3-python /path/to/python/with/stable-baselines3 --out DIR
    python benchmarks/time_to_solve.py --only dqn_CartPole-v1 dqn_CartPole-v1_zoo --seeds 0 1 2 --sb3-python ...
    python benchmarks/time_to_solve.py --cached --out DIR --sb3-python ...    # the table of what is finished

The rule, the same on both sides: every `eval_every` env steps, 10 deterministic episodes on envs of their own
(seeded from seed + 10000: rlexp's 10 envs stepping together, SB3's EvalCallback one env playing them one after
another, each library's own evaluation as its users run it); the run is solved, and stops, at the first
evaluation whose mean return reaches the bar (rlexp: `stop.eval_return=<bar> eval.every=<eval_every>`; SB3:
`EvalCallback(eval_freq=eval_every / n_envs,
n_eval_episodes=10, callback_on_new_best=StopTrainingOnRewardThreshold(<bar>))`). Each library trains with its
own preset: rlexp's (conf/tuned/), SB3 with RL Zoo's hyperparams/*.yml for the same env, at most the preset's
budget; the `_zoo` tasks train rlexp with RL Zoo's hyperparameters (the libraries compared at the same settings,
SB3's runs shared with the plain task). A run that is not solved within its budget counts as unsolved. One torch
thread per run; the runs of a seed follow each other (rlexp's preset, rlexp at RL Zoo's settings, SB3), so the
machine's load falls on all alike.

Time is what a user waits: the whole process, from its start to its exit (Python's start, the imports, building
the envs and the model, training, every evaluation, writing the outputs), measured around the subprocess; the
training loop's own time (rlexp: results.json's train_time_s; SB3: model.learn) is kept beside it. The table gives,
per task and library, the runs solved, the median env steps and whole-process seconds over the solved runs, the
ratio of rlexp's median seconds to SB3's, and each seed's steps and seconds; the per-run figures go to
<out>/time_to_solve.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Task:
    algo: str
    env: str
    bar: float
    eval_every: int
    budget: int
    sb3_ctor: str      # RL Zoo's preset (hyperparams/<algo>.yml at 22e3ff2, April 2026) as SB3's constructor
    # "zoo": rlexp with RL Zoo's hyperparameters instead of its own preset (the same settings on both sides: the
    # libraries compared, not the presets); SB3's runs are shared with the plain task.
    variant: str = ""
    rlexp_overrides: tuple[str, ...] = ()
    sb3_envs: int = 1  # RL Zoo's n_envs (SB3's EvalCallback counts its eval_freq in steps of all of them)

    @property
    def task(self) -> str:
        return f"{self.algo}_{self.env}"

    @property
    def name(self) -> str:
        return self.task + (f"_{self.variant}" if self.variant else "")


ZOO_CARTPOLE = ("algo.lr=2.3e-3", "algo.lr_schedule=constant", "algo.batch_size=64", "algo.buffer_size=100000",
                "algo.learning_starts=1000", "algo.train_freq=256", "algo.gradient_steps=128",
                # SB3 counts target_update_interval (10) in env steps and copies the target while it collects, so
                # with rounds of 128 updates every 256 steps its target is the network as each round starts: rlexp
                # counts in updates, so that is one copy per round, 128
                "algo.target_update_interval=128", "algo.tau=1.0", "algo.exploration_fraction=0.16",
                "algo.exploration_final_eps=0.04", "network.hidden_sizes=[256,256]")
ZOO_LUNAR = ("algo.lr=6.3e-4", "algo.lr_schedule=constant", "algo.batch_size=128", "algo.buffer_size=50000",
             "algo.learning_starts=0", "algo.train_freq=4", "algo.gradient_steps=-1",
             "algo.target_update_interval=250", "algo.tau=1.0", "algo.exploration_fraction=0.12",
             "algo.exploration_final_eps=0.1", "algo.double=false", "algo.dueling=false", "algo.n_step=1",
             "network.hidden_sizes=[256,256]")
ZOO_PENDULUM = ("algo.learning_starts=10000", "network.hidden_sizes=[400,300]", "algo.batch_size=256")
# (rlexp's SAC, PPO and A2C presets of these tasks are RL Zoo's today: their `_zoo` tasks pin RL Zoo's keys, so they
# stay RL Zoo's settings if a preset changes)
ZOO_SAC_PENDULUM = ("algo.actor_lr=1e-3", "algo.critic_lr=1e-3", "algo.ent_coef_lr=1e-3", "algo.learning_starts=100",
                    "algo.batch_size=256", "algo.buffer_size=1000000", "network.hidden_sizes=[256,256]")
ZOO_PPO_CARTPOLE = ("env.num_envs=8", "algo.n_steps=32", "algo.batch_size=256", "algo.gae_lambda=0.8",
                    "algo.gamma=0.98", "algo.n_epochs=20", "algo.ent_coef=0.0", "algo.lr=1e-3",
                    "algo.lr_schedule=linear", "algo.clip_range=0.2", "algo.clip_range_schedule=linear",
                    "network.hidden_sizes=[64,64]", "network.activation=tanh")
ZOO_A2C_CARTPOLE = ("env.num_envs=8", "algo.ent_coef=0.0", "algo.n_steps=5", "algo.lr=7e-4", "algo.gamma=0.99",
                    "network.hidden_sizes=[64,64]", "network.activation=tanh")

TASKS = [
    Task("dqn", "CartPole-v1", 475.0, 1000, 50_000,
         "DQN('MlpPolicy', env, learning_rate=2.3e-3, batch_size=64, buffer_size=100000, learning_starts=1000, "
         "gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16, "
         "exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device='cpu')"),
    Task("dqn", "LunarLander-v3", 200.0, 5000, 200_000,
         "DQN('MlpPolicy', env, learning_rate=6.3e-4, batch_size=128, buffer_size=50000, learning_starts=0, "
         "gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12, "
         "exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device='cpu')"),
    Task("td3", "Pendulum-v1", -200.0, 1000, 20_000,
         "TD3('MlpPolicy', env, gamma=0.98, buffer_size=200000, learning_starts=10000, "
         "action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), gradient_steps=1, train_freq=1, "
         "learning_rate=1e-3, policy_kwargs=dict(net_arch=[400, 300]), seed=seed, device='cpu')"),
    Task("sac", "Pendulum-v1", -200.0, 1000, 20_000,
         "SAC('MlpPolicy', env, learning_rate=1e-3, seed=seed, device='cpu')"),
    Task("ppo", "CartPole-v1", 475.0, 5000, 100_000,
         "PPO('MlpPolicy', env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, "
         "learning_rate=lambda f: f * 1e-3, clip_range=lambda f: f * 0.2, seed=seed, device='cpu')", sb3_envs=8),
    Task("a2c", "CartPole-v1", 475.0, 10_000, 500_000,
         "A2C('MlpPolicy', env, ent_coef=0.0, seed=seed, device='cpu')", sb3_envs=8),
]
TASKS += [Task(t.algo, t.env, t.bar, t.eval_every, t.budget, t.sb3_ctor, "zoo", overrides, t.sb3_envs)
          for t, overrides in zip(TASKS[:6], (ZOO_CARTPOLE, ZOO_LUNAR, ZOO_PENDULUM, ZOO_SAC_PENDULUM,
                                              ZOO_PPO_CARTPOLE, ZOO_A2C_CARTPOLE))]


SB3_RUN = r"""
import json, sys, time
import numpy as np, torch, gymnasium as gym
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
torch.set_num_threads(1)
env_id, seed, budget, bar, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
n_envs = int(sys.argv[6])
env = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs={{"render_mode": None}})
eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10000, env_kwargs={{"render_mode": None}})
stop = StopTrainingOnRewardThreshold(reward_threshold=bar, verbose=0)
# (eval_freq counts the callback's calls, one per step of all n_envs envs)
evaluation = EvalCallback(eval_env, callback_on_new_best=stop, eval_freq=max(every // n_envs, 1),
                          n_eval_episodes=10, deterministic=True, verbose=0)
model = {ctor}
start = time.perf_counter()
model.learn(total_timesteps=budget, callback=evaluation)
seconds = time.perf_counter() - start
solved = evaluation.best_mean_reward >= bar
print(json.dumps({{"solved": bool(solved), "steps": int(model.num_timesteps), "seconds": seconds,
                  "best_eval_return": float(evaluation.best_mean_reward)}}))
"""


def run_rlexp(task: Task, seed: int, out: Path) -> dict:
    """rlexp's run of `seed` (read back when its figures are on disk)."""
    cached = out / task.name / f"rlexp_seed{seed}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    run_dir = out / task.name / f"rlexp_seed{seed}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)   # a killed run starts over: its timing would not be one run's
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rlexp", "train", f"algo={task.algo}", f"env={task.env}",
                    f"seed={seed}", f"total_steps={task.budget}", f"stop.eval_return={task.bar}",
                    f"eval.every={task.eval_every}", "eval.episodes=10", "torch_threads=1",
                    "log.progress=none", "checkpoint.every=0", f"hydra.run.dir={run_dir}", *task.rlexp_overrides],
                   check=True, capture_output=True)
    process = time.perf_counter() - started
    r = json.loads((run_dir / "results.json").read_text())
    result = {"solved": r["stopped_by"] == "solved", "steps": r["solved_at_step"] or r["total_steps"],
              "process_s": process, "loop_s": r["train_time_s"], "best_eval_return": r["best_eval_return"]}
    cached.write_text(json.dumps(result))
    return result


def run_sb3(task: Task, seed: int, out: Path, python: str) -> dict:
    """SB3's run of `seed` with RL Zoo's preset (shared by a task and its `_zoo` task)."""
    cached = out / task.task / f"sb3_seed{seed}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    started = time.perf_counter()
    proc = subprocess.run([python, "-c", SB3_RUN.format(ctor=task.sb3_ctor), task.env, str(seed), str(task.budget),
                           str(task.bar), str(task.eval_every), str(task.sb3_envs)], capture_output=True, text=True)
    process = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"SB3 {task.name} seed {seed} failed: {proc.stderr.strip().splitlines()[-1:]}")
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"solved": printed["solved"], "steps": printed["steps"], "process_s": process,
              "loop_s": printed["seconds"], "best_eval_return": printed["best_eval_return"]}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result))
    return result


def finished(task: Task, seed: int, out: Path) -> bool:
    """Whether both libraries' runs of `seed` are on disk."""
    return ((out / task.name / f"rlexp_seed{seed}.json").is_file()
            and (out / task.task / f"sb3_seed{seed}.json").is_file())


def median_seconds(runs: list[dict]) -> float | None:
    solved = [r["process_s"] for r in runs if r["solved"]]
    return statistics.median(solved) if solved else None


def summary(runs: list[dict]) -> tuple[str, str, str, str]:
    """Runs solved, median steps and whole-process seconds over the solved ones, and each seed's steps / seconds
    (an unsolved one's marked)."""
    solved = [r for r in runs if r["solved"]]
    per_seed = " ".join(f"{round(r['steps'] / 1000, 1):g}k/{r['process_s']:.0f}s"   # (an on-policy run's 15,008: 15k)
                        + ("" if r["solved"] else "(unsolved)") for r in runs)
    if not solved:
        return f"0/{len(runs)}", "-", "-", per_seed
    return (f"{len(solved)}/{len(runs)}", f"{statistics.median(r['steps'] for r in solved):,.0f}",
            f"{median_seconds(runs):.1f}", per_seed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="task names, e.g. dqn_CartPole-v1 dqn_CartPole-v1_zoo")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(range(10)))
    parser.add_argument("--sb3-python", required=True, help="a Python with stable-baselines3 installed")
    parser.add_argument("--out", type=Path, default=Path("outputs/time_to_solve"))
    parser.add_argument("--cached", action="store_true",
                        help="run nothing: the table of the seeds both libraries have finished in --out")
    args = parser.parse_args()
    tasks = [t for t in TASKS if not args.only or t.name in args.only]
    if args.only and len(tasks) != len(args.only):
        parser.error(f"unknown task in --only; tasks: {', '.join(t.name for t in TASKS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows, table = [], []
    for task in tasks:
        (args.out / task.name).mkdir(parents=True, exist_ok=True)
        per_library: dict[str, list[dict]] = {"rlexp": [], "SB3": []}
        for seed in args.seeds:
            if args.cached and not finished(task, seed, args.out):
                continue
            per_library["rlexp"].append({**run_rlexp(task, seed, args.out), "seed": seed})
            per_library["SB3"].append({**run_sb3(task, seed, args.out, args.sb3_python), "seed": seed})
            print(f"{task.name} seed {seed}: rlexp {per_library['rlexp'][-1]}, SB3 {per_library['SB3'][-1]}",
                  flush=True)
        rlexp_s, sb3_s = median_seconds(per_library["rlexp"]), median_seconds(per_library["SB3"])
        ratio = f"{rlexp_s / sb3_s:.2f}x" if rlexp_s and sb3_s else "-"
        for library, runs in per_library.items():
            rows += [{"task": task.name, "library": library, **r} for r in runs]
            label = library + (" (RL Zoo's hyperparameters)" if library == "rlexp" and task.variant else
                               " (its preset)" if library == "rlexp" else " (RL Zoo's preset)")
            table.append((task.task, f"{task.bar:g}", label, *summary(runs)[:3],
                          ratio if library == "rlexp" else "", summary(runs)[3]))
    with (args.out / "time_to_solve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["task", "library", "seed", "solved", "steps", "process_s", "loop_s",
                                               "best_eval_return"])
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| task | bar | library | solved | median env steps to solve | median seconds to solve (whole "
             "process) | rlexp / SB3 | per seed: steps / seconds |", "|---|---|---|---|---|---|---|---|",
             *("| " + " | ".join(row) + " |" for row in table)]
    (args.out / "time_to_solve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
