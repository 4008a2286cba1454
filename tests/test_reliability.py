"""Reliability, second round: what an adversarial user tries, one family of inputs per test, each closed at its
root. Every refusal is one line on stderr and exit 2, and leaves what is on disk as it was. One case of each family
runs as a user types it (a subprocess: the `as_typed` case), the others through the same entry point in process
(conftest: rlexp, run_in_process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env, made_once, run_cli, run_in_process, snapshot, start_cli, train_in_process, wait_for

TINY = ["total_steps=600", "algo.learning_starts=100", "eval.every=0", "eval.episodes=1", "checkpoint.every=300",
        "log.progress=none", "torch_threads=1"]
AS_TYPED = pytest.mark.as_typed


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code and len(lines) == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "usage:" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run, made once per session (made_once); tests copy it, or only read it."""
    def make(root: Path) -> None:
        proc = train_in_process(["train", "algo=dqn", "env=CartPole-v1", *TINY, "hydra.run.dir=run"], root)
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, "reliability-finished", make)[0] / "run"


def copy_of(run: Path, workdir: Path) -> Path:
    subprocess.run(["cp", "-a", str(run), str(workdir / "run")], check=True)
    return workdir / "run"


# --- 1. a refused command leaves the run directory byte for byte as it was ---------------------------------------

def damage(run: Path, how: str) -> list[str]:
    """Break the run in one way; returns the extra arguments of the resume that must then be refused."""
    checkpoints = run / "checkpoints"
    if how == "same total_steps":
        return []
    if how == "a changed config":
        return ["algo.lr=0.5"]
    if how == "a corrupt newest checkpoint and a changed config":
        newest = checkpoints / "step_600.pt"
        data = bytearray(newest.read_bytes())
        data[4000:4064] = bytes(64)
        newest.write_bytes(bytes(data))
        return ["algo.lr=0.5", "total_steps=900"]
    if how == "an empty checkpoints/":
        for path in checkpoints.glob("step_*.pt"):
            path.unlink()
        return ["total_steps=900"]
    if how == "a damaged .hydra/":
        (run / ".hydra" / "overrides.yaml").write_text("- algo=dqn\n  - [\n")
        return ["total_steps=900"]
    if how == "train.log deleted":  # nothing may even create a log file
        (run / "train.log").unlink()
        return ["algo.gamma=0.5", "total_steps=900"]
    raise AssertionError(how)


@pytest.mark.parametrize("how", [pytest.param("same total_steps", marks=AS_TYPED), "a changed config",
                                 "a corrupt newest checkpoint and a changed config", "an empty checkpoints/",
                                 "a damaged .hydra/", "train.log deleted"])
def test_a_refused_resume_leaves_the_run_directory_as_it_was(finished, workdir, rlexp, how):
    run = copy_of(finished, workdir)
    extra = damage(run, how)
    before = snapshot(run)
    line = one_line_error(rlexp(["train", "resume=run", *extra], cwd=workdir))
    assert line.startswith("rlexp train: error: resume=")
    assert snapshot(run) == before
    assert json.loads((run / "results.json").read_text())["status"] == "completed"


def test_a_new_run_into_an_existing_run_directory_is_refused(finished, workdir, rlexp):
    # (as a user types it in tests/test_cli.py: test_same_seed_same_run)
    run = copy_of(finished, workdir)
    before = snapshot(run)
    line = one_line_error(rlexp(["train", "algo=dqn", *TINY, "hydra.run.dir=run"], cwd=workdir))
    assert "hydra.run.dir=run already holds a run; continue it with `rlexp train resume=run`" in line
    assert snapshot(run) == before


# --- 2. an option that does not exist, in any group, optional or not ---------------------------------------------

@pytest.mark.parametrize("args, expected", [
    pytest.param(["experiment=ddpg_papr"], "experiment=ddpg_papr is not an option of the experiment group: choose "
                                           "from ddpg_paper, der; did you mean experiment=ddpg_paper?", marks=AS_TYPED),
    (["+experiment=nope", "algo=ddpg"], "experiment=nope is not an option of the experiment group"),
    (["tuned=td3_Pendulum"], "did you mean tuned=td3_Pendulum-v1?"),
    (["--multirun", "hparams_search=td3_pendulm"], "did you mean hparams_search=td3_pendulum?"),
    (["--multirun", "experiment=ddpg_paper,ddpg_papr"], "experiment=ddpg_papr is not an option"),
    pytest.param(["algo=dqnn"], "algo=dqnn is not an option of the algo group: choose from a2c, crossq, ddpg, dqn, "
                                "ppo, qrdqn, rainbow, sac, td3, tqc; did you mean algo=dqn?",
                 marks=AS_TYPED),   # Hydra's, the other rlexp's
    (["env=CartPol-v1"], "env=CartPol-v1 is not an option of the env group"),
])
def test_an_option_that_does_not_exist_is_an_error_never_a_silent_default(workdir, rlexp, args, expected):
    assert expected in one_line_error(rlexp(["train", *args], cwd=workdir))
    assert not (workdir / "outputs").exists() or not any((workdir / "outputs").rglob("results.json"))


