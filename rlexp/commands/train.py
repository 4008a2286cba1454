"""`rlexp train`: compose the config, validate it, run the job, report the result.

This is the only module that reads the Hydra config; everything it calls takes plain typed arguments. The command
line is checked before Hydra reads it (rlexp/commands/arguments.py), a resume is accepted or refused once the config
is composed (rlexp/commands/accept.py), and a many-seeds run is driven by rlexp/runners/many_seeds.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import hydra
import hydra._internal.utils as hydra_utils
import torch
from hydra._internal.hydra import Hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlexp.agents.registry import algorithms
from rlexp.commands.accept import accept_resume, accept_seeds_resume
from rlexp.commands.arguments import checked_arguments
from rlexp.commands.configstore import config_dir, register
from rlexp.commands.hydra_errors import describe, error_message
from rlexp.commands.resume import record_resumed_config
from rlexp.config.compat import kept_from_before
from rlexp.config.device import resolve_device
from rlexp.config.schema import GpuPlacement
from rlexp.config.validate import validate
from rlexp.envs.make import check_saved_env
from rlexp.errors import (
    STOP_SIGNALS,
    ConfigError,
    Interrupted,
    RunFailure,
    SweepFailed,
    TrainingInterrupted,
    signals_interrupt,
)
from rlexp.io import override_key, seed_dir
from rlexp.io.checkpoints import CheckpointManager
from rlexp.io.lock import RunDirLock, holding
from rlexp.io.logfile import stop_on_write_errors
from rlexp.io.results import results_status, write_results
from rlexp.networks.user_torso import resolve_torso
from rlexp.runners.callbacks import check_saved_callbacks
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from rlexp.runners.many_seeds import config_of_seed, train_seeds
from rlexp.sweeps import summary as sweep_summary
from rlexp.sweeps.continuation import Found, clear_attempt, found_in
from rlexp.sweeps.interrupt import interrupted_by, mark_interrupted
from rlexp.sweeps.placement import available_cpus, job_device, torch_threads

log = logging.getLogger("rlexp")

register()  # before Hydra composes: conf/ refers to the schemas by name


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data; a missing value (???) or a broken interpolation stops here."""
    try:
        return cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True,
                                                             enum_to_str=True))   # (a DictConfig's)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the config does not resolve: {str(error).splitlines()[0]}") from None


@dataclass
class JobState:
    started: bool = False   # past every check: from here on the job may write into its run directory


