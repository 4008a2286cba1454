"""log.backends: the trackers besides TensorBoard (rlexp/io/trackers.py): CSV, W&B (offline, read back from its
files) and MLflow (a real SQLite store, read back with MlflowClient), and their refusals. (The killed-and-resumed runs
of tests/test_resume.py write CSV too, and its TD3 case MLflow, and compare them with the uninterrupted run's.)"""

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import made_once, one_line, run_cli, run_cli_without, run_in_process, train_in_process
from tests.test_resume import mlflow_run, scalars

DQN = ["algo=dqn", "env=CartPole-v1", "algo.learning_starts=200", "network.hidden_sizes=[32]", "log.progress=none",
       "torch_threads=1", "eval.episodes=2"]


# --- csv -----------------------------------------------------------------------------------------------------------

def test_a_csv_run_writes_the_scalars_tensorboard_has(workdir):
    """(The killed-and-resumed runs of tests/test_resume.py write CSV too, and compare it with the uninterrupted
    run's.) Only csv: no events file; params.csv holds the flattened config."""
    proc = train_in_process(["train", *DQN, "total_steps=300", "eval.every=100", "log.backends=[csv]",
                             "hydra.run.dir=run"], workdir)
    assert proc.returncode == 0, proc.stderr
    assert not list((workdir / "run").glob("events.*"))
    with (workdir / "run" / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["step"]), float(r["value"])) for r in rows if r["tag"] == "eval/mean_return"] == [
        (step, pytest.approx(value)) for step, value in [(100, rows_mean(rows, 100)), (200, rows_mean(rows, 200)),
                                                         (300, rows_mean(rows, 300))]]
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert rows_mean(rows, 300) == pytest.approx(results["eval_return_mean"])
    with (workdir / "run" / "params.csv").open(newline="") as f:
        params = dict(csv.reader(f))
    assert params["algo.name"] == "dqn" and params["log.backends"] == "['csv']"


def rows_mean(rows: list[dict], step: int) -> float:
    return next(float(r["value"]) for r in rows if r["tag"] == "eval/mean_return" and int(r["step"]) == step)


def test_a_resumed_csv_drops_the_rows_after_its_checkpoint(tmp_path):
    from rlexp.io.trackers import CsvTracker

    first = CsvTracker(tmp_path, 0, {"a": 1})
    first.scalars({"x": 1.0, "y": 2.0}, 10)
    first.scalars({"x": 3.0}, 20)
    first.scalars({"x": 4.0}, 30)
    first.close(completed=False)
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("40,x,5.")   # a row the kill cut short
    again = CsvTracker(tmp_path, 20, {"a": 2})
    again.scalars({"x": 6.0}, 25)
    again.close(completed=True)
    with (tmp_path / "metrics.csv").open(newline="") as f:
        rows = [(r["step"], r["tag"], r["value"]) for r in csv.DictReader(f)]
    assert rows == [("10", "x", "1.0"), ("10", "y", "2.0"), ("20", "x", "3.0"), ("25", "x", "6.0")]
    assert (tmp_path / "params.csv").read_text().splitlines() == ["key,value", "a,1"]   # the run's, kept


