"""Statistics over a group's runs at each step: the mean and the interquartile mean (IQM), each with a 95%
percentile-bootstrap confidence interval (scipy's bootstrap), as rliable recommends for few seeds. A group pooled
over tasks (`rlexp plot pool=env`: one algorithm's runs on several games) resamples its runs within each task, as
rliable's stratified bootstrap does, so every resample keeps each game's share of the runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlexp.analysis.curves import Curve, Group

BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0          # fixed: the same runs always give the same band


@dataclass(frozen=True)
class StepStats:
    step: int
    runs: int
    mean: float
    ci95_low: float
    ci95_high: float
    iqm: float
    iqm_ci95_low: float
    iqm_ci95_high: float


@dataclass(frozen=True)
class GroupStats:
    group: Group
    steps: tuple[StepStats, ...]
    dropped_steps: tuple[int, ...]   # steps some of the group's runs logged but not all


def align(curves: Sequence[Curve]) -> tuple[list[int], np.ndarray, list[int]]:
    """The steps all curves have, their values (runs x steps), and the steps left out because some run lacks
    them: every point of a line is then over the same runs, so the line does not jump where a run ends."""
    step_sets = [set(c.points) for c in curves]
    common = sorted(set.intersection(*step_sets))
    dropped = sorted(set.union(*step_sets) - set(common))
    values = np.array([[c.points[s] for s in common] for c in curves], dtype=np.float64).reshape(len(curves),
                                                                                                 len(common))
    return common, values, dropped


def iqm(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean, as rliable defines it: the mean of the middle 50% (25% trimmed off each end)."""
    from scipy.stats import trim_mean

    return trim_mean(values, 0.25, axis=axis)


def bootstrap_ci(values: np.ndarray, statistic: Callable[..., np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile-bootstrap interval of `statistic` over runs (axis 0 of runs x steps), per step.

    Each step is resampled alike from a fixed seed, so a step's interval depends only on its own values and the
    same runs always give the same band. One run has no spread to resample: the interval is the value itself.
    """
    from scipy.stats import bootstrap

    if values.shape[0] == 1:
        return values[0].copy(), values[0].copy()
    result = bootstrap((values,), statistic, axis=0, vectorized=True, method="percentile", confidence_level=0.95,
                       n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(BOOTSTRAP_SEED))
    return np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)


def stratified_bootstrap_ci(values: np.ndarray, strata: Sequence[str],
                            statistic: Callable[..., np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile-bootstrap interval of `statistic` over runs (axis 0 of runs x steps), per step, each resample
    drawing with replacement within each stratum (the run's task) as many runs as the stratum has (rliable's
    stratified bootstrap, Agarwal et al. 2021). Fixed seed, as `bootstrap_ci`."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    labels = np.asarray(strata)
    members = [np.flatnonzero(labels == stratum) for stratum in dict.fromkeys(strata)]
    # (resamples, runs): each stratum's runs drawn from its own
    picks = np.concatenate([group[rng.integers(0, len(group), size=(BOOTSTRAP_RESAMPLES, len(group)))]
                            for group in members], axis=1)
    low, high = np.empty(values.shape[1]), np.empty(values.shape[1])
    for step in range(values.shape[1]):   # (one step at a time: resamples x runs stays small)
        resampled = statistic(values[picks, step], axis=1)
        low[step], high[step] = np.percentile(resampled, [2.5, 97.5])
    return low, high


def step_statistics(steps: Sequence[int], values: np.ndarray, strata: Sequence[str] | None = None
                    ) -> list[StepStats]:
    """Per step: number of runs, mean and IQM over runs, and a 95% bootstrap interval of each (stratified by
    `strata`, each run's task, when given)."""
    if not len(steps):
        return []
    mean = values.mean(axis=0)
    middle = iqm(values, axis=0)
    if strata is None:
        low, high = bootstrap_ci(values, np.mean)
        iqm_low, iqm_high = bootstrap_ci(values, iqm)
    else:
        low, high = stratified_bootstrap_ci(values, strata, np.mean)
        iqm_low, iqm_high = stratified_bootstrap_ci(values, strata, iqm)
    return [StepStats(int(step), values.shape[0], float(mean[i]), float(low[i]), float(high[i]), float(middle[i]),
                      float(iqm_low[i]), float(iqm_high[i])) for i, step in enumerate(steps)]


def group_statistics(group: Group, stratified: bool = False) -> GroupStats:
    """The group's statistics at each step; `stratified`: a group pooled over tasks, resampled within each task
    (its runs' env ids)."""
    steps, values, dropped = align(group.curves)
    strata = [str(curve.run.env_id) for curve in group.curves] if stratified else None
    return GroupStats(group, tuple(step_statistics(steps, values, strata)), tuple(dropped))
