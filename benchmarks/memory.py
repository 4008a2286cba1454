"""Replay memory of image observations: bytes per transition and the peak RSS of a filled buffer.

    python benchmarks/memory.py                                     # the README's rows (100k transitions each)
    python benchmarks/memory.py algo=sac env.id=CarRacing-v3 algo.buffer_size=100000 total_steps=100000
    python benchmarks/memory.py --plain algo=sac env.id=CarRacing-v3 ...   # as stored before: obs and next obs

Each case runs in a fresh process: the config is composed and validated as `rlexp train` does, `Job.prepare` makes
the env and checks the run as the CLI does, and the job builds its replay memory (`Job.make_replay`, on the CPU).
It is filled to capacity with real transitions: 1,000 steps of the env under uniformly random actions, written
over and over in order (a run's replay holds its own steps; the bytes do not depend on what the images show, and
every page is written, so the RSS is that of a full buffer). Reported: the replay's arrays' nbytes per transition
(`torch.Tensor.nbytes` of every storage tensor, the frame ring and the host-side mirror, over the capacity), of which
the observations, and `ru_maxrss`, the process's peak resident memory, with the RSS it had before the replay was
built (Python, torch, the env) and the difference. `--plain` builds the replay that stored images before rlexp
kept them once (`ReplayBuffer` in uint8: each transition's observation and next observation), for comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import rlexp_config  # noqa: E402

ROWS = {
    "sac CarRacing-v3": ["algo=sac", "env.id=CarRacing-v3", "algo.buffer_size=100000", "total_steps=100000"],
    "dqn Atari (Pong-v5, 4 stacked 84x84 frames)": ["algo=dqn", "env=atari", "env.id=ALE/Pong-v5",
                                                    "algo.buffer_size=100000", "total_steps=100000"],
}
COLLECTED = 1000   # real env steps, written over and over until the replay is full


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def measure(config: dict, plain: bool) -> dict:
    """In this (fresh) process: build the CLI's replay for `config`, fill it, report its bytes and the peak RSS."""
    import torch

    from rlexp.agents.registry import algorithms
    from rlexp.config.validate import validate
    from rlexp.replay import ReplayBuffer
    from rlexp.runners.job import Job

    torch.set_num_threads(1)
    spec = validate(config, algorithms())
    job = Job.prepare(config, spec, torch.device("cpu"))
    env, spaces = job.eval_env, job.spaces
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    steps = []
    for _ in range(COLLECTED):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        steps.append((obs, action, reward, next_obs, terminated, truncated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    before = rss_kib()
    if plain:
        algo = job.settings.algo
        replay = ReplayBuffer(min(algo.buffer_size, config["total_steps"]), spaces.obs_shape, spaces.action_shape,
                              spaces.discrete, torch.device("cpu"), 0, num_envs=job.settings.env.num_envs,
                              n_step=algo.n_step, gamma=algo.gamma, obs_dtype=torch.uint8)
    else:
        replay, _ = job.make_replay(config["total_steps"])
    num_envs = replay.num_envs
    for i in range(replay.ring.rows):
        o, a, r, n, t, u = steps[i % len(steps)]
        replay.add(np.repeat(o[None], num_envs, 0), np.repeat(np.asarray(a)[None], num_envs, 0),
                   np.full(num_envs, r, np.float32), np.repeat(n[None], num_envs, 0), np.full(num_envs, t),
                   np.full(num_envs, u))
    replay.sample(32)   # what a run does next: everything written is readable
    arrays = dict(replay.storage)
    if hasattr(replay, "frames"):
        arrays["frames"] = replay.frames
    observations = sum(arrays[key].nbytes for key in ("observations", "next_observations", "frames") if key in arrays)
    total = sum(array.nbytes for array in arrays.values())
    host = replay._newest_frame.nbytes if hasattr(replay, "_newest_frame") else 0   # the frame numbers' mirror
    if hasattr(replay, "tree"):
        total += replay.tree._nodes.nbytes
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return {"replay": type(replay).__name__, "obs_shape": list(spaces.obs_shape), "capacity": replay.capacity,
            "bytes_per_transition": (total + host) / replay.capacity,
            "observation_bytes_per_transition": observations / replay.capacity,
            "rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024, "replay_rss_mib": (peak - before) / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="rlexp train overrides of one case (default: the README's rows)")
    parser.add_argument("--plain", action="store_true", help="the replay as it stored images before: obs and next obs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child), args.plain)))
        return 0
    cases = {" ".join(args.overrides): args.overrides} if args.overrides else ROWS
    print("| case | replay | observation | bytes / transition (observations) | peak RSS | RSS before the replay | "
          "peak - before |")
    print("|---|---|---|---|---|---|---|")
    for name, overrides in cases.items():
        config = rlexp_config(overrides)
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(config), *(["--plain"] * args.plain)],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        m = json.loads(out.stdout.strip().splitlines()[-1])
        shape = "x".join(map(str, m["obs_shape"]))
        print(f"| {name} | {m['replay']}, {m['capacity']:,} | {shape} uint8 | {m['bytes_per_transition']:,.0f} "
              f"({m['observation_bytes_per_transition']:,.0f}) | {m['peak_rss_mib']:,.0f} MiB | "
              f"{m['rss_before_mib']:,.0f} MiB | {m['replay_rss_mib']:,.0f} MiB |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
