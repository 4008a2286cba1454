"""`rlexp train`: compose the config, validate it, run the job, report the result.

This is the only module that reads the Hydra config; everything it calls takes plain typed arguments.
"""

from __future__ import annotations

import json
import logging
import os
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
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlexp.agents.registry import algorithms
from rlexp.commands.configstore import register
from rlexp.commands.hydra_errors import describe, unknown_option
from rlexp.commands.resume import record_resumed_config, resume_arguments, split_flags
from rlexp.config.compat import config_conflicts, may_change
from rlexp.config.device import resolve_device
from rlexp.config.schema import GpuPlacement
from rlexp.config.validate import FRAMES_REFUSED, validate
from rlexp.errors import CheckpointError, ConfigError, RunFailure, SweepFailed, TrainingInterrupted, one_line
from rlexp.io import override_key, seed_dir, seed_runs
from rlexp.io.checkpoints import CheckpointManager, load_checkpoint, periodic_step
from rlexp.io.lock import RunDirLock, holding
from rlexp.io.results import results_status, write_results
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from rlexp.sweeps.placement import available_cpus, job_device, torch_threads

log = logging.getLogger("rlexp")

register()  # before Hydra composes: conf/ refers to the schemas by name

#: Config groups whose option may be absent: Hydra skips a missing one silently, so rlexp checks them itself.
OPTIONAL_GROUPS = ("tuned", "experiment", "hparams_search")


def config_dir() -> str:
    """conf/ at the top of a source checkout (editable installs); the copy inside the package otherwise."""
    source_tree = Path(__file__).resolve().parents[2] / "conf"
    return str(source_tree if source_tree.is_dir() else Path(__file__).resolve().parents[1] / "conf")


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data; a missing value (???) or a broken interpolation stops here."""
    try:
        return cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True,
                                                             enum_to_str=True))   # (a DictConfig's)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the config does not resolve: {str(error).splitlines()[0]}") from None


@dataclass
class Resume:
    bundle: dict[str, Any]
    path: Path
    unreadable: list[tuple[Path, str]]


def accept_resume(config: dict[str, Any], run_dir: Path, device: torch.device) -> Resume:
    """The newest readable checkpoint of the run being resumed, once the new config may continue it. Reads only:
    a refused resume leaves the run directory as it was."""
    where = f"resume={config['resume']}"
    if Path(config["resume"]).resolve() != run_dir.resolve():
        raise ConfigError(f"{where} but Hydra's run directory is {run_dir}; start resumed runs with "
                          f"`rlexp train resume=<run_dir>`, which writes into that directory")
    check_same_seeds(config, run_dir, where)
    try:
        bundle, path, unreadable = CheckpointManager(run_dir / "checkpoints", 1).load_latest()
    except CheckpointError as error:
        raise ConfigError(f"{where}: {error}") from None
    check_resumable(bundle, config, where, device, results_status(run_dir) == "completed")
    return Resume(bundle, path, unreadable)


def check_same_seeds(config: dict[str, Any], run_dir: Path, where: str) -> None:
    """A resumed run keeps its `seeds`: a many-seeds run continues every one of its seeds, a single run stays one
    (each seed's checkpoint is a single run's, so the checkpoints alone cannot tell)."""
    try:
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    except Exception:   # no readable config: the checkpoint's comparison is what remains
        return
    old = saved.get("seeds") if isinstance(saved, dict) else None
    if old != config["seeds"]:
        raise ConfigError(f"{where}: the run cannot continue with a different seeds: {old} -> {config['seeds']}; "
                          f"resume it with its own (drop seeds=), or train other seeds as a new run")


def check_resumable(bundle: dict[str, Any], config: dict[str, Any], where: str, device: torch.device,
                    finished: bool) -> None:
    """Whether the new config may continue the checkpoint `bundle` (of a run that has `finished`, or not): a
    ConfigError saying why not. A run stopped after its last checkpoint but before its final evaluation and
    results.json resumes at its budget's end: it only finishes (evaluates, writes final.pt and results.json)."""
    conflicts = config_conflicts(bundle["config"], config)
    if conflicts:
        raise ConfigError(f"{where}: the run cannot continue with a different {', '.join(conflicts)}; only "
                          f"{may_change()} may change")
    if bundle["step"] > config["total_steps"] or (bundle["step"] == config["total_steps"] and finished):
        raise ConfigError(f"{where}: the run is already at step {bundle['step']} of total_steps="
                          f"{config['total_steps']}; pass a larger total_steps to extend it")
    ended = ended_early(bundle, config)
    if ended:
        raise ConfigError(f"{where}: {ended}")
    trained_on = torch.device(bundle["device"])
    if trained_on.type != device.type:
        raise ConfigError(f"{where}: the run trained on {trained_on.type} and its random generators cannot continue "
                          f"exactly on {device.type}; resume it with device={trained_on.type} (a checkpoint "
                          f"evaluates anywhere: rlexp eval)")


