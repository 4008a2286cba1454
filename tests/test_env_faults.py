"""Envs that fail, hang or lie (issue 35, section 2), and the async workers' part of signals (section 3): every one
ends the run in one line naming the env (its index among several), the step and what happened, keeps the last
checkpoint, and leaves no process behind. Fault envs: tests/faulty_envs.py (MisbehavingEnv)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlexp.envs import make_env, make_vector_env
from rlexp.envs.checks import EnvCallError, observation_check, reward_problem
from rlexp.runners.evaluation import EvaluationStopped, evaluate
from tests.conftest import run_cli, run_in_process, start_cli, wait_for

FAULTY = "tests.faulty_envs"
# DQN, learning from step 50, a checkpoint every 100 steps; the evaluation only at the end (none before the fault).
QUICK = ["algo=dqn", "algo.learning_starts=50", "network.hidden_sizes=[16]", "eval.episodes=1",
         "eval.every=100000", "checkpoint.every=100", "log.every=50", "log.progress=none", "log.heldout_states=0",
         "hydra.run.dir=run"]
# Two async envs; only env 1 (first reset with seed 0 + 1) misbehaves, from its step 120 (vector step 120).
ASYNC = ["env.num_envs=2", "env.vectorization=async", "+env.kwargs.at=120", "+env.kwargs.fault_seed=1"]


def group_members(pgid: int) -> list[str]:
    """The command lines of the processes still in process group `pgid` (zombies aside)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:100])
        except (OSError, IndexError, ValueError):
            pass   # a process that ended while it was read
    return members


def assert_no_process_left(pgid: int, timeout: float = 10) -> None:
    """Every process of the run's group ends (the workers, the forkserver, the resource tracker) within `timeout`."""
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(pgid) == []


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- what an env returns, checked where it enters (in process: the wrapper every env rlexp makes has) -----------

@pytest.mark.parametrize("how, expected", [
    ("raises_in_step", "its step raised ValueError: joint 3 exploded"),
    ("raises_in_reset", "its reset raised RuntimeError: the simulator lost its license server"),
    ("wrong_shape", "its step returned an observation of shape (2,) and dtype float32 (ndarray); its "
                    "observation_space Box(-10.0, 10.0, (3,), float32) expects shape (3,), dtype float32"),
    ("string_reward", "its step returned a reward that is '1.0' of type str; expected a number"),
    ("array_reward", "its step returned a reward that is an array of shape (1,); expected a number"),
    ("none_reward", "its step returned a reward that is None; expected a number"),
    ("four_tuple", "its step returned a 4-tuple (ndarray, float, bool, dict); expected a tuple (obs, reward, "
                   "terminated, truncated, info)"),
    ("reset_not_tuple", "its reset returned a ndarray; expected a tuple (obs, info)"),
    ("flag_not_bool", "its step returned terminated=0 of type int; expected a bool"),
])
def test_what_an_env_returns_is_checked_where_it_enters(how, expected):
    env = make_env(f"{FAULTY}:RaisesInStep-v0", {"how": how, "at": 3})
    with pytest.raises(EnvCallError) as raised:
        env.reset(seed=0)
        for _ in range(60):   # (a reset fault comes at the time limit's reset, after step 50)
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                env.reset()
    assert str(raised.value).startswith(f"{FAULTY}:RaisesInStep-v0: {expected}")
    assert "\n" not in str(raised.value)


def test_an_env_whose_close_fails_is_warned_about_in_one_line(caplog):
    env = make_env(f"{FAULTY}:RaisesInStep-v0", {"how": "raises_on_close"})
    with caplog.at_level(logging.WARNING, logger="rlexp"):
        env.close()   # (the run's work is done: its results are still written)
    assert [r.getMessage() for r in caplog.records] == [
        f"{FAULTY}:RaisesInStep-v0: its close raised OSError: device busy (ignored)"]


