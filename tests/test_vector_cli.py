"""Vector envs as a user runs them: env.num_envs and env.vectorization for every env family, budgets counted
over the envs, events fired when their step is crossed, and exact resume after SIGKILL with 3 envs, sync and
async."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlexp.io.checkpoints import load_checkpoint
from tests.conftest import cli_env, interrupt_mid_run, run_cli, run_in_process, train_in_process, wait_for

QUICK = ["eval.episodes=1", "eval.every=0", "checkpoint.every=0", "log.progress=none", "torch_threads=1"]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


ENVPOOL = pytest.mark.skipif(importlib.util.find_spec("envpool") is None, reason='needs pip install "rlexp[envpool]"')


FAMILIES = {
    "classic": ["algo=dqn", "env=CartPole-v1", "total_steps=300", "algo.learning_starts=100"],
    "box2d": ["algo=td3", "env=LunarLanderContinuous-v3", "total_steps=120", "algo.learning_starts=60"],
    "mujoco": ["algo=ddpg", "env=HalfCheetah-v5", "total_steps=120", "algo.learning_starts=60"],
    "atari": ["algo=dqn", "env=atari", "env.id=ALE/Pong-v5", "total_steps=120", "algo.learning_starts=60",
              "algo.buffer_size=200", "algo.batch_size=8", "eval.episodes=1", "log.heldout_states=16"],
}
# The default suite covers every family and every backend, and EnvPool's and gymnasium's Atari preprocessing
# both; the other pairs run under -m slow.
DEFAULT_PAIRS = {("classic", "sync"), ("box2d", "async"), ("mujoco", "envpool"), ("atari", "sync"),
                 ("atari", "envpool")}


@pytest.mark.parametrize("family, vectorization", [
    pytest.param(family, vectorization, id=f"{family}-{vectorization}",
                 marks=[*([ENVPOOL] if vectorization == "envpool" else []),
                        *([] if (family, vectorization) in DEFAULT_PAIRS else [pytest.mark.slow])])
    for family in FAMILIES for vectorization in ("sync", "async", "envpool")])
def test_every_env_family_trains_with_several_envs(workdir, family, vectorization):
    args = FAMILIES[family]
    proc = run_cli(["train", *args, *QUICK, "env.num_envs=3", f"env.vectorization={vectorization}",
                    "hydra.run.dir=run"], cwd=workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr
    done = results(workdir / "run")
    budget = int(next(a for a in args if a.startswith("total_steps=")).split("=")[1])
    assert done["num_envs"] == 3 and done["status"] == "completed"
    assert budget <= done["total_steps"] < budget + 3   # vector steps of 3 until the budget is reached


def test_budgets_and_rounds_count_env_steps_summed_over_the_envs(workdir):
    """4 envs, train_freq=2 vector steps, gradient_steps=1 per env: a round every 8 env steps of 4 updates once
    more than 100 env steps are collected; log and eval fire when their multiples are crossed."""
    args = ["train", "algo=dqn", "env=CartPole-v1", "env.num_envs=4", "total_steps=400", "algo.learning_starts=100",
            "algo.train_freq=2", "algo.gradient_steps=1", "eval.every=90", "eval.episodes=1", "log.every=50",
            "checkpoint.every=0", "log.progress=none", "torch_threads=1"]
    # (in process: the subject is the counting; every family trains with several envs as typed above)
    assert train_in_process([*args, "hydra.run.dir=run"], workdir).returncode == 0
    assert train_in_process([*args, "algo.gradient_steps=-1", "hydra.run.dir=all"], workdir).returncode == 0
    rounds = len([k for k in range(1, 101) if k % 2 == 0 and 4 * k > 100])   # vector steps 26, 28, ..., 100
    assert load_checkpoint(workdir / "run" / "checkpoints" / "final.pt")["agent"]["n_updates"] == rounds * 4
    # -1: one update per env step collected in the round, 2 vector steps of 4 envs
    assert load_checkpoint(workdir / "all" / "checkpoints" / "final.pt")["agent"]["n_updates"] == rounds * 8
    logged = scalars(workdir / "run")
    assert [s for s, _ in logged["eval/mean_return"]] == [92, 180, 272, 360, 400]
    assert [s for s, _ in logged["charts/SPS"]] == [52, 100, 152, 200, 252, 300, 352, 400]


def test_episode_rounds_with_several_envs_are_refused(workdir, capsys, monkeypatch):
    proc = run_in_process(["train", "algo=td3", "env=Pendulum-v1", "env.num_envs=2", "algo.train_freq_unit=episode",
                           "hydra.run.dir=run"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "algo.train_freq_unit=episode needs env.num_envs=1 (got 2)" in proc.stderr


RESUMED = {
    # CartPole's episodes end at different steps in each env; OU noise keeps a state per env.
    "dqn": ["algo=dqn", "env=CartPole-v1", "total_steps=1800", "algo.learning_starts=300",
            "network.hidden_sizes=[32]", "algo.n_step=3", "algo.prioritized=true"],
    "td3": ["algo=td3", "env=Pendulum-v1", "total_steps=900", "algo.learning_starts=300",
            "network.hidden_sizes=[32]", "algo.noise.type=ou"],
}
COMMON = ["env.num_envs=3", "checkpoint.every=300", "eval.every=600", "eval.episodes=2", "log.every=60",
          "log.progress=none", "torch_threads=1"]


def final_parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    agent = load_checkpoint(run_dir / "checkpoints" / "final.pt")["agent"]
    return {f"{m}.{p}": t for m, state in agent.items() if isinstance(state, dict) and "optimizer" not in m
            for p, t in state.items() if isinstance(t, torch.Tensor)}


# Each backend once: sync with DQN's discrete actions, async and EnvPool with TD3's OU noise and its generator.
# The default run keeps async (worker processes killed with the run); sync and EnvPool are slow.
@pytest.mark.parametrize("algo, vectorization", [pytest.param("dqn", "sync", marks=pytest.mark.slow), ("td3", "async"),
                                                 pytest.param("td3", "envpool", marks=[ENVPOOL, pytest.mark.slow])])
def test_three_envs_resume_after_sigkill_to_exactly_the_uninterrupted_end(workdir, algo, vectorization):
    args = ["train", *RESUMED[algo], *COMMON, f"env.vectorization={vectorization}"]
    reference = train_in_process([*args, "hydra.run.dir=reference"], workdir)   # the CLI's run, in this process
    assert reference.returncode == 0, reference.stderr
    delay = interrupt_mid_run([*args, "hydra.run.dir=run"], workdir, workdir / "run" / "checkpoints" / "step_300.pt",
                              signal.SIGKILL, workdir / "reference")
    resumed = run_cli(["train", "resume=run"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout

    reference, run = final_parameters(workdir / "reference"), final_parameters(workdir / "run")
    assert reference.keys() == run.keys() and all(torch.equal(reference[k], run[k]) for k in reference), \
        f"delay {delay:.2f} s"
    a, b = scalars(workdir / "reference"), scalars(workdir / "run")
    for tag in ("charts/episodic_return", "charts/episodic_length", "eval/mean_return"):
        assert a[tag] == b[tag], f"{tag} differs after a resume (delay {delay:.2f} s)"
    for tag, points in b.items():  # what the killed process logged after its checkpoint is purged: no zig-zag
        steps = [step for step, _ in points]
        episodic = tag.startswith("charts/episodic")   # envs may end episodes at the same vector step
        assert steps == sorted(steps if episodic else set(steps)), tag
    assert results(workdir / "reference")["eval_returns"] == results(workdir / "run")["eval_returns"]


def test_sigterm_to_the_whole_process_group_still_saves_with_async_envs(workdir):
    """SIGTERM to the process group (what `timeout`, `scancel` and systemd send; Ctrl-C reaches the group the same
    way, tests/test_env_faults.py): the env workers and the forkserver ignore it, the run saves and exits."""
    args = [sys.executable, "-m", "rlexp", "train", *RESUMED["dqn"], *COMMON, "env.vectorization=async",
            "total_steps=1200", "hydra.run.dir=run"]
    proc = subprocess.Popen(args, cwd=workdir, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    wait_for(workdir / "run" / "checkpoints" / "step_300.pt", proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr and "EOFError" not in stderr
    saved = json.loads((workdir / "run" / "results.json").read_text())
    assert saved["status"] == "interrupted"
    resumed = run_cli(["train", "resume=run"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr


def test_a_checkpoint_of_the_old_format_is_refused_in_one_line(workdir, capsys, monkeypatch):
    path = workdir / "old.pt"
    torch.save({"format": 1, "agent": {}, "config": {}}, path)
    proc = run_in_process(["eval", str(path)], workdir, capsys, monkeypatch)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "has format 1 (rlexp 0.1, before vectorized envs)" in proc.stderr


