"""Stable-Baselines3's DDPG on LunarLanderContinuous-v3, for a side-by-side with rlexp's preset on the same seeds.

    pip install stable-baselines3        # not an rlexp dependency: this script alone needs it
    python benchmarks/sb3_side_by_side.py --seeds 0 1 2 --jobs 3 --rounds episode
    python benchmarks/sb3_side_by_side.py --rounds step    # today's RL Zoo settings

The hyperparameters are RL Zoo's for this task (gamma 0.98, buffer 200k, 10k random steps, lr 1e-3, 400-300,
Gaussian noise 0.1). `--rounds episode` trains as SB3 did before 2.3, when RL Zoo's published figure was made:
at each episode's end, one update per step collected, batches of 100 (rlexp: algo.train_freq_unit=episode,
algo.gradient_steps=-1, algo.batch_size=100). `--rounds step` is SB3 2.3's: an update every step, batches of 256.
The score is what benchmarks/learning.py reports: the final policy's mean deterministic return over 10 episodes,
with an evaluation every 25k steps. One thread per run; results in <out>/seed<N>.json and a summary line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ENV_ID = "LunarLanderContinuous-v3"
ROUNDS = {
    "episode": {"train_freq": (1, "episode"), "gradient_steps": -1, "batch_size": 100},
    "step": {"train_freq": 1, "gradient_steps": 1, "batch_size": 256},
}


def train(seed: int, rounds: str, steps: int, out: Path) -> dict:
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.noise import NormalActionNoise

    torch.set_num_threads(1)
    env = gym.make(ENV_ID)
    n_actions = env.action_space.shape[0]
    model = DDPG("MlpPolicy", env, gamma=0.98, buffer_size=200_000, learning_starts=10_000, learning_rate=1e-3,
                 action_noise=NormalActionNoise(np.zeros(n_actions), 0.1 * np.ones(n_actions)),
                 policy_kwargs={"net_arch": [400, 300]}, seed=seed, device="cpu", **ROUNDS[rounds])
    eval_env = Monitor(gym.make(ENV_ID))
    evaluations = EvalCallback(eval_env, n_eval_episodes=10, eval_freq=25_000, deterministic=True, verbose=0)
    start = time.perf_counter()
    model.learn(steps, callback=evaluations)
    seconds = time.perf_counter() - start
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True,
                                 return_episode_rewards=True)
    result = {"seed": seed, "rounds": rounds, "steps": steps, "eval_return_mean": float(np.mean(returns)),
              "eval_returns": [float(r) for r in returns],
              "curve": {int(t): float(np.mean(r)) for t, r in zip(evaluations.evaluations_timesteps,
                                                                     evaluations.evaluations_results)},
              "train_time_s": round(seconds, 1), "sps": round(steps / seconds, 1)}
    (out / f"seed{seed}.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", choices=sorted(ROUNDS), default="episode")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/sb3_ddpg_llc"))
    args = parser.parse_args()
    out = args.out / args.rounds
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(train, args.seeds, [args.rounds] * len(args.seeds),
                                [args.steps] * len(args.seeds), [out] * len(args.seeds)))
    means = [r["eval_return_mean"] for r in results]
    print(f"SB3 DDPG {ENV_ID}, {args.steps} steps, rounds={args.rounds}: mean {statistics.mean(means):.1f} over "
          f"seeds {args.seeds}: " + " ".join(f"{m:.1f}" for m in means))


if __name__ == "__main__":
    main()
