"""`env.wrappers`: gymnasium wrappers named in the config by `_target_`, applied in order to every env rlexp makes
(training, sync and async; evaluation; held-out states; rlexp eval, rlexp.load, rlexp export), saved with the run,
checked before anything is built, and, named by a saved config, imported only under rlexp/config/trust.py's rule.

One run as a user types it (DQN on an image env that only FlattenObservation makes an MLP's, two async envs) is
trained once and copied; the refusals and the env's construction run in process.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

import rlexp
import tests.faulty_envs  # noqa: F401  (registers the ids)
from rlexp.envs.checks import CheckedEnv, EnvCallError
from rlexp.envs.episodes import EpisodeRecorder
from rlexp.envs.make import make_env, make_vector_env
from rlexp.envs.wrappers import as_tuples
from rlexp.io.checkpoints import load_checkpoint, save_checkpoint
from tests.conftest import TINY, made_once, one_line, refusal_to_read, run_cli, run_in_process, snapshot

IMAGE = "tests.faulty_envs:ImageObservation-v0"   # (84, 84, 3) uint8 observations, two actions
# As a user types it in a shell (quoted: the spaces and braces are Hydra's grammar, not the shell's): the image
# flattened into a vector, then its float32 copy (an MLP's input).
WRAPPERS = ("'env.wrappers=[{_target_: gymnasium.wrappers.FlattenObservation}, "
            "{_target_: gymnasium.wrappers.DtypeObservation, dtype: float32}]'")
RUN = ["train", "algo=dqn", f"env.id={IMAGE}", WRAPPERS.strip("'"), "env.num_envs=2", "env.vectorization=async",
       "total_steps=200", "algo.learning_starts=100", "algo.buffer_size=1000", "network.hidden_sizes=[16]",
       "log.heldout_states=20", *TINY, "eval.episodes=1", "checkpoint.every=100", "hydra.run.dir=run"]


def scaled_rewards(env: gym.Env, factor: float) -> gym.Env:
    """A user's own wrapper as a function: the env in, a gymnasium.Env out."""
    return gym.wrappers.TransformReward(env, lambda reward: factor * reward)


class WrongShape(gym.ObservationWrapper):
    """A user's wrapper that breaks its promise: its observations are not of its observation_space."""

    def observation(self, observation: Any) -> Any:
        return observation[:1]


def chain(env: gym.Env) -> list[str]:
    names = []
    while True:
        names.append(type(env).__name__)
        if not isinstance(env, gym.Wrapper):
            return names
        env = env.env



# --- the env rlexp makes ---------------------------------------------------------------------------------------------

def test_wrappers_go_in_order_between_the_users_env_and_rlexps_own():
    env = make_env(IMAGE, wrappers=[{"_target_": "gymnasium.wrappers.FlattenObservation"},
                                    {"_target_": "tests.test_wrappers.scaled_rewards", "factor": 10.0},
                                    {"_target_": "gymnasium.wrappers.TimeLimit", "max_episode_steps": 3}])
    names = chain(env)
    # the user's env checked innermost, under gymnasium.make's wrappers; the user's wrappers in order over them,
    # the first innermost, and checked again around them
    assert names[0] == "CheckedEnv" and names[1:4] == ["TimeLimit", "TransformReward", "FlattenObservation"]
    assert names[-2:] == ["CheckedEnv", "FaultyEnv"]
    assert env.observation_space == gym.spaces.Box(0, 255, (84 * 84 * 3,), np.uint8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84 * 84 * 3,)
    rewards, truncated = [], False
    while not truncated:
        _, reward, _, truncated, _ = env.step(1)
        rewards.append(reward)
    assert rewards == [-10.0] * 3   # scaled by the function's wrapper, cut by the third wrapper's TimeLimit
    env.close()


