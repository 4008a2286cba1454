"""`rlexp plot`: learning curves of runs and sweeps, seeds pooled into one line with a 95% confidence band.

One seed says little about an algorithm or a setting: runs whose overrides differ only in their seed (or in
settings that do not change what is learned) form a group, drawn as one line, the mean (or the IQM) over
seeds at each step, with a bootstrapped 95% confidence interval, so that a gap between two lines can be told
from seed luck. The numbers go to CSV files too, the raw per-run values included, to redo the statistics.
"""

from __future__ import annotations

import csv
import logging
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from omegaconf import OmegaConf

from rlexp.analysis.tables import shorten_floats, text_table
from rlexp.commands import options
from rlexp.commands.options import override_key
from rlexp.config.compat import EXECUTION_KEYS
from rlexp.errors import ConfigError
from rlexp.io import OBJECTIVE, seed_runs

#: Override keys (and key prefixes, ending in "." or "/") left out of a group's key: the seed, and what does not
#: change what a run learns, only where or how it runs and what it writes (rlexp.config.compat.EXECUTION_KEYS).
#: eval.* stays in the key: eval.every sets the steps a curve has and eval.episodes how noisy each of its points
#: is, so pooling runs that differ there would mix different measurements (and drop the steps they do not share).
NOT_LEARNING = ("seed", *EXECUTION_KEYS, "hydra.", "hydra/")

STATS = ("mean", "iqm")
NORMALIZATIONS = ("none", "human")
#: The metrics that are returns, which normalize=human rescales.
RETURNS = ("eval/mean_return", "charts/episodic_return")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0          # fixed: the same runs always give the same band
MISSING_LIBRARIES = 'rlexp plot needs matplotlib and scipy: pip install "rlexp[plot]"'

#: Axis names of rlexp's own scalars; other tags are shown as they are.
METRIC_NAMES = {"eval/mean_return": "eval return", "eval/std_return": "std of eval returns",
                "charts/episodic_return": "training episode return",
                "charts/episodic_length": "training episode length"}

PLOT_USAGE = """usage: rlexp plot <run or sweep dir> [more dirs ...] [metric=TAG] [stat=mean|iqm] [out=FILE.png]
                  [normalize=none|human] [bin=STEPS]

Finds every run at or below the given directories (a directory holding .hydra/overrides.yaml and TensorBoard
event files), groups the runs whose overrides differ only in the seed or in how they ran
({execution}),
and draws one line per group: the mean over its runs (stat=iqm: the interquartile mean) of the TensorBoard
scalar `metric` (default eval/mean_return) at each step all of them logged, with a shaded 95% bootstrap
confidence interval. Writes the figure to `out` (default <dir>/plot.png when one directory is given,
else ./plot.png), the per-step statistics to <out stem>.csv and every run's values to <out stem>_runs.csv.
normalize=human draws Atari returns as % of the DQN paper's human tester: 100 * (G - random) / (human - random).
bin=STEPS averages each run's points over bins of that many steps, each drawn at its bin's end: the per-episode
metrics (charts/episodic_return, charts/episodic_length) are logged at each run's own episode ends, which no two
runs share.

examples:
  rlexp plot outputs/multirun/<time>
  rlexp plot outputs/td3_Pendulum-v1 outputs/ddpg_Pendulum-v1 stat=iqm out=pendulum.png
  rlexp plot outputs/multirun/<time> metric=charts/episodic_length bin=10000
  rlexp plot outputs/multirun/<atari sweep> normalize=human
""".format(execution=", ".join(f"{key}*" if key.endswith(".") else key for key in EXECUTION_KEYS))


@dataclass(frozen=True)
class PlotOptions:
    paths: tuple[Path, ...]
    metric: str = OBJECTIVE
    stat: str = "mean"           # the line: mean | iqm (the band is the 95% CI of the same statistic)
    out: Path | None = None      # default: <dir>/plot.png for one directory, else ./plot.png
    normalize: str = "none"      # human: Atari returns as % of the DQN paper's human tester (over random play)
    bin: int | None = None       # average each run's points over bins of this many steps (per-episode metrics)


@dataclass(frozen=True)
class Run:
    run_dir: Path
    overrides: tuple[str, ...]
    seed: int | None
    algo: str | None
    env_id: str | None


@dataclass(frozen=True)
class Curve:
    run: Run
    points: dict[int, float]     # step -> value, each step once


@dataclass(frozen=True)
class Group:
    key: tuple[str, ...]         # the overrides that change learning, sorted
    label: str
    curves: tuple[Curve, ...]


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


@dataclass(frozen=True)
class PlotResult:
    figure: Path
    statistics_csv: Path
    runs_csv: Path
    groups: tuple[GroupStats, ...]
    stat: str


# --- the command line ----------------------------------------------------------------------------------------

def figure_path(key: str, text: str) -> Path:
    if Path(text).suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError(f"{key}={text} must be a file ending in .png, .pdf or .svg")
    return Path(text)


