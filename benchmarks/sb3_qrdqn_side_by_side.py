"""sb3-contrib's QR-DQN with an rlexp QR-DQN config's settings, trained and scored as benchmarks/learning.py scores
rlexp, on the same seeds.

    pip install sb3-contrib         # not an rlexp dependency: this script alone needs it (in --sb3-python)
    python benchmarks/sb3_qrdqn_side_by_side.py --env CartPole-v1 --seeds 0 1 2 --sb3-python /path/to/python
    python benchmarks/sb3_qrdqn_side_by_side.py --env LunarLander-v3 --sb3-python /path/to/python

The config is composed by rlexp (`rlexp train --cfg job algo=qrdqn env=<env> <overrides>`: RL Zoo's presets,
conf/tuned/qrdqn_<env>.yaml) and handed to sb3-contrib's QRDQN with the same keys: learning rate (and its linear
schedule), replay size, random steps, batch, gamma, update rounds, hard target copies, epsilon's schedule, the
number of quantiles, the network, gradient clipping (null: none, QRDQN's default) and Adam's epsilon (given as
QRDQN's optimizer_kwargs, which it otherwise sets to 0.01 / batch_size). SB3 counts the target interval in env
steps, rlexp in updates: a config that copies the target once per round of updates (algo.target_update_interval
equal to the round's updates) becomes SB3's interval of train_freq steps, which copies it at the same point; other
intervals have no exact SB3 equivalent and are refused. The score is the final greedy policy's mean return over
10 episodes of an env seeded as rlexp seeds its evaluation env (seed + 10000). One torch thread per run, one run
at a time. rlexp's runs of the same row: `python benchmarks/learning.py --only qrdqn_<env> --seeds ...`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import mean_interval  # noqa: E402
from sb3_sac_side_by_side import SB3_RUN  # noqa: E402
from speed import dqn_family_kwargs, rlexp_config, sb3_scores  # noqa: E402


def qrdqn_ctor(cfg: dict) -> str:
    """sb3-contrib's QRDQN with the composed config's keys (SB3's names) and network."""
    a = cfg["algo"]
    switches = [key for key in ("double", "dueling", "prioritized", "noisy") if a[key]]
    if switches or a["n_step"] != 1 or cfg["env"]["num_envs"] != 1 or a["train_freq_unit"] != "step":
        raise SystemExit(f"sb3-contrib's QR-DQN has none of {', '.join(switches) or 'these'}: run it on one env "
                         f"with 1-step targets, step rounds and DQN's other switches off")
    round_updates = a["train_freq"] if a["gradient_steps"] == -1 else a["gradient_steps"]
    if a["target_update_interval"] != round_updates or a["tau"] != 1.0:
        raise SystemExit(f"algo.target_update_interval={a['target_update_interval']} updates has no exact SB3 "
                         f"interval (env steps); copy the target once per round: algo.target_update_interval="
                         f"{round_updates}, algo.tau=1.0")
    # (once per round: at every train_freq-th step, before the round's updates, as rlexp copies after the last)
    return (f"QRDQN('MlpPolicy', env, {dqn_family_kwargs(cfg, a['train_freq'])}, "
            f"policy_kwargs=dict(net_arch={cfg['network']['hidden_sizes']}, n_quantiles={a['quantiles']}, "
            f"optimizer_class=torch.optim.Adam, optimizer_kwargs=dict(eps={a['adam_eps']})), device=DEVICE, seed=0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="an env config group (conf/env/)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="train for this many steps instead of the config's budget")
    parser.add_argument("--override", nargs="*", default=[], help="rlexp overrides, as given to rlexp's runs")
    parser.add_argument("--sb3-python", required=True)
    args = parser.parse_args()
    cfg = rlexp_config(["algo=qrdqn", f"env={args.env}", *args.override,
                        *([f"total_steps={args.steps}"] if args.steps else [])])
    env_id, steps = cfg["env"]["id"], cfg["total_steps"]
    ctor = qrdqn_ctor(cfg)
    scores = sb3_scores(args.sb3_python, f"qrdqn on {env_id}", steps, args.seeds, lambda seed: [
        SB3_RUN.format(imports="from sb3_contrib import QRDQN", ctor=ctor.replace("seed=0", f"seed={seed}")),
        env_id, str(steps), str(seed), json.dumps(cfg["env"]["kwargs"])])
    low, high = mean_interval(scores)
    print(f"SB3 qrdqn on {env_id}: mean {statistics.mean(scores):.1f} [{low:.1f}, {high:.1f}] (95% bootstrap), "
          f"per seed {' '.join(f'{s:.1f}' for s in scores)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