def test_a_wrappers_list_arguments_are_given_as_tuples():
    # ResizeObservation takes its shape as a tuple only; YAML (and a command line) can only write a list
    env = make_env(IMAGE, wrappers=[{"_target_": "gymnasium.wrappers.ResizeObservation", "shape": [42, 40]}])
    assert env.observation_space.shape == (42, 40, 3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (42, 40, 3)
    env.close()
    assert as_tuples({"a": [1, [2, 3]], "b": "c"}) == {"a": (1, (2, 3)), "b": "c"}


def test_each_env_of_a_vector_env_has_its_own_wrappers():
    flatten = [{"_target_": "gymnasium.wrappers.FlattenObservation"}]
    envs = make_vector_env(IMAGE, {}, None, 2, "sync", 0, wrappers=flatten)
    try:
        assert envs.single_observation_space.shape == (84 * 84 * 3,)
        first, second = envs.envs
        assert isinstance(first, EpisodeRecorder) and first.env is not second.env   # the recorder outermost
        checks = [e for e in (first, first.env, first.env.env) if isinstance(e, CheckedEnv)]
        assert checks and all(check.index == 0 for check in checks)
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 84 * 84 * 3)
    finally:
        envs.close()


def test_a_wrapper_that_breaks_its_space_is_named_in_one_line():
    env = make_env(IMAGE, wrappers=[{"_target_": "tests.test_wrappers.WrongShape"}])
    with pytest.raises(EnvCallError) as failed:
        env.reset(seed=0)
    assert str(failed.value).startswith(f"{IMAGE} through env.wrappers: its reset returned an observation of shape "
                                        f"(1, 84, 3)")
    env.close()
    # the env's own fault keeps the inner check's words (not wrapped again by the outer one)
    env = make_env("tests.faulty_envs:RaisesInStep-v0",
                   wrappers=[{"_target_": "gymnasium.wrappers.FlattenObservation"}])
    env.reset(seed=0)
    with pytest.raises(EnvCallError) as failed:
        for _ in range(50):
            env.step(0)
    assert str(failed.value).startswith("tests.faulty_envs:RaisesInStep-v0: its step raised ValueError")
    env.close()


# --- refused before anything is built --------------------------------------------------------------------------------

@pytest.mark.parametrize("wrappers, message", [
    ("[{_target_: no_such_package.Wrap}]",
     "env.wrappers[0] (no_such_package.Wrap) does not import: no module named 'no_such_package'"),
    ("[{_target_: gymnasium.wrappers.FlattenObservation}, {_target_: gymnasium.wrappers.NoSuchWrapper}]",
     "env.wrappers[1] (gymnasium.wrappers.NoSuchWrapper) does not import: module gymnasium.wrappers has no attribute "
     "or submodule 'NoSuchWrapper'"),
    ("[{_target_: gymnasium.spaces.Box}]",
     "env.wrappers[0] (gymnasium.spaces.Box) is a class, but not a gymnasium.Wrapper"),
    ("[{_target_: gymnasium.__version__}]",
     "env.wrappers[0] (gymnasium.__version__) is a str, not a gymnasium.Wrapper or a callable returning one"),
    ("[{_target_: numpy.asarray}]", "env.wrappers[0] (numpy.asarray) returned a ndarray, not a gymnasium.Env"),
    ("[{_target_: gymnasium.wrappers.TimeLimit, max_steps: 5}]",
     "env.wrappers[0] (gymnasium.wrappers.TimeLimit) cannot be called with the env and the keyword arguments "
     "['max_steps']"),
    ("[{_target_: gymnasium.wrappers.FrameStackObservation, stack_size: 0}]",
     "env.wrappers[0] (gymnasium.wrappers.FrameStackObservation) could not wrap CartPole-v1: it raised ValueError"),
    ("[{max_episode_steps: 5}]", "env.wrappers[0]={'max_episode_steps': 5} needs _target_"),
    ("[{_target_: gymnasium.wrappers.FlattenObservation, _partial_: true}]",
     "has _partial_: an entry takes _target_ and the wrapper's keyword arguments only"),
    ("[{_target_: gymnasium.wrappers.FlattenObservation}] env.vectorization=envpool",
     "env.wrappers cannot be applied with env.vectorization=envpool"),
])
def test_a_wrapper_that_cannot_be_applied_is_refused_in_one_line(workdir, wrappers, message, capsys, monkeypatch):
    value, *more = wrappers.split(" env.")
    args = ["train", "algo=dqn", "env=CartPole-v1", f"env.wrappers={value}", *(f"env.{m}" for m in more),
            "hydra.run.dir=run"]
    proc = run_in_process(args, workdir, capsys, monkeypatch)
    assert proc.returncode == 2 and message in one_line(proc)
    # nothing built: the new run's directory records the refusal only, and the corrected command may run there
    assert not (workdir / "run" / "checkpoints").exists() and not list((workdir / "run").glob("events.*"))
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "failed"


