"""Dict and Tuple observations (issue 36, section 1): packed into one uint8 row of bytes per observation
(rlexp/envs/packing.py), each entry in its own dtype at an aligned offset, read back by the MultiInputEncoder (one
encoder per entry, features concatenated), for all six algorithms; gymnasium's Blackjack-v1 (Tuple) through the CLI.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import tests.toy_envs  # noqa: F401  (registers GoalPoint-v0, GoalPointDiscrete-v0, PairSum-v0, LitCorner-v0)
from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config.validate import validate
from rlexp.envs import describe_spaces, make_env
from rlexp.envs.checks import observation_check
from rlexp.envs.packing import PackedBox, PackObservation, layout_of, pack, unpack
from rlexp.envs.spaces import image_entries
from rlexp.errors import ConfigError
from rlexp.io.checkpoints import load_checkpoint
from rlexp.networks.encoders import FramesEncoder, MultiInputEncoder, make_encoder
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from tests.conftest import (
    compose_config,
    interrupt_mid_run,
    made_once,
    run_cli,
    run_in_process,
    train_in_process,
    train_job,
    train_seeds_in_lockstep,
)

CPU = torch.device("cpu")
Box, Discrete = gym.spaces.Box, gym.spaces.Discrete
MIXED = gym.spaces.Dict({"a": Discrete(5), "img": Box(0, 255, (3, 4, 4), np.uint8),
                         "pos": Box(-1.0, 1.0, (3,), np.float64),
                         "t": gym.spaces.Tuple((gym.spaces.MultiBinary(3), gym.spaces.MultiDiscrete([2, 3])))})


# --- layout, pack, unpack ------------------------------------------------------------------------------------------

def test_the_layout_of_a_nested_dict_by_hand() -> None:
    layout = layout_of(MIXED)
    # a: int64 at 0 (8 bytes); img: 48 uint8 at 8; pos: float32 at 56 (a multiple of 4); t.0: 3 int8 at 68;
    # t.1: 2 int64 at 72 (68 + 3 = 71, aligned up to 8); 88 bytes, a multiple of 8
    assert [(e.path, e.dtype, e.shape, e.offset, e.nbytes) for e in layout.entries] == [
        ("a", np.int64, (), 0, 8), ("img", np.uint8, (3, 4, 4), 8, 48), ("pos", np.float32, (3,), 56, 12),
        ("t.0", np.int8, (3,), 68, 3), ("t.1", np.int64, (2,), 72, 16)]
    assert layout.nbytes == 88
    assert layout_of(gym.spaces.Tuple((Discrete(32), Discrete(11), Discrete(2)))).nbytes == 24   # Blackjack's
    assert layout_of(gym.spaces.Dict({"bit": gym.spaces.MultiBinary(1)})).nbytes == 8   # padded to 8


def test_pack_and_unpack_keep_each_entry_in_its_dtype_one_observation_and_a_batch() -> None:
    layout = layout_of(MIXED)
    MIXED.seed(0)
    obs = MIXED.sample()
    row = pack(layout, obs)
    assert row.shape == (88,) and row.dtype == np.uint8
    assert not row[71:72].any()   # the padding before t.1
    back = unpack(layout, row)
    assert back["a"] == obs["a"] and back["a"].dtype == np.int64
    np.testing.assert_array_equal(back["img"], obs["img"])
    np.testing.assert_array_equal(back["pos"], obs["pos"].astype(np.float32))
    np.testing.assert_array_equal(back["t.0"], obs["t"][0])
    np.testing.assert_array_equal(back["t.1"], obs["t"][1])
    samples = [MIXED.sample() for _ in range(3)]   # a batch: each entry batched, as a vector env gives it
    batch = {"a": np.array([s["a"] for s in samples]), "img": np.stack([s["img"] for s in samples]),
             "pos": np.stack([s["pos"] for s in samples]),
             "t": (np.stack([s["t"][0] for s in samples]), np.stack([s["t"][1] for s in samples]))}
    rows = pack(layout, batch)
    assert rows.shape == (3, 88)
    np.testing.assert_array_equal(rows, np.stack([pack(layout, s) for s in samples]))
    with pytest.raises(ValueError, match=r"entry 'pos' has shape \(3, 2\), not \(3, 3\)"):
        pack(layout, {**batch, "pos": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="no entry 'img'"):
        pack(layout, {k: v for k, v in obs.items() if k != "img"})


def test_entries_rlexp_cannot_read_are_refused_in_one_line_naming_them() -> None:
    goal = gym.spaces.Dict({"goal": gym.spaces.Dict({"pos": Box(-1, 1, (2,)), "name": gym.spaces.Text(8)})})
    with pytest.raises(ConfigError, match=r"the observation entry 'goal.name' is a Text space, and rlexp reads Dict "
                                          r"and Tuple entries that are Box, Discrete, MultiDiscrete or MultiBinary; "
                                          r"convert it with a wrapper of your own"):
        layout_of(goal)
    minigrid = gym.spaces.Dict({"direction": Discrete(4), "image": Box(0, 255, (7, 7, 3), np.uint8),
                                "mission": gym.spaces.Text(16)})   # MiniGrid's observations
    fix = "drop it: env.wrappers=[{_target_: gymnasium.wrappers.FilterObservation, filter_keys: [direction, image]}]"
    with pytest.raises(ConfigError, match=r"entry 'mission' is a Text space, .*; " + re.escape(fix) + "$"):
        layout_of(minigrid)
    with pytest.raises(ConfigError, match=r"entry '1' is a Sequence space"):
        layout_of(gym.spaces.Tuple((Discrete(2), gym.spaces.Sequence(Discrete(2)))))


def test_the_env_checks_see_the_raw_entries_and_name_the_wrong_one() -> None:
    check = observation_check(MIXED)
    obs = MIXED.sample()
    assert check(obs) is None
    assert "in entry 'pos', an observation holding 1 NaN" in check({**obs, "pos": np.array([0.0, np.nan, 0.0])})
    assert "in entry 'a', an observation with 1 value(s) outside Discrete(5)" in check({**obs, "a": 7})
    assert "in entry 't', in entry 1, an observation of shape (3,)" in check({**obs, "t": (obs["t"][0], [0, 1, 2])})
    # the packing wrapper sits outside the checks: a faulty entry is named before it is packed
    env = make_env("tests.toy_envs:GoalPoint-v0")
    assert isinstance(env, PackObservation) and env.observation_space.shape == (24,)
    env.close()
    # a wrapper of the user's that flattens the Dict into a Box: nothing left to pack
    flat = make_env("tests.toy_envs:GoalPoint-v0", wrappers=[{"_target_": "gymnasium.wrappers.FlattenObservation"}])
    assert not isinstance(flat, PackObservation) and flat.observation_space.shape == (7,)   # 2 + 2 + one-hot 3
    flat.close()


# --- the encoder, by hand ------------------------------------------------------------------------------------------

def test_the_multi_input_encoder_concatenates_each_entrys_encoder_on_any_leading_axes() -> None:
    space = gym.spaces.Dict({"d": Discrete(3), "image": Box(0, 255, (36, 36, 3), np.uint8),
                             "v": Box(-1, 1, (2,), np.float32)})
    env_spaces = describe_spaces(PackObservation(gym.make("tests.toy_envs:LitCorner-v0")).observation_space,
                                 Discrete(4), "x")
    assert [e.channels_last for e in env_spaces.entries] == [True, None]   # the image is read channel-last
    grid = gym.spaces.Dict({"grid": Box(0, 255, (7, 7, 3), np.uint8), "d": Discrete(2)})   # MiniGrid's 7x7x3
    packed = PackedBox(layout_of(grid), grid)
    flat, impala = (describe_spaces(packed, Discrete(2), "x", image_channels_first=False, image_cnn=cnn).entries
                    for cnn in ("nature", "impala"))   # (too small for the Nature CNN: flattened)
    assert [e.image for e in flat] == [False, False] and [e.channels_last for e in impala] == [None, True]
    assert make_encoder(packed, entries=impala, cnn="impala").encoders[1].out_features == 256   # IMPALA's units
    layout = layout_of(space)
    encoder = MultiInputEncoder(image_entries(layout.entries, None))
    space.seed(1)
    samples = [space.sample() for _ in range(6)]
    rows = torch.as_tensor(np.stack([pack(layout, s) for s in samples]).reshape(2, 3, -1))   # (seeds, batch)
    cnn = encoder.encoders[1]
    assert isinstance(cnn, FramesEncoder) and cnn.channels_last
    with torch.no_grad():
        expected = torch.cat([
            torch.eye(3)[torch.tensor([s["d"] for s in samples])],
            cnn(torch.as_tensor(np.stack([s["image"] for s in samples]))),
            torch.as_tensor(np.stack([s["v"] for s in samples]))], dim=-1).reshape(2, 3, -1)
        torch.testing.assert_close(encoder(rows), expected)
    assert encoder.out_features == 3 + 512 + 2 == expected.shape[-1]
    flattened = make_encoder(Box(0, 255, (layout.nbytes,), np.uint8), entries=layout.entries)   # (no CNN marked)
    assert flattened.out_features == 3 + 36 * 36 * 3 + 2


def test_spaces_and_the_memory_estimate_of_a_dict_observation() -> None:
    from rlexp.replay.frames import frames_per_env
    from rlexp.runners.memory import replay_bytes

    env = make_env("tests.toy_envs:GoalPoint-v0")
    spaces = describe_spaces(env.observation_space, env.action_space, "GoalPoint-v0")
    env.close()
    assert spaces.multi_input and not spaces.frames and not spaces.flat and not spaces.images
    assert spaces.obs_dtype == np.uint8 and spaces.obs_shape == (24,)
    # goal and position: 2 float32 each (16 bytes), speed: one int64 (8): 24 bytes a state
    device, host = replay_bytes(1000, 1, spaces, prioritized=False)
    assert (device, host) == (1000 * (8 + 12 + 2 * 24), 0.0)   # the action (2 float32), reward and flags, s and s'
    # with an image entry, each packed row is stored once, as images are: 36x36x3 + the step counter (8), aligned
    env = make_env("tests.toy_envs:LitCorner-v0")
    spaces = describe_spaces(env.observation_space, env.action_space, "LitCorner-v0")
    env.close()
    assert spaces.stored_once and spaces.obs_shape == (3896,)
    device, host = replay_bytes(1000, 1, spaces, prioritized=False)
    assert (device, host) == (frames_per_env(1000, 1) * 3896 + 1000 * (8 + 12 + 8), 1000 * 8)


def test_normalization_standardises_the_float_entries_only_and_keeps_the_rows_packed() -> None:
    from rlexp.config.schema import NormalizeConfig
    from rlexp.envs.normalization import make_normalization

    layout = layout_of(MIXED)
    MIXED.seed(2)
    samples = [MIXED.sample() for _ in range(4)]
    rows = np.stack([pack(layout, s) for s in samples])
    normalization = make_normalization(NormalizeConfig(obs=True), 0.99, (88,), 4, layout.entries)
    assert normalization is not None and normalization.obs_rms.mean.shape == (3,)   # pos: the one float entry
    out = normalization.observations(rows, update=True)
    assert out.dtype == np.uint8 and out.shape == rows.shape and not np.shares_memory(out, rows)
    pos = np.stack([s["pos"].astype(np.float32) for s in samples]).astype(np.float64)
    total = 4 + 1e-4   # (the statistics start from mean 0, variance 1 and a count of 1e-4, as SB3's)
    mean = pos.mean(0) * 4 / total
    var = (1e-4 + 4 * pos.var(0) + pos.mean(0) ** 2 * 1e-4 * 4 / total) / total
    np.testing.assert_allclose(normalization.obs_rms.mean, mean, rtol=1e-9)
    got, raw = unpack(layout, out), unpack(layout, rows)
    np.testing.assert_allclose(got["pos"], (pos - normalization.obs_rms.mean) / np.sqrt(normalization.obs_rms.var
                                                                                        + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(normalization.obs_rms.var, var, rtol=1e-9)
    for path in ("a", "img", "t.0", "t.1"):   # images and integers pass as they are
        np.testing.assert_array_equal(got[path], raw[path])


# --- every algorithm, in process -----------------------------------------------------------------------------------

ENVS = {"dqn": "Blackjack-v1", "ppo": "tests.toy_envs:GoalPointDiscrete-v0", "a2c": "tests.toy_envs:LitCorner-v0",
        **{name: "tests.toy_envs:GoalPoint-v0" for name in ("sac", "td3", "ddpg")}}
TINY = ["total_steps=96", "eval.every=96", "eval.episodes=1", "checkpoint.every=96", "log.every=64",
        "log.progress=none", "log.heldout_states=8", "env.num_envs=2", "network.hidden_sizes=[16]", "~tuned"]
OFF_POLICY = ["algo.learning_starts=48", "algo.batch_size=8", "algo.buffer_size=128"]


def config_for(name: str, env_id: str | None = None) -> dict:
    extra = ["algo.n_steps=16"] if name in ("ppo", "a2c") else OFF_POLICY
    extra += ["algo.batch_size=16"] if name == "ppo" else []
    extra += ["env.normalize.obs=true"] if name == "ppo" and env_id is None else []   # (goal, position standardised)
    config = resolved_config(compose_config([f"algo={name}", f"env.id={env_id or ENVS[name]}", *TINY, *extra]))
    assert validate(config, algorithms()).name == name
    return config


@pytest.mark.parametrize("name", sorted(ENVS))
def test_every_algorithm_learns_from_packed_observations_stored_as_bytes(name: str, tmp_path: Path) -> None:
    job, built, results = train_job(config_for(name), algorithms()[name], tmp_path / "run")
    space = job.eval_env.observation_space
    agent, replay = built.agent, built.replay
    assert results["status"] == "completed" and np.isfinite(results["eval_return_mean"])
    if replay is not None:   # one row of bytes a state, which unpacks to observations of the raw space
        stored = replay.storage["observations"]
        assert stored.dtype == torch.uint8 and stored.shape[1:] == space.shape
        raw = job.eval_env.unwrapped.observation_space
        for row in stored[:len(replay)].numpy():
            values = unpack(space.layout, row)
            assert all(raw.spaces[i].contains(values[str(i)]) for i in range(3)) if name == "dqn" else \
                values["goal"].dtype == np.float32 and 0 <= values["speed"] < 3
    space.seed(0)
    obs = np.stack([pack(space.layout, space.raw.sample()) for _ in range(3)])
    actions = agent.act(obs, explore=False)
    with torch.no_grad():   # the policy network (what an export would hold) acts as the agent
        exported = agent.policy_network()(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(exported, actions, rtol=1e-6, atol=1e-6)
    features, values = agent.representation(torch.as_tensor(obs))   # the held-out-Q and t-SNE instruments' input
    assert features.shape[0] == 3 and torch.isfinite(values).all()


def test_ppo_learns_a_tuple_task_that_needs_both_entries(tmp_path: Path) -> None:
    """PairSum rewards the sum of its two Discrete(3) entries modulo 3: a policy reading one entry alone (a wrong
    offset, a lost entry) earns a third of the 8 an episode holds, a random one 8/3 too; the optimum 8."""
    config = resolved_config(compose_config(["algo=ppo", "env.id=tests.toy_envs:PairSum-v0", "total_steps=4096",
                                             "env.num_envs=4", "algo.n_steps=64", "algo.batch_size=64", "algo.lr=3e-3",
                                             "eval.episodes=20", "log.progress=none", "~tuned"]))
    results = Job.prepare(config, algorithms()["ppo"], CPU).run(tmp_path / "run", StopRequest(), [])
    assert results["eval_return_mean"] >= 7.0, results["eval_return_mean"]


@pytest.mark.parametrize("name, env_id", [("ppo", "tests.toy_envs:LitCorner-v0"),
                                           ("dqn", "tests.toy_envs:LitCorner-v0"),
                                           ("dqn", "tests.toy_envs:PairSum-v0")])
def test_seeds_as_one_model_on_dict_and_tuple_observations_act_as_each_seed_alone(name: str, env_id: str,
                                                                                  tmp_path: Path) -> None:
    spec = algorithms()[name]
    config = {**config_for(name, env_id), "seeds": [0, 1]}

    def check(members: list, batched) -> None:
        space = jobs_space[0]
        space.seed(0)
        obs = np.stack([np.stack([pack(space.layout, space.raw.sample()) for _ in range(3)]) for _ in range(2)])
        together = batched.act(obs, explore=False)
        for k, member in enumerate(members):
            np.testing.assert_array_equal(together[k], member.act(obs[k], explore=False))

    jobs_space: list = []
    _, agents, outcomes = train_seeds_in_lockstep(spec, config, tmp_path, check,
                                                  prepare=lambda job: jobs_space.append(job.eval_env.observation_space))
    assert all(o.results["status"] == "completed" for o in outcomes)
    if name == "ppo":   # each seed learned its own CNN for the image entry, a single run's agent in its checkpoint
        first, second = (a.state_dict()["policy"]["encoder.encoders.0.convolutions.net.0.weight"] for a in agents)
        assert first.shape == (32, 3, 8, 8) and not torch.equal(first, second)
    # the seed trained alone ends where the batch's seed 1 ended
    alone = Job.prepare({**config_for(name, env_id), "seed": 1}, spec, CPU)
    alone.run(tmp_path / "alone", StopRequest(), [])
    mine = load_checkpoint(tmp_path / "alone" / "checkpoints" / "final.pt")["agent"]
    batch = load_checkpoint(tmp_path / "seed_1" / "checkpoints" / "final.pt")["agent"]
    network = "policy" if name == "ppo" else "q_network"
    for key in mine[network]:
        torch.testing.assert_close(mine[network][key], batch[network][key], rtol=1e-4, atol=1e-5)


def test_refusals_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    for args, message in [
            (["algo=ppo", "env.id=tests.toy_envs:LitCorner-v0", "env.normalize.obs=true"],
             "only its float vector entries would be standardised, and it has none"),
            (["algo=sac", "env.id=tests.toy_envs:PairSum-v0"], "algo=sac needs a continuous (Box) action space")]:
        proc = run_in_process(["train", *args, "hydra.run.dir=run"], tmp_path, capsys, monkeypatch)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "run" / "checkpoints").exists()


# --- as a user types it --------------------------------------------------------------------------------------------

# (async: each of the 8 worker processes packs its env's observations; the vector env carries one array)
BLACKJACK = ["train", "algo=ppo", "env.id=Blackjack-v1", "total_steps=256", "env.vectorization=async",
             "eval.episodes=2", "log.progress=none", "hydra.run.dir=run"]


def test_ppo_and_dqn_on_blackjack_train_from_the_cli_evaluate_load_and_export(tmp_path_factory, tmp_path, capsys,
                                                                              monkeypatch) -> None:
    import rlexp

    def make(directory: Path) -> None:
        for args in (BLACKJACK, ["train", "algo=dqn", "env.id=Blackjack-v1", "total_steps=300",
                                 "algo.learning_starts=100", "eval.episodes=2", "log.progress=none",
                                 "hydra.run.dir=dqn"]):
            proc = run_cli(args, directory)
            assert proc.returncode == 0, proc.stderr

    made = made_once(tmp_path_factory, "dict-obs-blackjack", make)[0]
    assert json.loads((made / "dqn" / "results.json").read_text())["status"] == "completed"
    assert rlexp.load(made / "dqn").act((20, 10, 0)).shape == ()
    run = tmp_path / "run"
    shutil.copytree(made / "run", run)
    assert json.loads((run / "results.json").read_text())["status"] == "completed"
    evaluated = run_in_process(["eval", str(run), "episodes=2"], tmp_path, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr

    loaded = rlexp.load(run)
    env = loaded.make_env()   # the raw env: Tuple observations as Blackjack gives them
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, tuple) and env.action_space.contains(loaded.act(obs))
    batch = tuple(np.array([obs[i], obs[i]]) for i in range(3))   # each entry batched
    assert loaded.act(batch).shape == (2,)
    np.testing.assert_array_equal(loaded.act([obs, obs]), loaded.act(batch))   # a list of raw observations
    with pytest.raises(ValueError, match=r"its Tuple observations packed into bytes; give it the tuple itself"):
        loaded.act(np.array(obs))
    np.testing.assert_array_equal(loaded.act(batch), loaded.act(pack(loaded.spaces.obs_space.layout, batch)))
    outside = r"1 value\(s\) outside Discrete\(32\) \(the first in row 0: 40\) in the entry '0'"
    with pytest.raises(ValueError, match=outside):
        loaded.act((40, 1, 0))
    env.close()
    exported = run_in_process(["export", str(run), "format=torchscript", "states=64"], tmp_path, capsys, monkeypatch)
    assert exported.returncode == 0 and "its actions match the agent's on 64" in exported.stdout, exported.stderr
    description = json.loads((run / "export" / "policy.pt.json").read_text())
    assert [(i["name"], i["shape"], i["dtype"]) for i in description["inputs"]] == [
        ("obs.0", ["batch"], "int64"), ("obs.1", ["batch"], "int64"), ("obs.2", ["batch"], "int64")]
    policy = torch.jit.load(str(run / "export" / "policy.pt"))   # one input per entry, as a tuple
    np.testing.assert_array_equal(policy(tuple(torch.as_tensor(x) for x in batch)).numpy(), loaded.act(batch))


def test_a_dict_run_resumes_after_sigkill_to_the_uninterrupted_end_loads_and_exports(tmp_path_factory, tmp_path,
                                                                                      capsys, monkeypatch) -> None:
    import rlexp

    args = ["train", "algo=sac", "env.id=tests.toy_envs:GoalPoint-v0", "total_steps=300", "checkpoint.every=100",
            "eval.every=300", "eval.episodes=1", "log.progress=none", "algo.learning_starts=100", "algo.batch_size=16",
            "network.hidden_sizes=[16]", "env.normalize.obs=true"]

    def make(directory: Path) -> None:
        proc = train_in_process([*args, "hydra.run.dir=reference"], directory)
        assert proc.returncode == 0, proc.stderr

    reference = made_once(tmp_path_factory, "dict-obs-sac", make)[0] / "reference"
    interrupt_mid_run([*args, "hydra.run.dir=killed"], tmp_path, tmp_path / "killed" / "checkpoints" / "step_100.pt",
                      signal.SIGKILL, reference)
    resumed = run_cli(["train", "resume=killed"], tmp_path)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr
    a, b = (load_checkpoint(d / "checkpoints" / "final.pt")["agent"] for d in (reference, tmp_path / "killed"))
    assert all(torch.equal(a[net][p], b[net][p]) for net in ("actor", "critic") for p in a[net])
    assert (json.loads((reference / "results.json").read_text())["eval_returns"]
            == json.loads((tmp_path / "killed" / "results.json").read_text())["eval_returns"])
    loaded = rlexp.load(reference)   # the raw dict in, standardised by the run's statistics of its float entries
    assert loaded.normalization is not None and loaded.normalization.obs_rms.mean.shape == (4,)
    env = loaded.make_env()
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"goal", "position", "speed"} and env.action_space.contains(loaded.act(obs))
    np.testing.assert_array_equal(loaded.act(obs), loaded.act(pack(loaded.spaces.obs_space.layout, obs)))
    env.close()
    # ONNX with one input per entry, the float entries standardised inside with the run's statistics
    exported = run_in_process(["export", str(reference), "format=onnx", "states=64", f"out={tmp_path / 'onnx'}"],
                              tmp_path, capsys, monkeypatch)
    assert exported.returncode == 0 and "its actions match the agent's on 64" in exported.stdout, exported.stderr
    description = json.loads((tmp_path / "onnx" / "policy.onnx.json").read_text())
    assert [i["name"] for i in description["inputs"]] == ["obs.goal", "obs.position", "obs.speed"]
