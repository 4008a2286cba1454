"""`network.torso`: a user's own torch.nn.Module (`_target_`) in the encoder's position of every algorithm (issue 36,
section 3): checked before anything trains, saved with the run, imported by a saved run only under the trust rule,
and rebuilt by eval, load, export and resume; many seeds as one model stack it with torch.func.

The torsos are tests/torsos.py's, named as a user names theirs: `network.torso._target_=tests.torsos:SmallTorso`.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlexp
from rlexp.agents.dqn import DQNConfig
from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config.validate import validate
from rlexp.envs import describe_spaces
from rlexp.errors import ConfigError
from rlexp.io.checkpoints import load_checkpoint, save_checkpoint
from rlexp.networks.members import stack_members
from rlexp.networks.user_torso import StackedTorso, UserTorso, check_user_torso, resolve_torso
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from rlexp.runners.requests import serve
from tests.conftest import (
    algo_config,
    compose_config,
    interrupt_mid_run,
    made_once,
    one_line,
    refusal_to_read,
    run_cli,
    run_in_process,
    snapshot,
    train_seeds_in_lockstep,
)

SMALL = "tests.torsos:SmallTorso"
CARTPOLE = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)



# --- the module, in the encoder's position ---------------------------------------------------------------------------

def test_a_torso_takes_any_leading_axes_around_the_users_batch_axis() -> None:
    torso = resolve_torso({"_target_": SMALL, "width": 5})
    assert torso is not None
    built = torso.build(CARTPOLE)
    assert isinstance(built, UserTorso) and built.out_features == 5
    seeds_batch = torch.randn(3, 7, 4)   # (seeds, batch, obs): folded into one batch for the module
    torch.testing.assert_close(built(seeds_batch), built.module(seeds_batch.reshape(21, 4)).reshape(3, 7, 5))


def test_a_torso_that_needs_real_numbers_to_be_built_is_counted_too() -> None:
    """AlgoSpec.parameters counts on the meta device; a constructor that runs numpy on a forward pass is built on the
    CPU for the count."""
    torso = resolve_torso({"_target_": "tests.torsos:MeasuresItsWidth"})
    spaces = describe_spaces(CARTPOLE, gym.spaces.Discrete(2), "CartPole")
    algo = algo_config(DQNConfig, {"dueling": False, "noisy": False, "distribution": "expected"})
    counted = algorithms()["dqn"].parameters(algo, spaces, (8,), torso)
    assert counted == (4 * 5 + 5) + (5 * 8 + 8) + (8 * 2 + 2)


def test_many_seeds_stack_any_torso_with_torch_func() -> None:
    torso = resolve_torso({"_target_": SMALL})
    assert torso is not None
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(torso.build(CARTPOLE))
    stacked = stack_members(members, "the torso")
    obs = torch.randn(2, 5, 4)
    together = stacked(obs)
    for k, member in enumerate(members):   # each seed as it is alone, and its parameters are views of the stack
        torch.testing.assert_close(together[k], member(obs[k]))
    together.sum().backward()
    assert [p.grad is not None for p in stacked.parameters()] == [True, True]
    with torch.no_grad():
        next(stacked.parameters())[1].add_(1.0)
    torch.testing.assert_close(members[1].module.linear.weight, next(stacked.parameters())[1])
    running = resolve_torso({"_target_": "tests.torsos:WithRunningStatistics"})
    assert running is not None
    with pytest.raises(ConfigError, match=r"network.torso \(tests.torsos:WithRunningStatistics\) has state besides "
                                          r"its parameters \(norm.running_mean"):
        stack_members([running.build(CARTPOLE), running.build(CARTPOLE)], "the torso")


@pytest.mark.parametrize("torso, message", [
    ({"_target_": "tests.torsos:Missing"}, "network.torso (tests.torsos:Missing) does not import: module tests.torsos "
                                           "has no attribute or submodule 'Missing'"),
    ({"_target_": "no_such_package.Torso"}, "does not import: no module named 'no_such_package'"),
    ({"_target_": "tests.torsos:NotATorso"}, "is a class, not a torch.nn.Module subclass"),
    ({"_target_": "tests.torsos:NoWidth"}, "has out_features=None: a torso sets out_features"),
    ({"_target_": "tests.torsos:WrongWidth"}, "gives shape (2, 16) for a batch of 2 observations, not (batch, "
                                              "out_features) = (2, 8)"),
    ({"_target_": "tests.torsos:Float64Features"}, "gives torch.float64 features; the heads read float32"),
    ({"_target_": "tests.torsos:NeedsAnImage"}, "cannot read a batch of observations of shape (2, 4) and dtype "
                                                "torch.float32: it raised RuntimeError"),
    ({"_target_": SMALL, "depth": 2}, "cannot be built with the observation space and the keyword arguments "
                                      "['depth']"),
    ({"_target_": None, "width": 2}, "network.torso has keyword arguments ['width'] but no _target_"),
])
def test_a_torso_that_does_not_fit_is_one_line_before_anything_is_built(torso, message) -> None:
    with pytest.raises(ConfigError) as refused:
        check_user_torso(torso, CARTPOLE)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_refused_torso_is_one_line_and_exit_2_from_the_cli(tmp_path, capsys, monkeypatch) -> None:
    proc = run_in_process(["train", "algo=ppo", "network.torso._target_=tests.torsos:WrongWidth", "hydra.run.dir=run"],
                          tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2 and "network.torso (tests.torsos:WrongWidth) gives shape" in one_line(proc)
    assert not (tmp_path / "run" / "checkpoints").exists() and not list((tmp_path / "run").glob("events.*"))
    tuples = run_in_process(["train", "algo=ppo", "env.id=Blackjack-v1", f"network.torso._target_={SMALL}",
                             "hydra.run.dir=tuples"], tmp_path, capsys, monkeypatch)
    # a torso built for arrays gets the env's Tuple space (and a tuple of tensors): it says what it could not do
    assert tuples.returncode == 2 and f"network.torso ({SMALL}) could not be built for the observation space " \
        "Tuple(Discrete(32), Discrete(11), Discrete(2)): it raised" in one_line(tuples)


# --- every algorithm builds its networks on the torso's features -----------------------------------------------------

ENVS = {"dqn": "CartPole-v1", "ppo": "CartPole-v1", "a2c": "CartPole-v1", "ddpg": "Pendulum-v1",
        "td3": "Pendulum-v1", "sac": "Pendulum-v1"}
TINY = ["total_steps=96", "eval.every=96", "eval.episodes=1", "checkpoint.every=96", "log.every=64",
        "log.progress=none", "log.heldout_states=0", "env.num_envs=2", "network.hidden_sizes=[8]", "~tuned",
        f"network.torso._target_={SMALL}", "+network.torso.width=6"]


def config_for(name: str, *more: str) -> dict[str, Any]:
    extra = ["algo.n_steps=16", "algo.batch_size=16"][:1 if name == "a2c" else 2] if name in ("ppo", "a2c") else \
        ["algo.learning_starts=32", "algo.batch_size=8", "algo.buffer_size=128"]
    config = resolved_config(compose_config([f"algo={name}", f"env.id={ENVS[name]}", *TINY, *extra, *more]))
    assert validate(config, algorithms()).name == name
    return config


@pytest.mark.parametrize("name", sorted(ENVS))
def test_every_algorithm_reads_observations_through_the_torso_and_its_seeds_stack(name: str, tmp_path: Path) -> None:
    spec = algorithms()[name]
    jobs, members, _ = train_seeds_in_lockstep(spec, {**config_for(name), "seeds": [0, 1]}, tmp_path)
    torsos = [m for m in members[0].__dict__.values() if isinstance(m, torch.nn.Module)
              for m in m.modules() if isinstance(m, UserTorso)]
    assert torsos and all(t.out_features == 6 for t in torsos)   # in every network the algorithm has
    space = jobs[0].eval_env.observation_space
    space.seed(0)
    obs = np.stack([np.stack([np.asarray(space.sample()) for _ in range(3)]) for _ in range(2)])   # (seeds, batch)
    batched = spec.members(members)
    stacked = [m for m in batched.__dict__.values() if isinstance(m, torch.nn.Module)
               for m in m.modules() if isinstance(m, StackedTorso)]
    assert len(stacked) == len(torsos)   # every network's torso stacked over the seeds (its targets' too)
    together = batched.act(obs, explore=False)
    for k, member in enumerate(members):   # the stacked torso acts as each seed's alone
        np.testing.assert_allclose(together[k], member.act(obs[k], explore=False), rtol=1e-5, atol=1e-6)
    seeds = [load_checkpoint(tmp_path / f"seed_{k}" / "checkpoints" / "final.pt")["agent"] for k in (0, 1)]
    keys = [key for key in seeds[0] if isinstance(seeds[0][key], dict) and any(".module." in p for p in seeds[0][key])]
    assert keys and any(not torch.equal(seeds[0][key][p], seeds[1][key][p]) for key in keys
                        for p in seeds[0][key] if ".module." in p)   # each seed trained its own torso


def test_a_torso_of_dict_observations_gets_the_entries_stacks_its_seeds_and_exports_one_input_per_entry(
        tmp_path: Path, capsys, monkeypatch) -> None:
    # PPO on a Dict env (goal and position Boxes, a Discrete speed) through a torso of the user's that reads a dict
    spec = algorithms()["ppo"]
    config = {**config_for("ppo", "env.id=tests.toy_envs:GoalPointDiscrete-v0",
                           "network.torso._target_=tests.torsos:EntriesTorso"), "seeds": [0, 1]}
    jobs, members, _ = train_seeds_in_lockstep(spec, config, tmp_path)
    torso = members[0].policy.encoder
    assert isinstance(torso, UserTorso) and torso.paths == ["goal", "position", "speed"]
    assert torso.module.linear.in_features == 2 + 2 + 1   # built with the Dict space: its entries' values
    space = jobs[0].eval_env.observation_space
    space.seed(0)
    obs = np.stack([np.stack([space.sample() for _ in range(3)]) for _ in range(2)])   # packed rows, (seeds, batch)
    together = spec.members(members).act(obs, explore=False)   # vmap over the dict of each seed's entries
    for k, member in enumerate(members):
        np.testing.assert_allclose(together[k], member.act(obs[k], explore=False), rtol=1e-5, atol=1e-6)
    # rlexp.load takes the raw dict; the export takes one input per entry and acts as the agent
    loaded = rlexp.load(tmp_path / "seed_0")
    raw = space.raw.sample()
    assert loaded.spaces.obs_space.shape == space.shape and loaded.act(raw).shape == ()
    exported = run_in_process(["export", "seed_0", "format=onnx", "states=32"], tmp_path, capsys, monkeypatch)
    assert exported.returncode == 0 and "its actions match the agent's on 32" in exported.stdout, exported.stderr
    description = json.loads((tmp_path / "seed_0" / "export" / "policy.onnx.json").read_text())
    assert [i["name"] for i in description["inputs"]] == ["obs.goal", "obs.position", "obs.speed"]


def test_a_torso_reads_images_smaller_than_the_nature_cnn_as_uint8(tmp_path: Path) -> None:
    """A 9x9 RGB image (a MiniGrid-like grid), which the built-in CNN refuses, trains with a torso of one's own,
    stored and given to it in uint8."""
    spec = algorithms()["ppo"]
    config = config_for("ppo", "env.wrappers=[{_target_: tests.torsos.downsampled}]",
                        "network.image.channels_first=false")   # (9 could be 9 stacked frames first)
    config["env"]["id"] = "tests.faulty_envs:ImageObservation-v0"
    job = Job.prepare(config, spec, torch.device("cpu"))
    assert job.spaces.frames and job.spaces.obs_shape == (9, 9, 3) and job.spaces.obs_dtype == np.uint8
    seen: list[torch.dtype] = []
    steps = job.steps(tmp_path / "run", StopRequest(), [])
    agent = next(steps).agent
    agent.policy.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    assert serve(steps, agent)["status"] == "completed" and set(seen) == {torch.uint8}
    with pytest.raises(ConfigError, match="smaller than the 36x36 the Nature CNN reads"):   # without the torso
        Job.prepare({**config, "network": {**config["network"], "torso": {"_target_": None}}}, spec,
                    torch.device("cpu"))


# --- as a user types it: train, kill, resume, eval, load, export -----------------------------------------------------

RUN = ["train", "algo=dqn", "env=CartPole-v1", f"network.torso._target_={SMALL}", "+network.torso.width=8",
       "total_steps=800", "algo.learning_starts=100", "network.hidden_sizes=[16]", "checkpoint.every=200",
       "eval.every=400", "eval.episodes=2", "log.every=50", "log.progress=none", "log.heldout_states=20",
       "torch_threads=1"]


@pytest.fixture
def run(tmp_path_factory, tmp_path, monkeypatch) -> Path:
    """A copy, at tmp_path/run, of an 800-step DQN run on CartPole with tests.torsos:SmallTorso, trained once."""
    def make(root: Path) -> dict[str, Any]:
        proc = run_cli([*RUN, "hydra.run.dir=run"], cwd=root)
        assert proc.returncode == 0, proc.stderr
        return {}

    trained = made_once(tmp_path_factory, "torso-dqn", make)[0] / "run"
    monkeypatch.chdir(tmp_path)
    return Path(shutil.copytree(trained, tmp_path / "run", symlinks=True))


def test_a_run_with_a_torso_resumes_after_sigkill_to_the_same_end_and_evaluates_loads_exports(
        run, tmp_path, capsys, monkeypatch) -> None:
    interrupt_mid_run([*RUN, "hydra.run.dir=killed"], tmp_path, tmp_path / "killed" / "checkpoints" / "step_200.pt",
                      signal.SIGKILL, run)
    resumed = run_cli(["train", "resume=killed"], cwd=tmp_path)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr
    reference, again = (load_checkpoint(d / "checkpoints" / "final.pt")["agent"]["q_network"] for d in
                        (run, tmp_path / "killed"))
    assert "encoder.module.linear.weight" in reference
    assert all(torch.equal(reference[p], again[p]) for p in reference)
    assert (json.loads((run / "results.json").read_text())["eval_returns"]
            == json.loads((tmp_path / "killed" / "results.json").read_text())["eval_returns"])

    agent = rlexp.load(run)
    assert agent.config["network"]["torso"] == {"_target_": SMALL, "width": 8}
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(agent.act(obs))
    env.close()
    evaluated = run_in_process(["eval", "run", "episodes=1"], tmp_path, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr
    for fmt in ("torchscript", "onnx"):
        exported = run_in_process(["export", "run", f"format={fmt}", "states=16"], tmp_path, capsys, monkeypatch)
        assert exported.returncode == 0 and "its actions match the agent's" in exported.stdout, exported.stderr


def test_a_resume_with_another_torso_is_refused(run, tmp_path, capsys, monkeypatch) -> None:
    before = snapshot(tmp_path)
    proc = run_in_process(["train", "resume=run", "total_steps=1000", "+network.torso.width=4"], tmp_path, capsys,
                          monkeypatch)
    assert proc.returncode == 2 and "the run cannot continue with a different network.torso.width: 8 -> 4" \
        in one_line(proc)
    assert snapshot(tmp_path) == before


def test_a_torso_the_format_cannot_capture_is_named_in_one_line(run, tmp_path, capsys, monkeypatch) -> None:
    final = run / "checkpoints" / "final.pt"
    bundle = load_checkpoint(final)   # the same parameters, a forward that branches on the observations' values
    bundle["config"]["network"]["torso"]["_target_"] = "tests.torsos:BranchesOnData"
    save_checkpoint(bundle, final)
    proc = run_in_process(["export", "run", "format=pt2", "states=16"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2
    assert "the policy cannot be exported as pt2: its network.torso (tests.torsos:BranchesOnData) could not be " \
           "captured" in one_line(proc)
    assert not (run / "export").exists()


@pytest.mark.parametrize("loader", ["eval", "export", "load", "resume"])
def test_a_saved_torso_imports_nothing_from_the_current_directory(run, tmp_path, loader, capsys, monkeypatch) -> None:
    name = f"planted_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import pathlib\n"
                                         f"pathlib.Path(__file__).with_name('{name}.imported').touch()\n"
                                         "from tests.torsos import SmallTorso as Torso\n")
    final = run / "checkpoints" / "final.pt"
    bundle = load_checkpoint(final)
    bundle["config"]["network"]["torso"]["_target_"] = f"{name}.Torso"
    save_checkpoint(bundle, final)
    saved = run / ".hydra" / "overrides.yaml"
    saved.write_text(saved.read_text().replace(SMALL, f"{name}.Torso"))
    monkeypatch.syspath_prepend(str(tmp_path))   # as `python -m rlexp` run in tmp_path has it
    before = snapshot(tmp_path)
    message = refusal_to_read(loader, tmp_path, capsys, monkeypatch, resume_steps=1000)
    assert f"network.torso ({name}.Torso), saved in {run.resolve()}, would import {name!r} from " \
           f"{tmp_path.resolve()}, the current directory" in message
    assert snapshot(tmp_path) == before and name not in sys.modules   # no marker: not imported