def accept_seeds_resume(config: dict[str, Any], run_dir: Path, device: torch.device) -> dict[int, Resume]:
    """The checkpoints a many-seeds run continues from, by seed: every seed still training (not failed, not ended
    early) from the newest step all of them have readable (they learn in lockstep, so they resume at one step; a
    kill during a save may have left some seeds a step ahead). Reads only, as `accept_resume`."""
    where = f"resume={config['resume']}"
    if Path(config["resume"]).resolve() != run_dir.resolve():
        raise ConfigError(f"{where} but Hydra's run directory is {run_dir}; start resumed runs with "
                          f"`rlexp train resume=<run_dir>`, which writes into that directory")
    check_same_seeds(config, run_dir, where)
    managers: dict[int, CheckpointManager] = {}
    finished: dict[int, bool] = {}
    at_budget: set[int] = set()   # finished seeds whose newest checkpoint is at this budget's end
    for index, seed in enumerate(config["seeds"]):
        status = results_status(seed_dir(run_dir, seed))
        if status == "failed":
            continue   # its failure stands: it does not train on
        manager = CheckpointManager(seed_dir(run_dir, seed) / "checkpoints", 1)
        newest = manager.periodic()
        if newest and ended_early(load_checkpoint_quietly(newest[-1]), config_of_seed(config, seed, index)):
            continue   # solved, or its episode budget reached: it is done
        managers[seed], finished[seed] = manager, status == "completed"
        if finished[seed] and newest and periodic_step(newest[-1]) == config["total_steps"]:
            at_budget.add(seed)
    if not all(finished.values()):
        # Stopped while the seeds finished one after another: those that finished at this budget are done.
        managers = {seed: m for seed, m in managers.items() if seed not in at_budget}
    if not managers:
        raise ConfigError(f"{where}: no seed of this run can train on (each failed or ended)")
    steps = set.intersection(*(set(m.step_numbers()) for m in managers.values()))
    for step in sorted(steps, reverse=True):
        try:
            bundles = {seed: m.load_step(step) for seed, m in managers.items()}
        except CheckpointError:
            continue
        for index, seed in enumerate(config["seeds"]):
            if seed in bundles:
                check_resumable(bundles[seed], config_of_seed(config, seed, index), f"{where} (seed {seed})", device,
                                finished[seed])
        return {seed: Resume(bundle, managers[seed].directory / f"step_{step}.pt", []) for seed, bundle in
                bundles.items()}
    raise ConfigError(f"{where}: the seeds {sorted(managers)} have no step at which every one has a readable "
                      f"checkpoint; resume each from its own directory: rlexp train resume={run_dir}/seed_<s>")


def load_checkpoint_quietly(path: Path) -> dict[str, Any]:
    try:
        return load_checkpoint(path)
    except CheckpointError:
        return {}


def ended_early(bundle: dict[str, Any], config: dict[str, Any]) -> str | None:
    """Why a checkpoint's run has already ended under the new config's stop rules, and how to go on (None: it
    has not)."""
    from rlexp.runners.stopping import StopRules, StopWatch

    state = bundle.get("context", {}).get("stop")
    if state is None:
        return None
    watch = StopWatch(StopRules.from_config(config))
    watch.load_state_dict(state)
    if watch.reason() == "solved":
        assert watch.solved is not None   # what it was solved by
        rule = watch.solved.rule
        return (f"the run ended {watch.solved.describe()}; raise {rule} (or set {rule}=null) to train it further")
    if watch.reason() == "total_episodes":
        return (f"the run has finished {watch.episodes} episodes of total_episodes={config['total_episodes']}; pass "
                f"a larger total_episodes to extend it")
    return None


@dataclass
class JobState:
    started: bool = False   # past every check: from here on the job may write into its run directory


