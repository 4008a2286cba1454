"""`compile=`: the agents' gradient computations and acting through torch.compile, eager after a failure.

The fast tests trace with dynamo's "eager" backend (the same graph capture as a real compile, run without code
generation), so a compiled agent must learn bit for bit what the eager agent learns. The real inductor compile is
a CLI test under -m slow (tens of seconds of compiling on a small CPU)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rlexp.agents import compiled
from rlexp.agents.compiled import CompiledMethod, compile_agent, compile_enabled
from rlexp.config.validate import check_compile
from rlexp.errors import ConfigError
from tests.test_members import agent as dqn_agent
from tests.test_members import random_batch, td3_agent, td3_batches
from tests.test_members_on_policy import ppo_agent, rollout

CPU = torch.device("cpu")


@pytest.fixture
def eager_backend(monkeypatch):
    """torch.compile with dynamo's graph capture but no code generation (fast, and the eager kernels' numbers)."""
    real = torch.compile
    monkeypatch.setattr(compiled.torch, "compile", lambda fn, mode, dynamic: real(fn, backend="eager",
                                                                                   dynamic=dynamic))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def td3_batch(g: torch.Generator):
    return td3_batches(1, seed=int(torch.randint(0, 1000, (1,), generator=g)))[0][0]


def assert_same_parameters(a, b, names):
    for name in names:
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters()):
            assert torch.equal(p, q), name


def test_auto_compiles_on_cuda_only_and_the_setting_is_checked():
    assert compile_enabled("auto", torch.device("cuda")) and not compile_enabled("auto", CPU)
    assert compile_enabled(True, CPU) and not compile_enabled(False, torch.device("cuda"))
    with pytest.raises(ConfigError, match="compile='yes' must be true, false or auto"):
        check_compile({"compile": "yes", "compile_mode": None})
    with pytest.raises(ConfigError, match="compile_mode='fast' must be null or one of torch.compile's modes"):
        check_compile({"compile": True, "compile_mode": "fast"})


def test_a_compiled_td3_acts_and_learns_what_the_eager_one_does(eager_backend):
    eager, fast = td3_agent(0), compile_agent(td3_agent(0), True, None, CPU)
    assert isinstance(fast.critic_gradients, CompiledMethod)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(4):
        a, b = eager.update(td3_batch(g1)), fast.update(td3_batch(g2))
        assert all(torch.equal(a[key], b[key]) for key in a)
    assert_same_parameters(eager, fast, ("actor", "critic", "actor_target", "critic_target"))
    obs = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    assert np.array_equal(eager.act(obs, explore=False), fast.act(obs, explore=False))
    assert fast.critic_gradients.compiled is not None, "the compiled path fell back to eager"
    # the checkpoint is the eager agent's: a compiled run's loads in an eager one and back
    assert eager.state_dict().keys() == fast.state_dict().keys()
    td3_agent(5).load_state_dict(fast.state_dict())


def test_a_compiled_dqn_and_ppo_learn_what_the_eager_ones_do(eager_backend):
    eager, fast = dqn_agent(0), compile_agent(dqn_agent(0), True, None, CPU)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(3):
        eager.update(random_batch(g1))
        fast.update(random_batch(g2))
    assert_same_parameters(eager, fast, ("q_network", "target_network"))
    eager, fast = ppo_agent(0, target_kl=0.01), compile_agent(ppo_agent(0, target_kl=0.01), True, None, CPU)
    for r in range(2):
        eager.learn(rollout(eager, r))
        fast.learn(rollout(fast, r))
    assert_same_parameters(eager, fast, ("policy",))
    assert fast.minibatch_gradients.compiled is not None


def test_a_failure_to_compile_warns_once_and_the_call_runs_eager_as_if_never_tried(monkeypatch, caplog):
    def broken(fn, mode, dynamic):
        def attempt(*args):
            torch.randn(3, generator=agent.generator)        # draws, leaves gradients behind, then fails
            for p in agent.critic.parameters():
                p.grad = torch.ones_like(p)
            raise RuntimeError("InductorError: no C++ compiler found\nmore detail")
        return attempt

    monkeypatch.setattr(compiled.torch, "compile", broken)
    eager, agent = td3_agent(0), td3_agent(0)
    compile_agent(agent, True, None, CPU)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    with caplog.at_level(logging.WARNING, logger="rlexp"):
        for _ in range(3):
            eager.update(td3_batch(g1))
            agent.update(td3_batch(g2))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2   # once for each of the two gradient methods used (acting was not called)
    assert "TD3.critic_gradients could not be compiled (RuntimeError: InductorError: no C++ compiler found)" \
        in warnings[0] and "\n" not in warnings[0]
    assert_same_parameters(eager, agent, ("actor", "critic", "actor_target", "critic_target"))
    assert torch.equal(eager.generator.get_state(), agent.generator.get_state())


def test_compile_false_leaves_the_agent_as_it_is():
    agent = td3_agent(0)
    method = agent.critic_gradients
    assert compile_agent(agent, "auto", None, CPU) is agent and agent.critic_gradients == method


@pytest.mark.slow
def test_a_compiled_run_resumes_eager_and_an_eager_run_resumes_compiled(workdir):
    from tests.conftest import run_cli

    args = ["train", "algo=dqn", "env=CartPole-v1", "algo.learning_starts=200", "network.hidden_sizes=[32]",
            "eval.episodes=2", "log.progress=none", "torch_threads=1"]
    first = run_cli([*args, "total_steps=600", "compile=true", "hydra.run.dir=run"], cwd=workdir)
    assert first.returncode == 0 and "could not be compiled" not in first.stderr, first.stderr
    resumed = run_cli(["train", "resume=run", "total_steps=1000", "compile=false"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    again = run_cli(["train", "resume=run", "total_steps=1400", "compile=true"], cwd=workdir)
    assert again.returncode == 0 and "could not be compiled" not in again.stderr, again.stderr