def train(cfg: DictConfig, run_dir: Path, state: JobState, continuing: bool = False) -> dict[str, Any]:
    """Run (or continue) one training job in `run_dir` and return its results (`continuing`: a sweep's job that
    resumes from its checkpoints, rlexp/sweeps/continuation.py)."""
    config = resolved_config(cfg)
    if continuing:
        config["resume"] = str(run_dir)
    if (config.get("optuna_trial") or {}).get("storage"):   # a search's trial: it reports to the study, may be pruned
        from rlexp.sweeps.trial_report import entry

        config["callbacks"] = [*(config.get("callbacks") or []), entry(config["optuna_trial"])]
    spec = validate(config, algorithms())
    hydra_cfg = HydraConfig.get()
    job_num = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = resolve_device(job_device(config["device"], GpuPlacement(config["gpu_placement"]), job_num, gpu_count))
    if config["resume"]:   # the run's saved config names the env: its module comes under rlexp/config/trust.py
        check_saved_env(config["env"]["id"], run_dir, config["env"].get("wrappers") or ())
        resolve_torso(config["network"].get("torso"), run_dir)   # network.torso's module, under the same rule
        check_saved_callbacks(config.get("callbacks") or [], run_dir)   # the callbacks' modules, the same rule
    seed_resumes = accept_seeds_resume(config, run_dir, device) if config["resume"] and config["seeds"] else None
    resume = accept_resume(config, run_dir, device) if config["resume"] and not config["seeds"] else None
    accepted = resume or (next(iter(seed_resumes.values())) if seed_resumes else None)
    if accepted is not None:   # a run made before a key keeps its meaning unless this command sets the key
        typed = {override_key(o).lstrip("+~") for o in hydra_cfg.overrides.task}
        for key, value in kept_from_before(accepted.bundle["config"], config, typed).items():
            log.info("%s=%s: the run was made before the key and goes on as it was (set it to change that)", key,
                     value)
    # The env, its spaces, the memory the run needs (each seed's still training, for many seeds as one model).
    seeds = [s for s in config["seeds"] or [] if seed_resumes is None or s in seed_resumes]
    with ExitStack() as unstarted:   # each eval env opened here, closed on a refusal (once it runs, a job closes it)
        jobs: list[Job] = []
        for i, seed in enumerate(config["seeds"] or []):
            if seed in seeds:
                jobs.append(Job.prepare(config_of_seed(config, seed, i), spec, device, copies=len(seeds)))
                unstarted.callback(jobs[-1].eval_env.close)
        job = jobs[0] if jobs else Job.prepare(config, spec, device)
        if not jobs:
            unstarted.callback(job.eval_env.close)
        if job_num is not None:   # a sweep's jobs: their trackers group the runs by the sweep's directory
            for each in jobs or [job]:
                each.tracking_group = str(hydra_cfg.sweep.dir)
        locks = ExitStack()
        locks.enter_context(holding(seed_dir(run_dir, seed) for seed in seeds))
        unstarted.pop_all()

    with locks:
        state.started = True
        cpus = available_cpus()
        launcher = cast("dict[str, Any]", OmegaConf.to_container(hydra_cfg.launcher, resolve=False))
        threads = torch_threads(config["torch_threads"], launcher, cpus)
        if threads is not None and threads > cpus:
            log.warning("torch_threads=%d exceeds the %d cores this job may use; using %d (more threads than cores "
                        "only make them wait for each other)", threads, cpus, cpus)
            threads = cpus
        if threads is not None:
            torch.set_num_threads(threads)
        overrides = [o for o in hydra_cfg.overrides.task if override_key(o) != "resume"]
        if resume is not None:
            CheckpointManager(run_dir / "checkpoints", 1).quarantine(resume.unreadable)
            record_resumed_config(run_dir, cfg, overrides)
            log.info("resuming from %s (step %d)", resume.path, resume.bundle["step"])
        if seed_resumes is not None:
            record_resumed_config(run_dir, cfg, overrides)
            step = next(iter(seed_resumes.values())).bundle["step"]
            for seed, seed_resume in seed_resumes.items():   # each seed's, as a single run's resume
                CheckpointManager(seed_resume.path.parent, 1).quarantine(seed_resume.unreadable, f"seed {seed}: ")
            ahead = {seed: r.ahead for seed, r in seed_resumes.items() if r.ahead is not None}
            if ahead:
                log.warning("seeds %s have newer checkpoints of this batch (%s), but its seeds train in step: they "
                            "continue from step %d with the others and make them again", sorted(ahead),
                            ", ".join(f"seed {s}: step {n}" for s, n in ahead.items()), step)
            log.info("resuming seeds %s from step %d", sorted(seed_resumes), step)
        tuned, env_choice = hydra_cfg.runtime.choices.get("tuned"), hydra_cfg.runtime.choices.get("env")
        if tuned and (Path(config_dir()) / "tuned" / f"{tuned}.yaml").is_file() \
                and not preset_fits(env_choice, config["env"]["id"]):
            log.warning("the preset tuned/%s was made for %s but env.id=%s; pick an env without a preset, or "
                        "override its keys", tuned, env_choice, config["env"]["id"])
        with StopRequest() as stop:
            if jobs:
                return train_seeds(jobs, spec, run_dir, stop, overrides, config["seeds"],
                                   {seed: r.bundle for seed, r in (seed_resumes or {}).items()}, error_message)
            return job.run(run_dir, stop, overrides, resume.bundle if resume is not None else None)