@pytest.mark.parametrize("value, message", [
    ("[tensorboard,tensorboard]", "log.backends=['tensorboard', 'tensorboard'] names a backend twice"),
    ("[tensorboard,mlflaw]", "log.backends"),
    ("[tensorboard,csv,tensorboard]", "names a backend twice"),
])
def test_a_wrong_backend_is_refused_in_one_line(workdir, value, message, capsys, monkeypatch):
    proc = run_in_process(["train", *DQN, f"log.backends={value}", "hydra.run.dir=run"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and message in one_line(proc)


# --- W&B, offline ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tracked_sweep(tmp_path_factory) -> Path:
    """A sweep of two jobs side by side (joblib: two processes making and writing one new MLflow store at once),
    each two seeds as one model, logging to W&B offline and to MLflow: four runs in each, as a user types it."""
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")

    def make(root: Path) -> None:
        proc = run_cli(["train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *DQN, "seeds=[0,1]",
                        "total_steps=300,400", "eval.every=100", "log.backends=[tensorboard,wandb,mlflow]",
                        "log.wandb.mode=offline", "log.wandb.project=tests", "hydra.sweep.dir=sweep"], cwd=root)
        assert proc.returncode == 0, proc.stderr
        output = proc.stdout + proc.stderr   # W&B's, MLflow's and alembic's own lines kept out of the run's output
        assert "wandb:" not in output and " mlflow." not in output and "alembic" not in output, output
        assert "Warning" not in output, output

    return made_once(tmp_path_factory, "tracked-sweep", make)[0] / "sweep"


def test_a_wandb_run_holds_the_config_the_scalars_and_the_results(tracked_sweep):
    from tests.wandb_records import offline_run

    seeds = sorted(tracked_sweep.glob("*/seed_*"))
    assert len(seeds) == 4
    ids = set()
    for seed_dir in seeds:
        run = offline_run(seed_dir)
        results = json.loads((seed_dir / "results.json").read_text())
        assert run["id"] == json.loads((seed_dir / "wandb_run.json").read_text())["id"]
        ids.add(run["id"])
        assert (run["project"], run["group"], run["name"]) == ("tests", "sweep", seed_dir.name)
        assert run["config"]["algo.name"] == "dqn" and run["config"]["seed"] == results["seed"]
        tensorboard = scalars(seed_dir)
        for tag in ("eval/mean_return", "charts/episodic_return", "losses/td_loss"):
            assert run["history"][tag] == [(step, pytest.approx(value)) for step, value in tensorboard[tag]], tag
        assert json.loads((run["files"] / "results.json").read_text()) == results
    assert len(ids) == 4   # a W&B run per seed and job


def test_a_missing_tracker_is_one_line_with_its_install(workdir):
    """W&B's and MLflow's (one interpreter without either)."""
    procs = run_cli_without(["wandb", "mlflow"], [["train", *DQN, f"log.backends=[tensorboard,{backend}]",
                                                   "hydra.run.dir=run"] for backend in ("wandb", "mlflow")], workdir)
    for proc, backend in zip(procs, ("wandb", "mlflow"), strict=True):
        assert proc.returncode == 2
        assert (f'log.backends names {backend}, but its package ({backend}) is not installed: pip install '
                f'"rlexp[{backend}]"') in one_line(proc)


# --- MLflow, in a local SQLite store ---------------------------------------------------------------------------------

def test_an_mlflow_run_holds_the_config_the_scalars_and_the_results(tracked_sweep):
    seeds = sorted(tracked_sweep.glob("*/seed_*"))
    assert len(seeds) == 4
    experiments = set()
    for seed_dir in seeds:
        client, run, points = mlflow_run(seed_dir)
        results = json.loads((seed_dir / "results.json").read_text())
        assert run.info.status == "FINISHED" and run.info.run_name == f"{seed_dir.parent.name}/{seed_dir.name}"
        assert json.loads((seed_dir / "mlflow_run.json").read_text())["tracking_uri"] == \
            f"sqlite:///{tracked_sweep.resolve() / 'mlflow.db'}"   # the sweep's store, for every job
        experiments.add(run.info.experiment_id)
        assert run.data.params["algo.name"] == "dqn" and run.data.params["seed"] == str(results["seed"])
        assert run.data.params["log.backends"] == "['tensorboard', 'wandb', 'mlflow']"
        tensorboard = scalars(seed_dir)
        assert set(points) == set(tensorboard)
        for tag, expected in tensorboard.items():   # (TensorBoard's values are float32s)
            assert points[tag] == [(step, pytest.approx(value)) for step, value in expected], tag
        [artifact] = client.list_artifacts(run.info.run_id)
        assert artifact.path == "results.json"
        assert json.loads(Path(client.download_artifacts(run.info.run_id, "results.json", str(seed_dir.parent)))
                          .read_text()) == results
    [experiment] = experiments   # the sweep's jobs in one experiment, named after it, with nothing else
    assert client.get_experiment(experiment).name == "sweep"
    assert len(client.search_runs([experiment])) == 4
    assert not list(tracked_sweep.glob("*/mlflow.db")) and not list(tracked_sweep.glob("*/seed_*/mlflow.db"))


def test_a_resumed_mlflow_run_logs_each_point_once(tmp_path):
    """(The killed-and-resumed runs of tests/test_resume.py's TD3 case continue their MLflow run too.) The killed
    process sent its points up to step 20 (one of the two at step 20) and lost the rest; the run resumes from its
    checkpoint at step 10 and logs the same points again: each is in the store once, the run's params kept, its
    status FINISHED, results.json and the run's eval video its artifacts."""
    from rlexp.errors import RunFailure, TrainingInterrupted
    from rlexp.io.trackers import MlflowSettings, MlflowTracker

    first = MlflowTracker(tmp_path, 0, {"a": 1}, MlflowSettings())
    first.scalars({"x": 1.0, "y": 2.0}, 10)
    first.flush()   # (the checkpoint at step 10)
    first.scalars({"x": 3.0}, 20)
    first.flush()   # (a batch sent as the run goes)
    first.scalars({"x": 3.0}, 20)   # (a second episode that ended at the same step, with the same return)
    first.scalars({"x": 4.0}, 30)   # (not sent: the process is killed)
    again = MlflowTracker(tmp_path, 10, {"a": 2, "b": 3}, MlflowSettings())
    for values, step in [({"x": 3.0}, 20), ({"x": 3.0}, 20), ({"x": 4.0, "y": 5.0}, 30)]:
        again.scalars(values, step)
    (tmp_path / "results.json").write_text('{"status": "completed"}')
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "final.mp4").write_bytes(b"video")
    again.close(completed=True)
    client, run, points = mlflow_run(tmp_path)
    assert points == {"x": [(10, 1.0), (20, 3.0), (20, 3.0), (30, 4.0)], "y": [(10, 2.0), (30, 5.0)]}
    assert run.data.params == {"a": "1", "b": "3"} and run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1   # the same run, continued
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["eval", "results.json"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "eval")] == ["eval/final.mp4"]
    # a run that did not finish: KILLED after a signal, FAILED after an error (runs of other directories, one store)
    for ending, status in [(TrainingInterrupted(2, 10, None), "KILLED"), (RunFailure("a loss became NaN"), "FAILED")]:
        (tmp_path / status).mkdir()
        other = MlflowTracker(tmp_path / status, 0, {}, MlflowSettings(f"sqlite:///{tmp_path / 'mlflow.db'}"))
        try:
            raise ending
        except BaseException:
            other.close(completed=False)
        assert client.get_run(other.run_id).info.status == status


def test_a_wandb_run_saves_the_results_and_the_eval_video(tmp_path):
    """(The sweep above: its results.json.) A run whose directory holds `rlexp eval video=true`'s video saves it
    with its W&B run too."""
    from rlexp.io.trackers import WandbSettings, WandbTracker
    from tests.wandb_records import offline_run

    tracker = WandbTracker(tmp_path, 0, {"a": 1}, WandbSettings(project="tests", mode="offline"))
    tracker.scalars({"x": 1.0}, 10)
    (tmp_path / "results.json").write_text('{"status": "completed", "eval_return_mean": 1.5}')
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "final.mp4").write_bytes(b"video")
    tracker.close(completed=True)
    files = offline_run(tmp_path)["files"]
    assert (files / "eval" / "final.mp4").read_bytes() == b"video"
    assert json.loads((files / "results.json").read_text())["eval_return_mean"] == 1.5
