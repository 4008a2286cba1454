"""`rlexp eval <run_dir or checkpoint> [episodes=N] [video=true] ...`: play a saved agent's deterministic episodes."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from rlexp.commands import options
from rlexp.commands.subcommand import run_subcommand
from rlexp.errors import ConfigError, Interrupted, RunFailure, needs_extra

EVAL_USAGE = """usage: rlexp eval <run_dir or checkpoint.pt> [episodes=N] [video=true] [checkpoint=final|best] [seed=S]
                  [device=auto|cpu|cuda|cuda:N] [embed=true] [embed.states=N] [out=DIR] [deterministic=false]
                  [num_envs=N]

Loads a run's checkpoint (a run directory means its checkpoints/final.pt, or best.pt with checkpoint=best) with
the config it was trained with, plays N episodes (default 10) as the run evaluated (deterministic unless its
eval.deterministic=false; deterministic=false draws from a stochastic policy: PPO's, A2C's, SAC's), prints their
mean and std, and writes <run_dir>/eval/<checkpoint>.json; video=true also writes <run_dir>/eval/<checkpoint>.mp4
of the first one. The episodes step together, num_envs at a time (default: the run's eval.num_envs), one env each.
embed=true also maps the last hidden layer over embed.states states (default 2000) of further deterministic
episodes: <run_dir>/eval/<checkpoint>_embedding/ (TensorBoard's Projector tab: tensorboard --logdir <that dir>)
and a t-SNE coloured by the predicted value, <checkpoint>_tsne.png and .csv (pip install "rlexp[embed]").
out=DIR writes all of these into DIR instead of <run_dir>/eval/ (a run you cannot write into, someone else's).
"""


@dataclass(frozen=True)
class EvalOptions:
    path: Path
    episodes: int = 10
    video: bool = False
    checkpoint: str | None = None   # final or best of a run directory (None: final)
    seed: int | None = None      # default: the run's own evaluation seed (seed + 10000), to match results.json
    device: str = "auto"
    embed: bool = False
    embed_states: int = 2000
    out: Path | None = None      # where the results go (None: <run_dir>/eval)
    deterministic: bool | None = None   # None: the run's eval.deterministic
    num_envs: int | None = None   # None: the run's eval.num_envs


def parse_eval_args(args: list[str]) -> EvalOptions:
    """The path, then key=value options; anything else is a ConfigError naming it."""
    paths, values = options.parse(args, {
        "episodes": options.positive_int, "video": options.boolean, "checkpoint": options.one_of("final", "best"),
        "seed": options.seed, "device": options.text("cpu"), "embed": options.boolean,
        "embed.states": options.positive_int, "out": options.text("evals/run1"),
        "deterministic": options.boolean, "num_envs": options.positive_int}, "eval")
    path = options.one_path(paths, "eval")
    if "embed.states" in values:
        if not values.get("embed"):
            raise ConfigError("embed.states sets how many states embed=true maps; add embed=true")
        if values["embed.states"] < 2:
            raise ConfigError(f"embed.states={values['embed.states']}: a t-SNE map needs at least 2 states")
        values["embed_states"] = values.pop("embed.states")
    if "out" in values:
        values["out"] = Path(values["out"])
    return EvalOptions(path=path, **values)


def _video_writer() -> Any:
    # Envs that draw with pygame (classic control, Box2D) render off-screen: no display needed, no SDL warnings.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    with needs_extra("video", "video=true needs imageio and imageio-ffmpeg (fix: $fix)"):
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (imageio's mp4 backend)
    return imageio


def run_evaluation(opts: EvalOptions) -> dict[str, Any]:
    """Evaluate a saved agent; returns (and writes) the results."""
    from rlexp.deploy.paths import checkpoint_path

    checkpoint_path(opts.path, opts.checkpoint)   # a wrong path is refused before torch loads
    import torch

    from rlexp.agents.registry import algorithms
    from rlexp.config.validate import EVAL_SEED_OFFSET, stochastic_refused
    from rlexp.deploy.load import load
    from rlexp.io.results import write_results
    from rlexp.io.writable import check_writable
    from rlexp.runners.evaluation import MAX_EPISODE_STEPS, evaluate
    from rlexp.runners.job import seed_everything
    from rlexp.runners.memory import check_host_memory, env_instance_bytes

    check_host_memory("episodes", opts.episodes, 8.0 * opts.episodes, "the evaluation's returns")
    loaded = load(opts.path, opts.checkpoint, opts.device)
    path, config = loaded.checkpoint, loaded.config
    # (the run's own evaluation unless told: a stochastic policy's draws, from a generator seeded like the env)
    deterministic = config["eval"].get("deterministic", True) if opts.deterministic is None else opts.deterministic
    if not deterministic and not hasattr(loaded.agent, "act_sampled"):
        key = "eval.deterministic" if opts.deterministic is None else "deterministic"   # the run's, or the option
        raise ConfigError(stochastic_refused(loaded.algo, algorithms(), key))
    imageio = _video_writer() if opts.video else None
    if opts.embed:
        from rlexp.analysis.embedding import check_libraries

        check_libraries()
        check_host_memory("embed.states", opts.embed_states,
                          float(opts.embed_states) * (np.prod(loaded.spaces.obs_shape) * 4 + 4096),
                          "the embedded states")
    out_dir = opts.out or (path.parent.parent / "eval" if path.parent.name == "checkpoints" else path.parent / "eval")
    # Before any episode is played: a run on a read-only or shared drive is found out now, with the way around it.
    check_writable(out_dir, "the evaluation's results", "" if opts.out else "; write them elsewhere with out=DIR")
    for name in (f"{path.stem}.json", f"{path.stem}.mp4" if opts.video else None):   # (renamed over at the end)
        if name is not None and (out_dir / name).is_dir():
            raise ConfigError(f"cannot write the evaluation's results to {out_dir / name}: it is a directory"
                              + ("" if opts.out else "; write them elsewhere with out=DIR"))
    evaluation = config.get("eval") or {}
    # (a run made before eval.num_envs played its episodes on one env)
    num_envs = min(opts.num_envs or evaluation.get("num_envs", 1), opts.episodes)
    check_host_memory("num_envs" if opts.num_envs else "episodes", opts.num_envs or opts.episodes,
                      num_envs * env_instance_bytes(loaded.env_id), "the evaluation's env instances")
    seed = config["seed"] + EVAL_SEED_OFFSET if opts.seed is None else opts.seed  # the training run's eval seed
    seed_everything(seed)
    frames: list[np.ndarray] = []
    # (the training run's cap on episodes of an env without a time limit)
    limit = evaluation.get("max_episode_steps", MAX_EPISODE_STEPS)
    generator = None if deterministic else torch.Generator(device=loaded.device).manual_seed(seed)
    ended: list[None] = []   # one entry per episode finished
    envs: list[Any] = []
    with ExitStack() as closing:   # every env made is closed, whatever stops the evaluation
        try:
            # (Dict and Tuple observations packed by the run's own layout, one array each, as the evaluation batches
            # them; only the first env's episode is filmed: the others render nothing)
            for j in range(num_envs):
                envs.append(loaded.make_packed_env(**({"render_mode": "rgb_array"} if opts.video and j == 0 else {})))
                closing.callback(envs[-1].close)
            # (render_mode="rgb_array": each render is one frame)
            record = (lambda: frames.append(cast(np.ndarray, envs[0].render()))) if opts.video else None
            returns = evaluate(lambda obs: loaded.act_on_env(obs, generator), envs, opts.episodes, seed, record,
                               max_episode_steps=limit, episode_ended=lambda: ended.append(None))
        except Interrupted as stop:
            raise stop.during(f"after {len(ended)} of {opts.episodes} episodes; nothing was written") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"checkpoint": str(path), "step": loaded.step, "algo": loaded.algo, "env_id": loaded.env_id,
               "episodes": opts.episodes, "num_envs": num_envs, "seed": seed, "deterministic": deterministic,
               "eval_return_mean": float(returns.mean()),
               "eval_return_std": float(returns.std()), "eval_returns": [float(r) for r in returns]}
    if imageio is not None:
        video = out_dir / f"{path.stem}.mp4"
        fps = envs[0].metadata.get("render_fps") or 30
        # macro_block_size=1 keeps odd frame sizes (e.g. 500x500 Box2D) as they are. Written beside and renamed: a
        # full disk or a signal leaves no half-written video.
        partial = video.with_name(f".{video.stem}.tmp.mp4")
        try:
            imageio.mimsave(partial, frames, fps=fps, macro_block_size=1)
            os.replace(partial, video)
        except OSError as error:
            raise RunFailure(f"could not write the video {video}: {error.strerror or error}; nothing was "
                             f"written") from None
        finally:
            partial.unlink(missing_ok=True)
        results["video"] = str(video)
    if opts.embed:
        from rlexp.analysis.embedding import embed

        embedding = embed(loaded, out_dir, path.stem, opts.embed_states, seed)
        results.update(embedding_dir=str(embedding.projector_dir), tsne_png=str(embedding.png),
                       tsne_csv=str(embedding.csv), embedded_states=embedding.states)
    write_results(out_dir / f"{path.stem}.json", results)
    return results


def evaluate_and_report(args: list[str], warn: Callable[[str], None]) -> str:
    """Evaluate; the one summary line."""
    results = run_evaluation(parse_eval_args(args))
    return (f"{results['algo']} on {results['env_id']}, {Path(results['checkpoint']).name} (step {results['step']}): "
            f"mean return {results['eval_return_mean']:.2f} +/- {results['eval_return_std']:.2f} over "
            f"{results['episodes']} episodes" + (f"; video: {results['video']}" if "video" in results else "")
            + (f"; t-SNE of {results['embedded_states']} states: {results['tsne_png']}; projector: tensorboard "
               f"--logdir {results['embedding_dir']}" if "tsne_png" in results else ""))


def main(args: list[str]) -> int:
    """`rlexp eval ...`: one summary line on stdout; every error one line on stderr, exit 2 (bad input) or 1."""
    return run_subcommand("eval", EVAL_USAGE, args, evaluate_and_report)
