"""PPO on Atari with EnvPool, 8 envs: env steps per second of collection and of the whole loop, rlexp against SB3.

    python benchmarks/atari_collection.py --sb3-python <python with stable-baselines3 and envpool>
    python benchmarks/atari_collection.py --sb3-python ... --steps 20480 --repeat 2 --env-id ALE/Breakout-v5
    python benchmarks/atari_collection.py --sb3-python ... --no-learning --steps 20480   # collection alone
    python benchmarks/atari_collection.py --rlexp-override log.heldout_states=0 --sb3-python ...
    python benchmarks/atari_collection.py --profile rlexp.prof     # rlexp alone, under cProfile

Both sides run rlexp's preset (`algo=ppo env=atari env.vectorization=envpool`: RL Zoo's `atari` entry, 8 envs,
rollouts of 128 steps, 4 epochs of minibatches of 256; benchmarks/sb3_on_policy_side_by_side.py's mapping to SB3's
PPO with its CnnPolicy) on the same EnvPool build of the game, with the DQN paper's preprocessing (no-op starts,
frame skip 4, 84x84 grayscale, 4 stacked frames), one torch thread each, on the CPU. rlexp trains through
`rlexp train` (in process, `--steps` env steps, no evaluation but the final one, which is not timed, no checkpoints);
SB3's envs are EnvPool's through the VecEnv adapter of EnvPool's own SB3 example (an env that ends is reset at
once, its final observation in the info), with EnvPool doing the lost-life terminals and the reward clipping that
rlexp's EnvPool adapter does in Python, and a VecMonitor (episode returns, as rlexp logs them).

Timed on each side: collection (rlexp: `OnPolicyRunner.collect`, one vector step each: acting, the envs' step, the
rollout's writes, episode bookkeeping; SB3: `collect_rollouts`, which also computes GAE at the rollout's end) and
learning (rlexp: `OnPolicyRunner.learn`, GAE and the updates; SB3: `train`), and the whole loop (rlexp:
results.json's `sps`; SB3: `model.learn`'s wall time), with the CPU time the process spent in collection and in
learning (all its threads, EnvPool's included: less sensitive than wall time to other processes on the machine). The
sides alternate (rlexp, SB3, rlexp, SB3, ...) and the table gives each run: on a shared machine read the ratios of
runs next to each other. `--no-learning` skips the learning on both sides (rlexp's rollout is emptied without GAE or
updates, SB3's `train` does nothing), so a run's budget goes to collection (its whole-loop figure then means
nothing). rlexp logs its held-out index (`log.heldout_states`, 1000 states through the CNN at every `log.every` =
100 steps), which SB3 does not have: it counts in rlexp's whole loop, not in its collection; `--rlexp-override
log.heldout_states=0` turns it off.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sb3_on_policy_side_by_side import cnn_ctor  # noqa: E402
from speed import rlexp_config  # noqa: E402

RLEXP_RUN = r"""
import cProfile, json, sys, time
from rlexp.runners.on_policy import OnPolicyRunner
spent = {"collect": 0.0, "learn": 0.0, "collect_cpu": 0.0, "learn_cpu": 0.0}

def timed(name, method):
    def wrapper(self, *args, **kwargs):   # a generator: the calls it yields are served while it is suspended
        start, cpu = time.perf_counter(), time.process_time()
        result = yield from method(self, *args, **kwargs)
        spent[name] += time.perf_counter() - start
        spent[name + "_cpu"] += time.process_time() - cpu
        return result
    return wrapper

def no_learning(self, step):   # the rollout emptied, nothing learned (--no-learning)
    self.storage.reset()
    return
    yield

run_dir, profile, learning, overrides = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
OnPolicyRunner.collect = timed("collect", OnPolicyRunner.collect)
OnPolicyRunner.learn = timed("learn", OnPolicyRunner.learn if learning else no_learning)
from rlexp.commands import main
sys.argv = ["rlexp", "train", *overrides]
profiler = cProfile.Profile() if profile else None
if profiler:
    profiler.enable()
try:
    main()
except SystemExit as end:
    if end.code:
        raise
if profiler:
    profiler.disable()
    profiler.dump_stats(profile)
results = json.load(open(run_dir + "/results.json"))
print(json.dumps({"steps": results["total_steps"], "sps": results["sps"], **spent}))
"""

SB3_RUN = r"""
import json, sys, time
import numpy as np, torch, envpool
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnvWrapper, VecMonitor
torch.set_num_threads(1)
task, steps, n_envs, noop_max, learning = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    sys.argv[5] == "1"
DEVICE = "cpu"