# --- 3. values outside what the libraries accept -----------------------------------------------------------------

# (a value refused by its range as a user types it: tests/test_errors.py's algo.gamma=2)
@pytest.mark.parametrize("args, expected", [
    (["train", "seed=-1"], "seed=-1 is outside [0, 4294957295]"),
    (["train", f"seed={2**32}"], f"seed={2**32} is outside"),
    (["train", f"seed={2**32 - 5000}"], "rlexp also seeds with seed + up to 10000"),
    (["train", f"total_steps={2**63}"], "must be below"),
    (["train", "env.num_envs=0"], "env.num_envs=0 must be a positive integer"),
    (["train", "env.num_envs=100", "total_steps=50"], "env.num_envs=100 is more than total_steps=50"),
    (["train", "algo=dqn", "env=atari", "env.atari.frame_stack=100000"], "env.atari.frame_stack=100000 is more"),
])
def test_values_outside_the_libraries_ranges_are_refused_before_anything_runs(workdir, rlexp, args, expected):
    assert expected in one_line_error(rlexp(args, cwd=workdir))


def test_eval_refuses_a_seed_numpy_would_refuse(finished, workdir, capsys, monkeypatch):
    for seed in ("-1", str(2**32)):
        assert f"seed={seed} is outside" in one_line_error(run_in_process(["eval", str(finished), f"seed={seed}"],
                                                                          workdir, capsys, monkeypatch))


# --- 4. sizes beyond the machine -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, key", [
    pytest.param(["network.hidden_sizes=[1000000000]"], "network.hidden_sizes", marks=AS_TYPED),
    (["algo.buffer_size=10000000000", "total_steps=10000000000"], "algo.buffer_size"),
    (["algo.n_step=100000000"], "algo.n_step"),
    (["eval.episodes=100000000000"], "eval.episodes"),
    (["algo=dqn", "env=atari", "algo.buffer_size=100000000", "total_steps=100000000"], "algo.buffer_size"),
    # once killed by the OOM killer:
    (["algo=dqn", "env=atari", "env.atari.screen_size=100000"], "env.atari.screen_size"),
    (["algo=dqn", "env=atari", "env.num_envs=1000000", "total_steps=1000000"], "env.num_envs"),   # the emulators
    (["algo=dqn", "env.num_envs=100000000", "total_steps=100000000"], "env.num_envs"),   # 4 KB each
    (["eval.episodes=100000000", "eval.num_envs=100000000"], "eval.num_envs"),   # the evaluation's envs
])
def test_a_run_that_cannot_fit_in_memory_is_refused_naming_the_key_the_estimate_and_the_limit(workdir, rlexp, args,
                                                                                                key):
    line = one_line_error(rlexp(["train", *args, "hydra.run.dir=run"], cwd=workdir))
    assert line.startswith(f"rlexp train: error: {key}=") and "GB of memory" in line and "are available" in line


def test_eval_refuses_an_episode_count_beyond_the_machine(finished, workdir, capsys, monkeypatch):
    line = one_line_error(run_in_process(["eval", str(finished), "episodes=99999999999"], workdir, capsys,
                                         monkeypatch))
    assert "episodes=99999999999: the evaluation's returns would need about 800.0 GB" in line


# --- 5. envs that cannot be imported -------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id, expected", [
    pytest.param("some.module:Nope-v0", "cannot import 'some.module', the module that should register it (no "
                                        "module named 'some')", marks=AS_TYPED),
    ("phys2d/CartPole-v1", "needs a package that is not installed: no module named 'jax' (fix: pip install jax)"),
    ("tests.faulty_envs:Nope-v0", "is not a registered gymnasium environment"),
])
def test_an_env_that_cannot_be_imported_is_one_line_naming_the_module_or_package(workdir, rlexp, env_id, expected):
    assert expected in one_line_error(rlexp(["train", f"env.id={env_id}"], cwd=workdir))


# --- 6. a run directory the OS refuses -------------------------------------------------------------------------------

@pytest.mark.parametrize("where", [pytest.param("/proc/rlexp-run", marks=AS_TYPED), "/sys/rlexp-run", "a file",
                                   "x" * 300])
def test_a_run_directory_the_os_refuses_is_one_line_before_any_work(workdir, rlexp, where):
    if where == "a file":
        (workdir / "a file").write_text("not a directory")
    line = one_line_error(rlexp(["train", f"hydra.run.dir={where}"], cwd=workdir))
    assert "cannot write to" in line and "choose another directory" in line


