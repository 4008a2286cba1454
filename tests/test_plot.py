"""`rlexp plot`: the statistics against hand-computed values, the grouping of runs, and the command as a user
runs it on a real (tiny) sweep and a resumed run, its numbers checked against the event files read directly."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.stats import trim_mean
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from rlexp.analysis import figures
from rlexp.analysis.curves import Curve, Run, binned, group_curves, group_key
from rlexp.analysis.statistics import align, group_statistics, iqm, step_statistics
from rlexp.commands import plot
from rlexp.errors import ConfigError
from tests.conftest import made_once, run_cli, run_in_process, train_in_process

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWEEP = ["train", "--multirun", "algo=dqn", "env=CartPole-v1", "total_steps=600", "algo.learning_starts=100",
         "eval.every=200", "eval.episodes=2", "log.progress=none", "torch_threads=1", "network.hidden_sizes=[32]",
         "algo.lr=1e-3,5e-4", "seed=0,1", "hydra.sweep.dir=sweep"]


def raw_points(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """Every point of `tag` in the run's event files, file by file, as written: no purging, no merging."""
    points = []
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(events)).Load():
            points += [(event.step, v.simple_value if v.HasField("simple_value") else v.tensor.float_val[0])
                       for v in event.summary.value if v.tag == tag]  # the loader turns simple values to tensors
    return points


def job_overrides(job: Path) -> list[str]:
    return OmegaConf.to_container(OmegaConf.load(job / ".hydra" / "overrides.yaml"))


def lr_jobs(sweep: Path, lr: str) -> list[Path]:
    """The sweep's jobs with learning rate `lr` (its two seeds), read from their overrides, not their names."""
    return sorted(job for job in (sweep / "sweep").iterdir() if job.is_dir() and lr in job_overrides(job))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def curve(overrides: list[str], points: dict[int, float], seed: int = 0) -> Curve:
    run = Run(Path(f"run_{'_'.join(overrides)}_{seed}"), (*overrides, f"seed={seed}"), seed, "dqn", "CartPole-v1")
    return Curve(run, points)


# --- statistics -------------------------------------------------------------------------------------------------

def test_iqm_is_the_mean_of_the_middle_half():
    values = np.array([100.0, 1.0, 7.0, 3.0, 5.0, 2.0, 6.0, 4.0])  # sorted: 1 2 | 3 4 5 6 | 7 100
    assert iqm(values) == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert iqm(np.array([1.0, 2.0, 3.0, 10.0])) == pytest.approx(2.5)  # 4 runs: the middle two
    assert iqm(np.array([1.0, 2.0, 9.0])) == pytest.approx(4.0)       # 3 runs: nothing to trim, the mean


def test_step_statistics_mean_iqm_and_ci():
    values = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [10.0, 10.0]])  # 4 runs x 2 steps
    first, constant = step_statistics([100, 200], values)
    assert (first.step, first.runs, first.mean, first.iqm) == (100, 4, 4.0, 2.5)
    assert first.ci95_low < first.mean < first.ci95_high and first.ci95_low >= 1.0 and first.ci95_high <= 10.0
    assert first.iqm_ci95_low <= first.iqm <= first.iqm_ci95_high
    assert (constant.mean, constant.ci95_low, constant.ci95_high, constant.iqm) == (10.0, 10.0, 10.0, 10.0)
    assert step_statistics([100, 200], values) == [first, constant]  # a fixed seed: the same band every time
    assert step_statistics([100], values[:, :1]) == [first]          # a step's band depends on its values only


def test_the_ci_of_two_runs_spans_them_and_of_one_run_is_its_value():
    # Resampling 2 values gives means a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4: percentiles 2.5, 97.5 = a, b.
    (two,) = step_statistics([5], np.array([[3.0], [8.0]]))
    assert (two.mean, two.ci95_low, two.ci95_high) == (5.5, 3.0, 8.0)
    (one,) = step_statistics([5], np.array([[7.5]]))
    assert (one.runs, one.mean, one.ci95_low, one.ci95_high, one.iqm, one.iqm_ci95_low) == (1, 7.5, 7.5, 7.5, 7.5, 7.5)


def test_steps_are_aligned_to_those_every_run_has():
    steps, values, dropped = align([curve([], {500: 1.0, 1000: 2.0, 1500: 3.0}),
                                    curve([], {500: 4.0, 1000: 5.0}, seed=1)])
    assert steps == [500, 1000] and dropped == [1500]
    assert values.tolist() == [[1.0, 2.0], [4.0, 5.0]]


