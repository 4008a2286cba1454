"""Speed benchmark: environment steps per second of rlexp against Stable-Baselines3, same settings, side by side.

    python benchmarks/speed.py                                  # rlexp only
    python benchmarks/speed.py --sb3-python /path/to/python     # and SB3, from a Python that has it installed
    python benchmarks/speed.py --only ppo_CartPole-v1 a2c_LunarLander-v3 --sb3-python /path/to/python

Both use one torch thread, the same networks, batch sizes, learning rates and update schedules, on the CPU
(or `--device cuda`). rlexp's figure is results.json's `sps` (the training loop; the final evaluation is not timed);
SB3's is total steps over the time of `model.learn`. Absolute numbers are noisy on shared machines: read the ratio.
With --repeat N each side runs N times, interleaved, and the table shows the medians. The off-policy rows take
--steps steps after 1000 random ones; the on-policy rows (PPO, A2C: the tuned presets,
their number of envs included, SB3's envs in a DummyVecEnv) take the rollouts that cover --on-policy-steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# name: (rlexp overrides, SB3 constructor source)
CASES = {
    "td3_Pendulum-v1": (
        ["algo=td3", "env=Pendulum-v1"],
        "TD3('MlpPolicy', env, learning_rate=1e-3, buffer_size=200000, learning_starts=1000, batch_size=256, "
        "tau=0.005, gamma=0.98, train_freq=1, gradient_steps=1, policy_delay=2, target_policy_noise=0.2, "
        "target_noise_clip=0.5, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), "
        "policy_kwargs=dict(net_arch=[256, 256]), device=DEVICE, seed=0)",
    ),
    "ddpg_Pendulum-v1": (
        ["algo=ddpg", "env=Pendulum-v1"],
        "DDPG('MlpPolicy', env, learning_rate=1e-3, buffer_size=200000, learning_starts=1000, batch_size=256, "
        "tau=0.005, gamma=0.98, train_freq=1, gradient_steps=1, "
        "action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), "
        "policy_kwargs=dict(net_arch=[256, 256]), device=DEVICE, seed=0)",
    ),
    "sac_Pendulum-v1": (
        ["algo=sac", "env=Pendulum-v1"],
        "SAC('MlpPolicy', env, learning_rate=1e-3, buffer_size=1000000, learning_starts=1000, batch_size=256, "
        "tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef='auto', "
        "policy_kwargs=dict(net_arch=[256, 256]), device=DEVICE, seed=0)",
    ),
    "dqn_CartPole-v1": (
        ["algo=dqn", "env=CartPole-v1"],
        None,  # filled from the composed rlexp config, so both run the preset's schedule
    ),
    # On-policy: SB3's constructor is made from the composed preset (on_policy_sb3_ctor).
    "ppo_CartPole-v1": (["algo=ppo", "env=CartPole-v1"], None),
    "ppo_LunarLander-v3": (["algo=ppo", "env=LunarLander-v3"], None),
    "a2c_CartPole-v1": (["algo=a2c", "env=CartPole-v1"], None),
    "a2c_LunarLander-v3": (["algo=a2c", "env=LunarLander-v3"], None),
}
ON_POLICY = ("ppo", "a2c")

SB3_SCRIPT = """
import sys, time, json
import numpy as np, torch, gymnasium as gym
from torch import nn
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
torch.set_num_threads(1)
DEVICE = sys.argv[3]
N_ENVS = int(sys.argv[4])
# make_vec_env makes its envs with render_mode="rgb_array" unless told otherwise, and LunarLander then simulates its
# decorative engine particles (about 7x the Box2D time per step): make them as rlexp does, without a render mode.
env = gym.make(sys.argv[1]) if N_ENVS == 0 else make_vec_env(sys.argv[1], n_envs=N_ENVS, seed=0,
                                                             env_kwargs={{"render_mode": None}})