def test_a_run_refused_for_a_bad_value_leaves_its_directory_to_the_corrected_command(workdir, capsys, monkeypatch):
    line = one_line_error(run_in_process(["train", "algo.gamma=2", *TINY, "hydra.run.dir=run"], workdir, capsys,
                                         monkeypatch))
    assert "algo.gamma" in line
    proc = train_in_process(["train", *TINY, "hydra.run.dir=run"], workdir)   # (the subject: the directory)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "completed"
    again = one_line_error(run_in_process(["train", *TINY, "hydra.run.dir=run"], workdir, capsys, monkeypatch))
    assert "already holds a run" in again   # a run that trained is never overwritten


# --- 7. a damaged run directory on resume ----------------------------------------------------------------------------

@pytest.mark.parametrize("content", [pytest.param(b"- algo=dqn\n  - [\n", marks=AS_TYPED), b"- algo=dqn\x00\n",
                                     b"algo: dqn\n", b"- 3\n- [1]\n", b"\xff\xfe\n"])
def test_damaged_overrides_say_which_file_and_how_to_recover(finished, workdir, rlexp, content):
    run = copy_of(finished, workdir)
    (run / ".hydra" / "overrides.yaml").write_bytes(content)
    line = one_line_error(rlexp(["train", "resume=run", "total_steps=900"], cwd=workdir))
    assert ".hydra/overrides.yaml is damaged" in line
    assert "the run's overrides are also in its checkpoint step_600.pt" in line and "'algo=dqn'" in line


# --- 8. two processes on one run directory ---------------------------------------------------------------------------

def test_a_run_directory_in_use_is_locked_and_a_killed_holder_leaves_no_stale_lock(finished, workdir, capsys,
                                                                                     monkeypatch):
    run = copy_of(finished, workdir)
    holder = start_cli(["train", "resume=run", "total_steps=200000", "checkpoint.every=500"], cwd=workdir)
    wait_for(run / "checkpoints" / "step_1000.pt", holder)
    line = one_line_error(run_in_process(["train", "resume=run", "total_steps=300000"], workdir, capsys,
                                         monkeypatch))
    assert f"is in use by process {holder.pid}" in line
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    newest = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt"))
    again = run_cli(["train", "resume=run", f"total_steps={newest + 300}"], cwd=workdir)
    assert again.returncode == 0, again.stderr


# --- 9. resource settings that defeat the machine --------------------------------------------------------------------

def test_more_torch_threads_than_cores_are_capped_with_a_warning(workdir):
    # A short run: its threads (every core) contend with the other test processes' for its whole length.
    # (few updates and no held-out states: the warning is the subject, not the learning)
    proc = train_in_process(["train", "algo=dqn", *TINY, "total_steps=200", "algo.learning_starts=190",
                             "log.heldout_states=0", "torch_threads=1000", "hydra.run.dir=run"], workdir)
    # (this process's torch threads put back afterwards)
    assert proc.returncode == 0, proc.stderr
    cores = len(os.sched_getaffinity(0))
    assert f"torch_threads=1000 exceeds the {cores} cores this job may use; using {cores}" in proc.stdout


# --- 10. one line, on every command ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    pytest.param(["train", "--nope"], "rlexp train: error: unrecognized arguments: --nope (rlexp train --help)",
                 marks=AS_TYPED),
    pytest.param(["eval"], "rlexp eval: error: give one run directory or checkpoint file (rlexp eval --help)",
                 marks=AS_TYPED),
    ([], "rlexp: error: give a command: train, eval, plot or export (rlexp --help)"),
    (["nope"], "rlexp: error: unknown command 'nope'"),
    (["plot"], "rlexp plot: error: give at least one run or sweep directory"),
])
def test_usage_errors_are_one_line_and_exit_2(workdir, rlexp, args, expected):
    assert one_line_error(rlexp(args, cwd=workdir)).startswith(expected)


def test_an_unknown_plot_metric_is_only_its_error(finished, workdir, capsys, monkeypatch):
    line = one_line_error(run_in_process(["plot", str(finished), "metric=nope/nope"], workdir, capsys, monkeypatch))
    assert "no run logged metric=nope/nope" in line


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["train", "--cfg", "job"]])
def test_output_cut_by_a_closed_pipe_ends_quietly(workdir, args):
    # Buffered output, as a user's shell gives it: with PYTHONUNBUFFERED=1 every write meets the closed pipe at
    # once, without it a short output meets it only when the buffer is flushed at exit.
    env = {key: value for key, value in cli_env().items() if key != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, "-m", "rlexp", *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head` or `| true`
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr and "Exception ignored" not in stderr
    assert proc.returncode in (0, 141)
