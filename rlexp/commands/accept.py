"""Whether a resume may continue its run: `rlexp train resume=<run_dir>` once Hydra has composed the new config.

The new config is compared with the one each checkpoint holds (only budget and bookkeeping keys may change), and
with the run's stop rules, seeds and device. Everything here only reads: a refused resume leaves the run directory
as it was.
"""

from __future__ import annotations

import json
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
    check_log_writable(run_dir / "train.log", where)
    return where


def check_log_writable(log: Path, where: str) -> None:
    """The run's log, which the resume's first line goes to: one it cannot append to (a directory of that name, a
    read-only file) refuses the resume here, while the run is as it was (later, the resume would have begun and
    recorded a failure over the run's results.json). Opened for appending, which changes nothing."""
    if not log.exists():
        return
    try:
        with log.open("a"):
            pass
    except OSError as error:
        raise ConfigError(f"{where}: cannot write the run's log {log}: {error.strerror or error}; the run is as it "
                          f"was") from None


def accept_resume(config: dict[str, Any], run_dir: Path, device: torch.device) -> Resume:
    """The newest readable checkpoint of the run being resumed, once the new config may continue it. Reads only:
    a refused resume leaves the run directory as it was."""
    where = resumed_run(config, run_dir)
    try:
        bundle, path, unreadable = CheckpointManager(run_dir / "checkpoints", 1).load_latest()
    except CheckpointError as error:
        raise ConfigError(f"{where}: {error}") from None
    check_resume_bundle(bundle, where)
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


#: What a resume reads of a checkpoint's top level (and of its "context"), with the type each must have.
RESUME_KEYS: dict[str, type | tuple[type, ...]] = {"step": int, "device": str, "config": dict, "agent": dict,
                                                   "runner": dict, "context": dict, "rng": dict}
CONTEXT_KEYS: dict[str, type | tuple[type, ...]] = {"metrics": dict, "best_eval_return": (int, float)}


def check_resume_bundle(bundle: dict[str, Any], where: str) -> None:
    """A checkpoint that lacks what a resume reads, or holds it as another type (a file altered by hand, or cut down
    by another tool), is refused before the run is touched: it was a KeyError traceback after the resume began."""
    for keys, held, within in ((RESUME_KEYS, bundle, ""), (CONTEXT_KEYS, bundle.get("context"), "context.")):
        if not isinstance(held, dict):
            continue   # (the top level's check names it)
        for key, kind in keys.items():
            if not isinstance(held.get(key), kind) or isinstance(held.get(key), bool):
                found = f"has no {within}{key}" if key not in held else \
                    f"holds {within}{key} as a {type(held[key]).__name__}"
                raise ConfigError(f"{where}: its newest checkpoint {found}, which a resume reads: the file was "
                                  f"altered, or not written by this rlexp; resume from an earlier checkpoint (move "
                                  f"this one away), or evaluate it: rlexp eval")


def accept_seeds_resume(config: dict[str, Any], run_dir: Path, device: torch.device) -> dict[int, Resume]:
    """The checkpoints a many-seeds run continues from, by seed: every seed still training (`seeds_training_on`)
    from one step, as they learn in lockstep: the newest at which every one has a readable checkpoint. Each seed's
    unreadable newer checkpoints are reported in its Resume, as a single run's. No seed is rewound silently
    (`check_no_rewind`): a seed past that step continues from it only when its newer checkpoints are the batch's own
    unfinished ones (a kill during a save, a sibling's newest unreadable), made again then, which its Resume's
    `ahead` says. Reads only, as `accept_resume`."""
    where = resumed_run(config, run_dir)
    managers = seeds_training_on(config, run_dir, where)
    newest: dict[int, tuple[dict[str, Any], int, list[tuple[Path, str]]]] = {}
    for seed, manager in managers.items():
        try:
            bundle, path, unreadable = manager.load_latest()
        except CheckpointError as error:
            raise ConfigError(f"{where}: seed {seed}: {error}") from None
        newest[seed] = bundle, periodic_step(path), unreadable
    check_no_rewind(where, run_dir, newest)
    common = min(step for _, step, _ in newest.values())
    steps = set.intersection(*(set(m.step_numbers()) for m in managers.values()))
    for step in sorted((s for s in steps if s <= common), reverse=True):
        try:
            bundles = {seed: bundle if at == step else managers[seed].load_step(step)
                       for seed, (bundle, at, _) in newest.items()}
        except CheckpointError:
            continue
        for index, seed in enumerate(config["seeds"]):
            if seed in bundles:
                check_resume_bundle(bundles[seed], f"{where} (seed {seed})")
                check_resumable(bundles[seed], config_of_seed(config, seed, index), f"{where} (seed {seed})", device,
                                results_status(seed_dir(run_dir, seed)) == "completed")
        return {seed: Resume(bundle, managers[seed].directory / f"step_{step}.pt", newest[seed][2],
                             newest[seed][1] if newest[seed][1] > step else None)
                for seed, bundle in bundles.items()}
    raise ConfigError(f"{where}: the seeds {sorted(managers)} have no step at which every one has a readable "
                      f"checkpoint; resume each from its own directory: rlexp train resume={run_dir}/seed_<s>")


