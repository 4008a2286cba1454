"""Signals at any moment and disks that fail, met as a user meets them: every command ends a SIGINT or SIGTERM with
one line and the signal's exit status, and a write that fails anywhere is one line, exit 1, with what is on disk
consistent. Real signals to real processes; write failures from a file-size limit (RLIMIT_FSIZE, as a full disk
fails a write: EFBIG for ENOSPC), /dev/full (ENOSPC itself) or a directory removed under the run."""

import json
import logging
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlexp.commands.arguments import never_started
from rlexp.errors import Interrupted, RunFailure, SweepFailed
from rlexp.io.logfile import stop_on_write_errors
from rlexp.io.results import write_results
from rlexp.runners.faults import HeldStop, StopRequest
from rlexp.runners.requests import Built
from rlexp.runners.seeds import run_in_lockstep
from rlexp.sweeps.summary import SweepSummary
from tests.conftest import run_cli, run_in_process, start_cli, wait_for
from tests.test_eval import finished_run_fixture  # noqa: F401  (the session's finished TD3 run: finished_run)

TINY_DQN = ["algo=dqn", "env=CartPole-v1", "network.hidden_sizes=[8]", "log.progress=none", "torch_threads=1",
            "eval.every=0", "eval.episodes=1"]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


# --- signals ---------------------------------------------------------------------------------------------------

def test_a_signal_while_a_many_seeds_run_is_set_up_acts_at_once_and_trains_nothing(workdir):
    # Setting up 200 seeds (an env and a memory check each, then their directories and agents) takes seconds: a
    # signal then used to wait for all of them and the first step, and wrote a checkpoint per seed.
    seeds = "[" + ",".join(map(str, range(200))) + "]"
    args = ["train", *TINY_DQN, f"seeds={seeds}", "total_steps=1000", "algo.learning_starts=100", "hydra.run.dir=run"]
    proc = start_cli(args, workdir)
    wait_for(workdir / "run" / ".hydra" / "overrides.yaml", proc)   # Hydra composed; the job is setting up
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 143, stderr
    assert one_line(stderr) == ("rlexp train: interrupted by SIGTERM before training started; nothing was trained; "
                                "run the same command again to start it")
    assert took < 5, f"acted {took:.1f} s after the signal"
    run = workdir / "run"
    assert results(run) == {"status": "interrupted", "step": 0,
                            "error": "interrupted by SIGTERM before training started; nothing was trained"}
    assert not list(run.rglob("*.pt")) and not list(run.rglob("events.out.tfevents.*"))
    assert never_started(run)   # the same command may start there again


def test_a_signal_while_the_seeds_agents_are_built_saves_no_checkpoint():
    # The lockstep driver builds every seed's agent (the first thing each job's generator does) before any trains.
    request = StopRequest()
    closed: list[int] = []

    def job(k: int):
        try:
            if k == 1:
                request.signum = signal.SIGINT   # the signal lands while seed 1 is built
            yield Built(agent=object(), replay=None)
            raise AssertionError("a seed trained after the signal")
        finally:
            closed.append(k)

    jobs = [job(k) for k in range(4)]
    with pytest.raises(Interrupted, match="while the seeds' agents were built; no seed has trained"):
        run_in_lockstep([0, 1, 2, 3], jobs, lambda agents: None, HeldStop(request))
    assert sorted(closed) == [0, 1]   # the two begun were closed (their envs with them); the others never began


