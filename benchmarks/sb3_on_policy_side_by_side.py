"""SB3's PPO or A2C with an rlexp preset's settings, trained and scored as benchmarks/learning.py scores rlexp.

    python benchmarks/sb3_on_policy_side_by_side.py a2c_LunarLander-v3 --seeds 0 1 2 --sb3-python /path/to/python

The preset is composed by rlexp (`rlexp train --cfg job algo=... env=...`) and handed to SB3's constructor with the
same keys, networks, activation and initialisation (benchmarks/speed.py's mapping), its envs in a DummyVecEnv made
without a render mode. The score is the final policy's mean return over 10 episodes of an env seeded as rlexp seeds
its evaluation env (seed + 10000), so both libraries start their evaluation episodes from the same states; the
policy deterministic, or stochastic where the preset's eval.deterministic is false (MiniGrid, Atari: as RL Zoo
scores them). One torch thread per run, one run at a time.

Atari (`ppo_atari` or `a2c_atari` with `--env-id`, e.g. `--env-id ALE/Pong-v5 --steps 2000000`): rlexp's Atari preset
(`env=atari`, `conf/tuned/<algo>_atari.yaml`) and SB3's CnnPolicy on SB3's `AtariWrapper` (no-op starts, frame skip
4, 84x84, a lost life terminal for training, rewards clipped; it also presses FIRE at reset, which rlexp's
preprocessing does not) with 4 stacked frames, the game made as rlexp makes it (frameskip 1, no sticky actions);
scored over 10 whole games (no life loss, raw score), greedy, as rlexp scores.

A preset with `env.wrappers` (e.g. `ppo_CarRacing-v3`, `ppo_MiniGrid-DoorKey-5x5-v0`: `algo_env` names the env
config group, `conf/env/<env>.yaml`) gets the same wrappers around each of SB3's envs and its evaluation env (list
arguments as tuples: YAML has none), `env.normalize` becomes a VecNormalize (the evaluation reads observations
through its frozen statistics, as rlexp's does), and images after the wrappers (a rank-3 uint8 Box) SB3's CnnPolicy
with the heads on the CNN's 512 features (`cnn_ctor`), as rlexp's image torso.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sb3_sac_side_by_side import EVAL_STARTS  # noqa: E402
from speed import on_policy_sb3_ctor, rlexp_config, sb3_scores  # noqa: E402

SB3_RUN = r"""
import sys, json
import numpy as np, torch, gymnasium as gym
from torch import nn
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
torch.set_num_threads(1)
env_id, steps, seed, n_envs, DEVICE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), "cpu"
wrappers, normalize, gamma = json.loads(sys.argv[5]), json.loads(sys.argv[6]), float(sys.argv[7])
kwargs = json.loads(sys.argv[8])   # rlexp's env.kwargs
deterministic = json.loads(sys.argv[9])   # rlexp's eval.deterministic


def wrap(env):   # rlexp's env.wrappers, in order (the first innermost)
    import importlib
    for spec in wrappers:
        module, _, name = spec["_target_"].rpartition(".")
        kwargs = {{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "_target_"}}
        env = getattr(importlib.import_module(module), name)(env, **kwargs)
    return env


env = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs={{"render_mode": None, **kwargs}},
                   wrapper_class=wrap)
if normalize["obs"] or normalize["reward"]:
    env = VecNormalize(env, norm_obs=normalize["obs"], norm_reward=normalize["reward"], gamma=gamma,
                       clip_obs=normalize["clip_obs"], clip_reward=normalize["clip_reward"])
