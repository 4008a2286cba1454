"""`rlexp plot`: learning curves of runs and sweeps, seeds pooled into one line with a 95% confidence band.

One seed says little about an algorithm or a setting: runs whose overrides differ only in their seed (or in
settings that do not change what is learned) form a group, drawn as one line, the mean (or the IQM) over
seeds at each step, with a bootstrapped 95% confidence interval, so that a gap between two lines can be told
from seed luck. The numbers go to CSV files too, the raw per-run values included, to redo the statistics.

This module parses the command line, calls rlexp/analysis/ (curves: finding, reading and grouping runs;
statistics: the mean, IQM and bootstrap intervals; figures: the drawing and the CSV files) and reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rlexp.analysis import figures
from rlexp.analysis.curves import binned, find_runs, group_curves, human_normalized_curves, read_curves
from rlexp.analysis.statistics import GroupStats, group_statistics
from rlexp.analysis.tables import shorten_floats, text_table
from rlexp.commands import options
from rlexp.commands.subcommand import run_subcommand
from rlexp.config.compat import EXECUTION_KEYS
from rlexp.errors import ConfigError, RunFailure
from rlexp.io import OBJECTIVE
from rlexp.io.writable import check_writable

STATS = ("mean", "iqm")
NORMALIZATIONS = ("none", "human")
POOLS = ("none", "env")
#: The metrics that are returns, which normalize=human rescales.
RETURNS = ("eval/mean_return", "charts/episodic_return")

PLOT_USAGE = """usage: rlexp plot <run or sweep dir> [more dirs ...] [metric=TAG] [stat=mean|iqm] [out=FILE.png]
                  [normalize=none|human] [pool=none|env] [bin=STEPS]

Finds every run at or below the given directories (a directory holding .hydra/overrides.yaml and TensorBoard
event files), groups the runs whose overrides differ only in the seed or in how they ran
({execution}),
and draws one line per group: the mean over its runs (stat=iqm: the interquartile mean) of the TensorBoard
scalar `metric` (default eval/mean_return) at each step all of them logged, with a shaded 95% bootstrap
confidence interval. Writes the figure to `out` (default <dir>/plot.png when one directory is given,
else ./plot.png), the per-step statistics to <out stem>.csv and every run's values to <out stem>_runs.csv.
normalize=human draws Atari returns as % of the DQN paper's human tester: 100 * (G - random) / (human - random).
pool=env (with normalize=human) pools an algorithm's runs on several games into one group, its mean and IQM over
every game and seed, the intervals from a bootstrap that resamples each game's runs within it (rliable's
aggregate over a benchmark's games).
bin=STEPS averages each run's points over bins of that many steps, each drawn at its bin's end: the per-episode
metrics (charts/episodic_return, charts/episodic_length) are logged at each run's own episode ends, which no two
runs share.

examples:
  rlexp plot outputs/multirun/<time>
  rlexp plot outputs/td3_Pendulum-v1 outputs/ddpg_Pendulum-v1 stat=iqm out=pendulum.png
  rlexp plot outputs/multirun/<time> metric=charts/episodic_length bin=10000
  rlexp plot outputs/multirun/<atari sweep> normalize=human
  rlexp plot outputs/der_* normalize=human pool=env stat=iqm
