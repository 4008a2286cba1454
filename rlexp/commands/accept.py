"""Whether a resume may continue its run: `rlexp train resume=<run_dir>` once Hydra has composed the new config.

The new config is compared with the one each checkpoint holds (only budget and bookkeeping keys may change), and
with the run's stop rules, seeds and device. Everything here only reads: a refused resume leaves the run directory
as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from rlexp.config.compat import config_conflicts, may_change
from rlexp.errors import CheckpointError, ConfigError
from rlexp.io import seed_dir
from rlexp.io.checkpoints import CheckpointManager, load_checkpoint, periodic_step
from rlexp.io.results import results_status
from rlexp.runners.job import BATCH_KEY
from rlexp.runners.many_seeds import config_of_seed


@dataclass
class Resume:
    bundle: dict[str, Any]
    path: Path
    unreadable: list[tuple[Path, str]]
    ahead: int | None = None   # a many-seeds run's seed: the step of its newer readable checkpoint, made again


def resumed_run(config: dict[str, Any], run_dir: Path) -> str:
    """What every resume checks first: Hydra writes into the run being resumed, and the run keeps its `seeds`.
    Returns how the messages name the resume (`resume=<run_dir>`)."""
    where = f"resume={config['resume']}"
    if Path(config["resume"]).resolve() != run_dir.resolve():
        raise ConfigError(f"{where} but Hydra's run directory is {run_dir}; start resumed runs with "
                          f"`rlexp train resume=<run_dir>`, which writes into that directory")
    check_same_seeds(config, run_dir, where)
    return where


def accept_resume(config: dict[str, Any], run_dir: Path, device: torch.device) -> Resume:
    """The newest readable checkpoint of the run being resumed, once the new config may continue it. Reads only:
    a refused resume leaves the run directory as it was."""
    where = resumed_run(config, run_dir)
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
    early, not finished at this budget while others are not) from one step, as they learn in lockstep: the newest
    at which every one has a readable checkpoint. Each seed's unreadable newer checkpoints are reported in its
    Resume, as a single run's. A seed the batch left behind on an earlier step is never rewound silently: a seed
    whose newest checkpoint is past the others' and was trained on its own (not by this batch) refuses the resume;
    one the batch itself saved (a kill during a save, a sibling's newest unreadable) is made again from the common
    step, which its Resume's `ahead` says. Reads only, as `accept_resume`."""
    where = resumed_run(config, run_dir)
    managers: dict[int, CheckpointManager] = {}
    at_budget: set[int] = set()   # finished seeds whose newest checkpoint is at this budget's end
    for index, seed in enumerate(config["seeds"]):
        status = results_status(seed_dir(run_dir, seed))
        if status == "failed":
            continue   # its failure stands: it does not train on
        manager = CheckpointManager(seed_dir(run_dir, seed) / "checkpoints", 1)
        newest = manager.periodic()
        if newest and ended_early(load_checkpoint_quietly(newest[-1]), config_of_seed(config, seed, index)):
            continue   # solved, or its episode budget reached: it is done
        managers[seed] = manager
        if status == "completed" and newest and periodic_step(newest[-1]) == config["total_steps"]:
            at_budget.add(seed)
    if at_budget != set(managers):
        # Stopped while the seeds finished one after another, or a seed extended alone to this budget: those that
        # finished at this budget are done, the others go on (when all are, the budget's check below refuses).
        managers = {seed: m for seed, m in managers.items() if seed not in at_budget}
    if not managers:
        raise ConfigError(f"{where}: no seed of this run can train on (each failed or ended)")
    newest_readable: dict[int, tuple[dict[str, Any], int, list[tuple[Path, str]]]] = {}
    for seed, manager in managers.items():
        try:
            bundle, path, unreadable = manager.load_latest()
        except CheckpointError as error:
            raise ConfigError(f"{where}: seed {seed}: {error}") from None
        newest_readable[seed] = bundle, periodic_step(path), unreadable
    common = min(step for _, step, _ in newest_readable.values())
    # (a checkpoint older than the key is taken as the batch's, as resumes took it before)
    alone = {seed: step for seed, (bundle, step, _) in newest_readable.items()
             if step > common and BATCH_KEY in bundle and bundle[BATCH_KEY] is None}
    if alone:
        raise ConfigError(ahead_message(where, run_dir, alone, {s: n[1] for s, n in newest_readable.items()}))
    steps = set.intersection(*(set(m.step_numbers()) for m in managers.values()))
    for step in sorted((s for s in steps if s <= common), reverse=True):
        try:
            bundles = {seed: newest[0] if newest[1] == step else managers[seed].load_step(step)
                       for seed, newest in newest_readable.items()}
        except CheckpointError:
            continue
        for index, seed in enumerate(config["seeds"]):
            if seed in bundles:
                check_resumable(bundles[seed], config_of_seed(config, seed, index), f"{where} (seed {seed})", device,
                                results_status(seed_dir(run_dir, seed)) == "completed")
        return {seed: Resume(bundle, managers[seed].directory / f"step_{step}.pt", newest_readable[seed][2],
                             newest_readable[seed][1] if newest_readable[seed][1] > step else None)
                for seed, bundle in bundles.items()}
    raise ConfigError(f"{where}: the seeds {sorted(managers)} have no step at which every one has a readable "
                      f"checkpoint; resume each from its own directory: rlexp train resume={run_dir}/seed_<s>")