def test_well_formed_values_of_every_kind_pass_the_checks():
    box = observation_check(gym.spaces.Box(-1, 1, (2,), np.float32))
    assert box(np.zeros(2, np.float32)) is None and box(np.zeros(2, np.float64)) is None
    assert box([0, 1]) is None   # a list of ints for a float Box: numpy takes it as it is
    assert "expects shape (2,)" in str(box(np.zeros(3)))
    discrete = observation_check(gym.spaces.Discrete(4))
    assert discrete(3) is None and discrete(np.int64(3)) is None and discrete(1.5) is not None
    nested = observation_check(gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))
    assert nested({"a": 1}) is None and "keys ['a']" in str(nested({"b": 1}))
    assert all(reward_problem(r) is None for r in (1, 1.0, np.float32(1), np.int64(1), np.array(1.0), True))


# --- an exception in an env: one line, exit 1, the last checkpoint ------------------------------------------------

def test_an_exception_in_an_envs_step_ends_the_run_in_one_line(workdir):
    proc = run_cli(["train", f"env.id={FAULTY}:RaisesInStep-v0", "total_steps=400", "+env.kwargs.at=250", *QUICK],
                   cwd=workdir)
    line = one_line(proc.stderr)
    assert proc.returncode == 1
    checkpoint = workdir / "run" / "checkpoints" / "step_200.pt"
    assert line == (f"rlexp train: error: {FAULTY}:RaisesInStep-v0 failed at step 250: its step raised ValueError: "
                    f"joint 3 exploded; the last good checkpoint is {checkpoint}")
    assert checkpoint.is_file()
    results = json.loads((workdir / "run" / "results.json").read_text())
    assert results["status"] == "failed" and "joint 3 exploded" in results["error"]


@pytest.mark.parametrize("env_id, extra, expected", [
    ("RaisesInReset-v0", ["env.num_envs=2", "+env.kwargs.fault_seed=1"],
     "(env 1 of 2) failed at step 100: its reset raised RuntimeError: the simulator lost its license server"),
    ("FourTuple-v0", [], "failed at step 30: its step returned a 4-tuple"),
    ("StringReward-v0", ["env.num_envs=2"], "(env 0 of 2) failed at step 60: its step returned a reward that is "
                                            "'1.0' of type str"),
    ("ResetNotTuple-v0", [], "failed at step 50: its reset returned a ndarray"),
])
def test_a_faulty_env_ends_a_run_in_one_line_naming_the_env_and_step(env_id, extra, expected, workdir, capsys,
                                                                     monkeypatch):
    proc = run_in_process(["train", f"env.id={FAULTY}:{env_id}", "total_steps=300", *extra, *QUICK], workdir,
                          capsys, monkeypatch)
    line = one_line(proc.stderr)
    assert proc.returncode == 1
    assert f"{FAULTY}:{env_id} {expected}" in line, line
    last = sorted((workdir / "run" / "checkpoints").glob("step_*.pt"))
    assert line.endswith(f"the last good checkpoint is {last[-1]}" if last else "no checkpoint had been written yet")
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "failed"


# --- async workers that hang, die, or outlive their main process ---------------------------------------------------