def train(cfg: DictConfig, run_dir: Path, state: JobState) -> dict[str, Any]:
    """Run (or continue) one training job in `run_dir` and return its results."""
    config = resolved_config(cfg)
    spec = validate(config, algorithms())
    hydra_cfg = HydraConfig.get()
    job_num = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = resolve_device(job_device(config["device"], GpuPlacement(config["gpu_placement"]), job_num, gpu_count))
    seed_resumes = accept_seeds_resume(config, run_dir, device) if config["resume"] and config["seeds"] else None
    resume = accept_resume(config, run_dir, device) if config["resume"] and not config["seeds"] else None
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
        if jobs and job.spaces.frames:   # an env's image frames (Atari's are refused by validate, before any env)
            raise ConfigError(FRAMES_REFUSED + ",".join(map(str, config["seeds"])))
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
            log.info("resuming seeds %s from step %d", sorted(seed_resumes), step)
        tuned, env_choice = hydra_cfg.runtime.choices.get("tuned"), hydra_cfg.runtime.choices.get("env")
        if tuned and (Path(config_dir()) / "tuned" / f"{tuned}.yaml").is_file() \
                and not preset_fits(env_choice, config["env"]["id"]):
            log.warning("the preset tuned/%s was made for %s but env.id=%s; pick an env without a preset, or "
                        "override its keys", tuned, env_choice, config["env"]["id"])
        with StopRequest() as stop:
            if jobs:
                return train_seeds(jobs, spec, run_dir, stop, overrides, config["seeds"],
                                   {seed: r.bundle for seed, r in (seed_resumes or {}).items()})
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


def config_of_seed(config: dict[str, Any], seed: int, index: int) -> dict[str, Any]:
    """One seed's config in a many-seeds run: a single run's (its progress shown for the first seed only)."""
    log_cfg = {**config["log"], "progress": config["log"]["progress"] if index == 0 else "none"}
    return {**config, "seed": seed, "seeds": None, "log": log_cfg}


