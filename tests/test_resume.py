"""`rlexp train resume=<run_dir>`, as a user runs it: a killed or interrupted run continues to the very end
the uninterrupted run reaches; a config that changes what was learned is refused."""

import csv
import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlexp.io.checkpoints import load_checkpoint
from tests.conftest import interrupt_mid_run, made_once, run_cli, run_in_process, snapshot, train_in_process

RUNS = {
    # Pendulum's 200-step episodes put every checkpoint mid-episode; CartPole's end at random points.
    "td3": ["algo=td3", "env=Pendulum-v1", "total_steps=1000", "algo.learning_starts=200",
            "network.hidden_sizes=[32]", "algo.noise.type=ou"],
    "dqn": ["algo=dqn", "env=CartPole-v1", "total_steps=1500", "algo.learning_starts=200",
            "network.hidden_sizes=[32]"],
    # SAC with 2-step returns and gSDE: alpha, its optimizer, the policy's generator and each env's exploration
    # matrix must resume too
    "sac": ["algo=sac", "env=Pendulum-v1", "total_steps=700", "algo.learning_starts=200",
            "network.hidden_sizes=[32]", "algo.n_step=2", "algo.use_sde=true", "algo.train_freq=4",
            "algo.gradient_steps=4"],
    # every DQN switch on (Rainbow): the priorities, beta's schedule, the n-step windows and the noisy layers'
    # generator must resume too
    "rainbow": ["algo=rainbow", "env=CartPole-v1", "total_steps=700", "algo.learning_starts=200",
                "network.hidden_sizes=[32]", "algo.atoms=11"],
    # PPO with normalized observations and rewards, cut mid-rollout and mid-episode (Pendulum's time limit):
    # the rollout so far, the statistics, the policy's generator and gSDE's matrices must resume too
    "ppo": ["algo=ppo", "env=Pendulum-v1", "total_steps=2000", "env.num_envs=2", "algo.n_steps=60",
            "algo.batch_size=40", "algo.n_epochs=4", "network.hidden_sizes=[32]", "env.normalize.obs=true",
            "env.normalize.reward=true", "algo.use_sde=true", "algo.sde_sample_freq=7"],
    "a2c": ["algo=a2c", "env=CartPole-v1", "total_steps=8000", "env.num_envs=5", "network.hidden_sizes=[32]"],
    # CrossQ renormalising from its 30th update on, the policy every 3rd: the statistics and the delay's phase
    "crossq": ["algo=crossq", "env=Pendulum-v1", "total_steps=700", "algo.learning_starts=200",
               "network.hidden_sizes=[32]", "algo.critic_hidden_sizes=[32]", "algo.batch_renorm_warmup_steps=30"],
    # stop when solved (about step 2,400 here) and an episode budget over 2 envs: the window of returns and the
    # episode count must resume too, so the resumed run stops at the same step; a callback with state (the steps
    # and returns it has seen, logged at each evaluation) must resume too
    "dqn_solved": ["algo=dqn", "env=CartPole-v1", "total_steps=5000", "algo.learning_starts=200",
                   "network.hidden_sizes=[32]", "stop.window=10", "stop.mean_return=40",
                   "callbacks=[{_target_: tests.toy_callbacks.Tally}]"],
    "dqn_episodes": ["algo=dqn", "env=CartPole-v1", "total_steps=5000", "algo.learning_starts=200",
                     "network.hidden_sizes=[32]", "env.num_envs=2", "total_episodes=100"],
}
# Several envs, sync, async and EnvPool, resume in tests/test_vector_cli.py.
COMMON = ["checkpoint.every=250", "eval.every=500", "eval.episodes=2", "log.every=50", "log.progress=none",
          "torch_threads=1", "log.backends=[tensorboard,csv]"]
#: A case's trackers besides COMMON's: its MLflow runs (the killed-and-resumed one and the uninterrupted one, in one
#: SQLite store, the workdir's) compared too.
TRACKERS = {"td3": ["log.backends=[tensorboard,csv,mlflow]", "log.mlflow.tracking_uri=sqlite:///mlflow.db"]}


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar as TensorBoard shows it (points logged after a resume's checkpoint purged)."""
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def csv_points(run_dir: Path) -> list[tuple[int, str, float]]:
    """metrics.csv's rows (log.backends=[...,csv]) but the clock's (charts/SPS), in order."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [(int(r["step"]), r["tag"], float(r["value"])) for r in rows if r["tag"] != "charts/SPS"]


def mlflow_run(run_dir: Path) -> tuple[Any, Any, dict[str, list[tuple[int, float]]]]:
    """The MLflow run of a run directory (log.backends=[...,mlflow], its mlflow_run.json): the client of its store,
    the run, and every metric's points by step (those at one step in the order they were logged)."""
    from mlflow import MlflowClient

    record = json.loads((run_dir / "mlflow_run.json").read_text())
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    run = client.get_run(record["run_id"])
    return client, run, {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                                  key=lambda m: (m.step, m.timestamp))]
                         for key in run.data.metrics}


