"""Faults during a run, met as a user meets them: each stops with one line, a non-zero exit and the last
good checkpoint intact."""

import json
import resource
import signal

import numpy as np
import pytest
import torch

from rlexp.errors import EnvFault, NonFiniteError, TrainingInterrupted
from rlexp.io.checkpoints import load_checkpoint
from rlexp.runners.faults import HeldStop, NonFiniteGuard, StopRequest, check_transitions
from rlexp.runners.requests import Built, ask
from rlexp.runners.seeds import run_in_lockstep
from tests.conftest import TINY, run_cli, start_cli, wait_for

FAULTY = "tests.faulty_envs"


def last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


def status(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def all_finite(tree) -> bool:
    if isinstance(tree, torch.Tensor):
        return bool(torch.isfinite(tree).all()) if tree.is_floating_point() else True
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    return True


# --- units ---------------------------------------------------------------------------------------------------

def test_the_guard_names_the_first_non_finite_metric_and_its_step():
    guard = NonFiniteGuard()
    guard.observe({"losses/critic_loss": torch.tensor(1.0), "losses/q_values": torch.tensor(2.0)}, 10)
    guard.check()
    guard.observe({"losses/critic_loss": torch.tensor(1.0), "losses/q_values": torch.tensor(float("inf"))}, 11)
    guard.observe({"losses/critic_loss": torch.tensor(float("nan")), "losses/q_values": torch.tensor(1.0)}, 12)
    with pytest.raises(NonFiniteError, match="losses/q_values became non-finite .* at step 11"):
        guard.check()


def test_the_guard_keeps_the_first_non_finite_step_across_blocks_of_updates():
    guard = NonFiniteGuard()
    steps = 2 * NonFiniteGuard.BLOCK + 5   # two blocks checked as they fill, five updates still pending
    for step in range(steps):
        loss = float("nan") if step in (NonFiniteGuard.BLOCK + 3, steps - 2) else 1.0
        guard.observe({"losses/critic_loss": torch.tensor(loss), "losses/q_values": torch.tensor(2.0)}, step)
    first_bad = NonFiniteGuard.BLOCK + 3
    with pytest.raises(NonFiniteError, match=f"losses/critic_loss became non-finite .* at step {first_bad};"):
        guard.check()


def test_env_output_checks_name_the_step_and_the_action():
    # One vector step: a leading env axis on the actions, the observations and the rewards.
    check_transitions(5, np.array([[0.5]]), np.zeros((1, 3), np.float32), np.array([-1.0]))
    check_transitions(5, np.array([1]), np.zeros((1, 4, 4), np.uint8), np.array([0.0]))  # integer images: no NaN
    with pytest.raises(EnvFault, match=r"non-finite observation .* at step 7, after action \[0.25\]$"):
        check_transitions(7, np.array([[0.25]]), np.array([[0.0, np.nan]], np.float32), np.array([0.0]))
    with pytest.raises(EnvFault, match="non-finite reward inf at step 8, after action 1$"):
        check_transitions(8, np.array([1]), np.zeros((1, 3), np.float32), np.array([np.inf]))


def test_env_output_checks_name_the_env_among_several():
    check_transitions(6, np.array([0, 1, 0]), np.zeros((3, 2), np.float32), np.zeros(3))
    with pytest.raises(EnvFault, match=r"non-finite reward nan at step 6 \(env 1 of 3\), after action 1$"):
        check_transitions(6, np.array([0, 1, 0]), np.zeros((3, 2), np.float32), np.array([0.0, np.nan, 0.0]))
    observations = np.zeros((3, 2), np.float32)
    observations[2, 1] = np.inf
    with pytest.raises(EnvFault, match=r"non-finite observation \[ 0. inf\] at step 9 \(env 2 of 3\), after action "
                                       r"\[-0.5\]$"):
        check_transitions(9, np.array([[0.5], [0.25], [-0.5]]), observations, np.zeros(3))


def test_stop_request_catches_the_first_signal_and_lets_the_second_through():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # SIG_IGN in a background job
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored


def test_a_signal_between_two_seeds_steps_stops_both_after_the_same_step():
    request = StopRequest()   # its handlers not installed: the test plays the signal by setting signum
    held = HeldStop(request)

    class Batched:
        def act(self, observations):
            return observations

    def seed_run(k: int, stop):
        yield Built(agent=None)
        for step in range(1, 10):
            yield ask(Batched.act, np.zeros(1))
            if stop.signum is not None:
                raise TrainingInterrupted(stop.signum, step, None)
            if k == 0 and step == 3:   # the signal lands after seed 0's check of step 3, before seed 1's
                request.signum = signal.SIGINT
        return {"step": 9}

    outcomes = run_in_lockstep([0, 1], [seed_run(0, held), seed_run(1, held)], lambda agents: Batched(), held)
    assert [outcome.error.step for outcome in outcomes] == [4, 4]
    request.signum = None
    unheld = run_in_lockstep([0, 1], [seed_run(0, request), seed_run(1, request)], lambda agents: Batched())
    assert [outcome.error.step for outcome in unheld] == [4, 3]   # what the seeds did before HeldStop


# --- as a user meets them --------------------------------------------------------------------------------------

def test_a_diverging_agent_stops_naming_the_quantity_and_keeps_the_last_good_checkpoint(workdir):
    proc = run_cli(["train", "algo=td3", "env=Pendulum-v1", "total_steps=600", "algo.learning_starts=100",
                    "algo.actor_lr=1e30", "algo.critic_lr=1e30", "network.hidden_sizes=[16]", "hydra.run.dir=run",
                    "checkpoint.every=100", *TINY[:2], "log.every=50", "log.progress=none"], cwd=workdir)
    line = last_line(proc.stderr)
    assert proc.returncode == 1, proc.stderr
    assert "became non-finite (NaN or inf) at step" in line and "losses/" in line
    assert "the last good checkpoint is" in line and "step_100.pt" in line
    checkpoints = workdir / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step_*.pt")) == ["step_100.pt"]
    assert all_finite(load_checkpoint(checkpoints / "step_100.pt")["agent"])
    assert status(workdir / "run")["status"] == "failed"


@pytest.mark.parametrize("env_id, algo, what", [
    ("NanObservation-v0", "td3", r"non-finite observation [-0.9589     nan"),
    ("NanReward-v0", "dqn", "non-finite reward nan"),
])
def test_nan_from_the_env_stops_naming_the_step_and_the_last_action(workdir, env_id, algo, what):
    proc = run_cli(["train", f"algo={algo}", f"env.id={FAULTY}:{env_id}", "+env.kwargs.fault_at=150",
                    "total_steps=400", "algo.learning_starts=100", "network.hidden_sizes=[16]",
                    "checkpoint.every=100", "hydra.run.dir=run", "log.progress=none"], cwd=workdir)
    line = last_line(proc.stderr)
    assert proc.returncode == 1, proc.stderr
    assert what in line and "at step 150, after action" in line and "step_100.pt" in line


def test_a_full_disk_during_a_save_stops_cleanly_and_the_previous_checkpoint_survives(workdir):
    # A file-size limit makes writes fail with EFBIG, as a full disk fails them with ENOSPC: the same path.
    # Checkpoints grow with the replay buffer, so early ones fit under the limit and a later one does not.
    limit = 60_000

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = run_cli(["train", "algo=dqn", "env=CartPole-v1", "total_steps=2000", "algo.learning_starts=100",
                    "network.hidden_sizes=[8]", "checkpoint.every=250", "checkpoint.keep=20", "eval.every=0",
                    "eval.episodes=1", "log.every=500", "log.progress=none", "hydra.run.dir=run"],
                   cwd=workdir, preexec_fn=limit_file_size)
    line = last_line(proc.stderr)
    assert proc.returncode == 1, proc.stderr
    assert "could not write checkpoint" in line and "File too large" in line
    assert "the previous checkpoints are intact" in line
    checkpoints = workdir / "run" / "checkpoints"
    saved = sorted(checkpoints.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    assert saved and f"the last good checkpoint is {saved[-1]}" in line
    assert load_checkpoint(saved[-1])["step"] == int(saved[-1].stem.split("_")[1])
    assert not list(checkpoints.glob(".*.tmp"))  # the partial file was removed


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_step_saves_and_exits_non_zero(workdir, signum, code):
    proc = start_cli(["train", "algo=dqn", "env=CartPole-v1", "total_steps=200000", "algo.learning_starts=100",
                      "network.hidden_sizes=[16]", "checkpoint.every=300", "eval.every=0", "log.progress=none",
                      "hydra.run.dir=run"], cwd=workdir)
    wait_for(workdir / "run" / "checkpoints" / "step_300.pt", proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    line = last_line(stderr)
    assert f"interrupted by {signal.Signals(signum).name} at step" in line
    assert "continue with: rlexp train resume=" in line
    step = status(workdir / "run")["step"]
    assert status(workdir / "run")["status"] == "interrupted"
    assert load_checkpoint(workdir / "run" / "checkpoints" / f"step_{step}.pt")["step"] == step


def test_a_second_signal_exits_at_once(workdir):
    proc = start_cli(["train", "algo=dqn", "env=CartPole-v1", "total_steps=200000", "algo.learning_starts=100",
                      "network.hidden_sizes=[16]", "checkpoint.every=300", "eval.every=0", "log.progress=none",
                      "hydra.run.dir=run"], cwd=workdir)
    wait_for(workdir / "run" / "checkpoints" / "step_300.pt", proc)
    # Two different signals: the kernel would merge two pending SIGINTs into one.
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted twice: stopped at once" in last_line(stderr) and "Traceback" not in stderr
    for path in (workdir / "run" / "checkpoints").glob("step_*.pt"):
        load_checkpoint(path)  # whatever was on disk is whole


def test_a_failing_job_does_not_stop_the_sweep_which_ends_with_a_summary(workdir):
    proc = run_cli(["train", "--multirun", "algo.gamma=0.9,1.5,0.99", "total_steps=300", "algo.learning_starts=100",
                    "network.hidden_sizes=[16]", "eval.every=0", "eval.episodes=1", "log.progress=none",
                    "hydra.sweep.dir=sweep"], cwd=workdir)
    assert proc.returncode == 1, proc.stderr
    assert "1 of 3 jobs did not complete (job 1: failed)" in last_line(proc.stderr)
    assert "sweep summary" in proc.stdout and "algo.gamma=1.5" in proc.stdout
    assert "job 1 failed: algo.gamma=1.5 is outside [0.0, 1.0]" in proc.stdout
    import csv

    rows = list(csv.DictReader((workdir / "sweep" / "summary.csv").open()))
    assert [(r["job"], r["overrides"], r["status"]) for r in rows] == [
        ("0", "algo.gamma=0.9", "completed"), ("1", "algo.gamma=1.5", "failed"), ("2", "algo.gamma=0.99", "completed")]
    assert rows[1]["error"] == "algo.gamma=1.5 is outside [0.0, 1.0]" and float(rows[0]["eval_return"]) > 0


def test_a_signal_stops_the_whole_sweep(workdir):
    proc = start_cli(["train", "--multirun", "seed=0,1", "total_steps=200000", "algo.learning_starts=100",
                      "network.hidden_sizes=[16]", "checkpoint.every=300", "eval.every=0", "log.progress=none",
                      "hydra.sweep.dir=sweep", "hydra.sweep.subdir=job${hydra.job.num}"], cwd=workdir)
    wait_for(workdir / "sweep" / "job0" / "checkpoints" / "step_300.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert last_line(stderr).startswith("rlexp train: interrupted by SIGINT during the sweep: 2 of 2 jobs interrupted "
                                        "(1 before they started); resume=<job dir> continues one that trained")
    assert status(workdir / "sweep" / "job0")["status"] == "interrupted"
    # Hydra makes a job's directory before its task runs: the job after the signal records that it never started.
    assert status(workdir / "sweep" / "job1") == {
        "status": "interrupted", "step": 0, "error": "not run: the sweep was stopped by SIGINT before this job started"}
    assert not (workdir / "sweep" / "job1" / "checkpoints").exists()
    assert (workdir / "sweep" / "summary.csv").is_file()