model = {ctor}
model.learn(total_timesteps=steps)
statistics = model.get_vec_normalize_env()
evaluation = wrap(gym.make(env_id, **kwargs))
""" + EVAL_STARTS + r"""returns = []
for start in starts:
    obs, _ = evaluation.reset(seed=start)
    done, total = False, 0.0
    while not done:
        seen = statistics.normalize_obs(obs) if statistics is not None and normalize["obs"] else obs
        action, _ = model.predict(seen, deterministic=deterministic)
        obs, reward, terminated, truncated, _ = evaluation.step(action)
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
print(json.dumps({{"seed": seed, "return": float(np.mean(returns))}}))
"""


SB3_ATARI_RUN = r"""
import sys, json
import numpy as np, torch, gymnasium as gym, ale_py
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack
gym.register_envs(ale_py)
torch.set_num_threads(1)
env_id, steps, seed, n_envs, DEVICE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), "cpu"
deterministic = json.loads(sys.argv[9])   # rlexp's eval.deterministic
GAME = dict(frameskip=1, repeat_action_probability=0.0, full_action_space=False)   # rlexp's env=atari kwargs
env = VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=GAME), n_stack=4)
model = {ctor}
model.learn(total_timesteps=steps)
whole_games = dict(terminal_on_life_loss=False, clip_reward=False)
evaluation = VecFrameStack(make_atari_env(env_id, n_envs=1, seed=seed + 10000, env_kwargs=GAME,
                                          wrapper_kwargs=whole_games), n_stack=4)
""" + EVAL_STARTS + r"""evaluation.seed(starts[0])
obs = evaluation.reset()
returns, total = [], 0.0
while len(returns) < 10:
    action, _ = model.predict(obs, deterministic=deterministic)
    obs, reward, done, _ = evaluation.step(action)
    total += float(reward[0])
    if done[0]:
        returns.append(total)
        total = 0.0
        if len(returns) < len(starts):
            evaluation.seed(starts[len(returns)])
            obs = evaluation.reset()
print(json.dumps({{"seed": seed, "return": float(np.mean(returns))}}))
"""


def cnn_ctor(cfg: dict) -> str:
    """`on_policy_sb3_ctor`'s PPO or A2C with SB3's CnnPolicy: the Nature CNN shared by the heads, no MLP after it
    (rlexp's actor-critic on frames), its orthogonal initialisation and initial log std as the preset says."""
    ctor = on_policy_sb3_ctor(cfg).replace("'MlpPolicy'", "'CnnPolicy'")
    start, end = ctor.index("policy_kwargs=dict("), ctor.index(", device=DEVICE")
    a = cfg["algo"]
    return ctor[:start] + f"policy_kwargs=dict(ortho_init={a['ortho_init']}, log_std_init={a['log_std_init']})" + \
        ctor[end:]


def observes_images(cfg: dict) -> bool:
    """Whether the preset's env, wrapped by its env.wrappers, gives rank-3 uint8 images (rlexp's CNN reads them)."""
    import gymnasium as gym
    import numpy as np

    from rlexp.envs.wrappers import apply_wrappers

    env = apply_wrappers(gym.make(cfg["env"]["id"], **cfg["env"]["kwargs"]), cfg["env"].get("wrappers") or [])
    space = env.observation_space
    env.close()
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="an on-policy preset, e.g. a2c_LunarLander-v3")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--sb3-python", required=True)
    parser.add_argument("--env-id", help="the game of an Atari preset (ppo_atari, a2c_atari), e.g. ALE/Pong-v5")
    parser.add_argument("--steps", type=int, help="train for this many steps instead of the preset's budget")
    parser.add_argument("--override", nargs="*", default=[], help="rlexp overrides of the preset (learning.py's)")
    args = parser.parse_args()
    algo, env = args.target.split("_", 1)
    atari = env == "atari"
    if atari and not args.env_id:
        parser.error(f"{args.target} needs --env-id, e.g. --env-id ALE/Pong-v5")
    cfg = rlexp_config([f"algo={algo}", f"env={env}", *([f"env.id={args.env_id}"] if atari else []),
                        *args.override])
    env_id, steps = cfg["env"]["id"], args.steps or cfg["total_steps"]
    images = not atari and observes_images(cfg)

    def run_of(seed: int) -> list[str]:
        ctor = (cnn_ctor(cfg) if atari or images else on_policy_sb3_ctor(cfg)).replace("seed=0", f"seed={seed}")
        return [(SB3_ATARI_RUN if atari else SB3_RUN).format(ctor=ctor), env_id, str(steps), str(seed),
                str(cfg["env"]["num_envs"]), json.dumps(cfg["env"].get("wrappers") or []),
                json.dumps(cfg["env"]["normalize"]), str(cfg["algo"]["gamma"]), json.dumps(cfg["env"]["kwargs"]),
                json.dumps(cfg["eval"].get("deterministic", True))]

    sb3_scores(args.sb3_python, f"{args.target} on {env_id}", steps, args.seeds, run_of)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