def final_agent(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "final.pt")["agent"]


def same_parameters(a: dict, b: dict) -> bool:
    modules = [k for k, v in a.items()  # the networks' state dicts: all tensors (optimizers hold more)
               if isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values())]
    return bool(modules) and all(torch.equal(a[m][p], b[m][p]) for m in modules for p in a[m])


# DQN after SIGKILL is dqn_solved's case; every DQN switch on (Rainbow) is killed as a batch of seeds in
# tests/test_seeds.py (its single run is slow here); plain DQN is stopped by SIGINT instead.
# In the default run, one case per runner and feature; SIGINT's save is also tests/test_faults.py's, and A2C's
# rollout is PPO's, so those two cases are slow; CrossQ's single run is slow (its seeds are killed in the default
# run, tests/test_seeds.py).
@pytest.mark.parametrize("algo, signum", [("td3", signal.SIGKILL),
                                         pytest.param("dqn", signal.SIGINT, marks=pytest.mark.slow),
                                         pytest.param("rainbow", signal.SIGKILL, marks=pytest.mark.slow),
                                         ("sac", signal.SIGKILL),
                                         ("ppo", signal.SIGKILL),
                                         pytest.param("a2c", signal.SIGKILL, marks=pytest.mark.slow),
                                         pytest.param("crossq", signal.SIGKILL, marks=pytest.mark.slow),
                                         ("dqn_solved", signal.SIGKILL),
                                         pytest.param("dqn_episodes", signal.SIGKILL, marks=pytest.mark.slow)])
