"""Hyperparameter search: an Optuna study driven through Hydra's launchers (`hydra/sweeper=rlexp_optuna`, which the
hparams_search presets select; hydra_plugins/rlexp_optuna_sweeper/ is the Hydra side of it).

    rlexp train --multirun hparams_search=dqn_cartpole [hydra/launcher=joblib hydra.sweeper.n_jobs=2]

Each trial is Optuna's ask-and-tell: the sampler proposes the trial's parameters (`hydra.sweeper.params`, in Hydra's
sweep grammar: `choice(...)`, `interval(a, b)`, `tag(log, interval(a, b))`, `range(...)`; a sweep override typed on
the command line joins them), the launcher runs the trial's run, and the study is told its score:

- **seeds**: a trial trains the same `K` seeds (`hydra.sweeper.seeds`, every trial alike, so trials differ by their
  parameters, not their luck): as one batched run (`seeds=[...]`, many seeds as one model) where the algorithm
  batches, one process per seed otherwise (`seeds_as`: auto | batch | processes). One seed is a plain run.
- **score**: the `aggregate` (iqm | mean | median | min) over the seeds of each one's final mean evaluation return.
- **pruning**: each evaluation's aggregate over the seeds is reported to the trial as it runs
  (rlexp/sweeps/trial_report.py), and the study's `pruner` (any of Optuna's: median, successive halving,
  Hyperband, ...) stops a poor trial there; a pruned trial ends cleanly (results.json `stopped_by: callback`) and
  is told PRUNED.
- **storage**: an Optuna RDB storage, SQLite in the sweep directory by default (`<sweep_dir>/optuna.db`), any URL
  Optuna takes (PostgreSQL, MySQL) for trials on many machines; `optuna-dashboard <storage>` shows the study.
- **continuing**: the same command with the same `hydra.sweep.dir` continues the study: `n_trials` is the study's
  size, finished trials are kept, and this sweep's trials that a dead process left running are run again in their
  own directories, where their runs resume from their checkpoints exactly (rlexp/sweeps/continuation.py). A new
  draw of the sampler's seed (seed + the trials the study holds) keeps a continued study from repeating draws.
- **the end**: the study's best trial is printed with the command that trains it, and written to
  `<sweep_dir>/optimization_results.yaml`.

A trial's runs live in `<sweep_dir>/trial_<n>/` (`trial_<n>_seed_<s>/` for one process per seed).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from rlexp.errors import ConfigError, one_line, pip_install
from rlexp.sweeps.interrupt import interrupted_by
from rlexp.sweeps.objective import AGGREGATES, aggregate
from rlexp.sweeps.trial_report import PRUNED_AT, build_pruner

log = logging.getLogger("rlexp")

SEEDS_AS = ("auto", "batch", "processes")


@dataclass(frozen=True)
class SearchSettings:
    """The sweeper's keys (conf/hydra/sweeper/rlexp_optuna.yaml), as the hparams_search presets set them."""

    study_name: str
    storage: str | None
    direction: str
    n_trials: int
    n_jobs: int
    seeds: tuple[int, ...]
    aggregate: str
    seeds_as: str
    params: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        where = "hydra.sweeper"
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"{where}.direction={self.direction!r} must be maximize or minimize")
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ConfigError(f"{where}.n_trials={self.n_trials!r} must be a positive number of trials (the "
                              f"study's size: a continued study runs until it holds that many)")
        if not isinstance(self.n_jobs, int) or self.n_jobs < 1:
            raise ConfigError(f"{where}.n_jobs={self.n_jobs!r} must be a positive number of trials run at once")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise ConfigError(f"{where}.seeds={list(self.seeds)} must be distinct non-negative seeds, e.g. "
                              f"{where}.seeds=[0,1,2,3]: every trial trains these")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"{where}.aggregate={self.aggregate!r} must be one of {', '.join(AGGREGATES)}")
        if self.seeds_as not in SEEDS_AS:
            raise ConfigError(f"{where}.seeds_as={self.seeds_as!r} must be one of {', '.join(SEEDS_AS)}")
        if not self.study_name or not isinstance(self.study_name, str):
            raise ConfigError(f"{where}.study_name={self.study_name!r} must name the study")


# --- the search space ---------------------------------------------------------------------------------------------


