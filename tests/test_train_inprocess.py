"""`rlexp train`'s decisions before and after a run, called in this process: `train()` and `hydra_task()` as Hydra
calls them (HydraConfig holding the hydra node, the task the rest), with the env or the run replaced where the
decision does not need them. No training happens here; the CLI's runs are in the other test files."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

import rlexp.commands.train as train_command
import rlexp.runners.job as job_module
from rlexp.commands.configstore import register
from rlexp.errors import ConfigError
from rlexp.io import seed_dir
from rlexp.io.lock import RunDirLock
from tests.conftest import CONF


@pytest.fixture
def hydra_job(monkeypatch, tmp_path):
    """compose(overrides) -> the task's config of a job whose run directory is tmp_path/run, as Hydra's run_job
    leaves it: HydraConfig holds the hydra node (put back as it was after the test), the task config lacks it."""
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)

    def compose_job(overrides: list[str]) -> DictConfig:
        register()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*overrides, "torch_threads=1"], return_hydra_config=True)
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        HydraConfig.instance().set_config(cfg)
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]
        return cfg

    return compose_job


class PreparedJob:
    """A Job without an env, whose run trains nothing: what train() decides around it."""

    spaces = SimpleNamespace(frames=False)

    def __init__(self, config: dict) -> None:
        self.config, self.eval_env = config, SimpleNamespace(close=lambda: None)

    @classmethod
    def prepare(cls, config: dict, spec: object, device: object, copies: int = 1) -> PreparedJob:
        return cls(config)

    def run(self, *args: object) -> dict:
        return {"eval_return_mean": 0.0}


@pytest.mark.parametrize("overrides, warns", [
    (["algo=dqn", "env=atari"], False),
    (["algo=dqn", "env=atari", "env.id=ALE/Breakout-v5"], False),   # the Atari preset is every ALE game's
    (["algo=td3", "env=Pendulum-v1"], False),
    (["algo=td3", "env=Pendulum-v1", "env.id=MountainCarContinuous-v0"], True),
], ids=["atari", "atari-breakout", "pendulum", "pendulum-as-mountaincar"])
def test_a_tuned_preset_warns_only_when_env_id_is_not_the_task_of_its_env_file(hydra_job, monkeypatch, caplog,
                                                                                 tmp_path, overrides, warns):
    monkeypatch.setattr(train_command, "Job", PreparedJob)
    cfg = hydra_job(overrides)
    with caplog.at_level(logging.WARNING, logger="rlexp"):
        train_command.train(cfg, tmp_path / "run", train_command.JobState())
    warnings = [r.getMessage() for r in caplog.records if "was made for" in r.getMessage()]
    assert bool(warnings) == warns, warnings
    if warns:
        assert "tuned/td3_Pendulum-v1 was made for Pendulum-v1 but env.id=MountainCarContinuous-v0" in warnings[0]


@pytest.fixture
def envs_made(monkeypatch):
    """The envs Job.prepare opens (each a wrapper that records its close), and those closed."""
    opened: list[gym.Env] = []
    closed: list[gym.Env] = []
    make_env = job_module.make_env

    class Counted(gym.Wrapper):
        def close(self) -> None:
            closed.append(self)
            super().close()

    def counted(*args, **kwargs):
        opened.append(Counted(make_env(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(job_module, "make_env", counted)
    return opened, closed


def test_a_seeds_run_refused_by_its_config_is_refused_before_any_env_opens(hydra_job, envs_made, tmp_path):
    cfg = hydra_job(["algo=td3", "env=Pendulum-v1", "seeds=[0,1]", "algo.batch_norm=true"])
    with pytest.raises(ConfigError, match=r"seeds=\[\.\.\.\] with algo.batch_norm=true.*--multirun seed=0,1"):
        train_command.train(cfg, tmp_path / "run", train_command.JobState())
    opened, _ = envs_made
    assert not opened


def test_a_seeds_run_refused_after_its_envs_opened_closes_every_one(hydra_job, envs_made, tmp_path):
    # A seed's directory in use by another run: refused once every seed's job is prepared (its eval env open).
    run_dir = tmp_path / "run"
    seed_dir(run_dir, 1).mkdir(parents=True)
    cfg = hydra_job(["algo=dqn", "env=CartPole-v1", "seeds=[0,1]"])
    state = train_command.JobState()
    with RunDirLock(seed_dir(run_dir, 1)), pytest.raises(ConfigError, match="is in use by"):
        train_command.train(cfg, run_dir, state)
    opened, closed = envs_made
    assert len(opened) == 2 and all(any(env is c for c in closed) for env in opened)
    assert not state.started


def test_a_second_interrupt_of_a_seeds_run_names_each_seeds_last_checkpoint(hydra_job, monkeypatch, capsys,
                                                                            tmp_path):
    run_dir = tmp_path / "run"
    for seed, steps in ((0, (300, 600)), (1, (300,)), (2, ())):
        checkpoints = seed_dir(run_dir, seed) / "checkpoints"
        checkpoints.mkdir(parents=True)
        for step in steps:
            (checkpoints / f"step_{step}.pt").touch()

    def interrupted_twice(cfg: DictConfig, run_dir: Path, state: train_command.JobState,
                          continuing: bool = False) -> dict:
        state.started = True
        raise KeyboardInterrupt   # what a second Ctrl-C raises while the seeds finish their step or save

    monkeypatch.setattr(train_command, "train", interrupted_twice)
    cfg = hydra_job(["seeds=[0,1,2]"])
    with pytest.raises(SystemExit) as stopped:
        train_command.hydra_task(cfg)
    assert stopped.value.code == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "interrupted twice: stopped at once" in line
    assert (f"the last checkpoints are seed 0: {run_dir / 'seed_0' / 'checkpoints' / 'step_600.pt'}; "
            f"seed 1: {run_dir / 'seed_1' / 'checkpoints' / 'step_300.pt'}; seed 2: none") in line, line