def parse_plot_args(args: list[str]) -> PlotOptions:
    """Directories, then key=value options, in any order; anything wrong is a ConfigError naming it."""
    paths, values = options.parse(args, {"metric": options.text("eval/mean_return"), "stat": options.one_of(*STATS),
                                         "out": figure_path, "normalize": options.one_of(*NORMALIZATIONS),
                                         "bin": options.positive_int}, "plot")
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
    return plot_options


def default_output(paths: Sequence[Path]) -> Path:
    """Next to the runs when there is one directory (a sweep's plot lives in the sweep), else here."""
    return paths[0] / "plot.png" if len(paths) == 1 else Path("plot.png")


# --- finding and reading runs ---------------------------------------------------------------------------------

def _natural(path: Path) -> list[Any]:
    """Sort key that puts sweep job 2 before job 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_runs(paths: Iterable[Path], warn: Callable[[str], None] = lambda message: None) -> list[Path]:
    """Every run directory at or below `paths` (.hydra/overrides.yaml and an event file in it), once each, in
    the order of `paths` (the groups, and their colours, follow it)."""
    found: dict[Path, Path] = {}
    for root in paths:
        for run_dir in sorted((o.parent.parent for o in root.rglob(".hydra/overrides.yaml")), key=_natural):
            if not any(run_dir.glob("events.out.tfevents.*")):
                if seed_runs(run_dir):
                    continue   # the parent of a many-seeds run: its seeds are the runs, found below it
                warn(f"{run_dir} holds no TensorBoard event file (did the run start?); skipped")
                continue
            found.setdefault(run_dir.resolve(), run_dir)
    return list(found.values())


def read_run(run_dir: Path) -> Run:
    """The run's overrides, and its seed, algo and env from the config Hydra saved with it (when there)."""
    overrides = tuple(str(o) for o in cast("list[Any]", OmegaConf.to_container(
        OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))))   # a list of override strings
    config_file = run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create({})

    def select(key: str) -> Any:
        value = OmegaConf.select(config, key, default=None, throw_on_missing=False)
        return value if isinstance(value, (str, int)) else None

    seed = select("seed")
    if seed is None:
        seed = next((int(o.split("=", 1)[1]) for o in overrides
                     if override_key(o) == "seed" and o.split("=", 1)[1].lstrip("-").isdigit()), None)
    return Run(run_dir=run_dir, overrides=overrides, seed=seed, algo=select("algo.name"), env_id=select("env.id"))


def read_scalars(run_dir: Path, metric: str) -> tuple[dict[int, float] | None, list[str]]:
    """The run's `metric` by step (None if it never logged it), and every scalar tag it logged.

    EventAccumulator reads all the run's event files in order and drops the points that a resumed run
    purged (those logged after its checkpoint by the process that was killed), as TensorBoard shows them.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    tensorboard_log = logging.getLogger("tensorboard")
    level = tensorboard_log.level
    tensorboard_log.setLevel(logging.ERROR)  # not its multi-line notice of each purge: purging is expected here
    try:
        accumulator.Reload()
    finally:
        tensorboard_log.setLevel(level)
    tags = sorted(accumulator.Tags()["scalars"])
    if metric not in tags:
        return None, tags
    return {int(e.step): float(e.value) for e in accumulator.Scalars(metric)}, tags  # a repeated step: the last


def read_curves(run_dirs: Sequence[Path], metric: str, warn: Callable[[str], None]) -> list[Curve]:
    """Each run's curve of `metric`; runs without it are skipped with a warning, unless no run has it."""
    curves: list[Curve] = []
    missing: list[Path] = []
    all_tags: set[str] = set()
    for run_dir in run_dirs:
        points, tags = read_scalars(run_dir, metric)
        all_tags.update(tags)
        if not points:
            missing.append(run_dir)
            continue
        try:
            curves.append(Curve(read_run(run_dir), points))
        except Exception as error:  # a hand-edited or truncated .hydra/*.yaml: one run lost, not the plot
            warn(f"{run_dir}/.hydra is unreadable ({type(error).__name__}: {error}); skipped".replace("\n", " "))
    if len(missing) == len(run_dirs):
        logged = ", ".join(sorted(all_tags)) if all_tags else "no scalars at all"
        raise ConfigError(f"no run logged metric={metric}; the runs logged: {logged}")
    if not curves:
        raise ConfigError("no run with a readable .hydra/ config logged " + metric)
    for run_dir in missing:
        warn(f"{run_dir} has no {metric}; skipped")
    return curves


def human_normalized_curves(curves: Sequence[Curve]) -> list[Curve]:
    """Each run's returns as % of the human tester's score on its game (a ConfigError names a run off the table)."""
    from rlexp.envs.atari_scores import human_normalized

    normalized = []
    for curve in curves:
        if curve.run.env_id is None:
            raise ConfigError(f"normalize=human: {curve.run.run_dir} has no env.id in .hydra/config.yaml")
        normalized.append(Curve(curve.run, {step: human_normalized(value, curve.run.env_id)
                                            for step, value in curve.points.items()}))
    return normalized


# --- grouping -------------------------------------------------------------------------------------------------