def train_seeds(jobs: list[Job], spec: Any, run_dir: Path, stop: StopRequest, overrides: list[str],
                all_seeds: list[int], resumes: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Many seeds as one model (rlexp/runners/seeds.py): each seed's run in <run_dir>/seed_<s>/, with the .hydra/
    files of a single run of that seed (so `rlexp plot`, `rlexp eval` and `resume=` treat it as one), from its
    checkpoint in `resumes` when resuming; the results of all the seeds (those that ended before too) in
    <run_dir>/results.json."""
    from rlexp.agents.compiled import compile_agent
    from rlexp.runners.faults import HeldStop
    from rlexp.runners.seeds import run_in_lockstep

    started = time.perf_counter()
    held = HeldStop(stop)   # every seed takes a signal in at the same step
    seed_dirs, steps = [], []
    for job in jobs:
        seed = job.config["seed"]
        directory = seed_dir(run_dir, seed)
        seed_overrides = [o for o in overrides if override_key(o) not in ("seeds", "seed")] + [f"seed={seed}"]
        (directory / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(job.config), directory / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.create(seed_overrides), directory / ".hydra" / "overrides.yaml")
        seed_dirs.append(directory)
        steps.append(job.steps(directory, held, seed_overrides, resumes.get(seed)))
    seeds = [job.config["seed"] for job in jobs]
    log.info("%d seeds as one model: %s -> %s/seed_<s>", len(seeds), seeds, run_dir)
    config = jobs[0].config
    for job in jobs:   # the batched agent compiles (compile=), not each seed's
        job.compiles = False
    outcomes = run_in_lockstep(seeds, steps, lambda agents: compile_agent(
        spec.members(agents), config["compile"], config["compile_mode"], jobs[0].device), held)
    for outcome, directory in zip(outcomes, seed_dirs):
        if isinstance(outcome.error, TrainingInterrupted):
            write_results(directory / "results.json", {"status": "interrupted", "error": str(outcome.error),
                                                       "step": outcome.error.step})
        elif outcome.error is not None:
            described = describe(outcome.error) if isinstance(outcome.error, Exception) else None
            message = described[1] if described else one_line(f"{type(outcome.error).__name__}: {outcome.error}")
            write_results(directory / "results.json", {"status": "failed", "error": message})
    interrupted = [o.error for o in outcomes if isinstance(o.error, TrainingInterrupted)]
    if interrupted:
        raise interrupted[0]
    per_seed: dict[str, Any] = {}
    for seed in all_seeds:
        results_file = seed_dir(run_dir, seed) / "results.json"
        results = json.loads(results_file.read_text()) if results_file.is_file() else {"status": "no result"}
        per_seed[str(seed)] = {key: results[key] for key in ("status", "eval_return_mean", "error") if key in results}
    returns = [row["eval_return_mean"] for row in per_seed.values() if row["status"] == "completed"]
    failed = [int(seed) for seed, row in per_seed.items() if row["status"] != "completed"]
    summary = {"status": "completed" if not failed else "failed", "seeds": per_seed,
               "eval_return_mean": sum(returns) / len(returns) if returns else float("nan"),
               "wall_time_s": round(time.perf_counter() - started, 3)}
    if failed:
        summary["error"] = f"seeds {failed} failed (see their results.json); the others completed"
    write_results(run_dir / "results.json", summary)
    log.info("seeds: %s", ", ".join(f"{seed} {row['status']}" + (f" {row['eval_return_mean']:.2f}"
                                                                   if row.get("eval_return_mean") is not None else "")
                                    for seed, row in per_seed.items()))
    if failed:   # exit 1, with the seeds' table kept in results.json
        error = RunFailure(summary["error"])
        error.results = summary   # type: ignore[attr-defined]
        raise error
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def hydra_task(cfg: DictConfig) -> float:
    """One Hydra job; returns the final mean evaluation return, the objective sweepers maximise.

    Every outcome of a job that started is recorded in <run_dir>/results.json (`status`: completed, failed or
    interrupted); so is a new run's failure to start (a sweep's summary reports it). A resume that is refused
    leaves the run directory as it was. A single run reports a failure as one line and exits non-zero. In a
    multirun a failed job is logged and returns NaN, so the other jobs still run and the sweep summary reports
    it; an interrupt stops the sweep.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    state = JobState()
    new_run = cfg.get("resume") is None   # Hydra made this directory for this job
    started = time.perf_counter()
    try:
        with RunDirLock(run_dir):
            return train(cfg, run_dir, state)["eval_return_mean"]
    except TrainingInterrupted as stop:
        write_results(run_dir / "results.json", {"status": "interrupted", "error": str(stop), "step": stop.step})
        print(f"rlexp train: {stop}; continue with: rlexp train resume={run_dir}", file=sys.stderr)
        # SystemExit passes through Hydra's job runner, so in a multirun the sweep stops here.
        raise SystemExit(stop.exit_code) from None
    except KeyboardInterrupt:  # a second Ctrl-C while finishing the step or saving
        if state.started:
            write_results(run_dir / "results.json", {"status": "interrupted", "error": "interrupted twice"})
        print(f"rlexp train: interrupted twice: stopped at once; {last_checkpoints(run_dir, cfg.get('seeds'))}",
              file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:
        described = describe(error)
        message = described[1] if described else one_line(f"{type(error).__name__}: {error}")
        if state.started or new_run:
            write_results(run_dir / "results.json", {**getattr(error, "results", {}), "status": "failed",
                                                     "error": message,
                                                     "wall_time_s": round(time.perf_counter() - started, 3)})
        if multirun:
            if described:
                log.error("job %s failed: %s", hydra_cfg.job.num, message)
            else:
                log.exception("job %s failed", hydra_cfg.job.num)
            return float("nan")
        exit_with(error)  # a bug: Hydra shows the traceback


def last_checkpoints(run_dir: Path, seeds: Sequence[int] | None) -> str:
    """Where a stopped run would continue from: its newest checkpoint, or each seed's of a many-seeds run (each
    seed keeps its own, in seed_<s>/checkpoints/)."""
    def newest(directory: Path) -> str:
        return str(CheckpointManager(directory / "checkpoints", 1).latest() or "none")

    if not seeds:
        return f"the last checkpoint is {newest(run_dir)}"
    return "the last checkpoints are " + "; ".join(f"seed {seed}: {newest(seed_dir(run_dir, seed))}" for seed in seeds)


# --- before Hydra: the command line ---------------------------------------------------------------------------

def check_flags(args: list[str]) -> None:
    """Hydra's own flags, parsed by Hydra's parser, whose mistakes would print argparse's usage block."""
    parser = hydra_utils.get_args_parser()

    def refuse(message: str) -> NoReturn:
        raise ConfigError(f"{message} (rlexp train --help)")

    parser.error = refuse  # type: ignore[method-assign]
    parser.parse_args(args)


def check_optional_groups(args: list[str]) -> None:
    """`experiment=`, `tuned=` and `hparams_search=` must name a file of their group: Hydra skips a missing option of
    an optional group without a word, so a typo would train another setup. (The automatic `tuned: ${algo}_${env}`
    lookup stays optional: it is not on the command line.)"""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    _, overrides = split_flags(args)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # Hydra reports its own grammar errors
    for override in parsed:
        group = override.key_or_group
        if group not in OPTIONAL_GROUPS or override.is_delete():
            continue
        names = list(override.sweep_string_iterator()) if override.is_sweep_override() else \
            [override.get_value_element_as_str()] if override.value() is not None else []
        options = sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))
        for name in names:
            if name not in options and name != "null":
                raise ConfigError(unknown_option(group, name, options))


