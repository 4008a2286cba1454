"""The hyperparameter search (rlexp/sweeps/search.py, hydra_plugins/rlexp_optuna_sweeper): Optuna's study for real,
in SQLite; its pieces by hand; searches run as a user types them."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from rlexp.errors import ConfigError
from rlexp.sweeps.objective import aggregate
from rlexp.sweeps.search import SearchSettings, distributions, override_value, seed_returns, split_arguments
from tests.conftest import as_completed, completed, made_once, one_line, run_cli, run_in_process, start_cli

# --- the pieces ---------------------------------------------------------------------------------------------------


def test_the_search_space_is_hydras_sweep_grammar_as_optunas_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found = distributions({"a": "choice(32, 64, true, relu)", "b": "tag(log, interval(1e-4, 3e-3))",
                           "c": "interval(0.05, 0.3)", "d": "int(interval(1, 5))", "e": "range(1, 10, 2)",
                           "f": "tag(log, int(interval(16, 256)))"})
    assert found["a"] == CategoricalDistribution([32, 64, True, "relu"])
    assert found["b"] == FloatDistribution(1e-4, 3e-3, log=True)
    assert found["c"] == FloatDistribution(0.05, 0.3)
    assert found["d"] == IntDistribution(1, 5)
    assert found["e"] == IntDistribution(1, 9, step=2)   # (range's stop is exclusive)
    assert found["f"] == IntDistribution(16, 256, log=True)


@pytest.mark.parametrize(("space", "expected"), [
    ({"algo.lr": "0.001"}, "hydra.sweeper.params.algo.lr=0.001 is one value, not a range to search"),
    ({"algo.lr": "interval(1e-3"}, "hydra.sweeper.params.algo.lr=interval(1e-3 does not parse"),
    ({"algo.lr": "tag(log, interval(0, 1))"}, "a log-scale interval needs a positive low end"),
    ({"algo.lr": "interval(1.0, 0.5)"}, "an interval needs a low end below its high end"),
])
def test_a_search_space_it_cannot_search_is_one_line(space, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        distributions(space)


@pytest.mark.parametrize("value", [0.00123, 1e-08, 3, -2, True, False, None, "relu", "ALE/Pong-v5",
                                   "sqlite:////tmp/a b/optuna.db", "it's", "true", "1e-3",
                                   {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 5},
                                   {"storage": "sqlite:///x.db", "seeds": [0, 1], "pruner": None}])
def test_a_value_written_as_an_override_reads_back_as_the_same_value(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"key={override_value(value)}").value()
    assert parsed == value and type(parsed) is type(value)


def test_the_aggregates_over_seeds_by_hand():
    assert aggregate("iqm", [1.0, 2.0, 3.0, 100.0]) == 2.5            # the middle two of four
    assert aggregate("iqm", [10.0] * 7 + [-1000.0]) == 10.0          # 2 of 8 trimmed off each end
    assert aggregate("mean", [1.0, 2.0, 3.0, 100.0]) == 26.5
    assert aggregate("median", [1.0, 2.0, 3.0, 100.0]) == 2.5
    assert aggregate("min", [1.0, 2.0, 3.0, 100.0]) == 1.0


def test_a_trials_returns_come_from_each_seed_and_a_run_that_did_not_complete_fails_it():
    batched = {"status": "completed", "seeds": {"0": {"status": "completed", "eval_return_mean": 10.0},
                                                "1": {"status": "completed", "eval_return_mean": 20.0}}}
    assert seed_returns([batched]) == [10.0, 20.0]
    assert seed_returns([{"status": "completed", "eval_return_mean": 5.0},
                         {"status": "completed", "eval_return_mean": 7.0}]) == [5.0, 7.0]
    assert seed_returns([{"status": "failed", "error": "boom"}]) == "failed: boom"
    assert "without a final evaluation return" in seed_returns([{"status": "completed",
                                                                 "eval_return_mean": math.nan}])


SETTINGS = {"study_name": "s", "storage": None, "direction": "maximize", "n_trials": 2, "n_jobs": 1,
            "seeds": (0, 1), "aggregate": "iqm", "seeds_as": "auto"}


@pytest.mark.parametrize(("change", "expected"), [
    ({"aggregate": "mode"}, "hydra.sweeper.aggregate='mode' must be one of iqm, mean, median, min"),
    ({"n_trials": 0}, "hydra.sweeper.n_trials=0 must be a positive number of trials"),
    ({"seeds": (0, 0)}, "hydra.sweeper.seeds=[0, 0] must be distinct non-negative seeds"),
    ({"seeds_as": "threads"}, "hydra.sweeper.seeds_as='threads' must be one of auto, batch, processes"),
    ({"direction": "up"}, "hydra.sweeper.direction='up' must be maximize or minimize"),
])
def test_search_settings_it_cannot_run_are_one_line(change, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        SearchSettings(**{**SETTINGS, **change}).check()


def test_the_command_lines_sweeps_join_the_space_and_its_seeds_are_the_searchs():
    fixed, swept = split_arguments(["hparams_search=dqn_cartpole", "total_steps=600", "algo.n_step=choice(1,3)"])
    assert fixed == ["hparams_search=dqn_cartpole", "total_steps=600"] and swept == {"algo.n_step": "choice(1,3)"}
    # (run_search: a key swept on the command line replaces the preset's range for it)
    with pytest.raises(ConfigError, match="set them with hydra.sweeper.seeds"):
        split_arguments(["seed=3"])


class FakeRun:
    """What ReportToTrial reads of a run, and its stop request."""

    def __init__(self, seed: int) -> None:
        self.seed, self.step, self.stop_reason = seed, 0, None

    def stop(self, reason: str = "") -> None:
        self.stop_reason = reason


def test_the_seeds_aggregate_is_reported_once_every_seed_evaluated_and_a_pruned_trial_stops_them_all(tmp_path):
    from rlexp.sweeps import trial_report

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial = study.ask()
    pruner = {"_target_": "optuna.pruners.ThresholdPruner", "lower": 15.0}
    callbacks = [trial_report.ReportToTrial(storage, "s", trial.number, [0, 1, 2, 3], "iqm", pruner)
                 for _ in range(4)]
    runs = [FakeRun(seed) for seed in range(4)]
    for callback, run in zip(callbacks, runs):
        callback.on_run_start(run)
    for step, returns in ((100, [10.0, 20.0, 30.0, 40.0]), (200, [0.0, 10.0, 20.0, 30.0])):
        for index, (callback, run) in enumerate(zip(callbacks, runs)):
            run.step = step
            callback.on_evaluation(np.array([returns[index]]), run)
            if index < 3:   # (the aggregate waits for the last seed)
                assert step not in study.trials[0].intermediate_values
    assert study.trials[0].intermediate_values == {100: 25.0, 200: 15.0 - 0.0}
    assert runs[3].stop_reason is None   # (15.0 is not below the threshold)
    for index, (callback, run) in enumerate(zip(callbacks, runs)):
        run.step = 300
        callback.on_evaluation(np.array([[5.0, 6.0, 7.0, 8.0][index]]), run)
    assert study.trials[0].intermediate_values[300] == 6.5
    assert study.trials[0].user_attrs["pruned_at"] == 300
    assert "Optuna pruned trial 0 at step 300" in runs[3].stop_reason
    for callback, run in zip(callbacks[:3], runs[:3]):   # the others stop at their next step
        callback.on_step(run)
        assert "Optuna pruned trial 0 at step 300" in run.stop_reason


# --- searches as a user runs them ---------------------------------------------------------------------------------

#: A search over DQN's preset space on CartPole-v1 at a tiny budget: two seeds a trial (one batched run).
SEARCH = ["train", "--multirun", "hparams_search=dqn_cartpole", "total_steps=600", "algo.learning_starts=100",
          "network.hidden_sizes=[16]", "eval.episodes=2", "eval.every=200", "checkpoint.every=0",
          "log.progress=none", "torch_threads=1", "hydra.sweeper.seeds=[0,1]"]


def study_of(sweep: Path, name: str = "dqn_cartpole") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep / 'optuna.db'}")


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> tuple:
    """A two-trial search without pruning (the process, and its sweep directory), made once per session."""
    def make(workdir: Path) -> dict:
        return completed(run_cli([*SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=null",
                                  "hydra.sweep.dir=sweep"], cwd=workdir))

    workdir, proc = made_once(tmp_path_factory, "search", make)
    return as_completed(proc), workdir / "sweep"


def test_a_search_scores_each_trial_by_its_seeds_iqm_and_reports_each_evaluation(search):
    proc, sweep = search
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = study_of(sweep)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in study.trials:
        results = json.loads((sweep / f"trial_{trial.number}" / "results.json").read_text())
        finals = [results["seeds"][s]["eval_return_mean"] for s in ("0", "1")]
        assert trial.value == pytest.approx(aggregate("iqm", finals))
        assert sorted(trial.intermediate_values) == [200, 400, 600]
        for step, value in trial.intermediate_values.items():   # each evaluation's IQM over the seeds
            per_seed = [trial.user_attrs[f"evaluation/{step}/{seed}"] for seed in (0, 1)]
            assert value == pytest.approx(aggregate("iqm", per_seed))
        config = OmegaConf.load(sweep / f"trial_{trial.number}" / ".hydra" / "config.yaml")
        assert config.seeds == [0, 1] and config.algo.lr == pytest.approx(trial.params["algo.lr"])
        assert config.optuna_trial.number == trial.number and config.optuna_trial.pruner is None


def test_a_search_prints_its_best_trial_with_the_command_that_trains_it(search, workdir, capsys, monkeypatch):
    proc, sweep = search
    best = study_of(sweep).best_trial
    written = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    assert written["best_trial"] == best.number and written["best_value"] == pytest.approx(best.value)
    assert written["best_params"] == best.params and written["trials"]["complete"] == 2
    assert f"best: trial {best.number}, iqm {best.value:.2f} over seeds [0, 1]" in proc.stdout
    assert f"  {written['command']}" in proc.stdout and "optuna-dashboard sqlite:///" in proc.stdout
    # The command composes the trial's own config (its run, re-trained, is the trial's seeds' run).
    args = written["command"].split()[1:]
    shown = run_in_process([*args, "--cfg", "job"], workdir, capsys, monkeypatch)
    assert shown.returncode == 0, shown.stderr
    composed = OmegaConf.create(shown.stdout)
    trial_config = OmegaConf.load(sweep / f"trial_{best.number}" / ".hydra" / "config.yaml")
    for key in best.params:
        assert OmegaConf.select(composed, key) == OmegaConf.select(trial_config, key), key
    assert composed.seeds == [0, 1] and composed.total_steps == 600


def test_a_searchs_summary_names_each_trials_parameters_not_its_reporting(search):
    _, sweep = search
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["completed"] * 2
    assert all("algo.lr=" in r["overrides"] and "optuna_trial" not in r["overrides"] for r in rows)
    assert sorted(Path(r["run_dir"]).name for r in rows) == ["trial_0", "trial_1"]


def test_a_trial_the_pruner_stops_ends_at_its_first_evaluation_and_is_told_pruned(workdir):
    proc = run_cli([*SEARCH, "hydra.sweeper.n_trials=1", "hydra.sweeper.pruner=null",
                    "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:100000}",
                    "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trial,) = study_of(workdir / "sweep").trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["pruned_at"] == 200
    assert list(trial.intermediate_values) == [200]
    for seed in (0, 1):
        results = json.loads((workdir / "sweep" / "trial_0" / f"seed_{seed}" / "results.json").read_text())
        assert results["stopped_by"] == "callback" and "Optuna pruned trial 0 at step 200" in results["stop_reason"]
        assert results["total_steps"] <= 201   # (a seed stops at its next step once another pruned the trial)
    assert "1 trials (1 pruned)" in proc.stdout and "no trial completed yet" in proc.stdout


def test_seeds_that_do_not_batch_run_one_job_each_and_meet_in_the_storage(workdir):
    # (the basic launcher: the jobs one after another in the sweep's process; joblib's and submitit's workers meet
    # in the same storage: tests/test_on_policy_cli.py's joblib search, the slow submitit one below)
    proc = run_cli([*SEARCH, "hydra.sweeper.n_trials=1", "hydra.sweeper.seeds_as=processes",
                    "hydra.sweeper.aggregate=mean", "hydra.sweeper.pruner=null", "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trial,) = study_of(workdir / "sweep").trials
    finals = [json.loads((workdir / "sweep" / f"trial_0_seed_{s}" / "results.json").read_text())["eval_return_mean"]
              for s in (0, 1)]
    assert trial.value == pytest.approx(np.mean(finals)) and sorted(trial.intermediate_values) == [200, 400, 600]


@pytest.mark.slow
def test_a_search_runs_its_trials_through_submitit_sharing_the_study(workdir):
    """Trials as SLURM jobs (submitit's local executor runs them as SLURM would: separate processes that unpickle
    the task and write its result back), one seed each, meeting in the study's SQLite storage."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='needs pip install "rlexp[slurm]"')
    proc = run_cli([*SEARCH, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "hydra.sweeper.seeds_as=processes",
                    "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1",
                    "hydra.sweep.dir=sweep"], cwd=workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = study_of(workdir / "sweep")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(sorted(t.intermediate_values) == [200, 400, 600] for t in study.trials)
    assert list((workdir / "sweep" / ".submitit").iterdir())   # submitit's own job folders: it ran them


def test_a_killed_search_continues_with_its_own_command(workdir):
    """SIGKILL to a search once its second trial has a checkpoint; the same command again: the first trial is
    kept, the second resumes from its checkpoints as the same trial, the third is asked; the study is whole."""
    args = [*SEARCH, "total_steps=900", "checkpoint.every=300", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.pruner=null", "hydra.sweep.dir=sweep"]
    sweep = workdir / "sweep"
    proc = start_cli(args, workdir, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(sweep.glob("trial_1/seed_*/checkpoints/step_600.pt"))) < 2:   # (both seeds': they resume together)
        assert proc.poll() is None and time.monotonic() < deadline, "the search ended before trial 1's checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    first = (sweep / "trial_0" / "results.json").read_text()
    assert study_of(sweep).trials[1].state == optuna.trial.TrialState.RUNNING

    again = run_cli(args, cwd=workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    study = study_of(sweep)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert (sweep / "trial_0" / "results.json").read_text() == first   # kept as it was
    for seed in (0, 1):
        resumed = json.loads((sweep / "trial_1" / f"seed_{seed}" / "results.json").read_text())
        assert resumed["resumed_from_step"] >= 600 and resumed["status"] == "completed"
    assert "continuing trials [1] of study dqn_cartpole" in again.stdout + again.stderr
    assert sorted(study.trials[1].intermediate_values) == list(range(200, 801, 200)) + [900]


def test_a_study_in_a_shared_storage_grows_from_another_sweep(search, workdir):
    """Trials on another machine: another sweep directory, the same storage URL; n_trials is the study's size."""
    import shutil

    _, sweep = search
    shutil.copy(sweep / "optuna.db", workdir / "study.db")
    proc = run_cli([*SEARCH, "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null",
                    "hydra.sweeper.storage=sqlite:///study.db", "hydra.sweep.dir=second"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="dqn_cartpole", storage=f"sqlite:///{workdir / 'study.db'}")
    assert len(study.trials) == 3 and [p.name for p in (workdir / "second").glob("trial_*")] == ["trial_2"]
    # (its sampler is seeded anew: seed + the trials the study held, so it does not draw the first trial again)
    assert len({t.params["algo.lr"] for t in study.trials}) == 3
    written = OmegaConf.to_container(OmegaConf.load(workdir / "second" / "optimization_results.yaml"))
    assert written["best_value"] == pytest.approx(max(t.value for t in study.trials))   # over both sweeps' trials


@pytest.mark.parametrize(("args", "expected"), [
    (["hydra.sweeper.aggregate=mode"], "hydra.sweeper.aggregate='mode' must be one of iqm, mean, median, min"),
    (["seed=3"], "seed=3: a search sets each trial's seeds itself; set them with hydra.sweeper.seeds"),
    (["algo.lr=interval(1e-2, 1e-3)"], "algo.lr=interval(1e-2, 1e-3): an interval needs a low end below its high"),
    (["~hydra.sweeper.params"], "nothing to search: hydra.sweeper.params is empty"),
    (["hydra.sweeper.pruner._target_=optuna.pruners.NoSuchPruner"],
     "hydra.sweeper.pruner (optuna.pruners.NoSuchPruner) does not import"),
    (["+hydra.sweeper.pruner.n_startup=5"], "hydra.sweeper.pruner (optuna.pruners.MedianPruner)"),
])
def test_a_search_it_cannot_run_is_one_line_and_writes_nothing(args, expected, workdir, capsys, monkeypatch):
    proc = run_in_process([*SEARCH, *args, "hydra.sweep.dir=sweep"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and expected in one_line(proc), proc.stderr
    assert not (workdir / "sweep").exists()


# --- a search's runs in TensorBoard's HParams tab ---------------------------------------------------------------


def hparams_of(run_dir: Path) -> dict:
    """The hyperparameters a run declared to TensorBoard's HParams plugin (its session start record)."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    records = [plugin_data_pb2.HParamsPluginData.FromString(blob)
               for blob in events.PluginTagToContent("hparams").values()]
    # No per-run experiment record: TensorBoard builds the tab from all the runs (see rlexp.io.metrics.RunLogger).
    assert not any(r.HasField("experiment") for r in records)
    assert any(r.HasField("session_end_info") for r in records)  # the run completed
    start = next(r.session_start_info for r in records if r.HasField("session_start_info"))
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}


def test_each_run_declares_its_hyperparameters_for_the_hparams_tab(search):
    _, sweep = search   # (tests/test_search.py's: two trials of two seeds each)
    runs = sorted(sweep.glob("trial_*/seed_*/results.json"))
    assert len(runs) == 4
    for results in runs:
        run_dir = results.parent
        hparams = hparams_of(run_dir)
        overrides = yaml.safe_load((run_dir.parent / ".hydra" / "overrides.yaml").read_text())
        lr = next(o for o in overrides if o.startswith("algo.lr=")).split("=")[1]
        assert hparams["algo.lr"] == pytest.approx(float(lr))
        assert hparams["env.id"] == "CartPole-v1" and hparams["seed"] == int(run_dir.name.split("_")[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboards_hparams_tab_compares_the_sweeps_runs(search):
    """Asks a real TensorBoard server what its HParams tab shows for the sweep."""
    _, sweep = search
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep), "--port", str(port),
                               "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ask(route: str, body: dict) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/data/plugin/hparams/{route}",
                                         data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                experiment = ask("experiment", {"experimentName": ""})
                if experiment.get("hparamInfos"):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline and server.poll() is None, "TensorBoard did not answer"
            time.sleep(1)
        groups = ask("session_groups", {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "colParams": [],
                                        "startIndex": 0, "sliceSize": 100})
    finally:
        server.terminate()
        server.wait(timeout=30)
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert infos["algo.lr"]["differs"] and not infos["env.id"]["differs"]
    assert "eval/mean_return" in {m["name"]["tag"] for m in experiment["metricInfos"]}
    # One row per run (each seed of each trial, all completed), each with its final eval return as the metric.
    finals = {(sweep / g["name"]).resolve(): g for g in groups["sessionGroups"]}
    assert len(finals) == 4
    for run_dir, group in finals.items():
        results = json.loads((run_dir / "results.json").read_text())
        metric = next(m for m in group["metricValues"] if m["name"]["tag"] == "eval/mean_return")
        assert metric["value"] == pytest.approx(results["eval_return_mean"], rel=1e-5)