def preset_fits(env_choice: str | None, env_id: str) -> bool:
    """Whether env.id is the task a tuned preset of the env file `env_choice` (conf/tuned/<algo>_<env_choice>.yaml)
    was made for: the id that file itself sets (the file's name need not be an id: env=atari sets ALE/Pong-v5)."""
    env_file = Path(config_dir()) / "env" / f"{env_choice}.yaml"
    own_id = cast(DictConfig, OmegaConf.load(env_file)).get("id") if env_file.is_file() else env_choice
    if env_id == own_id:
        return True
    # conf/env/atari.yaml, and so every tuned/<algo>_atari preset, is made for each ALE game with the same
    # preprocessing (the paper's one set of hyperparameters for all 49 games), not only the game its id names:
    # `env=atari env.id=ALE/Breakout-v5` is how it is meant to be used, so an ALE id under it fits.
    return isinstance(own_id, str) and own_id.startswith("ALE/") and env_id.startswith("ALE/")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def hydra_task(cfg: DictConfig) -> dict[str, Any]:
    """One Hydra job; returns its results (results.json's: `status`, `eval_return_mean`, a many-seeds run's `seeds`),
    what a sweeper scores (rlexp/sweeps/search.py).

    Every outcome of a job that started is recorded in <run_dir>/results.json (`status`: completed, failed or
    interrupted); so is a new run's failure to start (a sweep's summary reports it). A resume that is refused
    leaves the run directory as it was. A single run reports a failure as one line and exits non-zero. In a
    multirun a failed job is logged and returns its status, so the other jobs still run and the sweep summary
    reports it; an interrupted job is recorded, returns its status and tells the sweep, whose other jobs then do
    not start (rlexp/sweeps/interrupt.py).
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir) if multirun else None
    state = JobState()
    new_run = cfg.get("resume") is None   # Hydra made this directory for this job
    started = time.perf_counter()
    stop_on_write_errors(logging.getLogger())   # train.log on a full disk ends the run in one line
    # A launcher's worker process (joblib's): rlexp's entry point, which makes SIGTERM an exception, did not start
    # it, and the default SIGTERM of an idle worker would break the launcher's pool, stopping the sweep with a
    # traceback and no summary.
    worker = multirun and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN)
    try:
        # A signal before the training loop takes signals in (StopRequest), or after it, raises Interrupted here.
        with signals_interrupt(), RunDirLock(run_dir):
            stopped_by = interrupted_by(sweep_dir) if sweep_dir is not None else None
            # A sweep run again with its own command (rlexp/sweeps/continuation.py): the job as the earlier run left it
            situation = found_in(run_dir) if multirun and new_run else Found.NEW
            if situation is Found.FINISHED:
                log.info("job %s: finished by an earlier run of this sweep; kept as it is", hydra_cfg.job.num)
                return cast("dict[str, Any]", json.loads((run_dir / "results.json").read_text()))
            if stopped_by is not None:   # a signal stopped the sweep before this job began: it does not start
                if new_run and situation is Found.NEW:   # (an earlier run's job is left as it was)
                    write_results(run_dir / "results.json", {"status": "interrupted", "step": 0, "error": (
                        f"not run: the sweep was stopped by {signal.Signals(stopped_by).name} before this job "
                        f"started")})
                return {"status": "interrupted"}
            if situation is Found.RESTART:   # killed before its first checkpoint: nothing to resume
                clear_attempt(run_dir)
            elif situation is Found.RESUMABLE:
                new_run = False   # (a refused continuation leaves the job's run as it was)
                log.info("job %s: continuing its run from %s", hydra_cfg.job.num, run_dir)
            return train(cfg, run_dir, state, continuing=situation is Found.RESUMABLE)
    except (TrainingInterrupted, Interrupted) as stop:
        trained = any(run_dir.glob("checkpoints/*.pt")) or any(run_dir.glob("seed_*/checkpoints/*.pt"))
        if isinstance(stop, TrainingInterrupted) and stop.checkpoint is not None:
            record = {"status": "interrupted", "error": str(stop), "step": stop.step}
            line = f"{stop}; continue with: rlexp train resume={run_dir}"
        elif new_run and not trained:
            # Setup (the env, the memory check, many seeds' directories and agents) writes no checkpoint: the
            # directory records the interrupt and holds no training, so the same command may run there again.
            name = signal.Signals(stop.signum).name
            record = {"status": "interrupted", "step": 0,
                      "error": f"interrupted by {name} before training started; nothing was trained"}
            line = f"{record['error']}; run the same command again to start it"
        elif state.started:
            record = {"status": "interrupted", "error": f"{stop} ({'while training' if trained else 'at setup'})"}
            line = f"{stop}; {last_checkpoints(run_dir, cfg.get('seeds'))}; continue with: rlexp train " \
                   f"resume={run_dir}"
        else:   # a resume interrupted before it was accepted leaves its run as it was
            record = None
            line = f"{stop} before the resume started; the run is as it was: rlexp train resume={run_dir}"
        if record is not None and results_status(run_dir) != "completed":
            try:
                write_results(run_dir / "results.json", record)
            except RunFailure as unwritten:
                line = f"{line}; {unwritten}"
        if sweep_dir is None:
            print(f"rlexp train: {line}", file=sys.stderr)
            raise SystemExit(128 + stop.signum) from None
        # In a sweep, the job is recorded and the sweep told: no other job starts, and its summary is still made.
        mark_interrupted(sweep_dir, stop.signum)
        log.warning("job %s: %s", hydra_cfg.job.num, line)
        return {"status": "interrupted"}
    except KeyboardInterrupt:  # a second Ctrl-C while finishing the step or saving
        if state.started:
            write_results(run_dir / "results.json", {"status": "interrupted", "error": "interrupted twice"})
        print(f"rlexp train: interrupted twice: stopped at once; {last_checkpoints(run_dir, cfg.get('seeds'))}",
              file=sys.stderr)
        if sweep_dir is not None:
            mark_interrupted(sweep_dir, signal.SIGINT)
        raise SystemExit(130) from None
    except Exception as error:
        described = describe(error)
        message = error_message(error)
        if state.started and not run_dir.is_dir():
            # Deleted while the job ran: the first write that failed stopped it, and there is nothing to record.
            described = (1, f"the run directory {run_dir} is gone (deleted while the run was training); the run "
                            f"stopped at its first write there that failed, and its checkpoints went with it")
            message = described[1]
        elif state.started or new_run:
            try:
                write_results(run_dir / "results.json", {**getattr(error, "results", {}), "status": "failed",
                                                         "error": message,
                                                         "wall_time_s": round(time.perf_counter() - started, 3)})
            except RunFailure as unwritten:   # the disk that failed the run fails its record too
                message = f"{message}; {unwritten} either"
                if described is not None:
                    described = (described[0], message)
        if multirun:
            if described:
                log.error("job %s failed: %s", hydra_cfg.job.num, message)
            else:
                log.exception("job %s failed", hydra_cfg.job.num)
            return {"status": "failed", "error": message}
        if described is not None and os.environ.get("HYDRA_FULL_ERROR") != "1":
            print(f"rlexp train: error: {described[1]}", file=sys.stderr)
            raise SystemExit(described[0]) from None
        exit_with(error)  # a bug: Hydra shows the traceback
    finally:
        if worker:   # idle between jobs, it ignores them: the sweep's process collects the jobs and stops the sweep
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)


def last_checkpoints(run_dir: Path, seeds: Sequence[int] | None) -> str:
    """Where a stopped run would continue from: its newest checkpoint, or each seed's of a many-seeds run (each
    seed keeps its own, in seed_<s>/checkpoints/)."""
    def newest(directory: Path) -> str:
        return str(CheckpointManager(directory / "checkpoints", 1).latest() or "none")

    if not seeds:
        return f"the last checkpoint is {newest(run_dir)}"
    return "the last checkpoints are " + "; ".join(f"seed {seed}: {newest(seed_dir(run_dir, seed))}" for seed in seeds)


def report(func: Any) -> Any:
    """Replaces Hydra's run_and_report, which reports the errors raised outside a job (composing the config,
    parsing overrides, creating the run directory): each becomes one line on stderr and a non-zero exit (2: bad
    input, 1: failed jobs). A bug still gets Hydra's trimmed traceback, and HYDRA_FULL_ERROR=1 the full one."""
    try:
        return func()
    except BrokenPipeError:
        raise  # the reader of our output went away (`rlexp train --help | head`): rlexp.commands ends quietly
    except Exception as error:
        if type(error).__name__ == "TerminatedWorkerError" and sweep_summary.running:
            # joblib's launcher: the OS killed a worker (its OOM killer), and joblib ended the other jobs with it
            raise sweep_summary.summary_after_launcher_failure(
                sweep_summary.running[0], "a worker process of the joblib launcher was killed while it ran "
                "a job (by the OS's out-of-memory killer?), and joblib stopped the sweep's other jobs with it") \
                from None
        def bug(error: Exception = error) -> Any:
            return _hydra_report(lambda: _reraise(error))

        exit_with(error, bug=bug)