def seeds_training_on(config: dict[str, Any], run_dir: Path, where: str) -> dict[int, CheckpointManager]:
    """The checkpoints of each seed a many-seeds resume trains on: not failed, not ended early, and not finished at
    this budget while others are not (stopped while the seeds finished one after another, or a seed extended alone
    to this budget); when every one is finished at it, all of them, for the budget's check to refuse."""
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
        managers = {seed: m for seed, m in managers.items() if seed not in at_budget}
    if not managers:
        raise ConfigError(f"{where}: no seed of this run can train on (each failed or ended)")
    return managers


def check_no_rewind(where: str, run_dir: Path, newest: dict[int, tuple[dict[str, Any], int, Any]]) -> None:
    """A ConfigError when continuing every seed from the oldest of their newest readable checkpoints (`newest`:
    bundle, step, unreadable, by seed) would discard progress the batch cannot make again as it was: a seed trained
    on its own since (its checkpoints' BATCH_KEY is None; one older than the key is taken as the batch's), or a
    finished seed (results.json completed at its newest step: its final.pt and results would be overwritten)."""
    steps = {seed: step for seed, (_, step, _) in newest.items()}
    common = min(steps.values())
    alone = {seed: step for seed, (bundle, step, _) in newest.items()
             if step > common and BATCH_KEY in bundle and bundle[BATCH_KEY] is None}
    if alone:
        raise ConfigError(ahead_message(where, run_dir, alone, steps))
    finished = {seed: step for seed, step in steps.items() if step > common and finished_at(run_dir, seed) == step}
    if finished:
        behind = {seed: step for seed, step in steps.items() if step == common}
        unreadable = {seed: [path.name for path, _ in newest[seed][2]] for seed in behind if newest[seed][2]}
        why = "".join(f", seed {seed}'s newer {', '.join(names)} unreadable" for seed, names in unreadable.items())
        up = f"seed_{next(iter(behind))}" if len(behind) == 1 else "seed_<s>"
        raise ConfigError(
            f"{where}: {listed(finished)} finished at step {'/'.join(map(str, sorted(set(finished.values()))))}, "
            f"ahead of {listed(behind)} at step {common}{why}, and a batch's seeds train in step: resuming them "
            f"together would rewind the finished ones and overwrite their results; bring {listed(behind)} up to "
            f"step {max(finished.values())} alone (rlexp train resume={run_dir}/{up} "
            f"total_steps={max(finished.values())}), then resume the batch")


def finished_at(run_dir: Path, seed: int) -> int | None:
    """The step at which a seed's run finished (its results.json `completed`), None if it has not."""
    try:
        results = json.loads((seed_dir(run_dir, seed) / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return results.get("total_steps") if isinstance(results, dict) and results.get("status") == "completed" else None


def listed(seeds: dict[int, int]) -> str:
    return f"seeds {sorted(seeds)}" if len(seeds) > 1 else f"seed {next(iter(seeds))}"


def ahead_message(where: str, run_dir: Path, alone: dict[int, int], newest: dict[int, int]) -> str:
    """Why a batch resume is refused when seeds trained on their own are past the others (`alone`: their newest
    steps; `newest`: every seed's), and what to do instead."""
    behind = {seed: step for seed, step in newest.items() if seed not in alone}
    ahead = ", ".join(f"seed {seed} is at step {step}" for seed, step in alone.items())
    target = max(alone.values())
    done_there = len(set(alone.values())) == 1 and all(finished_at(run_dir, seed) == target for seed in alone)
    how = (f"bring the others up to it with `rlexp train {where} total_steps={target}` (seeds finished there are "
           f"left as they are)" if done_there else
           f"bring every seed to one step alone (rlexp train resume={run_dir}/seed_<s> total_steps={target}), then "
           f"resume the batch")
    return (f"{where}: {ahead} (trained on its own), ahead of {listed(behind)} at step "
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

    stopped = bundle.get("context", {}).get("callback_stop")
    if stopped and bundle.get("config", {}).get("callbacks", []) == config.get("callbacks", []):
        return f"the run was stopped by {stopped}; change or remove that callback (callbacks=...) to train it further"
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