def distributions(space: Mapping[str, Any], typed: Sequence[str] = ()) -> dict[str, Any]:
    """Optuna's distribution for each `key: <Hydra sweep>` of the space: choice -> categorical, interval -> float
    (int when both ends are ints), tag(log, ...) -> on a log scale, range -> int (float with a float step). `typed`:
    the keys swept on the command line (a refusal names them as typed)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
    from hydra.errors import HydraException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    parser = OverridesParser.create()
    found: dict[str, Any] = {}
    for key, text in space.items():
        where = f"{key}={text}" if key in typed else f"hydra.sweeper.params.{key}={text}"
        try:
            override = parser.parse_override(f"{key}={text}")
        except HydraException as error:
            raise ConfigError(f"{where} does not parse: {str(error).splitlines()[0]}") from None
        value = override.value()
        if not override.is_sweep_override():
            raise ConfigError(f"{where} is one value, not a range to search: use choice(a, b, ...), interval(low, "
                              f"high), tag(log, interval(low, high)) or range(start, stop, step), or set the key "
                              f"as a plain override")
        if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
            choices = list(override.sweep_iterator(transformer=Transformer.identity))
            if any(isinstance(c, (dict, list)) for c in choices):
                raise ConfigError(f"{where}: a choice between lists or dicts is not searchable; choose between "
                                  f"names of presets instead (a config group)")
            found[key] = CategoricalDistribution(cast("list[Any]", choices))
        elif isinstance(value, RangeSweep):
            start, stop, step = cast("float", value.start), cast("float", value.stop), value.step
            if step <= 0 or stop <= start:
                raise ConfigError(f"{where}: a range to search runs up from start to stop by a positive step")
            last = start + (math.ceil((stop - start) / step) - 1) * step   # (range's stop is exclusive, Optuna's
            if any(isinstance(v, float) for v in (start, stop, step)):     # high its last value)
                found[key] = FloatDistribution(float(start), float(last), step=float(step))
            else:
                found[key] = IntDistribution(int(start), int(last), step=int(step))
        elif isinstance(value, IntervalSweep):
            log_scale = "log" in value.tags
            low, high = value.start, value.end
            if low is None or high is None or not low < high:
                raise ConfigError(f"{where}: an interval needs a low end below its high end")
            if log_scale and low <= 0:
                raise ConfigError(f"{where}: a log-scale interval needs a positive low end")
            if isinstance(low, int) and isinstance(high, int):
                found[key] = IntDistribution(low, high, log=log_scale)
            else:
                found[key] = FloatDistribution(float(low), float(high), log=log_scale)
        else:   # (glob(...) is a sweep over config-group options only Hydra's basic sweeper expands)
            raise ConfigError(f"{where}: only choice, interval, tag(log, interval) and range are searchable")
    return found


_PLAIN = re.compile(r"^[A-Za-z_][\w./@-]*$")


def override_value(value: Any) -> str:
    """`value` written in Hydra's override grammar (`key=<this>`), read back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return {"nan": "nan", "inf": "inf", "-inf": "-inf"}[str(value)]
        return repr(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in ("null", "true", "false", "nan", "inf"):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} has no override form")


# --- a trial's runs and its score ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialJobs:
    """The runs of one trial: their overrides (one list per job) and how the seeds run."""

    number: int
    jobs: list[list[str]]
    batched: bool


def chosen_overrides(params: Mapping[str, Any], fixed: Sequence[str]) -> list[str]:
    """A trial's overrides before its seeds: the command line's fixed ones, then its parameters."""
    return [*fixed, *(f"{key}={override_value(value)}" for key, value in params.items())]


def trial_jobs(number: int, params: Mapping[str, Any], fixed: Sequence[str], settings: SearchSettings,
               batched: bool, reporting: Mapping[str, Any]) -> TrialJobs:
    """The overrides of trial `number`'s runs: the fixed ones, its parameters, its seeds, the trial it reports to
    (`optuna_trial`) and its directory."""
    base = chosen_overrides(params, fixed)
    seeds = list(settings.seeds)
    trial = override_value({**reporting, "number": number, "seeds": seeds})
    if len(seeds) == 1:
        return TrialJobs(number, [[*base, f"seed={seeds[0]}", f"optuna_trial={trial}",
                                   f"hydra.sweep.subdir=trial_{number}"]], batched=False)
    if batched:
        return TrialJobs(number, [[*base, f"seeds={override_value(seeds)}", f"optuna_trial={trial}",
                                   f"hydra.sweep.subdir=trial_{number}"]], batched=True)
    return TrialJobs(number, [[*base, f"seed={seed}", f"optuna_trial={trial}",
                               f"hydra.sweep.subdir=trial_{number}_seed_{seed}"] for seed in seeds], batched=False)


def seed_returns(results: Sequence[Mapping[str, Any]]) -> list[float] | str:
    """Each seed's final mean evaluation return from the trial's runs' results (a batched run's `seeds` table, or
    one result per seed's process); a string saying why there is no score when a run did not complete."""
    returns: list[float] = []
    for result in results:
        status = result.get("status", "no result")
        if status != "completed":
            return f"{status}: {result.get('error', '')}".rstrip(": ")
        per_seed = result.get("seeds")
        values = [row.get("eval_return_mean") for row in per_seed.values()] if isinstance(per_seed, dict) \
            else [result.get("eval_return_mean")]
        for value in values:
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return f"a seed ended without a final evaluation return ({value!r})"
            returns.append(float(value))
    return returns