# --- grouping -----------------------------------------------------------------------------------------------------

def test_the_group_key_keeps_only_what_changes_learning():
    overrides = ["algo=dqn", "seed=3", "device=cpu", "torch_threads=1", "log.progress=none", "checkpoint.every=10",
                 "resume=/x", "hydra.sweep.dir=s", "+algo.lr=1e-3", "eval.episodes=2", "total_steps=100"]
    assert group_key(overrides) == ("+algo.lr=1e-3", "algo=dqn", "eval.episodes=2", "total_steps=100")
    assert group_key(["algo.lr=1", "seed=0"]) == group_key(["seed=1", "algo.lr=1", "log.every=5"])
    # runs that differ only in how they executed are one group: compilation and GPU placement too
    assert group_key(["algo.lr=1", "compile=true", "compile_mode=default", "gpu_placement=pack"]) == \
        group_key(["algo.lr=1", "compile=false"]) == ("algo.lr=1",)


def test_groups_pool_seeds_and_are_labelled_by_what_differs():
    curves = [curve(["env=CartPole-v1", f"algo.lr={lr}"], {1: 0.0}, seed) for lr in (1, 2) for seed in (0, 1, 2)]
    groups = group_curves(curves)
    assert [(g.label, len(g.curves)) for g in groups] == [("algo.lr=1", 3), ("algo.lr=2", 3)]
    (single,) = group_curves(curves[:3])
    assert single.label == "dqn on CartPole-v1"  # one group: what the plot is of
    base_and_double = [curve(["env=CartPole-v1"], {1: 0.0}), curve(["env=CartPole-v1", "algo.double=true"], {1: 0.0})]
    assert [g.label for g in group_curves(base_and_double)] == ["(none)", "algo.double=true"]


def test_long_floats_are_shortened_on_screen_and_kept_whole_in_the_csv(tmp_path):
    curves = [curve([f"algo.lr={lr}"], {1: float(seed), 2: 1.0}, seed) for lr in ("0.00064664227", "0.001")
              for seed in (0, 1)]
    groups = tuple(group_statistics(g) for g in group_curves(curves))
    result = plot.PlotResult(tmp_path / "p.png", tmp_path / "p.csv", tmp_path / "p_runs.csv", groups, "mean")
    assert "algo.lr=0.0006466 " in plot.format_summary(result)
    figures.write_statistics(groups, result.statistics_csv)
    assert {row["group"] for row in read_csv(result.statistics_csv)} == {"algo.lr=0.00064664227", "algo.lr=0.001"}


def test_options_and_their_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = tmp_path / "0_algo.lr=0.001,seed=0"  # a sweep job's directory: '=' in its name, still a path
    job.mkdir()
    options = plot.parse_plot_args([job.name, "stat=iqm", "out=figs/a.png", "metric=charts/episodic_return"])
    assert options == plot.PlotOptions((Path(job.name),), "charts/episodic_return", "iqm", Path("figs/a.png"))
    assert plot.default_output([job]) == job / "plot.png" and plot.default_output([job, job]) == Path("plot.png")
    for args, message in ([[job.name, "out=a.txt"], "out=a.txt must be a file ending in .png"],
                          [[job.name, "stat="], "stat= must be mean or iqm"],
                          [["metric=x"], "give at least one run or sweep directory"]):
        with pytest.raises(ConfigError, match=message):
            plot.parse_plot_args(args)


def test_bins_average_each_runs_points_so_runs_logged_at_their_own_episode_ends_share_steps():
    a = curve(["env=CartPole-v1"], {3: 10.0, 7: 20.0, 10: 30.0, 12: 5.0}, 0)     # episode ends of one seed
    b = curve(["env=CartPole-v1"], {4: 40.0, 11: 0.0, 19: 2.0}, 1)               # and of another
    assert binned(a, 10).points == {10: 20.0, 20: 5.0}    # (0, 10] -> 10, (10, 20] -> 20
    assert binned(b, 10).points == {10: 40.0, 20: 1.0}
    assert group_statistics(group_curves([a, b])[0]).steps == ()       # raw: no step in common
    (stats,) = [group_statistics(g) for g in group_curves([binned(a, 10), binned(b, 10)])]
    assert [(row.step, row.runs, row.mean) for row in stats.steps] == [(10, 2, 30.0), (20, 2, 3.0)]


def test_the_default_metric_is_the_objective(tmp_path, monkeypatch):
    from rlexp.io import OBJECTIVE

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    assert plot.PlotOptions((Path("run"),)).metric == OBJECTIVE == "eval/mean_return"
    assert plot.parse_plot_args(["run"]).metric == OBJECTIVE


