"""Deterministic evaluation episodes on an env instance kept apart from training, and `rlexp eval`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


def evaluate(policy: Callable[[np.ndarray], np.ndarray | int], env: gym.Env, episodes: int,
             seed: int, record_first: Callable[[], None] | None = None) -> np.ndarray:
    """Run `episodes` full episodes with `policy` and return their undiscounted returns.

    Seeding the first reset with the same `seed` every time makes successive evaluations of a run
    start from the same initial states, so their returns compare the policies, not the luck.
    `record_first` is called at every step of the first episode (e.g. to grab a video frame).
    """
    returns = np.zeros(episodes, dtype=np.float64)
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        record = record_first if episode == 0 else None
        if record is not None:
            record()
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            returns[episode] += float(reward)
            done = terminated or truncated
            if record is not None:
                record()
        obs, _ = env.reset()
    return returns


# --- `rlexp eval <run_dir or checkpoint> [episodes=N] [video=true] ...` ---------------------------------------

EVAL_USAGE = """usage: rlexp eval <run_dir or checkpoint.pt> [episodes=N] [video=true] [checkpoint=final|best] [seed=S]
                  [device=auto|cpu|cuda|cuda:N]

Loads a run's checkpoint (a run directory means its checkpoints/final.pt, or best.pt with checkpoint=best) with
the config it was trained with, plays N deterministic episodes (default 10), prints their mean and std, and
writes <run_dir>/eval/<checkpoint>.json; video=true also writes <run_dir>/eval/<checkpoint>.mp4 of the first one.
"""


@dataclass(frozen=True)
class EvalOptions:
    path: Path
    episodes: int = 10
    video: bool = False
    checkpoint: str = "final"
    seed: int | None = None      # default: the run's own evaluation seed (seed + 10000), to match results.json
    device: str = "auto"


def parse_eval_args(args: list[str]) -> EvalOptions:
    """The path, then key=value options; anything else is a ConfigError naming it."""
    from rlexp.cli import is_option
    from rlexp.errors import ConfigError

    paths = [a for a in args if not is_option(a)]
    if len(paths) != 1:
        raise ConfigError(f"give one run directory or checkpoint file, got {len(paths)}: {' '.join(paths) or '-'}")
    options: dict[str, Any] = {"path": Path(paths[0])}
    for arg in (a for a in args if is_option(a)):
        key, value = arg.split("=", 1)
        if key in ("episodes", "seed"):
            if not value.lstrip("-").isdigit() or (key == "episodes" and int(value) < 1):
                raise ConfigError(f"{key}={value} must be {'a positive' if key == 'episodes' else 'an'} integer")
            options[key] = int(value)
        elif key == "video":
            if value.lower() not in ("true", "false"):
                raise ConfigError(f"video={value} must be true or false")
            options[key] = value.lower() == "true"
        elif key == "checkpoint":
            if value not in ("final", "best"):
                raise ConfigError(f"checkpoint={value} must be final or best")
            options[key] = value
        elif key == "device":
            options[key] = value
        else:
            raise ConfigError(f"{key} is not an eval option; use episodes, video, checkpoint, seed or device")
    return EvalOptions(**options)


def _video_writer() -> Any:
    from rlexp.errors import ConfigError

    # Envs that draw with pygame (classic control, Box2D) render off-screen: no display needed, no SDL warnings.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (imageio's mp4 backend)
    except ImportError:
        raise ConfigError('video=true needs imageio and imageio-ffmpeg (fix: pip install "rlexp[video]")') from None
    return imageio


def run_evaluation(options: EvalOptions) -> dict[str, Any]:
    """Evaluate a saved agent; returns (and writes) the results."""
    from rlexp.build import build_agent, make_envs, seed_everything
    from rlexp.checkpoint import load_checkpoint
    from rlexp.config import resolve_device
    from rlexp.envs import space_info
    from rlexp.errors import ConfigError
    from rlexp.metrics import write_results

    path = options.path
    if path.is_dir():
        path = path / "checkpoints" / f"{options.checkpoint}.pt"
        if not path.is_file():
            raise ConfigError(f"{options.path} holds no checkpoints/{options.checkpoint}.pt; is it an rlexp run "
                              f"directory that has finished or evaluated once?")
    elif not path.is_file():
        raise ConfigError(f"{path} is neither a run directory nor a checkpoint file")
    device = resolve_device(options.device)
    bundle = load_checkpoint(path)
    config = bundle["config"]
    algo, env_cfg = config["algo"], config["env"]
    imageio = _video_writer() if options.video else None
    (env,) = make_envs(env_cfg, 1, **({"render_mode": "rgb_array"} if options.video else {}))
    spaces = space_info(env, algo["name"], env_cfg["id"])
    seed = config["seed"] + 10_000 if options.seed is None else options.seed  # the training loop's eval seed
    seed_everything(seed)
    agent = build_agent(algo, spaces, config["network"]["hidden_sizes"], config["total_steps"], device, seed)
    agent.load_state_dict(bundle["agent"])

    frames: list[np.ndarray] = []
    record = (lambda: frames.append(env.render())) if options.video else None
    returns = evaluate(lambda o: agent.act(o, explore=False), env, options.episodes, seed, record)
    env.close()
    out_dir = path.parent.parent / "eval" if path.parent.name == "checkpoints" else path.parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"checkpoint": str(path), "step": bundle["step"], "algo": bundle["algo"], "env_id": bundle["env_id"],
               "episodes": options.episodes, "seed": seed, "eval_return_mean": float(returns.mean()),
               "eval_return_std": float(returns.std()), "eval_returns": [float(r) for r in returns]}
    if imageio is not None:
        video = out_dir / f"{path.stem}.mp4"
        fps = env.metadata.get("render_fps") or 30
        # macro_block_size=1 keeps odd frame sizes (e.g. 500x500 Box2D) as they are.
        imageio.mimsave(video, frames, fps=fps, macro_block_size=1)
        results["video"] = str(video)
    write_results(out_dir / f"{path.stem}.json", results)
    return results


def main(args: list[str]) -> int:
    """`rlexp eval ...`: one summary line on stdout; every error one line on stderr, exit 2 (bad input) or 1."""
    from rlexp.errors import ConfigError, RunFailure

    if not args or args[0] in ("-h", "--help"):
        print(EVAL_USAGE, end="")
        return 0
    try:
        results = run_evaluation(parse_eval_args(args))
    except (ConfigError, RunFailure) as error:
        print(f"rlexp eval: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    print(f"{results['algo']} on {results['env_id']}, {Path(results['checkpoint']).name} (step {results['step']}): "
          f"mean return {results['eval_return_mean']:.2f} +/- {results['eval_return_std']:.2f} over "
          f"{results['episodes']} episodes" + (f"; video: {results['video']}" if "video" in results else ""))
    return 0
