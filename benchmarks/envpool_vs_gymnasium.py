"""Raw environment throughput: EnvPool against gymnasium's SyncVectorEnv and AsyncVectorEnv, side by side.

Random actions (sampled with numpy for the whole batch), no learning, no copying of observations: steps/s is the
number of single-env transitions per second. For each task and num_envs all backends are built once, then timed
for the same number of env steps, one after the other in a rotating order, `--repeats` times; the table gives the
median and the ratio to gymnasium's AsyncVectorEnv at the same num_envs, so machine noise mostly cancels out.

It needs EnvPool (`pip install "rlexp[envpool]"`; ".[test]" installs it too):

    python benchmarks/envpool_vs_gymnasium.py                        # both tasks
    python benchmarks/envpool_vs_gymnasium.py --tasks pong --num-envs 1 8
    python benchmarks/envpool_vs_gymnasium.py --pong-steps 1000 --cheetah-steps 4000  # quicker

It measures the backends alone; benchmarks/throughput.py measures them inside rlexp's runner.

Tasks and settings (the same on both sides):
  pong         gymnasium ALE/Pong-v5 (frameskip=1, repeat_action_probability=0, full_action_space=False) wrapped in
               AtariPreprocessing(noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False,
               grayscale_obs=True, scale_obs=False) and FrameStackObservation(4, padding_type="reset");
               EnvPool Pong-v5 with episodic_life=False, reward_clip=False, stack_num=4, noop_max=30, frame_skip=4,
               84x84, repeat_action_probability=0, use_fire_reset=False (gymnasium has no fire reset),
               gray_scale=True, use_inter_area_resize=True. (These give observations identical to gymnasium's for
               the same no-op count and actions.)
  halfcheetah  gymnasium HalfCheetah-v5 against EnvPool HalfCheetah-v5 (same model, frame_skip 5, reset noise 0.1,
               1000-step limit).
Backends: gym-sync and gym-async (autoreset_mode SAME_STEP), envpool-sync (batch_size == num_envs) and, for
num_envs >= 4, envpool-async (batch_size = num_envs // 2: send/recv on whichever envs are ready). EnvPool's autoreset
is NEXT_STEP: the step after an episode end is a reset that is counted as a step here (one per episode, <0.2%).

Exits with status 2 and a one-line message when envpool (or gymnasium, ale-py, mujoco) cannot be imported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

try:
    import envpool
except ImportError as error:
    print(f"envpool is not importable from {sys.executable} ({error}); run this script with a Python that has "
          f"envpool installed (see the docstring: python3 -m venv /work/envpool_venv && pip install envpool ...)")
    sys.exit(2)
try:
    import ale_py
    import gymnasium as gym
    import mujoco
    import numpy as np
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
except ImportError as error:
    print(f"a benchmark dependency is not importable from {sys.executable}: {error}")
    sys.exit(2)

gym.register_envs(ale_py)

ENVPOOL_PONG_KWARGS = dict(episodic_life=False, reward_clip=False, stack_num=4, noop_max=30, frame_skip=4,
                           img_height=84, img_width=84, repeat_action_probability=0.0, use_fire_reset=False,
                           full_action_space=False, gray_scale=True, use_inter_area_resize=True)


def make_gym_pong() -> gym.Env:
    env = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, full_action_space=False)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False,
                                          grayscale_obs=True, scale_obs=False)
    return gym.wrappers.FrameStackObservation(env, stack_size=4, padding_type="reset")


def make_gym_cheetah() -> gym.Env:
    return gym.make("HalfCheetah-v5")


# task: (gymnasium env factory, envpool task id, envpool kwargs, action sampler(rng, n))
Task = tuple[Callable[[], gym.Env], str, dict[str, Any], Callable[[np.random.Generator, int], np.ndarray]]
TASKS: dict[str, Task] = {
    "pong": (make_gym_pong, "Pong-v5", ENVPOOL_PONG_KWARGS,
             lambda rng, n: rng.integers(0, 6, size=n)),
    "halfcheetah": (make_gym_cheetah, "HalfCheetah-v5", {},
                    lambda rng, n: rng.uniform(-1.0, 1.0, size=(n, 6))),
}


class GymBackend:
    def __init__(self, task: str, num_envs: int, asynchronous: bool, seed: int) -> None:
        factory, _, _, self.sample = TASKS[task]
        cls = AsyncVectorEnv if asynchronous else SyncVectorEnv
        self.env = cls([factory] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
        self.env.reset(seed=seed)
        self.n = num_envs
        self.rng = np.random.default_rng(seed)

    def run(self, batches: int) -> int:
        step, sample, rng, n = self.env.step, self.sample, self.rng, self.n
        for _ in range(batches):
            step(sample(rng, n))
        return batches * n

    def close(self) -> None:
        self.env.close()


class EnvPoolBackend:
    def __init__(self, task: str, num_envs: int, batch_size: int, seed: int, num_threads: int) -> None:
        _, task_id, kwargs, self.sample = TASKS[task]
        self.env = envpool.make_gymnasium(task_id, num_envs=num_envs, batch_size=batch_size, seed=seed,
                                          num_threads=num_threads, **kwargs)
        self.batch = batch_size
        self.rng = np.random.default_rng(seed)
        self.is_async = batch_size < num_envs
        if self.is_async:
            self.env.async_reset()
            self.env_id = self.env.recv()[-1]["env_id"]
        else:
            self.env.reset()

    def run(self, batches: int) -> int:
        env, sample, rng, b = self.env, self.sample, self.rng, self.batch
        if self.is_async:
            env_id = self.env_id
            for _ in range(batches):
                env.send(sample(rng, b), env_id)
                env_id = env.recv()[-1]["env_id"]
            self.env_id = env_id
        else:
            step = env.step
            for _ in range(batches):
                step(sample(rng, b))
        return batches * b

    def close(self) -> None:
        self.env.close()


def build(name: str, task: str, num_envs: int, seed: int, threads: int) -> GymBackend | EnvPoolBackend:
    if name == "gym-sync":
        return GymBackend(task, num_envs, False, seed)
    if name == "gym-async":
        return GymBackend(task, num_envs, True, seed)
    if name == "envpool-sync":
        return EnvPoolBackend(task, num_envs, num_envs, seed, threads)
    return EnvPoolBackend(task, num_envs, num_envs // 2, seed, threads)


def measure(backend: GymBackend | EnvPoolBackend, env_steps: int) -> float:
    per_call = backend.n if isinstance(backend, GymBackend) else backend.batch
    batches = max(1, env_steps // per_call)
    start = time.perf_counter()
    steps = backend.run(batches)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["pong", "halfcheetah"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per backend (median reported)")
    parser.add_argument("--pong-steps", type=int, default=3000, help="env steps per timed round, pong")
    parser.add_argument("--cheetah-steps", type=int, default=10000, help="env steps per timed round, halfcheetah")
    parser.add_argument("--warmup-steps", type=int, default=200, help="untimed env steps per backend after reset")
    parser.add_argument("--no-envpool-async", action="store_true", help="skip envpool's async mode")
    parser.add_argument("--envpool-threads", type=int, default=0,
                        help="envpool num_threads (0: envpool's default, one per env of a batch)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"# envpool {envpool.__version__}, gymnasium {gym.__version__}, ale-py {ale_py.__version__}, "
          f"mujoco {mujoco.__version__} (gymnasium side), numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; median of {args.repeats} interleaved rounds; pong {args.pong_steps} / halfcheetah "
          f"{args.cheetah_steps} env steps per round", flush=True)
    rows = []
    for task in args.tasks:
        env_steps = args.pong_steps if task == "pong" else args.cheetah_steps
        for n in args.num_envs:
            names = ["gym-sync", "gym-async", "envpool-sync"]
            if n >= 4 and not args.no_envpool_async:
                names.append("envpool-async")
            backends = {name: build(name, task, n, args.seed, args.envpool_threads) for name in names}
            try:
                for backend in backends.values():
                    backend.run(max(1, args.warmup_steps // n))
                results: dict[str, list[float]] = {name: [] for name in names}
                for r in range(args.repeats):
                    order = names[r % len(names):] + names[:r % len(names)]
                    for name in order:
                        results[name].append(measure(backends[name], env_steps))
            finally:
                for backend in backends.values():
                    backend.close()
            base = statistics.median(results["gym-async"])
            for name in names:
                sps = statistics.median(results[name])
                spread = f"{min(results[name]):.0f}-{max(results[name]):.0f}"
                label = name if name != "envpool-async" else f"envpool-async (batch {n // 2})"
                rows.append((task, n, label, sps, spread, sps / base))
            print(f"# done: {task} num_envs={n}", file=sys.stderr, flush=True)

    print("\n| task | num_envs | backend | steps/s (median) | min-max | ratio to gym-async |")
    print("|---|---:|---|---:|---:|---:|")
    for task, n, label, sps, spread, ratio in rows:
        print(f"| {task} | {n} | {label} | {sps:,.0f} | {spread} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
