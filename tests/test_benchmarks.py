"""The learning benchmark's targets: each runs a real preset at its own budget, and a wrong name is an error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from rlexp.commands.train import resolved_config
from tests.conftest import CONF, ROOT, cli_env, compose_config

SCRIPT = ROOT / "benchmarks" / "learning.py"
spec = importlib.util.spec_from_file_location("learning_benchmark", SCRIPT)
learning = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = learning   # dataclasses look their module up while the class is built
spec.loader.exec_module(learning)


def test_target_names_are_unique():
    names = [t.name for t in learning.TARGETS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("target", learning.TARGETS, ids=lambda t: t.name)
def test_each_target_trains_its_tuned_preset_on_its_task_at_the_presets_budget(target):
    assert (CONF / "tuned" / f"{target.algo}_{target.env}.yaml").is_file()
    args = target.train_args(seed=3, steps=target.steps, threads=1, overrides=[])
    # The budget the table compares at is the one a user gets from the preset without total_steps=.
    preset = resolved_config(compose_config([a for a in args if not a.startswith("total_steps=")]))
    assert preset["total_steps"] == target.steps
    # (an env config may name the module that registers its env: minigrid:MiniGrid-DoorKey-5x5-v0)
    assert preset["env"]["id"].rpartition(":")[2] == (target.env_id or target.env)
    assert preset["seed"] == 3


def test_the_atari_target_names_its_game_and_plays_it_with_the_atari_preset():
    (pong,) = [t for t in learning.TARGETS if t.env == "atari" and t.algo == "dqn"]
    assert pong.name == "dqn_Pong-v5"
    assert {t.name for t in learning.TARGETS if t.env == "atari"} == {
        "dqn_Pong-v5", "ppo_Pong-v5", "ppo_Breakout-v5", "a2c_Pong-v5", "a2c_Breakout-v5"}
    args = pong.train_args(seed=0, steps=1000, threads=1, overrides=["eval.episodes=1"])
    assert args[:3] == ["algo=dqn", "env=atari", "env.id=ALE/Pong-v5"] and args[-1] == "eval.episodes=1"


def test_an_unknown_target_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "td3_Pendulum-v1", "dqn_Pong", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=cli_env(), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown target dqn_Pong;" in proc.stderr
    assert "dqn_Pong-v5" in proc.stderr          # the choices are listed
    assert not (tmp_path / "out").exists()      # nothing ran


def test_cheap_rows_default_to_ten_seeds_and_the_long_ones_to_three():
    cheap = {t.name for t in learning.TARGETS if t.cheap}
    assert cheap == {"dqn_CartPole-v1", "dqn_Acrobot-v1", "dqn_LunarLander-v3", "dqn_FrozenLake-v1", "dqn_Taxi-v4",
                     "td3_Pendulum-v1",
                     "ddpg_Pendulum-v1", "sac_Pendulum-v1", "td3_MountainCarContinuous-v0",
                     "ddpg_MountainCarContinuous-v0",
                     "sac_MountainCarContinuous-v0", "ppo_CartPole-v1", "ppo_Pendulum-v1", "a2c_CartPole-v1",
                     "a2c_LunarLander-v3", "ppo_MiniGrid-DoorKey-5x5-v0", "qrdqn_CartPole-v1", "rainbow_CartPole-v1",
                     "tqc_Pendulum-v1", "crossq_Pendulum-v1"}
    for t in learning.TARGETS:
        assert t.default_seeds == (list(range(10)) if t.cheap else [0, 1, 2])


def test_the_interval_is_a_bootstrap_of_the_mean_over_seeds():
    assert learning.mean_interval([7.0, 7.0, 7.0]) == (7.0, 7.0)      # no spread, no interval
    returns = [500.0, 500.0, 500.0, 442.0, 95.0]
    low, high = learning.mean_interval(returns)
    assert 95.0 < low < sum(returns) / len(returns) < high <= 500.0   # resampled means stay within the data
    assert learning.mean_interval(returns) == (low, high)              # a fixed seed: the same band each time


def test_the_time_to_solve_tasks_run_the_presets_at_their_budgets():
    path = ROOT / "benchmarks" / "time_to_solve.py"
    spec = importlib.util.spec_from_file_location("time_to_solve", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for task in module.TASKS:
        preset = resolved_config(compose_config([f"algo={task.algo}", f"env={task.env}"]))
        assert preset["total_steps"] == task.budget, task.name
        assert task.budget % task.eval_every == 0 and task.sb3_ctor.split("(")[0] == task.algo.upper()
        if task.variant:   # RL Zoo's hyperparameters compose into a valid rlexp config
            from rlexp.agents.registry import algorithms
            from rlexp.config.validate import validate

            overrides = [f"algo={task.algo}", f"env={task.env}", *task.rlexp_overrides]
            validate(resolved_config(compose_config(overrides)), algorithms())


def test_the_gpu_benchmark_reads_the_steady_state_rate_of_a_runs_second_half_of_learning(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    gpu_spec = importlib.util.spec_from_file_location("gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
    gpu = importlib.util.module_from_spec(gpu_spec)
    gpu_spec.loader.exec_module(gpu)
    writer = SummaryWriter(str(tmp_path))
    # random steps at 1,000 steps/s, then learning at 100 steps/s with a slow start (compiling)
    times = {500: 0.5, 1000: 1.0, 2000: 2.0, 3000: 30.0, 4000: 40.0, 5000: 50.0, 6000: 60.0}
    for step, wall in times.items():
        writer.add_scalar("charts/SPS", 0.0, step, walltime=1000.0 + wall)
    writer.close()
    assert gpu.LEARNING_STARTS == 2000
    assert gpu.steady_rate(tmp_path) == pytest.approx(100.0)   # steps 4,000 to 6,000: (6000 + 2000) / 2 onwards


def test_batched_rows_train_their_seeds_as_one_model_and_read_a_finished_batch_back(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, str(SCRIPT), "--only", "dqn_CartPole-v1", "--seeds", "3", "4", "--steps", "300",
               "--batched", "--resume", "--out", str(out), "--override", "eval.episodes=1",
               "--override", "algo.learning_starts=100"]
    first = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    batch = out / "dqn_CartPole-v1_300" / "batched_3-4"
    assert sorted(p.name for p in batch.glob("seed_*")) == ["seed_3", "seed_4"]   # one process, two runs
    assert "| dqn | CartPole-v1 | 300 | 2 |" in first.stdout and "batched model" in first.stdout
    stamp = (batch / "results.json").stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=300)
    assert again.returncode == 0, again.stderr
    assert (batch / "results.json").stat().st_mtime_ns == stamp        # read back, not trained again
    assert again.stdout.splitlines()[2] == first.stdout.splitlines()[2]


def test_the_fingerprint_of_a_run_with_added_checkpoint_state_matches_the_older_one_with_keys_of(tmp_path):
    import json

    import torch

    spec = importlib.util.spec_from_file_location("fingerprint", ROOT / "benchmarks" / "fingerprint.py")
    fingerprint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fingerprint)
    old = {"agent": {"w": torch.arange(3.0)}, "context": {"stop": {"window": 2}}, "step": 5}
    new = {"agent": {"w": torch.arange(3.0)}, "context": {"stop": {"window": 2, "history": [1.0]}}, "step": 5}
    for name, state in (("old", old), ("new", new)):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        for file in ("step_5.pt", "final.pt"):
            torch.save(state, tmp_path / name / "checkpoints" / file)
        (tmp_path / name / "results.json").write_text(json.dumps({"eval_returns": [1.0], "total_steps": 5}))
    assert fingerprint.run_digest(tmp_path / "new") != fingerprint.run_digest(tmp_path / "old")
    assert fingerprint.run_digest(tmp_path / "new", tmp_path / "old") == fingerprint.run_digest(tmp_path / "old")
    new["agent"]["w"] = torch.arange(3.0) + 1   # a value that changed still shows
    torch.save(new, tmp_path / "new" / "checkpoints" / "final.pt")
    assert fingerprint.run_digest(tmp_path / "new", tmp_path / "old") != fingerprint.run_digest(tmp_path / "old")