def command(fixed: Sequence[str], params: Mapping[str, Any], settings: SearchSettings) -> str:
    """The `rlexp train` command that trains a trial's parameters on the search's seeds (a single run)."""
    seeds = list(settings.seeds)
    seeding = f"seed={seeds[0]}" if len(seeds) == 1 else f"seeds={override_value(seeds)}"
    return " ".join(["rlexp train", *chosen_overrides(params, fixed), seeding])


def default_storage(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"


# --- the study ----------------------------------------------------------------------------------------------------

#: launch(jobs, first job number) -> each job's results (what rlexp train's Hydra task returned).
Launch = Callable[[list[list[str]], int], list[dict[str, Any]]]


@dataclass
class Study:
    """What the search needs besides its settings: how to run jobs, whether a trial's seeds batch, its sampler."""

    sweep_dir: Path
    record: Callable[[], None]                 # once the search is accepted: the sweep's directory and its config
    launch: Launch
    seeds_batch: Callable[[list[str]], bool]   # a trial's overrides -> whether its seeds train as one batched run
    sampler: Callable[[int], Any]              # seed offset -> the sampler (None: Optuna's default, TPE)
    pruner: dict[str, Any] | None              # the pruner's spec, built by each trial's runs


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"hparams_search needs Optuna, which is not installed: {pip_install('sweep')}") from None
    return optuna


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command line's overrides: those every trial takes as they are, and sweeps (`key=choice(...)`), which join
    the search space."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    fixed, swept = [], {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key, line = override.get_key_element(), str(override.input_line)
        if key.lstrip("+~") in ("seed", "seeds", "optuna_trial"):
            raise ConfigError(f"{line}: a search sets each trial's seeds itself; set them with "
                              f"hydra.sweeper.seeds=[0,1,2,3] (every trial trains those)")
        if override.is_sweep_override():
            swept[key] = line.split("=", 1)[1]
        else:
            fixed.append(line)
    return fixed, swept


def run_search(settings: SearchSettings, arguments: Sequence[str], study_setup: Study) -> None:
    """Run (or continue) the study until it holds `n_trials` finished trials, then report its best trial."""
    settings.check()
    optuna = import_optuna()
    from optuna.trial import TrialState

    fixed, swept = split_arguments(arguments)
    space = distributions({**settings.params, **swept}, list(swept))   # (a key swept on the command line: its
                                                                        # range replaces the preset's)
    if not space:
        raise ConfigError("nothing to search: hydra.sweeper.params is empty and no override sweeps a key (e.g. "
                          "'algo.lr=tag(log, interval(1e-4, 1e-2))')")
    build_pruner(study_setup.pruner)   # (each trial's runs build it again: refused here, before any trial)
    sweep_dir = study_setup.sweep_dir
    storage = settings.storage or default_storage(sweep_dir)
    if settings.storage is None:   # (SQLite's file goes in the sweep directory)
        study_setup.record()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=settings.study_name, storage=storage, direction=settings.direction,
                                    load_if_exists=True)
    except (ValueError, ImportError, ModuleNotFoundError) as error:   # (a URL Optuna or SQLAlchemy does not take)
        raise ConfigError(f"hydra.sweeper.storage={storage}: {one_line(str(error))}") from None
    if settings.storage is not None:
        study_setup.record()
    if study.direction.name.lower() != settings.direction:
        raise ConfigError(f"study {settings.study_name!r} in {storage} was made to {study.direction.name.lower()}, "
                          f"not {settings.direction}: name another study (hydra.sweeper.study_name=...)")
    held = study.get_trials(deepcopy=False)
    study.sampler = study_setup.sampler(len(held))   # a continued study draws anew, a fresh one reproducibly
    here = str(sweep_dir.resolve())
    relaunch = [t for t in held if t.state == TrialState.RUNNING and t.user_attrs.get("sweep_dir") == here]
    if relaunch:
        log.info("continuing trials %s of study %s, interrupted in an earlier run of this sweep",
                 [t.number for t in relaunch], settings.study_name)
    reporting = {"storage": storage, "study": settings.study_name, "aggregate": settings.aggregate,
                 "pruner": study_setup.pruner}
    job_number = next_job_number(sweep_dir)
    while interrupted_by(sweep_dir) is None:
        batch: list[TrialJobs] = []
        while relaunch and len(batch) < settings.n_jobs:
            old = relaunch.pop(0)
            batch.append(TrialJobs(old.number, old.user_attrs["jobs"], bool(old.user_attrs.get("batched"))))
        room = settings.n_trials - len(study.get_trials(deepcopy=False))
        for _ in range(min(settings.n_jobs - len(batch), max(room, 0))):
            trial = study.ask(space)
            params = {key: trial.params[key] for key in space}
            batched = len(settings.seeds) > 1 and study_setup.seeds_batch(chosen_overrides(params, fixed)) \
                if settings.seeds_as == "auto" else settings.seeds_as == "batch"
            jobs = trial_jobs(trial.number, params, fixed, settings, batched, reporting)
            for key, value in (("sweep_dir", here), ("jobs", jobs.jobs), ("batched", jobs.batched),
                               ("command", command(fixed, params, settings))):
                trial.set_user_attr(key, value)
            batch.append(jobs)
        if not batch:
            break
        log.info("trials %s: %s", [t.number for t in batch],
                 "one batched run each" if batch[0].batched else f"{len(batch[0].jobs)} run(s) each")
        results = study_setup.launch([job for trial_jobs_ in batch for job in trial_jobs_.jobs], job_number)
        job_number += len(results)
        at = 0
        for trial_jobs_ in batch:
            mine, at = results[at:at + len(trial_jobs_.jobs)], at + len(trial_jobs_.jobs)
            tell(study, trial_jobs_.number, mine, settings)
    report_best(study, settings, storage, sweep_dir)


