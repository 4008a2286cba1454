"""SB3's PPO or A2C with an rlexp preset's settings, trained and scored as benchmarks/learning.py scores rlexp.

    python benchmarks/sb3_on_policy_side_by_side.py a2c_LunarLander-v3 --seeds 0 1 2 --sb3-python /path/to/python

The preset is composed by rlexp (`rlexp train --cfg job algo=... env=...`) and handed to SB3's constructor with the
same keys, networks, activation and initialisation (benchmarks/speed.py's mapping), its envs in a DummyVecEnv made
without a render mode. The score is the final policy's mean deterministic return over 10 episodes of an env seeded
as rlexp seeds its evaluation env (seed + 10000), so both libraries start their evaluation episodes from the same
states. One torch thread per run, one run at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import on_policy_sb3_ctor, rlexp_config  # noqa: E402

SB3_RUN = r"""
import sys, json
import numpy as np, torch, gymnasium as gym
from torch import nn
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
torch.set_num_threads(1)
env_id, steps, seed, n_envs, DEVICE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), "cpu"
env = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs={{"render_mode": None}})
model = {ctor}
model.learn(total_timesteps=steps)
evaluation = gym.make(env_id)
obs, _ = evaluation.reset(seed=seed + 10000)
returns = []
for _ in range(10):
    done, total = False, 0.0
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = evaluation.step(action)
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
    obs, _ = evaluation.reset()
print(json.dumps({{"seed": seed, "return": float(np.mean(returns))}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="an on-policy preset, e.g. a2c_LunarLander-v3")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--sb3-python", required=True)
    args = parser.parse_args()
    algo, env_id = args.target.split("_", 1)
    cfg = rlexp_config([f"algo={algo}", f"env={env_id}"])
    scores = []
    for seed in args.seeds:
        ctor = on_policy_sb3_ctor(cfg).replace("seed=0", f"seed={seed}")
        out = subprocess.run([args.sb3_python, "-c", SB3_RUN.format(ctor=ctor), env_id, str(cfg["total_steps"]),
                              str(seed), str(cfg["env"]["num_envs"])], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        scores.append(result["return"])
        print(f"SB3 {args.target} seed {seed}: {result['return']:.1f}", flush=True)
    print(f"SB3 {args.target}, {cfg['total_steps']} steps, seeds {' '.join(map(str, args.seeds))}: mean "
          f"{statistics.mean(scores):.1f} ({' '.join(f'{s:.1f}' for s in scores)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
