"""Every registered algorithm keeps the agent contract (rlexp/agents/contracts.py), driven by the registry: a new
algorithm gets these tests by being registered, and none is named here.

Each algorithm is built through its registry entry on an env its action kind fits, from its own conf/algo YAML
at a tiny budget, and then: it is an agent of its family's protocol; it acts on a batch of observations within
the action space; it trains through its family's runner (single run, and its seeds as one model when it batches
them), its metrics finite tensors; its state survives a round trip into a freshly built agent; its policy
network is what `act(explore=False)` does; its representation is one row per state; and its many-seeds agent
acts as each of its members does alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlexp.agents.contracts import Members, OffPolicyAgent, OnPolicyAgent, StochasticAgent
from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config.actions import ActionKind
from rlexp.config.registry import AlgoSpec, Family
from rlexp.config.validate import validate
from rlexp.runners.faults import StopRequest
from rlexp.runners.job import Job
from rlexp.runners.requests import serve
from tests.conftest import compose_config, train_seeds_in_lockstep

CPU = torch.device("cpu")
#: An env for each action kind (classic control, and ours for the multi kinds: fast to make and step).
ENVS = {ActionKind.DISCRETE: "CartPole-v1", ActionKind.CONTINUOUS: "Pendulum-v1",
        ActionKind.MULTI_DISCRETE: "tests.toy_envs:MultiChoice-v0",
        ActionKind.MULTI_BINARY: "tests.toy_envs:MultiSwitch-v0"}
#: A budget that runs past learning_starts and a few rounds of updates (or two rollouts), with an evaluation and a
#: checkpoint, whatever the algorithm's YAML says.
TINY = ["total_steps=256", "eval.every=128", "eval.episodes=1", "checkpoint.every=128", "log.every=64",
        "log.progress=none", "log.heldout_states=8", "env.num_envs=2", "network.hidden_sizes=[16]"]
FAMILY_TINY = {Family.OFF_POLICY: ["algo.learning_starts=64", "algo.batch_size=16", "algo.buffer_size=256"],
               Family.ON_POLICY: ["algo.n_steps=32"]}


def config_for(spec: AlgoSpec, kind: ActionKind) -> dict:
    extra = FAMILY_TINY[spec.family] + (["algo.batch_size=16"] if "batch_size" in spec.schema.__dataclass_fields__
                                        and spec.family is Family.ON_POLICY else [])
    env = f"env.id={ENVS[kind]}" if ":" in ENVS[kind] else f"env={ENVS[kind]}"   # (an env of ours: no preset)
    config = resolved_config(compose_config([f"algo={spec.name}", env, *TINY, *extra]))
    assert validate(config, algorithms()) is spec
    return config


def cases() -> list[tuple[str, ActionKind]]:
    return [(name, kind) for name, spec in algorithms().items()
            for kind in sorted(spec.actions, key=lambda k: k.value)]


def built(job: Job, run_dir: Path):
    """The job's steps, started: (its agent as built, the generator that goes on to train it)."""
    steps = job.steps(run_dir, StopRequest(), [])
    return next(steps).agent, steps


def observations(job: Job, n: int, seed: int = 0) -> np.ndarray:
    space = job.eval_env.observation_space
    space.seed(seed)
    return np.stack([space.sample() for _ in range(n)])


def state_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(state_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def exploration(agent) -> dict:
    state = agent.state_dict()
    return {key: state[key] for key in agent.exploration_state if key in state}


@pytest.mark.parametrize("name, kind", cases())
def test_every_algorithm_keeps_the_agent_contract(name: str, kind: ActionKind, tmp_path: Path) -> None:
    spec = algorithms()[name]
    config = config_for(spec, kind)
    job = Job.prepare(config, spec, CPU)
    agent, steps = built(job, tmp_path / "run")
    protocol = OffPolicyAgent if spec.family is Family.OFF_POLICY else OnPolicyAgent
    assert isinstance(agent, protocol), f"{name} lacks a method of {protocol.__name__}"

    obs = observations(job, 2)
    action_space = job.eval_env.action_space
    for explore in (False, True):
        actions = np.asarray(agent.act(obs, explore=explore, step=0))
        assert actions.shape == (2, *action_space.shape)
        assert all(action_space.contains(a.astype(action_space.dtype)) for a in actions)

    # A stochastic policy (eval.deterministic=false) draws from a generator of the caller's, alike for alike seeds,
    # and leaves the agent's own generators as they were; a deterministic one has no such method.
    assert isinstance(agent, StochasticAgent) == spec.stochastic
    if spec.stochastic:
        before = exploration(agent)
        draws = [agent.act_sampled(obs, torch.Generator().manual_seed(7)) for _ in range(2)]
        np.testing.assert_array_equal(*draws)
        assert draws[0].shape == (2, *action_space.shape) and all(
            action_space.contains(a.astype(action_space.dtype)) for a in draws[0])
        assert state_equal(before, exploration(agent))

    # It trains through its family's runner: every update's metrics were finite (the run's guard checks them).
    results = serve(steps, agent)
    assert results["status"] == "completed" and results["total_steps"] >= 256
    assert np.isfinite(results["eval_return_mean"])

    # Its state continues in a freshly built agent: the same state, the same greedy actions.
    fresh, other_steps = built(Job.prepare(config, spec, CPU), tmp_path / "fresh")
    other_steps.close()
    fresh.load_state_dict(agent.state_dict())
    assert state_equal(fresh.state_dict(), agent.state_dict())
    np.testing.assert_array_equal(fresh.act(obs, explore=False), agent.act(obs, explore=False))

    # What rlexp.load(seed=) replaces is named by the agent and is in its state.
    assert set(agent.exploration_state) & set(agent.state_dict()), agent.exploration_state

    # Deployment's policy network is what act(explore=False) does; the representation is one row per state.
    with torch.no_grad():
        policy_actions = agent.policy_network()(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(policy_actions, agent.act(obs, explore=False), rtol=1e-6, atol=1e-6)
    features, values = agent.representation(torch.as_tensor(obs, dtype=torch.float32))
    assert features.shape[0] == 2 and values.shape == (2,) and torch.isfinite(values).all()


@pytest.mark.parametrize("name", [name for name, spec in algorithms().items() if spec.members is not None])
def test_every_batched_algorithm_trains_its_seeds_as_one_model(name: str, tmp_path: Path) -> None:
    spec = algorithms()[name]
    kind = sorted(spec.actions, key=lambda k: k.value)[0]
    config = {**config_for(spec, kind), "seeds": [0, 1]}
    prepared = []

    def no_compile(job: Job) -> None:
        job.compiles = False
        prepared.append(job)

    def check(members: list, batched: Members) -> None:
        assert isinstance(batched, Members) and list(batched.members) == members
        # One batched forward pass acts as each member does alone.
        obs = np.stack([observations(prepared[0], 2, seed=1), observations(prepared[0], 2, seed=2)])
        together = batched.act(obs, explore=False)
        for k, member in enumerate(members):
            np.testing.assert_allclose(together[k], member.act(obs[k], explore=False), rtol=1e-5, atol=1e-6)

    _, agents, outcomes = train_seeds_in_lockstep(spec, config, tmp_path, check, no_compile)
    assert all(o.results["status"] == "completed" for o in outcomes)
    # Each seed learned its own: their networks differ, and each checkpoints as a single run's agent.
    assert not state_equal(agents[0].state_dict(), agents[1].state_dict())
    for member in agents:
        assert set(member.state_dict()) == set(agents[0].state_dict())