def tell(study: Any, number: int, results: Sequence[dict[str, Any]], settings: SearchSettings) -> None:
    """The study is told how trial `number` ended: pruned, scored, or failed; an interrupted trial stays running (the
    same command continues it)."""
    from optuna.trial import TrialState

    if any(r.get("status") == "interrupted" for r in results):
        log.warning("trial %d interrupted: the same command continues it", number)
        return
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if trial.state != TrialState.RUNNING:   # (told by another process sharing the study)
        return
    if PRUNED_AT in trial.user_attrs:
        study.tell(number, state=TrialState.PRUNED)
        log.info("trial %d pruned at step %s", number, trial.user_attrs[PRUNED_AT])
        return
    returns = seed_returns(results)
    if isinstance(returns, str):
        study.tell(number, state=TrialState.FAIL)
        log.warning("trial %d failed: %s", number, returns)
        return
    value = aggregate(settings.aggregate, returns)
    study.tell(number, value)
    log.info("trial %d: %s %.2f over seeds %s (%s)", number, settings.aggregate, value, list(settings.seeds),
             ", ".join(f"{r:.1f}" for r in returns))


def next_job_number(sweep_dir: Path) -> int:
    """The first job number no job of the sweep directory has (a continued search numbers its jobs on)."""
    from omegaconf import OmegaConf

    numbers = [-1]
    for hydra_file in sweep_dir.glob("*/.hydra/hydra.yaml"):
        try:
            numbers.append(int(OmegaConf.load(hydra_file).hydra.job.num))
        except Exception:   # (a job killed while Hydra wrote the file: its number is not needed)
            continue
    return max(numbers) + 1


def report_best(study: Any, settings: SearchSettings, storage: str, sweep_dir: Path) -> None:
    """The study's trials by state, its best trial and the command that trains it: printed, and written to
    <sweep_dir>/optimization_results.yaml."""
    from omegaconf import OmegaConf
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    held = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    lines = [f"study {settings.study_name} ({storage}): {len(trials)} trials ({held})"]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    results: dict[str, Any] = {"study": settings.study_name, "storage": storage, "direction": settings.direction,
                               "aggregate": settings.aggregate, "seeds": list(settings.seeds), "trials": counts}
    if complete:
        best = study.best_trial
        directory = sweep_dir / f"trial_{best.number}"
        lines += [f"best: trial {best.number}, {settings.aggregate} {best.value:.2f} over seeds "
                  f"{list(settings.seeds)}" + (f" ({directory})" if directory.is_dir() else ""),
                  f"  {best.user_attrs.get('command', '')}"]
        results.update(best_trial=best.number, best_value=float(best.value), best_params=dict(best.params),
                       command=best.user_attrs.get("command"))
    else:
        lines.append("no trial completed yet")
    lines.append(f"the study in a browser: optuna-dashboard {storage}")
    print("\n".join(lines), flush=True)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


def seeds_batch(algo: Any, seeds: list[int]) -> bool:
    """Whether `seeds=[...]` trains `seeds` as one batched model for the algorithm config `algo` (rlexp/config/
    validate.py's rule), rather than one process per seed."""
    from rlexp.agents.registry import algorithms
    from rlexp.config.validate import check_seeds

    registry = algorithms()
    try:
        check_seeds({"seeds": seeds, "algo": algo}, registry[algo["name"]], registry)
    except (ConfigError, KeyError):
        return False
    return True
