"""A plot's figure (one line per group with its 95% confidence band, matplotlib) and its CSV files (the per-step
statistics, and every run's values to redo them)."""

from __future__ import annotations

import csv
import textwrap
from collections.abc import Sequence
from pathlib import Path

from rlexp.analysis.statistics import GroupStats, StepStats
from rlexp.analysis.tables import shorten_floats
from rlexp.errors import ConfigError, needs_extra

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")

#: Axis names of rlexp's own scalars; other tags are shown as they are.
METRIC_NAMES = {"eval/mean_return": "eval return", "eval/std_return": "std of eval returns",
                "charts/episodic_return": "training episode return",
                "charts/episodic_length": "training episode length"}


def check_libraries() -> None:
    """Fail before the slow part when the optional plotting libraries (matplotlib, and scipy for the statistics)
    are not installed."""
    with needs_extra("plot", "rlexp plot needs matplotlib and scipy: $fix"):
        import_matplotlib()
        import scipy.stats  # noqa: F401


def import_matplotlib() -> None:
    """matplotlib, whose import validates the MPLBACKEND environment variable: a value it does not know is one
    ConfigError line (it was matplotlib's ValueError traceback). rlexp draws on a Figure, with no backend."""
    import os

    try:
        import matplotlib  # noqa: F401
    except ValueError as error:
        if "backend" not in str(error):
            raise
        raise ConfigError(f"MPLBACKEND={os.environ.get('MPLBACKEND', '')!r} is not a matplotlib backend: unset it "
                          f"(rlexp draws its figures without one) or name one, e.g. MPLBACKEND=agg") from None


def axis_label(metric: str, stat: str, normalize: str = "none") -> str:
    name = METRIC_NAMES.get(metric, metric)
    if normalize == "human":
        name = f"human-normalized {name}, %"
    return f"{name} ({'mean' if stat == 'mean' else 'IQM'} over seeds)"


def plot_title(groups: Sequence[GroupStats], metric: str) -> str:
    env_ids = sorted({c.run.env_id for g in groups for c in g.group.curves if c.run.env_id})
    return ", ".join(env_ids) or metric


def draw(groups: Sequence[GroupStats], metric: str, stat: str, path: Path, normalize: str = "none") -> None:
    """One line per group (mean or IQM) with its 95% CI band; the legend below the axes, never over a curve,
    its labels' floats shortened (0.0006466 for 0.00064664227...)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    # '$' would start matplotlib's math mode; long labels wrap instead of widening the figure
    labels = [textwrap.fill(f"{shorten_floats(g.group.label)} (n={g.steps[0].runs})".replace("$", r"\$"), 70)
              for g in groups]
    columns = 1 if max(len(label) for label in labels) > 32 else min(len(labels), 3)
    legend_lines = sum(label.count("\n") + 1 for label in labels) if columns == 1 else -(-len(labels) // columns)
    figure = Figure(figsize=(8, 4.6 + 0.22 * legend_lines), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    for number, (group, label) in enumerate(zip(groups, labels)):
        steps = [s.step for s in group.steps]
        center = [s.mean if stat == "mean" else s.iqm for s in group.steps]
        low = [s.ci95_low if stat == "mean" else s.iqm_ci95_low for s in group.steps]
        high = [s.ci95_high if stat == "mean" else s.iqm_ci95_high for s in group.steps]
        (line,) = axes.plot(steps, center, label=label, linewidth=1.8, marker="o" if len(steps) == 1 else None,
                            linestyle=("-", "--", ":", "-.")[number // 10 % 4])  # past 10 groups colours repeat
        axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xlabel("environment steps")
    axes.set_ylabel(axis_label(metric, stat, normalize))
    if normalize == "human":
        axes.axhline(100.0, color="grey", linewidth=0.8, linestyle="--")   # the human tester
    axes.set_title(plot_title(groups, metric))
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))  # 500, 10k, 1.5M
    axes.grid(True, alpha=0.3)
    axes.margins(x=0.01)
    figure.legend(loc="outside lower center", ncols=columns, frameon=False, fontsize="small",
                  title=f"shaded: 95% bootstrap CI of the {'mean' if stat == 'mean' else 'IQM'}",
                  title_fontsize="small")
    figure.savefig(path)


def write_statistics(groups: Sequence[GroupStats], path: Path) -> None:
    fields = ["group", *StepStats.__dataclass_fields__]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for group in groups:
            for s in group.steps:
                writer.writerow([group.group.label, *(getattr(s, name) for name in fields[1:])])


def write_runs(groups: Sequence[GroupStats], path: Path) -> None:
    """Every point of every plotted run, the steps dropped from the statistics included."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "run_dir", "seed", "step", "value"])
        for group in groups:
            for curve in group.group.curves:
                seed = "" if curve.run.seed is None else curve.run.seed
                for step in sorted(curve.points):
                    writer.writerow([group.group.label, str(curve.run.run_dir), seed, step, curve.points[step]])