# --- a run trained with wrappers: saved, rebuilt, checked -------------------------------------------------------------

@pytest.fixture
def run(tmp_path_factory, workdir, monkeypatch) -> Path:
    """A copy, at workdir/run, of a 200-step DQN run with two wrappers on two async envs, trained once, as a user
    types it."""
    def make(root: Path) -> dict[str, Any]:
        proc = run_cli(RUN, cwd=root)
        assert proc.returncode == 0, proc.stderr
        return {"stderr": proc.stderr}

    trained = made_once(tmp_path_factory, "wrappers-dqn", make)[0] / "run"
    monkeypatch.chdir(workdir)
    return Path(shutil.copytree(trained, workdir / "run", symlinks=True))


def test_a_trained_run_rebuilds_its_wrappers_everywhere(run, workdir, capsys, monkeypatch):
    saved = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert WRAPPERS.strip("'") in saved   # as typed, what a resume replays
    agent = rlexp.load(run)
    assert agent.config["env"]["wrappers"] == [{"_target_": "gymnasium.wrappers.FlattenObservation"},
                                               {"_target_": "gymnasium.wrappers.DtypeObservation", "dtype": "float32"}]
    assert agent.spaces.obs_shape == (84 * 84 * 3,)   # the spaces after wrapping: an MLP's input
    env = agent.make_env()
    assert chain(env)[1:3] == ["DtypeObservation", "FlattenObservation"]
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(agent.act(obs))
    env.close()
    evaluated = run_in_process(["eval", "run", "episodes=1"], workdir, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    exported = run_in_process(["export", "run", "format=torchscript", "states=8"], workdir, capsys, monkeypatch)
    assert exported.returncode == 0, exported.stderr


def test_a_resume_with_other_wrappers_is_refused(run, workdir, capsys, monkeypatch):
    before = snapshot(workdir)
    proc = run_in_process(["train", "resume=run", "total_steps=400", "env.wrappers=[{_target_: "
                           "gymnasium.wrappers.FlattenObservation}, {_target_: gymnasium.wrappers.TimeLimit, "
                           "max_episode_steps: 20}]"], workdir, capsys, monkeypatch)
    assert proc.returncode == 2
    assert "the run cannot continue with a different env.wrappers: [{'_target_': " in one_line(proc)
    assert snapshot(workdir) == before


def plant_wrapper(directory: Path) -> str:
    """A module in `directory` holding a wrapper, that leaves a marker file when imported: its name."""
    name = f"planted_{uuid.uuid4().hex[:8]}"
    (directory / f"{name}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path(__file__).with_name('{name}.imported').touch()\n"
        "from gymnasium.wrappers import FlattenObservation as Wrap\n")
    return name


@pytest.mark.parametrize("loader", ["eval", "export", "load", "resume"])
def test_a_saved_wrapper_imports_nothing_from_the_current_directory(run, workdir, loader, capsys, monkeypatch):
    name = plant_wrapper(workdir)
    final = run / "checkpoints" / "final.pt"
    bundle = load_checkpoint(final)
    bundle["config"]["env"]["wrappers"] = [{"_target_": f"{name}.Wrap"}]
    save_checkpoint(bundle, final)
    saved = run / ".hydra" / "overrides.yaml"
    saved.write_text(saved.read_text().replace("gymnasium.wrappers.FlattenObservation", f"{name}.Wrap"))
    monkeypatch.syspath_prepend(str(workdir))   # as `python -m rlexp` run in workdir has it
    before = snapshot(workdir)
    message = refusal_to_read(loader, workdir, capsys, monkeypatch, resume_steps=400)
    assert f"env.wrappers[0] ({name}.Wrap), saved in {run.resolve()}, would import {name!r} from " \
           f"{workdir.resolve()}, the current directory" in message
    assert snapshot(workdir) == before and name not in sys.modules   # no marker: not imported


def test_a_new_runs_typed_wrapper_imports_what_it_names(workdir, monkeypatch):
    """The config typed for this command is the user's own: its wrapper module is imported from where Python finds
    it, the current directory included."""
    name = plant_wrapper(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.chdir(workdir)
    try:
        env = make_env(IMAGE, wrappers=[{"_target_": f"{name}.Wrap"}])
        assert (workdir / f"{name}.imported").exists() and env.observation_space.shape == (84 * 84 * 3,)
        env.close()
    finally:
        sys.modules.pop(name, None)