def test_missing_plotting_libraries_are_named(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    with pytest.raises(ConfigError) as error:
        figures.check_libraries()
    assert str(error.value) == 'rlexp plot needs matplotlib and scipy: pip install "rlexp[plot]"'


# --- the command, on real runs ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """2 learning rates x 2 seeds of a tiny DQN, evaluated at steps 200, 400 and 600 (at sweep/), made once per
    session (made_once)."""
    def make(workdir: Path) -> None:
        proc = run_cli(SWEEP, cwd=workdir)
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, "plot-sweep", make)[0]


def test_plot_of_a_sweep_matches_the_event_files(sweep):
    proc = run_cli(["plot", "sweep"], cwd=sweep)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    figure = sweep / "sweep" / "plot.png"
    assert figure.read_bytes()[:8] == PNG_MAGIC and 20_000 < figure.stat().st_size < 1_000_000
    assert "figure: sweep/plot.png" in proc.stdout and "statistics: sweep/plot.csv" in proc.stdout
    assert "per-run values: sweep/plot_runs.csv" in proc.stdout

    jobs = {job: job_overrides(job) for job in (sweep / "sweep").iterdir() if job.is_dir()}
    raw = {job.name: dict(raw_points(job, "eval/mean_return")) for job in jobs}
    expected = {group: [job for job, overrides in jobs.items() if group in overrides]
                for group in ("algo.lr=0.001", "algo.lr=0.0005")}
    rows = read_csv(sweep / "sweep" / "plot.csv")
    assert [(r["group"], int(r["step"])) for r in rows] == [(g, s) for g in expected for s in (200, 400, 600)]
    for row in rows:
        values = np.array([raw[job.name][int(row["step"])] for job in expected[row["group"]]])
        assert int(row["runs"]) == 2
        assert float(row["mean"]) == pytest.approx(values.mean())
        assert float(row["iqm"]) == pytest.approx(trim_mean(values, 0.25))
        assert float(row["ci95_low"]) == pytest.approx(values.min())  # 2 runs: the percentile CI spans them
        assert float(row["ci95_high"]) == pytest.approx(values.max())

    runs = read_csv(sweep / "sweep" / "plot_runs.csv")
    assert len(runs) == 4 * 3
    for row in runs:
        job = Path(row["run_dir"])
        assert raw[job.name][int(row["step"])] == pytest.approx(float(row["value"]))
        assert f"seed={row['seed']}" in jobs[sweep / "sweep" / job.name]
    table = proc.stdout.splitlines()
    assert any(line.split()[:3] == ["algo.lr=0.001", "2", "600"] for line in table)
    assert any(line.split()[:3] == ["algo.lr=0.0005", "2", "600"] for line in table)


# (the command as a user types it: test_plot_of_a_sweep_matches_the_event_files; the others call it in process)
def test_plot_of_chosen_runs_with_iqm_and_an_output_file(sweep, capsys, monkeypatch):
    jobs = lr_jobs(sweep, "algo.lr=0.001")  # both seeds of one learning rate: one group
    proc = run_in_process(["plot", *(f"sweep/{job.name}" for job in jobs), "stat=iqm", "out=figs/lr.png"], sweep,
                          capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "figs" / "lr.png").read_bytes()[:8] == PNG_MAGIC
    rows = read_csv(sweep / "figs" / "lr.csv")
    assert {r["group"] for r in rows} == {"dqn on CartPole-v1"} and len(read_csv(sweep / "figs" / "lr_runs.csv")) == 6


def test_runs_without_the_metric_or_with_fewer_steps_are_warned_about(sweep, tmp_path, capsys, monkeypatch):
    import shutil

    from torch.utils.tensorboard import SummaryWriter

    jobs = lr_jobs(sweep, "algo.lr=0.001")
    for job in jobs:
        shutil.copytree(job, tmp_path / "runs" / job.name)
    other = tmp_path / "runs" / "no_eval"  # a run that logged other scalars only
    (other / ".hydra").mkdir(parents=True)
    (other / ".hydra" / "overrides.yaml").write_text("- algo=dqn\n")
    with SummaryWriter(str(other)) as writer:
        writer.add_scalar("charts/episodic_return", 1.0, 100)
    short = tmp_path / "runs" / "short"  # seed 2 of the same group, stopped after its first evaluation
    shutil.copytree(jobs[0] / ".hydra", short / ".hydra")
    (short / ".hydra" / "overrides.yaml").write_text(re.sub(r"seed=\d", "seed=2", (short / ".hydra" /
                                                                                     "overrides.yaml").read_text()))
    with SummaryWriter(str(short)) as writer:
        writer.add_scalar("eval/mean_return", 42.0, 200)

    proc = run_in_process(["plot", "runs"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    warnings = proc.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("rlexp plot: warning: ") for w in warnings)
    assert "runs/no_eval has no eval/mean_return; skipped" in proc.stderr
    assert "dropped 2 step(s) not in all 3 runs (400, 600)" in proc.stderr
    rows = read_csv(tmp_path / "runs" / "plot.csv")
    assert [(int(r["step"]), int(r["runs"])) for r in rows] == [(200, 3)]


def test_a_resumed_run_has_each_step_once(tmp_path, capsys, monkeypatch):
    """A run killed after its step-250 checkpoint (simulated: the step-500 one deleted) and resumed logs steps
    375 and 500 again; the plot reads them once, as TensorBoard does."""
    common = ["algo=dqn", "env=CartPole-v1", "algo.learning_starts=100", "eval.every=125", "eval.episodes=1",
              "checkpoint.every=250", "log.progress=none", "torch_threads=1", "network.hidden_sizes=[16]",
              "hydra.run.dir=run"]
    # (trained and resumed in process: the subject is the plot; test_resume.py runs resumes as typed)
    assert train_in_process(["train", *common, "total_steps=500"], tmp_path).returncode == 0
    (tmp_path / "run" / "checkpoints" / "step_500.pt").unlink()
    proc = train_in_process(["train", "resume=run", "total_steps=750"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    raw_steps = [step for step, _ in raw_points(tmp_path / "run", "eval/mean_return")]
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 2
    assert sorted(raw_steps) == [125, 250, 375, 375, 500, 500, 625, 750]  # the event files repeat 375, 500

    proc = run_in_process(["plot", "run"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    runs = read_csv(tmp_path / "run" / "plot_runs.csv")
    assert [int(r["step"]) for r in runs] == [125, 250, 375, 500, 625, 750]
    latest = dict(raw_points(tmp_path / "run", "eval/mean_return"))  # a repeated step: the resumed run's value
    assert all(float(r["value"]) == pytest.approx(latest[int(r["step"])]) for r in runs)
    steps = [int(r["step"]) for r in runs]
    assert [int(r["step"]) for r in read_csv(tmp_path / "run" / "plot.csv")] == steps


@pytest.mark.parametrize("args, message", [
    pytest.param([], "give at least one run or sweep directory", marks=pytest.mark.as_typed),
    (["nowhere"], "nowhere does not exist"),
    (["empty"], "no runs under empty: a run directory holds .hydra/overrides.yaml"),
    (["sweep", "metric=eval/nope"], "no run logged metric=eval/nope; the runs logged: charts/SPS, "),
    (["sweep", "colour=red"], "colour is not an option of rlexp plot; use metric, stat, out"),
    (["sweep", "stat=median"], "stat=median must be mean or iqm"),
    (["sweep", "bin=0"], "bin=0 must be a positive integer"),
])
def test_bad_plot_input_is_one_line_and_exit_2(sweep, rlexp, args, message):
    (sweep / "empty").mkdir(exist_ok=True)
    proc = rlexp(["plot", *args], cwd=sweep)
    assert proc.returncode == 2 and proc.stderr.startswith("rlexp plot: error: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


def test_plot_help(capsys, monkeypatch):
    proc = run_in_process(["plot", "--help"], Path.cwd(), capsys, monkeypatch)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: rlexp plot") and "stat=mean|iqm" in proc.stdout


def test_human_normalized_scores_follow_the_papers_table():
    from rlexp.envs.atari_scores import game_of, human_normalized, reference_scores

    assert len(reference_scores()) == 49
    assert game_of("ALE/Pong-v5") == game_of("PongNoFrameskip-v4") == game_of("Pong-v4") == "Pong"
    assert human_normalized(-20.7, "ALE/Pong-v5") == 0.0 and human_normalized(9.3, "ALE/Pong-v5") == pytest.approx(100)
    # the paper's Breakout: DQN 401.2 -> 1327% (Extended Data Table 2 lists 1327%)
    assert human_normalized(401.2, "ALE/Breakout-v5") == pytest.approx(1327, abs=0.5)
    with pytest.raises(ConfigError, match=r"ALE/Pitfall-v5 \(Pitfall\) is not one of the 49 games"):
        human_normalized(0.0, "ALE/Pitfall-v5")


def fake_atari_run(path: Path, env_id: str, seed: int, returns: dict[int, float]) -> None:
    """A run directory as rlexp writes it, with only what `rlexp plot` reads."""
    from torch.utils.tensorboard import SummaryWriter

    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(f"- algo=dqn\n- env=atari\n- env.id={env_id}\n- seed={seed}\n")
    (path / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nalgo:\n  name: dqn\nenv:\n  id: {env_id}\n")
    with SummaryWriter(str(path)) as writer:
        for step, value in returns.items():
            writer.add_scalar("eval/mean_return", value, step)


def test_plot_normalize_human_draws_atari_returns_as_percent_of_the_human_tester(tmp_path, capsys, monkeypatch):
    fake_atari_run(tmp_path / "runs" / "pong0", "ALE/Pong-v5", 0, {1000: -20.7, 2000: 9.3})
    fake_atari_run(tmp_path / "runs" / "pong1", "ALE/Pong-v5", 1, {1000: -20.7, 2000: -5.7})
    proc = run_in_process(["plot", "runs", "normalize=human"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(tmp_path / "runs" / "plot.csv")
    # (TensorBoard stores float32: -20.7 comes back as -20.7000008)
    assert [(int(r["step"]), float(r["mean"])) for r in rows] == [(1000, pytest.approx(0.0, abs=1e-4)),
                                                                (2000, pytest.approx(75.0, abs=1e-4))]
    fake_atari_run(tmp_path / "other" / "pitfall", "ALE/Pitfall-v5", 0, {1000: 0.0})
    proc = run_in_process(["plot", "other", "normalize=human"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2 and "ALE/Pitfall-v5 (Pitfall) is not one of the 49 games" in proc.stderr
    assert proc.stderr.count("\n") == 1
    proc = run_in_process(["plot", "runs", "normalize=human", "metric=charts/SPS"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2 and "normalize=human rescales returns" in proc.stderr


def test_the_stratified_bootstrap_keeps_each_tasks_share_of_the_runs():
    from rlexp.analysis.statistics import bootstrap_ci, stratified_bootstrap_ci

    # two games, three seeds each, every seed of a game alike: any resample within the games has mean 50, while
    # resampling across them mixes the games in any proportion
    values = np.array([[0.0], [0.0], [0.0], [100.0], [100.0], [100.0]])
    low, high = stratified_bootstrap_ci(values, ["Pong"] * 3 + ["Breakout"] * 3, np.mean)
    assert (low[0], high[0]) == (50.0, 50.0)
    plain_low, plain_high = bootstrap_ci(values, np.mean)
    assert plain_low[0] < 30 and plain_high[0] > 70


def test_plot_pool_env_aggregates_an_algorithms_games_into_one_group(tmp_path, capsys, monkeypatch):
    # Pong: -20.7 is 0%, 9.3 is 100%; Breakout: 1.7 is 0%, 31.8 is 100% (the DQN paper's table)
    fake_atari_run(tmp_path / "runs" / "pong0", "ALE/Pong-v5", 0, {1000: 9.3})
    fake_atari_run(tmp_path / "runs" / "pong1", "ALE/Pong-v5", 1, {1000: -20.7})
    fake_atari_run(tmp_path / "runs" / "breakout0", "ALE/Breakout-v5", 0, {1000: 31.8})
    fake_atari_run(tmp_path / "runs" / "breakout1", "ALE/Breakout-v5", 1, {1000: 31.8})
    proc = run_in_process(["plot", "runs", "normalize=human", "pool=env"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(tmp_path / "runs" / "plot.csv")
    assert len(rows) == 1 and int(rows[0]["runs"]) == 4
    assert float(rows[0]["mean"]) == pytest.approx(75.0, abs=1e-3)   # (100 + 0 + 100 + 100) / 4
    # resampled within each game: Breakout's two always 100, Pong's 0 and 100 in any mix
    assert float(rows[0]["ci95_low"]) == pytest.approx(50.0, abs=1e-3)
    assert float(rows[0]["ci95_high"]) == pytest.approx(100.0, abs=1e-3)
    unpooled = run_in_process(["plot", "runs", "normalize=human", "out=games.png"], tmp_path, capsys, monkeypatch)
    assert unpooled.returncode == 0 and len(read_csv(tmp_path / "games.csv")) == 2   # one group per game
    refused = run_in_process(["plot", "runs", "pool=env"], tmp_path, capsys, monkeypatch)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "rlexp plot: error: pool=env averages returns across envs, which only human-normalized scores make "
        "comparable; add normalize=human")
