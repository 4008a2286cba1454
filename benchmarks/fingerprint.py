"""Fingerprints of short runs: does a change of code keep every run bit for bit what it was?

    python benchmarks/fingerprint.py --out DIR [--only dqn_per] [--compare fingerprints.json] [--keys-of OLD_DIR]

Each case trains a few thousand steps through the CLI (one torch thread, every code path a preset takes: replay,
n-step and prioritized replay, the Nature CNN, OU and Gaussian noise, SAC's temperature, PPO's clipping with
normalization and gSDE, A2C's RMSprop, many seeds as one model, async envs) and hashes what the run ended with:
every tensor and number of its newest full checkpoint and its final agent (networks, optimizers, replay,
generators, normalization statistics) and the evaluation returns of results.json. Wall times are left out.
With --compare, each case's hash
is checked against a file this script wrote before (on the same machine, torch and thread count): exit 1 on any
difference. The hashes go to stdout and <out>/fingerprints.json.

A change that adds state to the checkpoint (a new counter, a record for resume) changes every hash while computing
nothing new. `--keys-of OLD_DIR` (the --out directory of the run that wrote the compared file) hashes only the
checkpoint entries that OLD_DIR's checkpoints of the same case also hold: what the runs computed, without what the
change added.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

COMMON = ["eval.every=1000", "eval.episodes=2", "checkpoint.every=1000", "log.every=500", "log.progress=none",
          "torch_threads=1"]

CASES: dict[str, list[str]] = {
    "dqn": ["algo=dqn", "env=CartPole-v1", "total_steps=3000", "algo.learning_starts=500"],
    "dqn_per": ["algo=dqn", "env=CartPole-v1", "total_steps=3000", "algo.learning_starts=500",
                "algo.prioritized=true", "algo.n_step=3", "algo.double=true", "algo.dueling=true",
                "algo.lr_schedule=linear"],
    "dqn_atari": ["algo=dqn", "env=atari", "env.id=ALE/Pong-v5", "total_steps=1200", "algo.learning_starts=400",
                  "algo.buffer_size=2000", "eval.every=1200", "eval.episodes=1", "checkpoint.every=1200",
                  "log.heldout_states=50", "+env.kwargs.max_num_frames_per_episode=400"],
    "ddpg": ["algo=ddpg", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500"],
    "ddpg_paper": ["experiment=ddpg_paper", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500"],
    "td3": ["algo=td3", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500"],
    "td3_async": ["algo=td3", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500",
                  "env.num_envs=2", "env.vectorization=async"],
    "sac": ["algo=sac", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500"],
    "ppo": ["algo=ppo", "env=CartPole-v1", "total_steps=4096", "algo.n_steps=128", "env.num_envs=4"],
    "ppo_sde_norm": ["algo=ppo", "env=Pendulum-v1", "total_steps=4096", "algo.n_steps=256", "env.num_envs=2",
                     "algo.use_sde=true", "env.normalize.obs=true", "env.normalize.reward=true"],
    "a2c": ["algo=a2c", "env=CartPole-v1", "total_steps=3000"],
    "dqn_seeds": ["algo=dqn", "env=CartPole-v1", "total_steps=3000", "algo.learning_starts=500", "seeds=[0,1]"],
    "td3_seeds": ["algo=td3", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500", "seeds=[0,1]"],
    "sac_seeds": ["algo=sac", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500", "seeds=[0,1]"],
    "a2c_seeds": ["algo=a2c", "env=CartPole-v1", "total_steps=3000", "seeds=[0,1]"],
    "ddpg_seeds": ["algo=ddpg", "env=Pendulum-v1", "total_steps=2000", "algo.learning_starts=500", "seeds=[0,1]"],
    "ppo_seeds": ["algo=ppo", "env=CartPole-v1", "total_steps=4096", "algo.n_steps=128", "env.num_envs=4",
                  "seeds=[0,1]"],
}


def digest_into(h: Any, value: Any) -> None:
    """Every tensor, array and number in `value`, in a fixed order, into the hash `h`; strings too, except the
    ones that name where or when the run happened."""
    if isinstance(value, torch.Tensor):
        h.update(str(value.dtype).encode() + str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().numpy().tobytes())
    elif isinstance(value, np.ndarray):
        h.update(str(value.dtype).encode() + str(value.shape).encode() + np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            if key in ("overrides", "config", "run_dir", "time", "saved_at"):
                continue
            h.update(str(key).encode())
            digest_into(h, value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            digest_into(h, item)
    elif isinstance(value, (bool, int, float, str, type(None))):
        h.update(repr(value).encode())
    else:
        h.update(type(value).__name__.encode())


def load(checkpoint: Path) -> dict[str, Any]:
    state = torch.load(io.BytesIO(checkpoint.read_bytes()), map_location="cpu", weights_only=True)
    return {key: state[key] for key in ("agent", "runner", "context", "rng", "step") if key in state}


def kept_keys(value: Any, old: Any) -> Any:
    """`value` without the dict entries (at any depth) that `old`, the same checkpoint of an older run, lacks."""
    if isinstance(value, dict) and isinstance(old, dict):
        return {key: kept_keys(item, old[key]) for key, item in value.items() if key in old}
    return value


def run_digest(run_dir: Path, keys_of: Path | None = None) -> str:
    """The hash of one run (or of every seed of a many-seeds run, in seed order); with `keys_of`, an older run of
    the same case, of the checkpoint entries that run's checkpoints hold."""
    h = hashlib.sha256()
    seeds = sorted(run_dir.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
    for directory in seeds or [run_dir]:
        # The newest full checkpoint (agent, replay or rollout, counters, generators) and the final agent.
        steps = sorted((directory / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for checkpoint in [steps[-1], directory / "checkpoints" / "final.pt"]:
            state = load(checkpoint)
            if keys_of is not None:
                state = kept_keys(state, load(keys_of / directory.relative_to(run_dir) / "checkpoints" /
                                              checkpoint.name))
            digest_into(h, state)
        results = json.loads((directory / "results.json").read_text())
        digest_into(h, {key: results[key] for key in ("eval_returns", "eval_return_mean", "best_eval_return",
                                                       "episodes", "total_steps") if key in results})
    return h.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=None, help="the cases to run (default: all)")
    parser.add_argument("--compare", type=Path, default=None, help="fingerprints.json written earlier")
    parser.add_argument("--keys-of", type=Path, default=None,
                        help="the --out directory of the earlier run: hash only the checkpoint entries it holds")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    names = args.only or list(CASES)
    expected = json.loads(args.compare.read_text()) if args.compare else {}
    found, differ = {}, []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    for name in names:
        run_dir = (args.out / name).resolve()
        if not (run_dir / "results.json").exists() and not list(run_dir.glob("seed_*/results.json")):
            proc = subprocess.run([sys.executable, "-m", "rlexp", "train", *CASES[name], *COMMON,
                                   f"hydra.run.dir={run_dir}"], cwd=root, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                differ.append(name)
                continue
        found[name] = run_digest(run_dir, args.keys_of / name if args.keys_of else None)
        verdict = "" if name not in expected else ("  same" if expected[name] == found[name] else
                                                   f"  DIFFERS (was {expected[name]})")
        if verdict.strip().startswith("DIFFERS"):
            differ.append(name)
        print(f"{name:14s} {found[name]}{verdict}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fingerprints.json").write_text(json.dumps(found, indent=1) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