class VecAdapter(VecEnvWrapper):
    # EnvPool's SB3 example (envpool/examples/sb3_examples/ppo.py), for EnvPool's gymnasium API
    def step_async(self, actions):
        self.actions = actions

    def reset(self):
        return self.venv.reset()[0]

    def seed(self, seed=None):
        pass

    def step_wait(self):
        obs, rewards, terms, truncs, info_dict = self.venv.step(self.actions)
        dones = terms | truncs
        infos = []
        for i in range(self.num_envs):
            infos.append({{key: info_dict[key][i] for key in info_dict if isinstance(info_dict[key], np.ndarray)}})
            if dones[i]:
                infos[i]["terminal_observation"] = obs[i]
                infos[i]["TimeLimit.truncated"] = bool(truncs[i] and not terms[i])
                obs[i] = self.venv.reset(np.array([i]))[0]
        return obs, rewards, dones, infos


pool = envpool.make_gymnasium(task, num_envs=n_envs, batch_size=n_envs, env_seed=list(range(n_envs)),
                              episodic_life=True, reward_clip=True, use_fire_reset=False, gray_scale=True,
                              noop_max=noop_max, frame_skip=4, stack_num=4, img_height=84, img_width=84,
                              repeat_action_probability=0.0, full_action_space=False)
env = VecMonitor(VecAdapter(pool))
model = {ctor}
spent = {{"collect": 0.0, "learn": 0.0, "collect_cpu": 0.0, "learn_cpu": 0.0}}


def timed(name, method):
    def wrapper(*args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        result = method(*args, **kwargs)
        spent[name] += time.perf_counter() - start
        spent[name + "_cpu"] += time.process_time() - cpu
        return result
    return wrapper


model.collect_rollouts = timed("collect", model.collect_rollouts)
model.train = timed("learn", model.train if learning else lambda: None)
start = time.perf_counter()
model.learn(total_timesteps=steps)
wall = time.perf_counter() - start
print(json.dumps({{"steps": model.num_timesteps, "sps": model.num_timesteps / wall, **spent}}))
"""


def run_rlexp(overrides: list[str], steps: int, learning: bool, profile: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", RLEXP_RUN, tmp, profile or "", str(int(learning)), *overrides,
                              f"total_steps={steps}",
                              "torch_threads=1", "eval.every=0", "eval.episodes=1", "checkpoint.every=0",
                              "log.progress=none", f"hydra.run.dir={tmp}"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"rlexp failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_sb3(python: str, cfg: dict, steps: int, learning: bool) -> dict:
    script = SB3_RUN.format(ctor=cnn_ctor(cfg))
    task = cfg["env"]["id"].removeprefix("ALE/")
    out = subprocess.run([python, "-c", script, task, str(steps), str(cfg["env"]["num_envs"]),
                          str(cfg["env"]["atari"]["noop_max"]), str(int(learning))], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"SB3 failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(side: str, m: dict) -> str:
    return (f"| {side} | {m['steps']:,} | {m['steps'] / m['collect']:,.0f} | {m['collect']:.1f} | "
            f"{1000 * m['collect_cpu'] / m['steps']:.2f} | {m['learn']:.1f} | "
            f"{1000 * m['learn_cpu'] / m['steps']:.2f} | "
            f"{m['sps']:,.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sb3-python", help="a Python with stable-baselines3 and envpool (without: rlexp alone)")
    parser.add_argument("--env-id", default="ALE/Pong-v5")
    parser.add_argument("--steps", type=int, default=20480, help="env steps per run (20 rollouts of 128 x 8)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, alternating")
    parser.add_argument("--no-learning", action="store_true", help="collection alone, on both sides")
    parser.add_argument("--rlexp-override", action="append", default=[], help="an rlexp override for its runs")
    parser.add_argument("--profile", help="write a cProfile of rlexp's (first) run to this file")
    args = parser.parse_args()
    overrides = ["algo=ppo", "env=atari", f"env.id={args.env_id}", "env.vectorization=envpool"]
    cfg = rlexp_config(overrides)
    learning = not args.no_learning
    print(f"PPO {args.env_id}, EnvPool, {cfg['env']['num_envs']} envs, {args.steps:,} env steps a run, 1 torch thread"
          f"{'' if learning else ', no learning'}{''.join(' ' + o for o in args.rlexp_override)}")
    print("| side | env steps | collection SPS | collection s | collection CPU ms / step | learning s | "
          "learning CPU ms / step | whole loop SPS |")
    print("|---|---|---|---|---|---|---|---|")
    for i in range(args.repeat):
        print(row("rlexp", run_rlexp([*overrides, *args.rlexp_override], args.steps, learning,
                                     args.profile if i == 0 else None)), flush=True)
        if args.sb3_python:
            print(row("SB3", run_sb3(args.sb3_python, cfg, args.steps, learning)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
