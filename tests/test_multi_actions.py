"""MultiDiscrete and MultiBinary action spaces (issue 36, section 2): PPO and A2C act in them with independent
categoricals / Bernoullis (SB3's MultiCategoricalDistribution and BernoulliDistribution: log-probabilities and
entropies summed over the components); DQN, DDPG, TD3 and SAC refuse them in one line naming PPO and A2C.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import tests.toy_envs  # noqa: F401  (registers tests.toy_envs:MultiChoice-v0 and MultiSwitch-v0)
from rlexp.agents.registry import algorithms, check_fits
from rlexp.commands.train import resolved_config
from rlexp.config.validate import validate
from rlexp.envs import describe_spaces
from rlexp.errors import ConfigError
from rlexp.networks.multi_actions import Bernoulli, MultiCategorical
from rlexp.networks.policies import ActorCriticPolicy
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from tests.conftest import compose_config, made_once, run_cli, run_in_process, train_job, train_seeds_in_lockstep

CPU = torch.device("cpu")
LN = math.log


# --- the distributions, by hand ----------------------------------------------------------------------------------

def policy_with_logits(logits: list[float], multi) -> ActorCriticPolicy:
    """A policy whose head gives `logits` whatever the observation."""
    policy = ActorCriticPolicy(2, [4], "tanh", multi=multi)
    with torch.no_grad():
        policy.policy_head.weight.zero_()
        policy.policy_head.bias.copy_(torch.tensor(logits))
    return policy


def test_multidiscrete_log_prob_and_entropy_are_sums_over_components_by_hand() -> None:
    # MultiDiscrete([3, 2]): component 0 with probabilities (1/4, 1/2, 1/4), component 1 with (1/4, 3/4)
    policy = policy_with_logits([0.0, LN(2), 0.0, 0.0, LN(3)], MultiCategorical([3, 2]))
    obs = torch.zeros(3, 2)
    actions = torch.tensor([[1, 1], [0, 0], [2, 1]], dtype=torch.float32)   # (stored as the rollout keeps them)
    log_prob, entropy, _ = policy.evaluate(obs, actions)
    torch.testing.assert_close(log_prob, torch.tensor([LN(1 / 2) + LN(3 / 4), LN(1 / 4) + LN(1 / 4),
                                                       LN(1 / 4) + LN(3 / 4)]))
    h0 = -(2 * 0.25 * LN(0.25) + 0.5 * LN(0.5))   # 1.5 ln 2
    h1 = -(0.25 * LN(0.25) + 0.75 * LN(0.75))
    torch.testing.assert_close(entropy, torch.full((3,), h0 + h1))
    assert policy.deterministic(obs).tolist() == [[1, 1]] * 3
    # the draws' frequencies are the probabilities, and a draw's log-probability is evaluate's
    g = torch.Generator().manual_seed(0)
    drawn, drawn_log_prob, _ = policy.sample(torch.zeros(20_000, 2), g)
    assert drawn.dtype == torch.long and drawn.shape == (20_000, 2)
    np.testing.assert_allclose([(drawn[:, 0] == a).float().mean() for a in range(3)], [0.25, 0.5, 0.25], atol=0.015)
    np.testing.assert_allclose((drawn[:, 1] == 1).float().mean(), 0.75, atol=0.015)
    torch.testing.assert_close(drawn_log_prob, policy.evaluate(torch.zeros(20_000, 2), drawn)[0])


def test_multibinary_log_prob_and_entropy_are_sums_over_bits_by_hand() -> None:
    # MultiBinary(3): P(bit = 1) = 1/2, 3/4, 1/4
    policy = policy_with_logits([0.0, LN(3), -LN(3)], Bernoulli(3))
    obs = torch.zeros(2, 2)
    log_prob, entropy, _ = policy.evaluate(obs, torch.tensor([[1., 0., 0.], [0., 1., 0.]]))
    torch.testing.assert_close(log_prob, torch.tensor([LN(1 / 2) + LN(1 / 4) + LN(3 / 4),
                                                       LN(1 / 2) + LN(3 / 4) + LN(3 / 4)]))
    h = -(0.25 * LN(0.25) + 0.75 * LN(0.75))
    torch.testing.assert_close(entropy, torch.full((2,), LN(2) + 2 * h))
    assert policy.deterministic(obs).tolist() == [[0, 1, 0]] * 2   # a logit of 0 is not above 0
    drawn, _, _ = policy.sample(torch.zeros(20_000, 2), torch.Generator().manual_seed(1))
    np.testing.assert_allclose(drawn.float().mean(0).numpy(), [0.5, 0.75, 0.25], atol=0.015)


def test_stacked_seeds_draw_as_their_single_runs_do() -> None:
    multi = MultiCategorical([3, 2])
    logits = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(2))   # (seeds, batch, logits)
    together = multi.sample(logits, [torch.Generator().manual_seed(10), torch.Generator().manual_seed(11)])
    for k in range(2):
        alone = multi.sample(logits[k], torch.Generator().manual_seed(10 + k))
        assert torch.equal(together[k], alone)
    assert multi.log_prob(logits, together).shape == (2, 5) and multi.entropy(logits).shape == (2, 5)


# --- which algorithms act there ----------------------------------------------------------------------------------

def test_only_ppo_and_a2c_act_in_multidiscrete_and_multibinary_spaces() -> None:
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    for action_space in (gym.spaces.MultiDiscrete([3, 2]), gym.spaces.MultiBinary(3)):
        spaces = describe_spaces(box, action_space, "Mine-v0")
        assert spaces.action_shape == (2,) if isinstance(action_space, gym.spaces.MultiDiscrete) else (3,)
        for name, spec in algorithms().items():
            if name in ("ppo", "a2c"):
                check_fits(spec, spaces)
            else:
                with pytest.raises(ConfigError, match=rf"algo={name} acts in .* action spaces, and Mine-v0 .* acts "
                                                      rf"in a Multi(Discrete|Binary) one; use algo=a2c or algo=ppo$"):
                    check_fits(spec, spaces)
    for odd in (gym.spaces.MultiDiscrete([[3, 2], [2, 2]]), gym.spaces.MultiDiscrete([3, 2], start=[1, 0]),
                gym.spaces.MultiBinary([2, 2])):
        with pytest.raises(ConfigError, match="algo=a2c or algo=ppo take MultiDiscrete and MultiBinary actions of "
                                              "one axis, with choices from 0"):
            check_fits(algorithms()["ppo"], describe_spaces(box, odd, "Mine-v0"))


def test_dqn_on_multidiscrete_actions_is_refused_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    proc = run_in_process(["train", "algo=dqn", "env.id=tests.toy_envs:MultiChoice-v0", "hydra.run.dir=run"],
                          tmp_path, capsys, monkeypatch)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "algo=dqn acts in Discrete action spaces" in proc.stderr
    assert "MultiDiscrete one; use algo=a2c or algo=ppo" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- PPO and A2C, in process -------------------------------------------------------------------------------------

TINY = ["eval.episodes=4", "log.progress=none", "log.heldout_states=0", "env.num_envs=4", "~tuned"]


def config_for(name: str, env_id: str, steps: int, *extra: str, every: int | None = None) -> dict:
    config = resolved_config(compose_config([f"algo={name}", f"env.id={env_id}", f"total_steps={steps}",
                                             f"eval.every={steps}", f"checkpoint.every={every or steps}",
                                             "log.every=256",
                                             "algo.n_steps=32", *TINY, *extra]))
    assert validate(config, algorithms()).name == name
    return config


def test_a_run_with_multidiscrete_actions_resumes_mid_rollout_to_the_same_end(tmp_path: Path) -> None:
    """The rollout keeps the action vectors (float32, (steps, envs, components)) through a checkpoint and goes on
    exactly. (Each algorithm's contract on both kinds, an update included: tests/test_conformance.py.)"""
    from rlexp.io.checkpoints import load_checkpoint

    spec = algorithms()["a2c"]
    config = config_for("a2c", "tests.toy_envs:MultiChoice-v0", 256, "network.hidden_sizes=[16]", every=96)
    Job.prepare(config, spec, CPU).run(tmp_path / "reference", StopRequest(), [])
    checkpoint = load_checkpoint(tmp_path / "reference" / "checkpoints" / "step_96.pt")
    rollout = checkpoint["runner"]["rollout"]
    assert rollout["pos"] == 24 and rollout["actions"].shape == (24, 4, 2)
    assert set(rollout["actions"].unique().tolist()) <= {0.0, 1.0, 2.0}
    Job.prepare(config, spec, CPU).run(tmp_path / "resumed", StopRequest(), [], resume=checkpoint)
    final = [load_checkpoint(tmp_path / run / "checkpoints" / "final.pt")["agent"] for run in ("reference", "resumed")]
    networks = [k for k, v in final[0].items() if isinstance(v, dict) and v
                and all(isinstance(t, torch.Tensor) for t in v.values())]
    assert networks and all(torch.equal(final[0][k][p], final[1][k][p]) for k in networks for p in final[0][k])


def test_ppo_learns_a_multidiscrete_task_in_a_few_thousand_steps(tmp_path) -> None:
    # 8 steps of 2 components of 3 choices: a random policy matches 2/3 per step (16/3 per episode), the best 16
    config = config_for("ppo", "tests.toy_envs:MultiChoice-v0", 3072, "eval.episodes=10", "algo.batch_size=64",
                        "algo.lr=3e-3", "algo.ent_coef=0.0", "network.hidden_sizes=[32]")
    _, _, results = train_job(config, algorithms()["ppo"], tmp_path / "run")
    assert results["eval_return_mean"] >= 13.0, results["eval_return_mean"]


def test_many_seeds_as_one_model_act_in_multidiscrete_spaces(tmp_path) -> None:
    spec = algorithms()["ppo"]
    config = {**config_for("ppo", "tests.toy_envs:MultiChoice-v0", 256, "algo.batch_size=32",
                           "network.hidden_sizes=[16]"), "seeds": [0, 1]}
    _, members, _ = train_seeds_in_lockstep(spec, config, tmp_path)
    obs = np.stack([np.eye(6, dtype=np.float32)[[0, 3]].sum(0), np.eye(6, dtype=np.float32)[[2, 5]].sum(0)])
    each = [obs, obs[::-1].copy()]   # (seeds, batch, obs)
    together = spec.members(members).act(np.stack(each), explore=False)
    assert together.shape == (2, 2, 2)
    for k, member in enumerate(members):
        np.testing.assert_array_equal(together[k], member.act(each[k], explore=False))


# --- as a user types it ------------------------------------------------------------------------------------------

def multichoice_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def make(directory: Path) -> None:
        proc = run_cli(["train", "algo=ppo", "env.id=tests.toy_envs:MultiChoice-v0", "total_steps=256",
                        "algo.n_steps=32", "algo.batch_size=32", "env.num_envs=2", "eval.every=256",
                        "eval.episodes=2", "log.progress=none", "network.hidden_sizes=[16]", "hydra.run.dir=run"],
                       directory)
        assert proc.returncode == 0, proc.stderr

    directory, _ = made_once(tmp_path_factory, "multi-actions-ppo", make)
    return directory / "run"


def test_ppo_on_multidiscrete_actions_trains_evaluates_loads_and_exports(tmp_path_factory, tmp_path, capsys,
                                                                          monkeypatch) -> None:
    import rlexp

    run = tmp_path / "run"
    shutil.copytree(multichoice_run(tmp_path_factory), run)
    assert json.loads((run / "results.json").read_text())["status"] == "completed"

    evaluated = run_in_process(["eval", str(run), "episodes=2"], tmp_path, capsys, monkeypatch)
    assert evaluated.returncode == 0, evaluated.stderr

    loaded = rlexp.load(run)
    obs = np.eye(6, dtype=np.float32)[[0, 4]].sum(0)
    assert loaded.act(obs).shape == (2,) and loaded.act(np.stack([obs, obs, obs])).shape == (3, 2)

    exported = run_in_process(["export", str(run), "format=onnx", f"out={tmp_path / 'export'}", "states=64"],
                              tmp_path, capsys, monkeypatch)
    assert exported.returncode == 0, exported.stderr
    description = json.loads(next((tmp_path / "export").glob("*.json")).read_text())
    assert description["action_space"] == {"type": "MultiDiscrete", "nvec": [3, 3]}
    assert description["output"]["shape"] == ["batch", 2] and description["output"]["dtype"] == "int64"
    assert description["verified"]["max_abs_diff"] == 0.0 and description["verified"]["tolerance"] == 0.0
