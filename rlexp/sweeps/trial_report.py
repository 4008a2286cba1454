"""A search trial's run reports its evaluations to its Optuna trial, and stops when the study's pruner says so.

The hparams_search sweeper (rlexp/sweeps/search.py) gives each trial's run the `optuna_trial` key; `rlexp train`
then adds `ReportToTrial` to the run's callbacks (rlexp/runners/callbacks.py), one per seed. A trial trains `K` seeds
(one batched run, or one process each), and the pruner must judge the trial, not a seed, so at each evaluation:

1. the seed's mean evaluation return is stored in the trial (user attribute `evaluation/<step>/<seed>`);
2. the seed that completes a step's set (all K seeds evaluated at that step) reports their aggregate (the
   trial's `aggregate`: IQM by default) as the trial's intermediate value at that step (`trial.report`), and asks
   the pruner (`trial.should_prune()`); if the trial is to be pruned, it records the step (`pruned_at`) and stops
   its run;
3. every other seed stops at its next vector step (in the same process) or its next evaluation (another process),
   once it finds `pruned_at`.

A stopped run ends as a run a callback stops (its final evaluation and checkpoint; results.json `stopped_by:
callback`), and the sweeper tells the study the trial was pruned. Steps are env steps, as the run counts them, so a
pruner's `n_warmup_steps` is in env steps too. The storage is the study's (SQLite by default, any RDB URL
Optuna takes), so seeds in other processes or on other machines meet in it. A resumed run reports its evaluations
again from its checkpoint on: the same values at the same steps (exact resume), which the trial already holds.

If the trial is no longer running (the study was told its result, e.g. when its run is resumed by hand later) or
the storage cannot be reached, the run says so once in its log and trains on without reporting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlexp.errors import ConfigError, one_line
from rlexp.runners.callbacks import Callback, Run
from rlexp.sweeps.objective import AGGREGATES, aggregate

log = logging.getLogger("rlexp")

#: The trials pruned in this process (a batched run's seeds share it): (storage, study, number) -> the step.
_pruned: dict[tuple[str, str, int], int] = {}

EVALUATION = "evaluation/{step}/{seed}"
PRUNED_AT = "pruned_at"


def entry(trial: Mapping[str, Any]) -> dict[str, Any]:
    """The `callbacks` entry of a run that reports to `trial` (the run's `optuna_trial` key)."""
    return {"_target_": f"{__name__}.ReportToTrial", **trial}


def build_pruner(spec: Mapping[str, Any] | None) -> Any:
    """The pruner `spec` names (`{_target_: optuna.pruners.MedianPruner, <kwargs>}`; None: Optuna's NopPruner); a
    target that does not import, takes other arguments or builds no pruner is one ConfigError line."""
    import optuna

    if not spec:
        return optuna.pruners.NopPruner()
    from rlexp.config.targets import TARGET, check_arguments, check_target, resolve

    where = f"hydra.sweeper.pruner ({spec.get(TARGET)})"
    if not spec.get(TARGET):
        raise ConfigError(f"{where} names no _target_: e.g. hydra/sweeper/pruner=median, or null for none")
    target = resolve(check_target(spec, where, None), where)
    kwargs = {k: v for k, v in spec.items() if k != TARGET}
    check_arguments(target, where, kwargs)
    try:
        pruner = target(**kwargs)
    except Exception as error:
        raise ConfigError(f"{where} raised {type(error).__name__} when built: {one_line(str(error))}") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise ConfigError(f"{where} built a {type(pruner).__name__}, not an Optuna pruner (optuna.pruners.*)")
    return pruner


class ReportToTrial(Callback):
    """Reports a seed's evaluations to trial `number` of `study` in `storage` and stops the run when the trial is
    pruned (see the module's doc)."""

    def __init__(self, storage: str, study: str, number: int, seeds: Sequence[int], aggregate: str = "iqm",
                 pruner: Mapping[str, Any] | None = None) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate={aggregate!r} must be one of {', '.join(AGGREGATES)}")
        self.storage, self.study_name, self.number = storage, study, int(number)
        self.seeds = sorted(int(s) for s in seeds)
        self.aggregate = aggregate
        self.pruner_spec = dict(pruner) if pruner else None
        self.trial: Any = None
        self._storage: Any = None
        self._trial_id = -1
        self.silent = False   # reporting stopped (the trial finished, or the storage failed): said once

    @property
    def key(self) -> tuple[str, str, int]:
        return self.storage, self.study_name, self.number

    def on_run_start(self, run: Run) -> None:
        if run.seed not in self.seeds:
            raise ValueError(f"the run's seed {run.seed} is not one of the trial's seeds {self.seeds}")
        self._call(run, self._connect)

    def _connect(self, run: Run) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.get_storage(self.storage)
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=build_pruner(self.pruner_spec))
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(self.study_name),
                                                                   self.number)
        self.trial = optuna.trial.Trial(study, trial_id)
        self._storage, self._trial_id = storage, trial_id

    def on_step(self, run: Run) -> None:
        if self.key in _pruned:
            run.stop(f"Optuna pruned trial {self.number} at step {_pruned[self.key]}")

    def on_evaluation(self, returns: np.ndarray, run: Run) -> None:
        if self.trial is not None and not self.silent and self.key not in _pruned:
            self._call(run, lambda run: self._report(float(returns.mean()), run))

    def _report(self, value: float, run: Run) -> None:
        trial, step = self.trial, run.step
        trial.set_user_attr(EVALUATION.format(step=step, seed=run.seed), value)
        attrs = self._storage.get_trial_user_attrs(self._trial_id)   # (a Trial caches its own: the other seeds')
        if PRUNED_AT in attrs:   # another seed's process pruned the trial
            _pruned[self.key] = int(attrs[PRUNED_AT])
        elif all(EVALUATION.format(step=step, seed=s) in attrs for s in self.seeds):
            score = aggregate(self.aggregate, [attrs[EVALUATION.format(step=step, seed=s)] for s in self.seeds])
            trial.report(score, step)
            if trial.should_prune():
                trial.set_user_attr(PRUNED_AT, step)
                _pruned[self.key] = step
                log.info("Optuna pruned trial %d at step %d (%s over seeds %s: %.2f)", self.number, step,
                         self.aggregate, self.seeds, score)
        self.on_step(run)

    def _call(self, run: Run, action: Any) -> None:
        """`action(run)`; a trial that is no longer running, or a storage that fails, ends the reporting (once
        said) instead of the run."""
        import optuna

        try:
            action(run)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._quiet(f"trial {self.number} of study {self.study_name!r} has finished (the study was told its "
                        f"result): this run trains on without reporting to it")
        except (ConfigError, KeyError, ValueError, TypeError):   # (no study or trial of that name, a bad pruner)
            raise
        except Exception as error:   # the database: gone, locked, unreachable
            self._quiet(f"the Optuna storage {self.storage} failed ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''}); this run trains on without "
                        f"reporting to trial {self.number}, which the sweeper still scores at its end")

    def _quiet(self, message: str) -> None:
        if not self.silent:
            log.warning(message)
        self.silent = True