def ahead_message(where: str, run_dir: Path, alone: dict[int, int], newest: dict[int, int]) -> str:
    """Why a batch resume is refused when seeds trained on their own are past the others (`alone`: their newest
    steps; `newest`: every seed's), and what to do instead."""
    behind = {seed: step for seed, step in newest.items() if seed not in alone}
    ahead = ", ".join(f"seed {seed} is at step {step}" for seed, step in alone.items())
    others = f"seeds {sorted(behind)}" if len(behind) > 1 else f"seed {next(iter(behind))}"   # (the oldest one's)
    target = max(alone.values())
    done_there = len(set(alone.values())) == 1 and all(
        results_status(seed_dir(run_dir, seed)) == "completed" for seed in alone)
    how = (f"bring the others up to it with `rlexp train {where} total_steps={target}` (seeds finished there are "
           f"left as they are)" if done_there else
           f"bring every seed to one step alone (rlexp train resume={run_dir}/seed_<s> total_steps={target}), then "
           f"resume the batch")
    return (f"{where}: {ahead} (trained on its own), ahead of {others} at step "
            f"{'/'.join(map(str, sorted(set(behind.values()))))}, and a batch's seeds train in step: resuming them "
            f"together would rewind it; {how}, or go on with seed {next(iter(alone))} alone: rlexp train "
            f"resume={run_dir}/seed_{next(iter(alone))} total_steps=<more>")


def load_checkpoint_quietly(path: Path) -> dict[str, Any]:
    try:
        return load_checkpoint(path)
    except CheckpointError:
        return {}


def ended_early(bundle: dict[str, Any], config: dict[str, Any]) -> str | None:
    """Why a checkpoint's run has already ended under the new config's stop rules, and how to go on (None: it
    has not)."""
    from rlexp.runners.stopping import Solved, StopRules, StopWatch

    state = bundle.get("context", {}).get("stop")
    if state is None:
        return None
    watch = StopWatch(StopRules.from_config(config))
    watch.load_state_dict(state)
    if watch.reason() == "solved":
        solved = watch.solved
        assert solved is not None   # what it was solved by
        how = f"raise {solved.rule} (or set {solved.rule}=null) to train it further"
        ended = None if state["solved"] is None else Solved(**state["solved"])
        if ended is not None and ended.same_solve(solved):
            return f"the run ended {solved.describe()}; {how}"
        # Other stop rules, which the run's past already meets: where an uninterrupted run under them would have ended
        return (f"the run's past already meets the new stop rules: {solved.describe()}"
                + (f" (it ended {ended.describe()})" if ended is not None else "") + f"; {how}")
    if watch.reason() == "total_episodes":
        return (f"the run has finished {watch.episodes} episodes of total_episodes={config['total_episodes']}; pass "
                f"a larger total_episodes to extend it")
    return None
