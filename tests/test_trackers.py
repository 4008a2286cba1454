"""log.backends: the trackers besides TensorBoard (rlexp/io/trackers.py): CSV and W&B (offline, read back from its
files), and their refusals. (The killed-and-resumed runs of tests/test_resume.py write CSV too, and compare it with
the uninterrupted run's.)"""

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import made_once, one_line, run_cli, run_cli_without, run_in_process, train_in_process
from tests.test_resume import scalars

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
def wandb_sweep(tmp_path_factory) -> Path:
    """A sweep of two jobs, each two seeds as one model (four W&B runs, two at a time in one process), offline, as a
    user types it."""
    pytest.importorskip("wandb")

    def make(root: Path) -> None:
        proc = run_cli(["train", "--multirun", *DQN, "seeds=[0,1]", "total_steps=300,400", "eval.every=100",
                        "log.backends=[tensorboard,wandb]", "log.wandb.mode=offline", "log.wandb.project=tests",
                        "hydra.sweep.dir=sweep"], cwd=root)
        assert proc.returncode == 0, proc.stderr
        assert "wandb:" not in proc.stdout + proc.stderr   # (W&B's own lines kept out of the run's output)

    return made_once(tmp_path_factory, "wandb-sweep", make)[0] / "sweep"


def test_a_wandb_run_holds_the_config_the_scalars_and_the_results(wandb_sweep):
    from tests.wandb_records import offline_run

    seeds = sorted(wandb_sweep.glob("*/seed_*"))
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


def test_a_missing_wandb_is_one_line_with_its_install(workdir):
    [proc] = run_cli_without(["wandb"], [["train", *DQN, "log.backends=[tensorboard,wandb]", "hydra.run.dir=run"]],
                             workdir)
    assert proc.returncode == 2
    assert 'log.backends names wandb, but its package (wandb) is not installed: pip install "rlexp[wandb]"' in \
        one_line(proc)
