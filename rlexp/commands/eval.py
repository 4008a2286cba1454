"""`rlexp eval <run_dir or checkpoint> [episodes=N] [video=true] ...`: play a saved agent's deterministic episodes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlexp.commands import options
from rlexp.errors import ConfigError, RunFailure

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
    paths, values = options.parse(args, {
        "episodes": options.positive_int, "video": options.boolean, "checkpoint": options.one_of("final", "best"),
        "seed": options.seed, "device": options.text("cpu")}, "eval")
    if len(paths) != 1:
        raise ConfigError(f"give one run directory or checkpoint file, got {len(paths)}: {' '.join(paths) or '-'} "
                          f"(rlexp eval --help)")
    return EvalOptions(path=Path(paths[0]), **values)


def _video_writer() -> Any:
    # Envs that draw with pygame (classic control, Box2D) render off-screen: no display needed, no SDL warnings.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (imageio's mp4 backend)
    except ImportError:
        raise ConfigError('video=true needs imageio and imageio-ffmpeg (fix: pip install "rlexp[video]")') from None
    return imageio


def run_evaluation(opts: EvalOptions) -> dict[str, Any]:
    """Evaluate a saved agent; returns (and writes) the results."""
    from rlexp.agents.base import BuildContext
    from rlexp.config import registry
    from rlexp.config.device import resolve_device
    from rlexp.commands.resume import with_added_keys
    from rlexp.config.validate import EVAL_SEED_OFFSET
    from rlexp.envs import describe_spaces, make_env
    from rlexp.envs.normalization import make_normalization
    from rlexp.io.checkpoints import load_checkpoint
    from rlexp.io.results import write_results
    from rlexp.runners.context import policy_of
    from rlexp.runners.evaluation import evaluate
    from rlexp.runners.job import atari_settings, seed_everything
    from rlexp.runners.memory import check_host_memory

    path = opts.path
    if path.is_dir():
        path = path / "checkpoints" / f"{opts.checkpoint}.pt"
        if not path.is_file():
            raise ConfigError(f"{opts.path} holds no checkpoints/{opts.checkpoint}.pt; is it an rlexp run "
                              f"directory that has finished or evaluated once?")
    elif not path.is_file():
        raise ConfigError(f"{path} is neither a run directory nor a checkpoint file")
    device = resolve_device(opts.device)
    check_host_memory("episodes", opts.episodes, 8.0 * opts.episodes, "the evaluation's returns")
    bundle = load_checkpoint(path)
    config = with_added_keys(bundle["config"])   # a run made before a key existed: its old meaning
    spec = registry.get(config["algo"]["name"])
    env_cfg = config["env"]
    imageio = _video_writer() if opts.video else None
    env = make_env(env_cfg["id"], {**env_cfg["kwargs"], **({"render_mode": "rgb_array"} if opts.video else {})},
                   atari_settings(env_cfg))
    spaces = describe_spaces(env.observation_space, env.action_space, env_cfg["id"])
    seed = config["seed"] + EVAL_SEED_OFFSET if opts.seed is None else opts.seed  # the training run's eval seed
    seed_everything(seed)
    try:
        agent = spec.build(config["algo"], BuildContext(
            spaces=spaces, hidden_sizes=tuple(config["network"]["hidden_sizes"]), total_steps=config["total_steps"],
            planned_updates=1, num_envs=1, device=device, seed=seed,
            activation=config["network"].get("activation", "relu")))
        agent.load_state_dict(bundle["agent"])
    except KeyError as missing:   # a config or agent state this version of rlexp does not know how to read
        raise ConfigError(f"{path} lacks {missing}, which this version of rlexp needs to build its agent (another "
                          f"version wrote it); evaluate it with the version that trained it") from None
    except RuntimeError as error:  # torch's load_state_dict: saved tensors that do not fit the agent built here
        raise ConfigError(f"{path}: the saved agent does not fit the one its config builds here "
                          f"({' '.join(str(error).split())[:200]}); evaluate it with the version that trained it") \
            from None
    # The observation statistics the agent was trained on, frozen (a run made before env.normalize has none).
    normalization = None
    if "normalization" in bundle:
        normalization = make_normalization(config["env"]["normalize"], config["algo"]["gamma"], spaces.obs_shape, 1)
        normalization.load_state_dict(bundle["normalization"])

    frames: list[np.ndarray] = []
    record = (lambda: frames.append(env.render())) if opts.video else None
    returns = evaluate(policy_of(agent, normalization), env, opts.episodes, seed, record)
    env.close()
    out_dir = path.parent.parent / "eval" if path.parent.name == "checkpoints" else path.parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"checkpoint": str(path), "step": bundle["step"], "algo": bundle["algo"], "env_id": bundle["env_id"],
               "episodes": opts.episodes, "seed": seed, "eval_return_mean": float(returns.mean()),
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
    if any(a in ("-h", "--help") for a in args):
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
