"""Observation spaces beyond the flat Box (issue 36, section 1): Discrete (one-hot, as SB3), MultiDiscrete (one-hot
per component), MultiBinary (as floats) and Box of any rank (flattened), for every algorithm.

The encoding lives in the network (rlexp/networks/encoders.py): replay and rollouts store the observation as the env
gives it (a Discrete observation one integer), and `rlexp.load` and exports take it raw.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import tests.obs_envs  # noqa: F401  (registers tests.obs_envs:Corridor-<observations>-v0)
from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config.validate import validate
from rlexp.envs import describe_spaces
from rlexp.networks.encoders import make_encoder
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from tests.conftest import compose_config, made_once, run_cli, run_in_process, train_job, train_seeds_in_lockstep

CPU = torch.device("cpu")


# --- the encoders, by hand ---------------------------------------------------------------------------------------

def test_discrete_is_one_hot_by_hand() -> None:
    encoder = make_encoder(gym.spaces.Discrete(4))
    assert encoder.out_features == 4
    torch.testing.assert_close(encoder(torch.tensor([0, 3, 2])),
                               torch.tensor([[1., 0., 0., 0.], [0., 0., 0., 1.], [0., 0., 1., 0.]]))
    shifted = make_encoder(gym.spaces.Discrete(3, start=-1))   # values -1, 0, 1
    torch.testing.assert_close(shifted(torch.tensor([-1, 1])), torch.tensor([[1., 0., 0.], [0., 0., 1.]]))


def test_multidiscrete_is_one_hot_per_component_concatenated() -> None:
    encoder = make_encoder(gym.spaces.MultiDiscrete([2, 3]))
    assert encoder.out_features == 5
    torch.testing.assert_close(encoder(torch.tensor([[1, 2], [0, 0]])),
                               torch.tensor([[0., 1., 0., 0., 1.], [1., 0., 1., 0., 0.]]))
    grid = make_encoder(gym.spaces.MultiDiscrete([[2, 2], [3, 1]]))   # a 2x2 nvec: components in C order
    torch.testing.assert_close(grid(torch.tensor([[[1, 0], [2, 0]]])),
                               torch.tensor([[0., 1., 1., 0., 0., 0., 1., 1.]]))


def test_multibinary_and_box_of_any_rank_are_flattened_floats() -> None:
    bits = make_encoder(gym.spaces.MultiBinary(3))
    out = bits(torch.tensor([[1, 0, 1]], dtype=torch.int8))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[1., 0., 1.]]))
    box = make_encoder(gym.spaces.Box(-1.0, 1.0, (2, 3), np.float64))
    assert box.out_features == 6
    torch.testing.assert_close(box(torch.arange(6.0, dtype=torch.float64).view(1, 2, 3)),
                               torch.arange(6.0).view(1, 6))


def test_encoders_keep_leading_axes_for_many_seeds() -> None:
    encoder = make_encoder(gym.spaces.Discrete(3))
    seeds_batch = torch.tensor([[0, 1], [2, 2]])   # (seeds, batch)
    torch.testing.assert_close(encoder(seeds_batch), torch.eye(3)[seeds_batch])


def test_spaces_of_a_discrete_observation_env() -> None:
    env = gym.make("FrozenLake-v1")
    spaces = describe_spaces(env.observation_space, env.action_space, "FrozenLake-v1")
    assert spaces.obs_shape == () and spaces.obs_dtype == np.int64 and spaces.flat and not spaces.frames


# --- every algorithm, in process ---------------------------------------------------------------------------------

#: Each algorithm on a Discrete-observation env its actions fit (gymnasium's own where one fits), the other
#: encodings spread over the algorithms that need an env of ours (Box actions).
ENVS = {"dqn": "FrozenLake-v1", "ppo": "FrozenLake-v1", "a2c": "Taxi-v4",
        "ddpg": "tests.obs_envs:Corridor-box3d-v0", "td3": "tests.obs_envs:Corridor-multidiscrete-v0",
        "sac": "tests.obs_envs:Corridor-multibinary-v0"}
TINY = ["total_steps=192", "eval.every=96", "eval.episodes=1", "checkpoint.every=96", "log.every=64",
        "log.progress=none", "log.heldout_states=8", "env.num_envs=2", "network.hidden_sizes=[16]", "~tuned"]
OFF_POLICY = ["algo.learning_starts=64", "algo.batch_size=16", "algo.buffer_size=256"]


def config_for(name: str) -> dict:
    extra = ["algo.n_steps=32"] if name in ("ppo", "a2c") else OFF_POLICY
    extra += ["algo.batch_size=16"] if name == "ppo" else []
    config = resolved_config(compose_config([f"algo={name}", f"env.id={ENVS[name]}", *TINY, *extra]))
    assert validate(config, algorithms()).name == name
    return config


@pytest.mark.parametrize("name", sorted(ENVS))
def test_every_algorithm_learns_from_raw_observations_it_stores_as_they_are(name: str, tmp_path: Path) -> None:
    job, built, results = train_job(config_for(name), algorithms()[name], tmp_path / "run")
    space = job.eval_env.observation_space
    agent, replay = built.agent, built.replay
    assert results["status"] == "completed" and np.isfinite(results["eval_return_mean"])

    # Stored in the observation's own dtype and shape: a Discrete observation is one integer.
    if replay is not None:
        stored = replay.storage["observations"]
        assert stored.dtype == (torch.float32 if isinstance(space, gym.spaces.Box) else
                                torch.int8 if isinstance(space, gym.spaces.MultiBinary) else torch.int64)
        assert stored.shape[1:] == space.shape
        filled = stored[:len(replay)]
        assert all(space.contains(np.asarray(o, space.dtype)) for o in filled.numpy())
    # The raw observation in, as the env gives it; the policy network (what exports hold) acts as the agent.
    space.seed(0)
    obs = np.stack([np.asarray(space.sample()) for _ in range(3)])
    actions = agent.act(obs, explore=False)
    with torch.no_grad():
        exported = agent.policy_network()(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(exported, actions, rtol=1e-6, atol=1e-6)
    features, values = agent.representation(torch.as_tensor(obs))
    assert features.shape[0] == 3 and torch.isfinite(values).all()


@pytest.mark.parametrize("name", ["dqn", "ppo", "td3"])
def test_many_seeds_as_one_model_on_discrete_observations(name: str, tmp_path: Path) -> None:
    spec = algorithms()[name]
    config = {**config_for(name), "seeds": [0, 1]}
    jobs, members, _ = train_seeds_in_lockstep(spec, config, tmp_path)
    space = jobs[0].eval_env.observation_space   # FrozenLake's cells; the corridor's MultiDiscrete for td3
    space.seed(0)
    obs = np.stack([np.stack([np.asarray(space.sample()) for _ in range(3)]) for _ in range(2)])   # (seeds, batch)
    batched = spec.members(members)
    together = batched.act(obs, explore=False)
    for k, member in enumerate(members):
        np.testing.assert_allclose(together[k], member.act(obs[k], explore=False), rtol=1e-5, atol=1e-6)


# --- as a user types it ------------------------------------------------------------------------------------------

def frozenlake_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def make(directory: Path) -> None:
        proc = run_cli(["train", "algo=dqn", "env=FrozenLake-v1", "total_steps=300", "algo.learning_starts=100",
                        "eval.every=300", "eval.episodes=2", "log.progress=none", "network.hidden_sizes=[16]",
                        "hydra.run.dir=run"], directory)
        assert proc.returncode == 0, proc.stderr

    directory, _ = made_once(tmp_path_factory, "obs-frozenlake-dqn", make)
    return directory / "run"


def test_dqn_on_frozenlake_trains_evaluates_loads_and_exports(tmp_path_factory, tmp_path, capsys, monkeypatch):
    import rlexp

    run = tmp_path / "run"
    shutil.copytree(frozenlake_run(tmp_path_factory), run)
    config = json.loads((run / "results.json").read_text())
    assert config["status"] == "completed"

    evaluated = run_in_process(["eval", str(run), "episodes=2"], tmp_path, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr

    loaded = rlexp.load(run)
    assert loaded.spaces.obs_dtype == np.int64
    assert loaded.act(np.int64(5)).shape == () and loaded.act([0, 15]).shape == (2,)
    # (a one-hot of 16 would be all zeros: a state never seen, acted on silently)
    with pytest.raises(ValueError, match=r"outside Discrete\(16\) \(the first in row 1: 16\)"):
        loaded.act([0, 16])
    with pytest.raises(ValueError, match="takes integers"):
        loaded.act(np.array([0.5]))

    exported = run_in_process(["export", str(run), "format=onnx", f"out={tmp_path / 'export'}", "states=64"],
                              tmp_path, capsys, monkeypatch)
    assert exported.returncode == 0, exported.stderr
    description = json.loads(next((tmp_path / "export").glob("*.json")).read_text())
    assert description["input"]["shape"] == ["batch"] and description["input"]["dtype"] == "int64"
    assert description["verified"]["max_abs_diff"] == 0.0


def test_normalizing_discrete_observations_is_refused_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    proc = run_in_process(["train", "algo=dqn", "env=FrozenLake-v1", "env.normalize.obs=true",
                           "hydra.run.dir=run"], tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "only Box observations are standardised" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()   # (the run says why in its results.json, as any refusal)


@pytest.mark.parametrize("name", ["dqn", "ppo"])
def test_a_run_on_discrete_observations_resumes_from_its_checkpoint_to_the_same_end(name: str, tmp_path: Path):
    """The integer replay and rollout (their dtype and shape) go through a checkpoint and continue exactly (the
    SIGKILL tests of tests/test_resume.py drive the same bundle through the CLI)."""
    from rlexp.io.checkpoints import load_checkpoint

    spec, config = algorithms()[name], config_for(name)
    Job.prepare(config, spec, CPU).run(tmp_path / "reference", StopRequest(), [])
    checkpoint = load_checkpoint(tmp_path / "reference" / "checkpoints" / "step_96.pt")
    runner = checkpoint["runner"]
    stored = runner["replay"]["transitions"]["observations"] if name == "dqn" else runner["rollout"]["observations"]
    assert stored.dtype == torch.int64 and stored.dim() == (1 if name == "dqn" else 2)
    Job.prepare(config, spec, CPU).run(tmp_path / "resumed", StopRequest(), [], resume=checkpoint)
    final = [load_checkpoint(tmp_path / run / "checkpoints" / "final.pt")["agent"] for run in ("reference", "resumed")]
    networks = [k for k, v in final[0].items() if isinstance(v, dict) and v
                and all(isinstance(t, torch.Tensor) for t in v.values())]
    assert networks and all(torch.equal(final[0][k][p], final[1][k][p]) for k in networks for p in final[0][k])


def test_env_checks_take_integer_observations_and_name_a_wrong_one() -> None:
    from rlexp.envs.checks import observation_check

    multi = observation_check(gym.spaces.MultiDiscrete([6, 2]))
    assert multi(np.array([3, 1])) is None and multi(np.array([3, 1], np.int32)) is None
    assert "expects integers of shape (2,)" in multi(np.array([3]))
    assert "expects integers of shape (2,)" in multi(np.array([0.5, 1.0]))
    bits = observation_check(gym.spaces.MultiBinary(3))
    assert bits(np.array([1, 0, 1], np.int8)) is None and bits(np.array([True, False, True])) is None
    assert observation_check(gym.spaces.Discrete(4))(np.int64(2)) is None


def test_the_memory_estimate_counts_a_discrete_observation_as_one_integer() -> None:
    from rlexp.runners.memory import replay_bytes

    env = gym.make("FrozenLake-v1")
    spaces = describe_spaces(env.observation_space, env.action_space, "FrozenLake-v1")
    device, host = replay_bytes(1000, 1, spaces, prioritized=False)
    # per transition: the action (int64), reward, termination and episode end (float32), s and s' (one int64 each)
    assert (device, host) == (1000 * (8 + 12 + 2 * 8), 0.0)
