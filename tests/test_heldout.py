"""The learning index (rlexp/runners/heldout.py): held-out states from a random policy, their mean predicted value."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rlexp
from rlexp.envs import make_env
from rlexp.io.checkpoints import CheckpointManager
from rlexp.runners.heldout import collect_heldout_states
from tests.conftest import TINY, made_once, train_in_process
from tests.test_resume import scalars


def test_the_states_are_a_random_policys_and_the_same_for_the_same_seed():
    env = make_env("CartPole-v1")
    a, b = collect_heldout_states(env, 300, 7), collect_heldout_states(env, 300, 7)
    assert a.shape == (300, 4) and np.array_equal(a, b)
    assert not np.array_equal(a, collect_heldout_states(env, 300, 8))
    # CartPole's random episodes last about 20 steps: 300 states span many resets
    assert np.sum(np.all(np.abs(a) < 0.05, axis=1)) > 5


RUNS = {
    # max_a Q(s, a)
    "dqn": (["algo=dqn", "env=CartPole-v1", "total_steps=600", "algo.learning_starts=100"],
            lambda agent, s: agent.q_network(s).max(dim=1).values.mean()),
    # Q_1(s, mu(s)), on observations normalized with the run's statistics
    "td3": (["algo=td3", "env=Pendulum-v1", "total_steps=400", "algo.learning_starts=100", "network.hidden_sizes=[32]",
             "env.normalize.obs=true"],
            lambda agent, s: agent.critic(s, agent.actor(s))[0].mean()),
    # V(s)
    "ppo": (["algo=ppo", "env=CartPole-v1", "total_steps=400", "algo.n_steps=50", "env.num_envs=2",
             "algo.batch_size=50"], lambda agent, s: agent.policy(s)[1].mean()),
}


def trained(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """The run of RUNS[name] with 64 held-out states, trained from the command line once per session (made_once);
    tests/test_embedding.py copies the DQN one."""
    def make(root: Path) -> None:
        proc = train_in_process(["train", *RUNS[name][0], "log.heldout_states=64", "hydra.run.dir=run", *TINY], root)
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, f"heldout-{name}", make)[0] / "run"


@pytest.mark.parametrize("name", list(RUNS))
def test_the_logged_index_is_the_final_agents_mean_value_of_the_checkpointed_states(tmp_path_factory, name):
    _, value = RUNS[name]
    run = trained(tmp_path_factory, name)
    logged = scalars(run)["charts/avg_q_heldout"]
    results = json.loads((run / "results.json").read_text())
    assert logged[-1][0] == results["total_steps"]   # the last log step is the final one: the final agent's value
    bundle, _, _ = CheckpointManager(run / "checkpoints", 1).load_latest()
    states = bundle["context"]["heldout"].numpy()
    assert states.shape[0] == 64
    loaded = rlexp.load(run, device="cpu")
    if loaded.normalization is not None:
        states = loaded.normalization.observations(states, update=False)
    with torch.no_grad():
        expected = float(value(loaded.agent, torch.as_tensor(states, dtype=torch.float32)))
    assert logged[-1][1] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_zero_turns_it_off(workdir):
    proc = train_in_process(["train", "algo=dqn", "env=CartPole-v1", "total_steps=300", "algo.learning_starts=100",
                             "log.heldout_states=0", "hydra.run.dir=run", *TINY], workdir)
    assert proc.returncode == 0, proc.stderr
    assert "charts/avg_q_heldout" not in scalars(workdir / "run")