def never_started(run_dir: Path) -> bool:
    """A run refused before it trained (a bad value): a failed results.json, no checkpoints, no TensorBoard events.
    Its directory holds nothing but the refused config, so the corrected command may write there."""
    return (results_status(run_dir) == "failed" and not (run_dir / "checkpoints").exists()
            and not any(run_dir.glob("events.out.tfevents.*")) and not seed_runs(run_dir))


def check_new_run_dir(args: list[str]) -> None:
    """A new run never writes into another run's directory: `hydra.run.dir=<a run>` would overwrite its config."""
    _, overrides = split_flags(args)
    if any(o.startswith("resume=") and o not in ("resume=null", "resume=") for o in overrides):
        return
    for override in overrides:
        if override_key(override) == "hydra.run.dir":
            run_dir = Path(override.split("=", 1)[1].strip("'\""))
            try:
                taken = (run_dir / ".hydra").is_dir()
            except OSError as error:  # a name the file system refuses
                raise ConfigError(f"cannot write to {run_dir}: {error.strerror}; choose another directory") from None
            if taken and not never_started(run_dir):
                raise ConfigError(f"hydra.run.dir={run_dir} already holds a run; continue it with "
                                  f"`rlexp train resume={run_dir}`, or choose a new directory")


def check_seed_keys(args: list[str], expanded: list[str]) -> None:
    """`seed=` on the command line of a many-seeds run (`seeds=`, given there or by the resumed run) would be
    ignored: each seed of the list is a run's seed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        given = OverridesParser.create().parse_overrides(split_flags(args)[1])
        every = OverridesParser.create().parse_overrides(split_flags(expanded)[1])
    except HydraException:
        return  # Hydra reports its own grammar errors
    seed = [o for o in given if o.key_or_group == "seed" and not o.is_delete()]
    seeds = [o for o in every if o.key_or_group == "seeds" and not o.is_delete()]
    if seed and seeds and (seeds[-1].is_sweep_override() or seeds[-1].value() is not None):
        raise ConfigError(f"seed={seed[-1].get_value_element_as_str() if not seed[-1].is_sweep_override() else '...'} "
                          f"with seeds=[...]: each seed of a many-seeds run is one of its seeds=, so seed= would be "
                          f"ignored; drop seed= (or run one process per seed: rlexp train --multirun seed=0,1,2)")


def report(func: Any) -> Any:
    """Replaces Hydra's run_and_report, which reports the errors raised outside a job (composing the config,
    parsing overrides, creating the run directory): each becomes one line on stderr and a non-zero exit (2: bad
    input, 1: failed jobs). A bug still gets Hydra's trimmed traceback, and HYDRA_FULL_ERROR=1 the full one."""
    try:
        return func()
    except BrokenPipeError:
        raise  # the reader of our output went away (`rlexp train --help | head`): rlexp.commands ends quietly
    except Exception as error:
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


def main() -> None:
    """`rlexp train [overrides]`: Hydra's command line, checked first, with resume expansion and one-line errors."""
    hydra_utils.run_and_report = report  # Hydra 1.3 looks it up at call time; see report()
    args = sys.argv[1:]
    try:
        check_flags(args)
        check_optional_groups(args)
        check_new_run_dir(args)
        expanded = resume_arguments(args)
        check_seed_keys(args, expanded)
        args = expanded
    except ConfigError as error:
        print(f"rlexp train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv = [sys.argv[0], *args]
    try:
        hydra_task()
    except SweepFailed as failed:
        print(f"rlexp train: error: {failed}", file=sys.stderr)
        raise SystemExit(failed.exit_code) from None
    except ValueError as error:  # Hydra checks some of its own flags before run_and_report
        exit_with(error)


if __name__ == "__main__":
    main()
