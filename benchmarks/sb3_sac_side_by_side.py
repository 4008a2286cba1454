"""SB3's SAC (or sb3-contrib's TQC, `--algo tqc`, or CrossQ, `--algo crossq`) with an rlexp SAC (TQC, CrossQ)
config's settings, trained and scored as benchmarks/learning.py scores rlexp.

    python benchmarks/sb3_sac_side_by_side.py --algo tqc --env Pendulum-v1 --seeds 0 1 2 --sb3-python /path/to/python

    python benchmarks/sb3_sac_side_by_side.py --env CarRacing-v3 --steps 100000 --seeds 0 1 2 \
        --override algo.buffer_size=100000 --sb3-python /path/to/python
    python benchmarks/sb3_sac_side_by_side.py --steps 20000 --seeds 0 1 2 --sb3-python /path/to/python \
        --override env.id=gymnasium_robotics:FetchReachDense-v4 algo.gamma=0.95 ...
    python benchmarks/sb3_sac_side_by_side.py --steps 20000 --seeds 0 1 2 --sb3-python /path/to/python \
        --override env.id=gymnasium_robotics:FetchReach-v4 algo.her=true ...   # SB3's HerReplayBuffer

The env is a config group (`--env`) or any gymnasium id given as an override (`env.id=`, a `module:` prefix
importing the package that registers it, as `rlexp train` takes it; SB3's Python needs that package too).

The config is composed by rlexp (`rlexp train --cfg job algo=sac env=<env> <overrides>`) and handed to SB3's SAC
with the same keys (learning rate, replay size, random steps, batch, tau, gamma, update rounds, entropy
coefficient and target, gSDE) and networks: on images (a rank-3 uint8 Box, CarRacing-v3's 96x96x3) SB3's
CnnPolicy, whose actor and critics each have their own Nature CNN (SB3's default for SAC, as rlexp's), followed by
network.hidden_sizes; on Dict observations (FetchReachDense's observation and goals) its MultiInputPolicy, which
flattens each entry (a Nature CNN for an image entry) and concatenates them, as rlexp's multi-input torso does,
followed by network.hidden_sizes; otherwise its MlpPolicy with network.hidden_sizes. SB3 keeps both observations of a
transition (optimize_memory_usage cannot be used with its time-limit handling); rlexp keeps each image once
(benchmarks/memory.py). The score is the final policy's mean deterministic return over 10 episodes of an env seeded
as rlexp seeds its evaluation env (seed + 10000). One torch thread per run, one run at a time. rlexp's runs of the
same row: `rlexp train algo=sac env=<env> total_steps=<steps> seed=<seed> <overrides>`, one per seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import mean_interval  # noqa: E402
from speed import rlexp_config, sb3_scores  # noqa: E402

#: The reset seeds of the 10 evaluation episodes, in the SB3 run's Python (no rlexp there): episode j from the first
#: reset seed of rlexp's evaluation env j (rlexp/runners/evaluation.py's start_seed; tests/test_evaluation.py checks
#: the two agree).
EVAL_STARTS = """starts = [seed + 10000] + [
    int(np.random.SeedSequence(seed + 10000, spawn_key=(j,)).generate_state(1)[0]) for j in range(1, 10)]