model = {ctor}
steps = int(sys.argv[2])
start = time.perf_counter()
model.learn(total_timesteps=steps)
print(json.dumps({{"sps": steps / (time.perf_counter() - start)}}))
"""


def rlexp_config(overrides: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "rlexp", "train", "--cfg", "job", "--resolve", *overrides],
                         capture_output=True, text=True, check=True).stdout
    import yaml

    return yaml.safe_load(out)


def dqn_sb3_ctor(cfg: dict) -> str:
    a = cfg["algo"]
    # SB3 counts target_update_interval in env steps; rlexp counts it in updates. Convert.
    updates_per_step = a["gradient_steps"] / a["train_freq"]
    target_steps = max(int(round(a["target_update_interval"] / updates_per_step)), 1)
    return f"DQN('MlpPolicy', env, {dqn_family_kwargs(cfg, target_steps)}, " \
           f"policy_kwargs=dict(net_arch={cfg['network']['hidden_sizes']}), device=DEVICE, seed=0)"


def dqn_family_kwargs(cfg: dict, target_steps: int) -> str:
    """The keys SB3's DQN and sb3-contrib's QRDQN share, from an rlexp config (`target_steps`: the target
    interval in env steps)."""
    a = cfg["algo"]
    lr = f"lambda progress: {a['lr']} * progress" if a["lr_schedule"] == "linear" else str(a["lr"])
    return (f"learning_rate={lr}, buffer_size={a['buffer_size']}, learning_starts={a['learning_starts']}, "
            f"batch_size={a['batch_size']}, tau={a['tau']}, gamma={a['gamma']}, train_freq={a['train_freq']}, "
            f"gradient_steps={a['gradient_steps']}, target_update_interval={target_steps}, "
            f"exploration_fraction={a['exploration_fraction']}, "
            f"exploration_initial_eps={a['exploration_initial_eps']}, "
            f"exploration_final_eps={a['exploration_final_eps']}, max_grad_norm={a['max_grad_norm']}")


def on_policy_sb3_ctor(cfg: dict) -> str:
    """SB3's PPO or A2C with the composed preset's keys (SB3's names), its networks and its activation."""
    a, net = cfg["algo"], cfg["network"]
    lr = f"lambda progress: {a['lr']} * progress" if a["lr_schedule"] == "linear" else str(a["lr"])
    policy = (f"policy_kwargs=dict(net_arch=dict(pi={net['hidden_sizes']}, vf={net['hidden_sizes']}), "
              f"activation_fn=nn.{'Tanh' if net['activation'] == 'tanh' else 'ReLU'}, "
              f"ortho_init={a['ortho_init']}, log_std_init={a['log_std_init']})")
    common = (f"learning_rate={lr}, n_steps={a['n_steps']}, gamma={a['gamma']}, gae_lambda={a['gae_lambda']}, "
              f"ent_coef={a['ent_coef']}, vf_coef={a['vf_coef']}, max_grad_norm={a['max_grad_norm']}, "
              f"normalize_advantage={a['normalize_advantage']}, use_sde={a['use_sde']}, "
              f"sde_sample_freq={a['sde_sample_freq']}, {policy}, device=DEVICE, seed=0")
    if a["name"] == "a2c":
        return f"A2C('MlpPolicy', env, {common}, use_rms_prop={a['optimizer'] == 'rmsprop'}, " \
               f"rms_prop_eps={a['rms_prop_eps']})"
    clip = f"lambda progress: {a['clip_range']} * progress" if a["clip_range_schedule"] == "linear" \
        else str(a["clip_range"])
    return (f"PPO('MlpPolicy', env, {common}, batch_size={a['batch_size']}, n_epochs={a['n_epochs']}, "
            f"clip_range={clip}, clip_range_vf={a['clip_range_vf']}, target_kl={a['target_kl']})")


def sb3_scores(sb3_python: str, label: str, steps: int, seeds: list[int],
               run_of: Callable[[int], list[str]]) -> list[float]:
    """SB3 trained once per seed, each in its own process (`sb3_python -c <script> <arguments>`, `run_of(seed)`
    giving the script and its arguments), the final return read from the JSON line it prints last; each seed's
    score printed as it comes, then their mean. A failed run ends the benchmark with its last line."""
    scores = []
    for seed in seeds:
        out = subprocess.run([sb3_python, "-c", *run_of(seed)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"SB3 failed: {out.stderr.strip().splitlines()[-1]}")
        scores.append(json.loads(out.stdout.strip().splitlines()[-1])["return"])
        print(f"SB3 {label} seed {seed}: {scores[-1]:.1f}", flush=True)
    print(f"SB3 {label}, {steps} steps, seeds {' '.join(map(str, seeds))}: mean {statistics.mean(scores):.1f} "
          f"({' '.join(f'{s:.1f}' for s in scores)})")
    return scores


def rlexp_sps(common: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "rlexp", "train", *common, "torch_threads=1", "eval.every=0",
                        "eval.episodes=1", "checkpoint.every=0", "log.progress=none", f"hydra.run.dir={tmp}"],
                       check=True, capture_output=True)
        return json.loads((Path(tmp) / "results.json").read_text())["sps"]


def sb3_sps(args: argparse.Namespace, overrides: list[str], sb3_ctor: str | None, common: list[str], budget: int,
            on_policy: bool) -> float:
    cfg = rlexp_config(common)
    ctor = sb3_ctor or (on_policy_sb3_ctor(cfg) if on_policy else dqn_sb3_ctor(cfg))
    env_id = overrides[1].split("=", 1)[1]
    out = subprocess.run([args.sb3_python, "-c", SB3_SCRIPT.format(ctor=ctor), env_id, str(budget), args.device,
                          str(cfg["env"]["num_envs"] if on_policy else 0)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["sps"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--on-policy-steps", type=int, default=50000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sb3-python", help="a Python interpreter with stable-baselines3 installed")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, interleaved; the table shows medians")
    args = parser.parse_args()

    rows = []
    for name, (overrides, sb3_ctor) in CASES.items():
        if args.only and name not in args.only:
            continue
        on_policy = overrides[0].split("=", 1)[1] in ON_POLICY
        budget = args.on_policy_steps if on_policy else args.steps
        common = [*overrides, f"total_steps={budget}", f"device={args.device}",
                  *([] if on_policy else ["algo.learning_starts=1000"])]
        ours_runs, theirs_runs = [], []
        for _ in range(args.repeat):   # interleaved: rlexp, SB3, rlexp, SB3, ...
            ours_runs.append(rlexp_sps(common))
            if args.sb3_python:
                theirs_runs.append(sb3_sps(args, overrides, sb3_ctor, common, budget, on_policy))
        ours = statistics.median(ours_runs)
        theirs = statistics.median(theirs_runs) if theirs_runs else None
        rows.append((name, ours, theirs))
        print(f"{name}: rlexp {' '.join(f'{x:.0f}' for x in ours_runs)} SPS" +
              (f", SB3 {' '.join(f'{x:.0f}' for x in theirs_runs)} SPS, ratio of medians {ours / theirs:.2f}x"
               if theirs else ""), flush=True)

    print(f"\n| task ({args.steps} steps after 1000 random ones, or {args.on_policy_steps} on-policy; {args.device}, "
          f"1 thread; median of {args.repeat}) | rlexp SPS | SB3 SPS | rlexp / SB3 |")
    print("|---|---|---|---|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f}x |" if theirs else
              f"| {name} | {ours:.0f} | - | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