def changes_learning(override: str) -> bool:
    key = override_key(override)
    return not any(key == k or (k.endswith((".", "/")) and key.startswith(k)) for k in NOT_LEARNING)


def group_key(overrides: Iterable[str]) -> tuple[str, ...]:
    """What a run learned with: its overrides minus the seed and the settings that do not change learning."""
    return tuple(sorted(o for o in overrides if changes_learning(o)))


def group_labels(groups: Sequence[Sequence[Run]]) -> list[str]:
    """Each group's overrides minus those all groups share (as the sweep summary does), in the order they were
    typed; with one group, its algo and env (what the plot is of), as there is no other group to tell it from."""
    if len(groups) == 1:
        names = sorted({f"{r.algo} on {r.env_id}" for r in groups[0] if r.algo and r.env_id})
        return [", ".join(names) or " ".join(group_key(groups[0][0].overrides)) or "runs"]
    shared = set.intersection(*(set(group_key(runs[0].overrides)) for runs in groups))
    return [" ".join(o for o in runs[0].overrides if changes_learning(o) and o not in shared) or "(none)"
            for runs in groups]


def group_curves(curves: Sequence[Curve]) -> list[Group]:
    """Curves with the same group key, groups in the order their first run was found."""
    by_key: dict[tuple[str, ...], list[Curve]] = {}
    for curve in curves:
        by_key.setdefault(group_key(curve.run.overrides), []).append(curve)
    labels = group_labels([[c.run for c in members] for members in by_key.values()])
    return [Group(key, label, tuple(members)) for (key, members), label in zip(by_key.items(), labels)]


# --- statistics -----------------------------------------------------------------------------------------------

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


def step_statistics(steps: Sequence[int], values: np.ndarray) -> list[StepStats]:
    """Per step: number of runs, mean and IQM over runs, and a 95% bootstrap interval of each."""
    if not len(steps):
        return []
    mean = values.mean(axis=0)
    middle = iqm(values, axis=0)
    low, high = bootstrap_ci(values, np.mean)
    iqm_low, iqm_high = bootstrap_ci(values, iqm)
    return [StepStats(int(step), values.shape[0], float(mean[i]), float(low[i]), float(high[i]), float(middle[i]),
                      float(iqm_low[i]), float(iqm_high[i])) for i, step in enumerate(steps)]


def group_statistics(group: Group) -> GroupStats:
    steps, values, dropped = align(group.curves)
    return GroupStats(group, tuple(step_statistics(steps, values)), tuple(dropped))


# --- output ---------------------------------------------------------------------------------------------------

def _plotting_libraries() -> None:
    """Fail before the slow part when the optional plotting libraries are not installed."""
    try:
        import matplotlib  # noqa: F401
        import scipy.stats  # noqa: F401
    except ImportError:
        raise ConfigError(MISSING_LIBRARIES) from None


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


def binned(curve: Curve, width: int) -> Curve:
    """The curve's points averaged over bins of `width` steps, (k - 1) * width < step <= k * width drawn at
    k * width."""
    bins: dict[int, list[float]] = {}
    for step, value in curve.points.items():
        bins.setdefault(-(-step // width) * width, []).append(value)
    return Curve(curve.run, {end: sum(values) / len(values) for end, values in sorted(bins.items())})


def make_plot(options: PlotOptions, warn: Callable[[str], None]) -> PlotResult:
    """Find, read, group, compute, draw and write; warnings for what was left out, ConfigError for bad input."""
    run_dirs = find_runs(options.paths, warn)
    if not run_dirs:
        raise ConfigError(f"no runs under {', '.join(map(str, options.paths))}: a run directory holds "
                          f".hydra/overrides.yaml and TensorBoard event files (events.out.tfevents.*)")
    _plotting_libraries()
    groups: list[GroupStats] = []
    curves = read_curves(run_dirs, options.metric, warn)
    if options.normalize == "human":
        curves = human_normalized_curves(curves)
    if options.bin:
        curves = [binned(curve, options.bin) for curve in curves]
    for group in group_curves(curves):
        stats = group_statistics(group)
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
    figure = options.out or default_output(options.paths)
    figure.parent.mkdir(parents=True, exist_ok=True)
    statistics_csv = figure.with_suffix(".csv")
    runs_csv = figure.with_name(f"{figure.stem}_runs.csv")
    draw(groups, options.metric, options.stat, figure, options.normalize)
    write_statistics(groups, statistics_csv)
    write_runs(groups, runs_csv)
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


def main(args: list[str]) -> int:
    """`rlexp plot ...`: the files and a table on stdout; warnings (only when it succeeds) or the one-line error on
    stderr (exit 2)."""
    if any(a in ("-h", "--help") for a in args):
        print(PLOT_USAGE, end="")
        return 0
    warnings: list[str] = []
    try:
        result = make_plot(parse_plot_args(args), warnings.append)
    except ConfigError as error:
        message = str(error)
        print(message if message == MISSING_LIBRARIES else f"rlexp plot: error: {message}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"rlexp plot: warning: {warning}", file=sys.stderr)
    print(format_summary(result))
    return 0