"""

#: One SB3 run of a model built by `{ctor}` (after `{imports}`), scored as benchmarks/learning.py scores rlexp's.
SB3_RUN = r"""
import sys, json
import numpy as np, torch, gymnasium as gym
{imports}
torch.set_num_threads(1)
env_id, steps, seed, kwargs, DEVICE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]), "cpu"
env = gym.make(env_id, **kwargs)
model = {ctor}
model.learn(total_timesteps=steps)
evaluation = gym.make(env_id, **kwargs)
""" + EVAL_STARTS + r"""returns = []
for start in starts:
    obs, _ = evaluation.reset(seed=start)
    done, total = False, 0.0
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = evaluation.step(action)
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
print(json.dumps({{"seed": seed, "return": float(np.mean(returns))}}))
"""


def sac_ctor(cfg: dict, policy: str) -> str:
    """SB3's SAC (sb3-contrib's TQC for algo=tqc: its critics, quantiles and truncation too; its CrossQ for
    algo=crossq: no tau, the policy delay, the critics' width, batch renormalisation, Adam's beta1) with the composed
    config's keys (SB3's names) and networks."""
    a, net = cfg["algo"], cfg["network"]
    if a["actor_lr"] != a["critic_lr"] or a["ent_coef_lr"] != a["actor_lr"]:
        raise SystemExit("SB3's SAC has one learning rate: give algo.actor_lr, critic_lr and ent_coef_lr one value")
    lr = f"lambda progress: {a['actor_lr']} * progress" if a["lr_schedule"] == "linear" else str(a["actor_lr"])
    ent = f"'auto_{a['ent_coef_init']}'" if a["ent_coef"] == "auto" else str(a["ent_coef"])
    target = f"'{a['target_entropy']}'" if a["target_entropy"] == "auto" else str(a["target_entropy"])
    unit = "" if a["train_freq_unit"] == "step" else f", '{a['train_freq_unit']}'"
    if cfg["env"]["num_envs"] != 1 or a["n_step"] != 1:
        raise SystemExit("this script runs SB3's SAC on one env with 1-step targets: env.num_envs=1, algo.n_step=1")
    tqc, crossq = a["name"] == "tqc", a["name"] == "crossq"
    own = f"top_quantiles_to_drop_per_net={a['top_quantiles_to_drop_per_net']}, " if tqc else \
        f"policy_delay={a['policy_delay']}, " if crossq else f"tau={a['tau']}, "
    networks = f"net_arch={net['hidden_sizes']}, log_std_init={a['log_std_init']}"
    if tqc:
        networks += f", n_critics={a['n_critics']}, n_quantiles={a['n_quantiles']}"
    if crossq:   # the critics' own width, batch renormalisation's settings, Adam's beta1
        networks = (f"net_arch=dict(pi={net['hidden_sizes']}, qf={a['critic_hidden_sizes']}), "
                    f"log_std_init={a['log_std_init']}, batch_norm_momentum={a['batch_renorm_momentum']}, "
                    f"renorm_warmup_steps={a['batch_renorm_warmup_steps']}, "
                    f"optimizer_kwargs=dict(betas=({a['adam_beta1']}, 0.999))")
    return (f"{'TQC' if tqc else 'CrossQ' if crossq else 'SAC'}('{policy}', env, learning_rate={lr}, {own}"
            f"buffer_size={min(a['buffer_size'], cfg['total_steps'])}, learning_starts={a['learning_starts']}, "
            f"batch_size={a['batch_size']}, gamma={a['gamma']}, train_freq=({a['train_freq']}{unit}), "
            f"gradient_steps={a['gradient_steps']}, ent_coef={ent}, target_entropy={target}, "
            f"use_sde={a['use_sde']}, sde_sample_freq={a['sde_sample_freq']}, "
            f"policy_kwargs=dict({networks}), {hindsight(a)}device=DEVICE, seed=0)")


def hindsight(algo: dict) -> str:
    """SB3's HerReplayBuffer with algo.her's settings (nothing without algo.her)."""
    if not algo.get("her"):
        return ""
    return (f"replay_buffer_class=HerReplayBuffer, replay_buffer_kwargs=dict(n_sampled_goal="
            f"{algo['her_n_sampled_goal']}, goal_selection_strategy='{algo['her_goal_selection_strategy']}'), ")


def sb3_policy(cfg: dict) -> str:
    """SB3's policy for the env's observations: CnnPolicy on an image, MultiInputPolicy on a Dict, else MlpPolicy."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(cfg["env"]["id"], **cfg["env"]["kwargs"])   # gymnasium imports a `module:` prefix's package
    space = env.observation_space
    env.close()
    if isinstance(space, gym.spaces.Dict):
        return "MultiInputPolicy"
    images = isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8
    return "CnnPolicy" if images else "MlpPolicy"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["sac", "tqc", "crossq"], default="sac")
    parser.add_argument("--env", help="an env config group (conf/env/), e.g. CarRacing-v3; or give "
                        "--override env.id=<id> (a `module:` prefix allowed)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="train for this many steps instead of the config's budget")
    parser.add_argument("--override", nargs="*", default=[], help="rlexp overrides, as given to rlexp's runs")
    parser.add_argument("--sb3-python", required=True)
    args = parser.parse_args()
    cfg = rlexp_config([f"algo={args.algo}", *([f"env={args.env}"] if args.env else []), *args.override,
                        *([f"total_steps={args.steps}"] if args.steps else [])])
    env_id, steps = cfg["env"]["id"], cfg["total_steps"]
    ctor = sac_ctor(cfg, sb3_policy(cfg))
    sb3_class = ctor.split("(")[0]
    imports = f"from {'stable_baselines3' if args.algo == 'sac' else 'sb3_contrib'} import {sb3_class}" + \
        ("\nfrom stable_baselines3 import HerReplayBuffer" if cfg["algo"].get("her") else "")
    scores = sb3_scores(args.sb3_python, f"{args.algo} on {env_id}", steps, args.seeds, lambda seed: [
        SB3_RUN.format(imports=imports, ctor=ctor.replace("seed=0", f"seed={seed}")),
        env_id, str(steps), str(seed),
        json.dumps(cfg["env"]["kwargs"])])
    # As the README's rows give it (scipy: rlexp[plot]); three decimals for small returns (Fetch's).
    low, high = mean_interval(scores)
    print(f"SB3 {args.algo} on {env_id}: mean {statistics.mean(scores):.3f} [{low:.3f}, {high:.3f}] (95% bootstrap), "
          f"per seed {' '.join(f'{s:.3f}' for s in scores)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