""".format(execution=", ".join(f"{key}*" if key.endswith(".") else key for key in EXECUTION_KEYS))


@dataclass(frozen=True)
class PlotOptions:
    paths: tuple[Path, ...]
    metric: str = OBJECTIVE
    stat: str = "mean"           # the line: mean | iqm (the band is the 95% CI of the same statistic)
    out: Path | None = None      # default: <dir>/plot.png for one directory, else ./plot.png
    normalize: str = "none"      # human: Atari returns as % of the DQN paper's human tester (over random play)
    bin: int | None = None       # average each run's points over bins of this many steps (per-episode metrics)
    pool: str = "none"           # env: one group over every env (games), bootstrapped within each


@dataclass(frozen=True)
class PlotResult:
    figure: Path
    statistics_csv: Path
    runs_csv: Path
    groups: tuple[GroupStats, ...]
    stat: str


def figure_path(key: str, text: str) -> Path:
    if Path(text).suffix.lower() not in figures.FIGURE_SUFFIXES:
        raise ConfigError(f"{key}={text} must be a file ending in .png, .pdf or .svg")
    return Path(text)


def parse_plot_args(args: list[str]) -> PlotOptions:
    """Directories, then key=value options, in any order; anything wrong is a ConfigError naming it."""
    paths, values = options.parse(args, {"metric": options.text("eval/mean_return"), "stat": options.one_of(*STATS),
                                         "out": figure_path, "normalize": options.one_of(*NORMALIZATIONS),
                                         "bin": options.positive_int, "pool": options.one_of(*POOLS)}, "plot")
    if not paths:
        raise ConfigError("give at least one run or sweep directory (rlexp plot --help)")
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"{path} does not exist")
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory; give run or sweep directories")
    plot_options = PlotOptions(paths=tuple(map(Path, paths)), **values)
    if plot_options.normalize == "human" and plot_options.metric not in RETURNS:
        raise ConfigError(f"normalize=human rescales returns ({', '.join(RETURNS)}), not metric={plot_options.metric}")
    if plot_options.pool == "env" and plot_options.normalize != "human":
        raise ConfigError("pool=env averages returns across envs, which only human-normalized scores make "
                          "comparable; add normalize=human")
    return plot_options


def default_output(paths: Sequence[Path]) -> Path:
    """Next to the runs when there is one directory (a sweep's plot lives in the sweep), else here."""
    return paths[0] / "plot.png" if len(paths) == 1 else Path("plot.png")


def make_plot(options: PlotOptions, warn: Callable[[str], None]) -> PlotResult:
    """Find, read, group, compute, draw and write; warnings for what was left out, ConfigError for bad input."""
    figure = options.out or default_output(options.paths)
    if figure.is_dir():
        raise ConfigError(f"out={figure} is a directory; give a file name ending in .png, .pdf or .svg")
    check_writable(figure.parent, "the figure")   # before the runs are read
    run_dirs = find_runs(options.paths, warn)
    if not run_dirs:
        raise ConfigError(f"no runs under {', '.join(map(str, options.paths))}: a run directory holds "
                          f".hydra/overrides.yaml and TensorBoard event files (events.out.tfevents.*)")
    figures.check_libraries()
    groups: list[GroupStats] = []
    curves = read_curves(run_dirs, options.metric, warn)
    if options.normalize == "human":
        curves = human_normalized_curves(curves)
    if options.bin:
        curves = [binned(curve, options.bin) for curve in curves]
    pooled = options.pool == "env"
    for group in group_curves(curves, pooled):
        stats = group_statistics(group, stratified=pooled)
        if not stats.steps:
            warn(f"{group.label}: its {len(group.curves)} runs share no step of {options.metric}; left out")
            continue
        if stats.dropped_steps:
            shown = ", ".join(map(str, stats.dropped_steps[:5])) + (", ..." if len(stats.dropped_steps) > 5 else "")
            warn(f"{group.label}: its runs logged different steps; dropped {len(stats.dropped_steps)} step(s) "
                 f"not in all {len(group.curves)} runs ({shown})")
        groups.append(stats)
    if not groups:
        raise ConfigError(f"no group has a step of {options.metric} that all its runs logged"
                          + ("" if options.bin else "; per-episode metrics need bin=STEPS (e.g. bin=10000)"))
    statistics_csv = figure.with_suffix(".csv")
    runs_csv = figure.with_name(f"{figure.stem}_runs.csv")
    try:
        figure.parent.mkdir(parents=True, exist_ok=True)
        figures.draw(groups, options.metric, options.stat, figure, options.normalize)
        figures.write_statistics(groups, statistics_csv)
        figures.write_runs(groups, runs_csv)
    except OSError as error:   # a full disk, a directory gone since the check
        raise RunFailure(f"could not write {error.filename or figure.parent}: {error.strerror or error}") from None
    return PlotResult(figure, statistics_csv, runs_csv, tuple(groups), options.stat)


def _number(value: float) -> str:
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def format_summary(result: PlotResult) -> str:
    """Where the files went, and each group's last point (floats shortened as in the sweep summary; the CSVs
    keep the labels whole)."""
    header = ("group", "runs", "final step", "final mean [95% CI]", "final IQM")
    lines = []
    for group in result.groups:
        last = group.steps[-1]
        lines.append((shorten_floats(group.group.label), str(last.runs), str(last.step),
                      f"{_number(last.mean)} [{_number(last.ci95_low)}, {_number(last.ci95_high)}]", _number(last.iqm)))
    table = text_table(header, lines)
    return "\n".join([f"figure: {result.figure}", f"statistics: {result.statistics_csv}",
                      f"per-run values: {result.runs_csv}", "", *table])


def plot_and_report(args: list[str], warn: Callable[[str], None]) -> str:
    """Plot; where the files went and each group's last point."""
    return format_summary(make_plot(parse_plot_args(args), warn))


def main(args: list[str]) -> int:
    """`rlexp plot ...`: the files and a table on stdout; warnings (only when it succeeds) or the one-line error on
    stderr (exit 2)."""
    return run_subcommand("plot", PLOT_USAGE, args, plot_and_report)