def exit_with(error: Exception, bug: Callable[[], Any] | None = None) -> NoReturn:
    """The one line and exit code of an error a user causes or meets. Anything else is a bug: `bug()` reports it
    (by default the error goes on up, with its traceback), and so is everything with HYDRA_FULL_ERROR=1."""
    described = describe(error)
    if described is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
        if bug is not None:
            bug()
        raise error
    print(f"rlexp train: error: {described[1]}", file=sys.stderr)
    raise SystemExit(described[0]) from None


def _reraise(error: Exception) -> NoReturn:
    raise error


_hydra_report = hydra_utils.run_and_report
_hydra_get_mode = Hydra.get_mode

#: Command-line flags that bring config files other than rlexp's conf/ (which may set hydra.mode).
OTHER_CONFIGS = ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name")


def mode_from_flags(args: list[str]) -> Callable[..., Any]:
    """Hydra's get_mode for this command line. Hydra composes the whole config once only to read `hydra.mode`, then
    composes it again to run (about 0.3 s of every run's start). rlexp's conf/ never sets hydra.mode (tests/
    test_config.py checks every file), so unless the command line sets it or brings other config files, the
    composed value is None and Hydra takes the mode from --multirun: that answer is given without composing."""
    own = not any(arg.split("=", 1)[0] in OTHER_CONFIGS for arg in args)

    def get_mode(self: Hydra, config_name: str | None, overrides: list[str]) -> Any:
        if own and not any(override.lstrip("+~").startswith("hydra.mode") for override in overrides):
            return None
        return _hydra_get_mode(self, config_name, overrides)

    return get_mode


def main() -> None:
    """`rlexp train [overrides]`: Hydra's command line, checked first, with resume expansion and one-line errors."""
    hydra_utils.run_and_report = report  # Hydra 1.3 looks it up at call time; see report()
    args = sys.argv[1:]
    try:
        args = checked_arguments(args)
    except ConfigError as error:
        print(f"rlexp train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv = [sys.argv[0], *args]
    Hydra.get_mode = mode_from_flags(args)   # type: ignore[method-assign]
    try:
        hydra_task()
    except SweepFailed as failed:
        print(f"rlexp train: error: {failed}", file=sys.stderr)
        raise SystemExit(failed.exit_code) from None
    except ValueError as error:  # Hydra checks some of its own flags before run_and_report
        exit_with(error)


if __name__ == "__main__":
    main()