def test_an_interrupted_run_resumes_to_exactly_the_uninterrupted_end(workdir, algo, signum):
    args = ["train", *RUNS[algo], *COMMON, *TRACKERS.get(algo, [])]
    reference = train_in_process([*args, "hydra.run.dir=reference"], workdir)   # the CLI's run, in this process
    assert reference.returncode == 0, reference.stderr

    delay = interrupt_mid_run([*args, "hydra.run.dir=run"], workdir, workdir / "run" / "checkpoints" / "step_250.pt",
                              signum, workdir / "reference")

    resumed = run_cli(["train", "resume=run"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout

    assert same_parameters(final_agent(workdir / "reference"), final_agent(workdir / "run")), f"delay {delay:.2f}"
    reference, run = scalars(workdir / "reference"), scalars(workdir / "run")
    for tag in ("charts/episodic_return", "charts/episodic_length", "eval/mean_return", "charts/avg_q_heldout",
                *(["tally/steps", "tally/return_sum"] if algo == "dqn_solved" else [])):
        assert run[tag] == reference[tag], f"{tag} differs after a resume (delay {delay:.2f} s)"
    for tag, points in run.items():  # the points the uninterrupted run has, at its steps: no duplicates, no zig-zag
        steps = [step for step, _ in points]
        assert steps == sorted(steps) and steps == [step for step, _ in reference[tag]], tag
    # metrics.csv continues at the same step too: the killed process's rows after the checkpoint dropped
    assert csv_points(workdir / "run") == csv_points(workdir / "reference"), f"delay {delay:.2f} s"
    if algo in TRACKERS:   # the same MLflow run continued, holding the uninterrupted run's points, each once
        client, tracked, points = mlflow_run(workdir / "run")
        _, _, uninterrupted = mlflow_run(workdir / "reference")
        points.pop("charts/SPS"), uninterrupted.pop("charts/SPS")   # (the clock's)
        assert points == uninterrupted, f"delay {delay:.2f} s"
        assert points["eval/mean_return"] == [(step, pytest.approx(value)) for step, value in run["eval/mean_return"]]
        assert tracked.info.status == "FINISHED"
        assert sorted(r.info.run_name for r in client.search_runs([tracked.info.experiment_id])) == ["reference", "run"]
    a, b = (json.loads((workdir / d / "results.json").read_text()) for d in ("reference", "run"))
    assert a["eval_returns"] == b["eval_returns"] and b["status"] == "completed"
    for key in ("total_steps", "episodes", "stopped_by", "solved_at_step", "solved_at_episode"):
        assert a[key] == b[key], key


@pytest.fixture(scope="module")
def finished_short_run(tmp_path_factory) -> Path:
    """A finished DQN run of 600 steps (checkpoints every 250), trained once per session (made_once); tests copy
    it."""
    def make(root: Path) -> None:
        proc = train_in_process(["train", *RUNS["dqn"], "total_steps=600", *COMMON, "hydra.run.dir=run"], root)
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, "resume-short-run", make)[0] / "run"


@pytest.fixture
def short_run(finished_short_run, workdir) -> Path:
    """A copy of the finished short run, at workdir/run."""
    return Path(shutil.copytree(finished_short_run, workdir / "run", symlinks=True))


def test_a_finished_run_is_extended_by_resuming_with_more_steps(workdir, short_run, capsys, monkeypatch):
    before = snapshot(workdir / "run")
    again = run_in_process(["train", "resume=run"], workdir, capsys, monkeypatch)
    assert again.returncode == 2 and "already at step 600 of total_steps=600" in again.stderr
    assert snapshot(workdir / "run") == before  # refused: nothing written
    longer = run_cli(["train", "resume=run", "total_steps=1000"], cwd=workdir)
    assert longer.returncode == 0, longer.stderr
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["total_steps"] == 1000 and results["resumed_from_step"] == 600
    assert [step for step, _ in scalars(workdir / "run")["eval/mean_return"]] == [500, 600, 1000]


def test_a_run_stopped_after_its_last_checkpoint_resumes_to_finish_it(workdir, short_run, capsys, monkeypatch):
    finished = workdir / "run"
    reference = json.loads((finished / "results.json").read_text())
    final = final_agent(finished)
    # As a kill leaves it between the step_600.pt the run ends with and its final.pt and results.json
    (finished / "results.json").unlink()
    (finished / "checkpoints" / "final.pt").unlink()
    resumed = run_cli(["train", "resume=run"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((finished / "results.json").read_text())
    assert results["status"] == "completed" and results["resumed_from_step"] == 600
    assert results["eval_returns"] == reference["eval_returns"] and results["total_steps"] == 600
    assert same_parameters(final, final_agent(finished))
    # now finished: refused as any finished run
    again = run_in_process(["train", "resume=run"], workdir, capsys, monkeypatch)
    assert again.returncode == 2 and "already at step 600 of total_steps=600" in again.stderr


def test_resuming_with_a_different_algorithm_or_hyperparameter_is_refused_with_the_diff(workdir, short_run, capsys,
                                                                                           monkeypatch):
    before = snapshot(workdir / "run")
    proc = run_cli(["train", "resume=run", "algo.lr=0.5", "network.hidden_sizes=[8]"], cwd=workdir)
    line = proc.stderr.strip()
    assert proc.returncode == 2 and len(line.splitlines()) == 1
    assert "algo.lr: 0.001 -> 0.5" in line and "network.hidden_sizes: [32] -> [8]" in line
    assert ("only total_steps, env.total_steps, total_episodes, stop.*, callbacks, eval.*, device, gpu_placement, "
            "torch_threads, compile, compile_mode, env.step_timeout, log.* and checkpoint.* may change") in line
    proc = run_in_process(["train", "resume=run", "algo=td3", "env=Pendulum-v1"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and "algo.name: dqn -> td3" in proc.stderr and "env.id: CartPole-v1 -> Pendulum-v1" \
        in proc.stderr
    assert snapshot(workdir / "run") == before  # a refused resume writes nothing: config, logs, results, checkpoints


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(workdir, short_run):
    newest = workdir / "run" / "checkpoints" / "step_600.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # a damaged block in the middle
    newest.write_bytes(bytes(data))
    proc = run_cli(["train", "resume=run", "total_steps=800"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "step_600.pt is corrupt" in proc.stdout and "resumed from the previous checkpoint" in proc.stdout
    assert "resuming from" in proc.stdout and "step_500.pt" in proc.stdout
    assert (workdir / "run" / "checkpoints" / "step_600.pt.corrupt").exists()


def test_a_job_of_a_sweep_resumes_from_its_own_directory(workdir):
    proc = run_cli(["train", "--multirun", *RUNS["dqn"], "total_steps=300", "seed=0,1", *COMMON,
                    "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    job = next(d for d in (workdir / "sweep").iterdir() if d.name.startswith("1_"))
    assert "," in job.name or "=" in job.name  # Hydra's job directory names hold '=' (and ',' for several keys)
    proc = run_cli(["train", f"resume={job}", "total_steps=400"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((job / "results.json").read_text())
    assert results["seed"] == 1 and results["total_steps"] == 400


def test_an_env_that_cannot_be_replayed_resumes_with_a_fresh_episode_and_a_warning(workdir):
    args = ["train", "algo=td3", "env.id=tests.faulty_envs:Unseeded-v0", "total_steps=330", "algo.learning_starts=100",
            "network.hidden_sizes=[16]", *COMMON, "hydra.run.dir=run"]
    assert train_in_process(args, workdir).returncode == 0  # ends mid-episode (episodes are 50 steps)
    proc = run_cli(["train", "resume=run", "total_steps=400"], cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "did not replay its current episode identically" in proc.stdout and "fresh episode" in proc.stdout
    assert json.loads((workdir / "run" / "results.json").read_text())["total_steps"] == 400
