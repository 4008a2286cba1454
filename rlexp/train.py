"""`rlexp train`: compose the config, validate it, build everything, run the loop, report the result.

This is the only module that reads the Hydra config; everything it builds takes plain typed arguments.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import hydra._internal.utils as hydra_utils
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlexp import schema
from rlexp.build import build_agent, build_buffer, make_envs, seed_everything
from rlexp.checkpoint import CheckpointManager
from rlexp.config import resolve_device, validate
from rlexp.envs import space_info
from rlexp.errors import ConfigError, RunFailure, TrainingInterrupted, describe, one_line
from rlexp.faults import StopRequest
from rlexp.loop import LoopSettings, run
from rlexp.metrics import RunLogger, write_results
from rlexp.placement import GpuPlacement, available_cpus, job_device, torch_threads
from rlexp.resume import config_conflicts, record_resumed_config, resume_arguments
from rlexp.sweep import SweepSummary

log = logging.getLogger("rlexp")

schema.register()  # before Hydra composes: conf/ refers to the schemas by name


def config_dir() -> str:
    """conf/ at the top of a source checkout (editable installs); the copy inside the package otherwise."""
    source_tree = Path(__file__).resolve().parent.parent / "conf"
    return str(source_tree if source_tree.is_dir() else Path(__file__).resolve().parent / "conf")


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data; a missing value (???) or a broken interpolation stops here."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True, enum_to_str=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the config does not resolve: {str(error).splitlines()[0]}") from None


def load_resume_checkpoint(config: dict[str, Any], run_dir: Path,
                           checkpoints: CheckpointManager) -> dict[str, Any]:
    """The newest readable checkpoint of the run being resumed, after checking the new config may continue it."""
    if Path(config["resume"]).resolve() != run_dir.resolve():
        raise ConfigError(f"resume={config['resume']} but Hydra's run directory is {run_dir}; start resumed runs "
                          f"with `rlexp train resume=<run_dir>`, which writes into that directory")
    bundle, path = checkpoints.load_latest()
    conflicts = config_conflicts(bundle["config"], config)
    if conflicts:
        raise ConfigError(f"resume={config['resume']}: the run cannot continue with a different "
                          f"{', '.join(conflicts)}; only total_steps, eval.*, checkpoint.*, log.*, device and "
                          f"torch_threads may change")
    if bundle["step"] >= config["total_steps"]:
        raise ConfigError(f"resume={config['resume']}: the run is already at step {bundle['step']} of "
                          f"total_steps={config['total_steps']}; pass a larger total_steps to extend it")
    log.info("resuming from %s (step %d)", path, bundle["step"])
    return bundle


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run (or continue) one training job in `run_dir` and return its results."""
    started = time.perf_counter()
    config = resolved_config(cfg)
    validate(config)
    algo, env_cfg = config["algo"], config["env"]
    hydra_cfg = HydraConfig.get()
    launcher = OmegaConf.to_container(hydra_cfg.launcher, resolve=False)
    job_num = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = resolve_device(job_device(config["device"], GpuPlacement(config["gpu_placement"]), job_num, gpu_count))
    threads = torch_threads(config["torch_threads"], launcher, available_cpus())
    if threads is not None:
        torch.set_num_threads(threads)
    checkpoints = CheckpointManager(run_dir / "checkpoints", config["checkpoint"]["keep"])
    resume = load_resume_checkpoint(config, run_dir, checkpoints) if config["resume"] else None
    if resume is not None:
        record_resumed_config(run_dir, cfg, list(HydraConfig.get().overrides.task))

    env, eval_env = make_envs(env_cfg, 2)
    spaces = space_info(env, algo["name"], env_cfg["id"])

    seed_everything(config["seed"])
    buffer = build_buffer(algo, spaces, config["total_steps"], device, config["seed"])
    agent = build_agent(algo, spaces, config["network"]["hidden_sizes"], config["total_steps"], device,
                        config["seed"], buffer)
    if resume is not None:
        agent.load_state_dict(resume["agent"])

    tuned, env_choice = hydra_cfg.runtime.choices.get("tuned"), hydra_cfg.runtime.choices.get("env")
    if tuned and env_cfg["id"] != env_choice and (Path(config_dir()) / "tuned" / f"{tuned}.yaml").is_file():
        log.warning("the preset tuned/%s was made for %s but env.id=%s; pick an env without a preset, or "
                    "override its keys", tuned, env_choice, env_cfg["id"])
    log.info("%s on %s, %d steps, seed %d, device %s, %d torch threads -> %s", algo["name"], env_cfg["id"],
             config["total_steps"], config["seed"], device, torch.get_num_threads(), run_dir)
    start_step = resume["step"] if resume is not None else 0
    logger = RunLogger(run_dir, config["total_steps"], start_step, config["log"]["progress"], config)
    settings = LoopSettings(
        total_steps=config["total_steps"], learning_starts=algo["learning_starts"], train_freq=algo["train_freq"],
        train_freq_unit=algo["train_freq_unit"], gradient_steps=algo["gradient_steps"], batch_size=algo["batch_size"],
        eval_every=config["eval"]["every"], eval_episodes=config["eval"]["episodes"],
        checkpoint_every=config["checkpoint"]["every"], log_every=config["log"]["every"], seed=config["seed"],
    )
    meta = {"algo": algo["name"], "env_id": env_cfg["id"], "config": config}
    completed = False
    try:
        with StopRequest() as stop:
            result = run(agent, env, eval_env, buffer, settings, logger, checkpoints, meta, stop, resume)
        completed = True
    except RunFailure as error:
        last = checkpoints.latest()
        raise type(error)(f"{error}; " + (f"the last good checkpoint is {last}" if last else
                                          "no checkpoint had been written yet")) from None
    finally:
        logger.close(completed)
        env.close()
        eval_env.close()

    results = {
        "status": "completed",
        "algo": algo["name"],
        "env_id": env_cfg["id"],
        "seed": config["seed"],
        "device": str(device),
        "eval_return_mean": float(result.eval_returns.mean()),
        "eval_return_std": float(result.eval_returns.std()),
        "eval_returns": [float(r) for r in result.eval_returns],
        "best_eval_return": result.best_eval_return,
        "total_steps": result.steps,
        "episodes": result.episodes,
        "resumed_from_step": start_step,
        "train_time_s": round(result.wall_time_s, 3),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "sps": round(result.sps, 1),
    }
    write_results(run_dir / "results.json", results)
    log.info("done: eval return %.2f +/- %.2f over %d episodes, %.0f SPS, %.1f s -> %s",
             results["eval_return_mean"], results["eval_return_std"], len(result.eval_returns), results["sps"],
             results["wall_time_s"], run_dir)
    return results


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def hydra_task(cfg: DictConfig) -> float:
    """One Hydra job; returns the final mean evaluation return, the objective sweepers maximise.

    Every outcome is recorded in <run_dir>/results.json (`status`: completed, failed or interrupted).
    A single run reports a failure as one line and exits non-zero. In a multirun a failed job is logged and
    returns NaN, so the other jobs still run and the sweep summary (rlexp.sweep) reports it; an interrupt
    stops the sweep.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    started = time.perf_counter()
    try:
        return train(cfg, run_dir)["eval_return_mean"]
    except TrainingInterrupted as stop:
        write_results(run_dir / "results.json", {"status": "interrupted", "error": str(stop), "step": stop.step})
        print(f"rlexp train: {stop}; continue with: rlexp train resume={run_dir}", file=sys.stderr)
        # SystemExit passes through Hydra's job runner, so in a multirun the sweep stops here.
        raise SystemExit(stop.exit_code) from None
    except KeyboardInterrupt:  # a second Ctrl-C while finishing the step or saving
        last = CheckpointManager(run_dir / "checkpoints", 1).latest()
        write_results(run_dir / "results.json", {"status": "interrupted", "error": "interrupted twice"})
        print(f"rlexp train: interrupted twice: stopped at once; the last checkpoint is {last or 'none'}",
              file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:
        described = describe(error)
        message = described[1] if described else one_line(f"{type(error).__name__}: {error}")
        write_results(run_dir / "results.json", {"status": "failed", "error": message,
                                                 "wall_time_s": round(time.perf_counter() - started, 3)})
        if multirun:
            if described:
                log.error("job %s failed: %s", hydra_cfg.job.num, message)
            else:
                log.exception("job %s failed", hydra_cfg.job.num)
            return float("nan")
        if described is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise  # a bug: Hydra shows the traceback
        print(f"rlexp train: error: {message}", file=sys.stderr)
        raise SystemExit(described[0]) from None


def report(func: Any) -> Any:
    """Replaces Hydra's run_and_report, which reports the errors raised outside a job (composing the config,
    parsing overrides, the sweep summary): each becomes one line on stderr and a non-zero exit (2: bad input,
    1: failed jobs). A bug still gets Hydra's trimmed traceback, and HYDRA_FULL_ERROR=1 the full one."""
    try:
        return func()
    except Exception as error:
        described = describe(error)
        if described is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            return _hydra_report(lambda: _reraise(error))
        code, message = described
        print(f"rlexp train: error: {message}", file=sys.stderr)
        raise SystemExit(code) from None


def _reraise(error: Exception) -> None:
    raise error


_hydra_report = hydra_utils.run_and_report


def main() -> None:
    """`rlexp train [overrides]`: Hydra's command line, with resume expansion and one-line errors."""
    hydra_utils.run_and_report = report  # Hydra 1.3 looks it up at call time; see report()
    try:
        sys.argv = [sys.argv[0], *resume_arguments(sys.argv[1:])]
    except ConfigError as error:
        print(f"rlexp train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        hydra_task()
    except ValueError as error:  # Hydra checks its own flags before run_and_report
        described = describe(error)
        if described is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise  # a bug, or an error report() already passed on in full
        print(f"rlexp train: error: {described[1]}", file=sys.stderr)
        raise SystemExit(described[0]) from None
    if SweepSummary.failure is not None:
        print(f"rlexp train: error: {SweepSummary.failure}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