def test_a_hung_async_worker_ends_the_run_after_the_step_timeout(workdir):
    proc = start_cli(["train", f"env.id={FAULTY}:HangsInStep-v0", "total_steps=400", "env.step_timeout=1", *ASYNC,
                      *QUICK], workdir, start_new_session=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert one_line(stderr) == (
        f"rlexp train: error: {FAULTY}:HangsInStep-v0 (env 1 of 2) failed at step 240: its step did not return "
        f"within env.step_timeout=1 s (its worker hangs); the workers were stopped; the last good checkpoint is "
        f"{workdir / 'run' / 'checkpoints' / 'step_200.pt'}")
    assert_no_process_left(proc.pid)


def test_a_worker_killed_by_the_os_is_named_at_once(workdir):
    started = time.monotonic()
    # (env.step_timeout is its default, 300 s: the death is seen at once)
    proc = start_cli(["train", f"env.id={FAULTY}:DiesInStep-v0", "total_steps=400", *ASYNC, *QUICK], workdir,
                     start_new_session=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and time.monotonic() - started < 120
    assert one_line(stderr) == (
        f"rlexp train: error: {FAULTY}:DiesInStep-v0 (env 1 of 2) failed at step 240: its worker process was killed "
        f"by SIGKILL (as by the OS's out-of-memory killer) during its step; the last good checkpoint is "
        f"{workdir / 'run' / 'checkpoints' / 'step_200.pt'}")
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "failed"
    assert_no_process_left(proc.pid)


def test_ctrl_c_ends_a_run_whose_worker_hangs_with_its_last_checkpoint(workdir):
    """The first Ctrl-C (to the whole group, as a terminal sends it) gives the step a few seconds, then the run
    ends without it: its last checkpoint on disk, exit 130."""
    proc = start_cli(["train", f"env.id={FAULTY}:HangsInStep-v0", "total_steps=100000", *ASYNC[:-2],
                      "+env.kwargs.at=300", "+env.kwargs.fault_seed=1", *QUICK], workdir, start_new_session=True)
    wait_for(workdir / "run" / "checkpoints" / "step_500.pt", proc)   # vector step 250: the hang is at 300
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - sent < 30 and "Traceback" not in stderr, stderr
    last = workdir / "run" / "checkpoints" / "step_500.pt"
    assert re.fullmatch(
        rf"rlexp train: interrupted by SIGINT at step 598 while env 1 of 2 had not finished its step after \d+ s; "
        rf"the last checkpoint is {re.escape(str(last))}; continue with: rlexp train resume="
        rf"{re.escape(str(workdir / 'run'))}", stderr.strip().splitlines()[-1]), stderr
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "interrupted"
    assert_no_process_left(proc.pid)


def test_a_worker_that_dies_making_its_env_is_named():
    with pytest.raises(EnvCallError) as raised:
        make_vector_env(f"{FAULTY}:DiesInStep-v0", {"how": "dies_on_make"}, None, 2, "async")
    assert str(raised.value) == (f"{FAULTY}:DiesInStep-v0: its worker process was killed by SIGKILL (as by the OS's "
                                 f"out-of-memory killer) while it made the env")


def test_kill_9_of_the_main_process_leaves_no_worker_and_no_noise(workdir):
    proc = start_cli(["train", "env=CartPole-v1", "total_steps=100000", "env.num_envs=2", "env.vectorization=async",
                      *QUICK], workdir, start_new_session=True)
    wait_for(workdir / "run" / "checkpoints" / "step_200.pt", proc)
    os.kill(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)   # (stderr ends once every process that holds it has ended)
    assert proc.returncode == -signal.SIGKILL
    assert stderr.strip() == "", stderr   # no EOFError of the workers, no leaked-semaphore warning
    assert_no_process_left(proc.pid)


# --- evaluation: episodes that never end, and signals while it runs ------------------------------------------------

def test_an_evaluation_episode_that_never_ends_is_cut_with_a_warning(caplog):
    env = make_env(f"{FAULTY}:NeverEnds-v0")
    with caplog.at_level(logging.WARNING, logger="rlexp"):
        returns = evaluate(lambda obs: np.zeros(len(obs), np.int64), [env], 2, seed=0, max_episode_steps=300)
    assert returns.shape == (2,)
    assert [r.getMessage() for r in caplog.records] == [
        "2 of 2 evaluation episodes of NeverEnds-v0 did not end within eval.max_episode_steps=300 steps "
        "and were cut there (their returns count those steps); give the env a time limit (gymnasium's "
        "max_episode_steps) or set eval.max_episode_steps"]
    caplog.clear()   # an env with a time limit of its own ends its episodes itself: no warning
    evaluate(lambda obs: np.zeros(len(obs), np.int64), [make_env("CartPole-v1")], 1, seed=0, max_episode_steps=5)
    assert caplog.records == []
    steps = iter(range(10**6))
    with pytest.raises(EvaluationStopped):   # a stop request is read at every step
        evaluate(lambda obs: np.zeros(len(obs), np.int64), [env], 1, seed=0, stop=lambda: next(steps) >= 10)


def test_sigterm_during_an_evaluation_stops_it_and_saves(workdir):
    proc = start_cli(["train", f"env.id={FAULTY}:NeverEnds-v0", "total_steps=100000",
                      "eval.max_episode_steps=100000000", *QUICK, "eval.every=200"], workdir, start_new_session=True)
    wait_for(workdir / "run" / "checkpoints" / "step_100.pt", proc)
    time.sleep(1.5)   # in the evaluation at step 200, which would take hours
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"rlexp train: interrupted by SIGTERM at step 200; checkpoint saved to "
        f"{workdir / 'run' / 'checkpoints' / 'step_200.pt'}; continue with: rlexp train resume={workdir / 'run'}")
