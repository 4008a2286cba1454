"""A trial's score over its seeds: one robust number from each seed's mean evaluation return, so that a trial is not
judged by one seed's luck (`hydra.sweeper.aggregate`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rlexp.analysis.statistics import iqm

#: iqm: the interquartile mean (rliable's: the middle 50%, a quarter trimmed off each end; with 4 seeds, the mean of
#: the middle two); mean; median; min: the worst seed (a search for settings that never fail).
AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": lambda values: float(iqm(values)),
    "mean": lambda values: float(np.mean(values)),
    "median": lambda values: float(np.median(values)),
    "min": lambda values: float(np.min(values)),
}


def aggregate(name: str, values: Sequence[float]) -> float:
    """`name`'s aggregate of the seeds' `values`."""
    return AGGREGATES[name](np.asarray(values, dtype=np.float64))