def test_ctrl_c_while_eval_plays_says_how_far_it_got_and_writes_nothing(finished_run, workdir):
    run = workdir / "run"
    shutil.copytree(finished_run / "run", run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    before = files(run)
    # Nothing shows from outside when loading ends and the (200-step) episodes begin: a signal that came while it
    # still loaded is clean too, and the next try waits longer.
    for delay in (5, 10, 20):
        proc = start_cli(["eval", "run", "episodes=1000000"], workdir)
        time.sleep(delay)
        assert proc.poll() is None, "eval ended early"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        line = one_line(stderr)
        assert files(run) == before
        if line != "rlexp eval: interrupted by SIGINT":   # (while loading)
            break
    assert line.startswith("rlexp eval: interrupted by SIGINT after ") and \
        line.endswith(" of 1000000 episodes; nothing was written"), line


def test_sigterm_to_a_joblib_sweep_ends_it_with_its_summary_and_each_job_recorded(workdir):
    # SIGTERM to the whole process group (what `timeout`, systemd and Slurm send; Ctrl-C reaches it the same way):
    # the sweep's process and joblib's two workers. Job 0 (300 steps) has completed and its worker is idle (it
    # used to die of the signal, breaking joblib's pool: a traceback and no summary); job 1 is training. (The job
    # that never starts is test_faults' sweep case.)
    proc = start_cli(["train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY_DQN,
                      "total_steps=300,200000", "algo.learning_starts=100", "checkpoint.every=300",
                      "hydra.sweep.dir=sweep", "hydra.sweep.subdir=job${hydra.job.num}"], workdir,
                     start_new_session=True)
    sweep = workdir / "sweep"
    wait_for(sweep / "job0" / "results.json", proc)
    wait_for(sweep / "job1" / "checkpoints" / "step_600.pt", proc)
    os.killpg(proc.pid, signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert one_line(stderr) == ("rlexp train: interrupted by SIGTERM during the sweep: 1 of 2 jobs interrupted; "
                                "resume=<job dir> continues one that trained; see sweep/summary.csv")
    assert "sweep summary" in stdout and (sweep / "summary.csv").is_file()
    assert results(sweep / "job0")["status"] == "completed"
    stopped = results(sweep / "job1")
    assert stopped["status"] == "interrupted"
    assert (sweep / "job1" / "checkpoints" / f"step_{stopped['step']}.pt").is_file()
    assert not (sweep / ".interrupted").exists()


# --- disks and directories ------------------------------------------------------------------------------------

def test_a_full_disk_under_tensorboards_writer_stops_the_run_in_one_line(workdir):
    # Events are logged at every step and checkpoints stay small (a small replay, no held-out states): the events
    # file reaches the size limit first, in the writer's thread.
    limit = 40_000

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = run_cli(["train", *TINY_DQN, "total_steps=1500", "algo.learning_starts=50", "algo.buffer_size=200",
                    "log.heldout_states=0", "log.every=1", "checkpoint.every=100", "hydra.run.dir=run"],
                   cwd=workdir, preexec_fn=limit_file_size)
    assert proc.returncode == 1, proc.stderr
    run = workdir / "run"
    line = one_line(proc.stderr)   # (no traceback of the writer's thread)
    assert line.startswith(f"rlexp train: error: could not write the TensorBoard events in {run}: File too large; "
                           f"the last good checkpoint is {run}/checkpoints/step_"), line
    assert results(run)["status"] == "failed" and not list(run.glob("*.tmp"))


def test_a_full_disk_at_results_json_keeps_the_training_and_leaves_no_temp_file(workdir):
    run = workdir / "run"
    run.mkdir()
    (run / "results.json.tmp").symlink_to("/dev/full")   # the run's write of results.json meets ENOSPC
    proc = run_cli(["train", *TINY_DQN, "total_steps=300", "algo.learning_starts=100", "hydra.run.dir=run"],
                   cwd=workdir)
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc.stderr) == (
        f"rlexp train: error: could not write {run}/results.json: No space left on device; the run trained to the "
        f"end: its checkpoints are saved (the last is {run}/checkpoints/step_300.pt, the final agent "
        f"{run}/checkpoints/final.pt)")
    assert not (run / "results.json.tmp").exists()
    assert results(run)["status"] == "failed"   # written whole, once the disk took it


def test_a_run_directory_deleted_during_the_run_is_named_as_gone(workdir):
    proc = start_cli(["train", *TINY_DQN, "total_steps=200000", "algo.learning_starts=100", "checkpoint.every=300",
                      "hydra.run.dir=run"], workdir)
    wait_for(workdir / "run" / "checkpoints" / "step_300.pt", proc)
    while (workdir / "run").exists():   # (the run may add a file while the tree is removed)
        shutil.rmtree(workdir / "run", ignore_errors=True)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert one_line(stderr) == (
        f"rlexp train: error: the run directory {workdir}/run is gone (deleted while the run was training); the run "
        f"stopped at its first write there that failed, and its checkpoints went with it")


def test_results_json_is_the_old_or_the_new_one(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, {"status": "completed"})
    (tmp_path / "results.json.tmp").symlink_to("/dev/full")
    with pytest.raises(RunFailure, match=f"could not write {path}: No space left on device"):
        write_results(path, {"status": "failed"})
    assert json.loads(path.read_text()) == {"status": "completed"} and not (tmp_path / "results.json.tmp").exists()


def test_a_log_file_that_cannot_be_written_stops_with_one_error(tmp_path, capsys):
    logger = logging.getLogger("rlexp.test_log_file")
    console = logging.StreamHandler(sys.stdout)
    (tmp_path / "train.log").symlink_to("/dev/full")
    file = logging.FileHandler(tmp_path / "train.log", delay=True)
    logger.addHandler(console)
    logger.addHandler(file)
    try:
        stop_on_write_errors(logger)
        with pytest.raises(RunFailure, match="could not write the log .*train.log: No space left on device"):
            logger.warning("one line")
        assert file not in logger.handlers
        logger.warning("the console still gets this")
    finally:
        logger.removeHandler(console)
        logger.removeHandler(file)
    out, err = capsys.readouterr()
    assert "the console still gets this" in out and "Logging error" not in err


@pytest.mark.parametrize("out, message", [
    ("{file}/x.png", "cannot write the figure to {file}: {file} is a file, not a directory"),
    ("{dir}", "out={dir} is a directory; give a file name ending in .png, .pdf or .svg"),
    ("/proc/rlexp/x.png", "cannot write the figure to /proc/rlexp: No such file or directory"),
])
def test_plot_checks_where_it_writes_before_reading_runs(finished_run, workdir, capsys, monkeypatch,
                                                          out, message):
    file, directory = finished_run / "run" / "results.json", workdir / "taken.png"
    directory.mkdir()
    out, message = (text.format(file=file, dir=directory) for text in (out, message))
    proc = run_in_process(["plot", str(finished_run / "run"), f"out={out}"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and proc.stderr == f"rlexp plot: error: {message}\n"


def test_eval_checks_it_can_write_before_playing_and_can_write_elsewhere(finished_run, workdir, capsys, monkeypatch):
    run = workdir / "run"
    shutil.copytree(finished_run / "run", run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    (run / "eval").write_text("")   # where its outputs go is taken by a file
    proc = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2
    assert proc.stderr == ("rlexp eval: error: cannot write the evaluation's results to run/eval: run/eval is a file, "
                           "not a directory; write them elsewhere with out=DIR\n")
    proc = run_in_process(["eval", "run", "episodes=1", "out=elsewhere"], workdir, capsys, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((workdir / "elsewhere" / "final.json").read_text())["episodes"] == 1
    if os.geteuid() == 0:
        return   # root writes into a read-only directory: the file above stands for it
    (run / "eval").unlink()
    run.chmod(0o555)
    try:
        proc = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    finally:
        run.chmod(0o755)
    assert proc.returncode == 2
    assert proc.stderr == ("rlexp eval: error: cannot write the evaluation's results to run/eval: Permission denied; "
                           "write them elsewhere with out=DIR\n")


def test_a_sweep_whose_summary_csv_cannot_be_written_still_prints_its_table_and_fails(tmp_path, capsys):
    (tmp_path / ".summary.csv.tmp").symlink_to("/dev/full")
    with pytest.raises(SweepFailed, match=r"every job completed, but .*summary.csv could not be written \(No space "
                                          r"left on device\); the table above is the summary"):
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert "sweep summary" in capsys.readouterr().out
    assert not (tmp_path / ".summary.csv.tmp").exists() and not (tmp_path / "summary.csv").exists()
