"""Hindsight experience replay (rlexp/replay/her.py): which goals relabelled transitions get, their rewards, the
streams of several envs, resume; and the CLI's HER runs and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlexp.agents.registry import algorithms
from rlexp.config.actions import ActionKind
from rlexp.config.registry import Family
from rlexp.envs.packing import layout_of, pack, unpack
from rlexp.replay import Goals, HerReplayBuffer
from tests.conftest import run_cli, run_in_process, train_in_process
from tests.toy_envs import BitFlipping

CPU = torch.device("cpu")
TINY = ["total_steps=200", "algo.learning_starts=100", "network.hidden_sizes=[16]", "eval.every=0",
        "eval.episodes=2", "log.progress=none", "hydra.run.dir=run"]
ENV = BitFlipping(n_bits=3)
LAYOUT = layout_of(ENV.observation_space)
ENTRY = {entry.path: entry for entry in LAYOUT.entries}


def goal_bytes(name: str) -> slice:
    return slice(ENTRY[name].offset, ENTRY[name].offset + ENTRY[name].nbytes)


def replay(strategy: str = "future", n_sampled_goal: int = 4, num_envs: int = 1, capacity: int = 64,
           seed: int = 0) -> HerReplayBuffer:
    goals = Goals(achieved=goal_bytes("achieved_goal"), desired=goal_bytes("desired_goal"), dtype=torch.float32,
                  compute_reward=ENV.compute_reward)
    return HerReplayBuffer(capacity, (LAYOUT.nbytes,), (), True, CPU, seed, num_envs=num_envs, goals=goals,
                           n_sampled_goal=n_sampled_goal, goal_selection_strategy=strategy,
                           obs_dtype=torch.uint8)


def observation(state: float, goal: float = 7.0) -> np.ndarray:
    """A packed observation whose bits are all `state` and whose target is all `goal` (numbers, to tell apart)."""
    bits = np.full(3, state, np.float32)
    return pack(LAYOUT, {"observation": bits, "achieved_goal": bits, "desired_goal": np.full(3, goal, np.float32)})


def add_episode(buffer: HerReplayBuffer, states: list[float], ended: bool = True, env_count: int = 1,
                offset: float = 0.0) -> None:
    """An episode through `states` (s_0 .. s_T), in every env, env e's states shifted by e * 100 + offset."""
    for t in range(len(states) - 1):
        shifts = [e * 100.0 + offset for e in range(env_count)]
        last = ended and t == len(states) - 2
        buffer.add(np.stack([observation(states[t] + d) for d in shifts]), np.zeros(env_count, np.int64),
                   np.full(env_count, -1.0, np.float32), np.stack([observation(states[t + 1] + d) for d in shifts]),
                   np.zeros(env_count, bool), np.full(env_count, last))


def read(batch_obs: torch.Tensor, name: str) -> np.ndarray:
    return unpack(LAYOUT, batch_obs.numpy())[name][:, 0]   # every bit alike: the first tells the number


def test_relabelled_transitions_aim_at_a_goal_achieved_later_in_their_episode_and_get_its_reward():
    buffer = replay("future")
    add_episode(buffer, [0.0, 1.0, 2.0, 3.0, 4.0])          # transitions t = 0 .. 3 (s_{t+1} achieves t + 1)
    add_episode(buffer, [10.0, 11.0, 12.0])                 # another episode: its goals never leak into the first
    batch = buffer.sample(2000)
    state, next_state = read(batch.observations, "observation"), read(batch.next_observations, "achieved_goal")
    goal, next_goal = read(batch.observations, "desired_goal"), read(batch.next_observations, "desired_goal")
    rewards = batch.rewards.numpy()
    np.testing.assert_array_equal(goal, next_goal)           # s_t and s_{t+1} aim at one goal
    real = goal == 7.0
    assert np.all(rewards[real] == -1.0)                      # as stored
    relabelled = ~real
    assert 0.75 < relabelled.mean() < 0.85                    # k / (k + 1) = 0.8
    first = state < 10
    # future: the goal achieved at s_{j+1}, j >= t, in the same episode
    assert np.all(goal[relabelled & first] >= next_state[relabelled & first])
    assert np.all(goal[relabelled & first] <= 4.0) and np.all(goal[relabelled & ~first] >= 11.0)
    # the reward is compute_reward's: 0 exactly where s_{t+1} achieves the new goal
    np.testing.assert_array_equal(rewards[relabelled], np.where(goal[relabelled] == next_state[relabelled], 0.0, -1.0))
    # every later goal is drawn: from t = 0, the goals of s_1 .. s_4
    assert set(goal[relabelled & (state == 0.0)]) == {1.0, 2.0, 3.0, 4.0}


def test_final_aims_at_the_episode_end_and_episode_anywhere_in_it():
    final = replay("final")
    add_episode(final, [0.0, 1.0, 2.0, 3.0])
    batch = final.sample(500)
    goal = read(batch.observations, "desired_goal")
    assert set(goal[goal != 7.0]) == {3.0}
    anywhere = replay("episode")
    add_episode(anywhere, [0.0, 1.0, 2.0, 3.0])
    batch = anywhere.sample(2000)
    state, goal = read(batch.observations, "observation"), read(batch.observations, "desired_goal")
    assert set(goal[(goal != 7.0) & (state == 2.0)]) == {1.0, 2.0, 3.0}   # earlier goals too


def test_an_episode_still_running_relabels_up_to_its_newest_step():
    buffer = replay("final")
    add_episode(buffer, [0.0, 1.0, 2.0], ended=False)
    goal = read(buffer.sample(300).observations, "desired_goal")
    assert set(goal[goal != 7.0]) == {2.0}
    add_episode(buffer, [2.0, 3.0], ended=True)               # the same episode goes on, then ends
    goal = read(buffer.sample(300).observations, "desired_goal")
    assert set(goal[goal != 7.0]) == {3.0}


def test_each_env_relabels_from_its_own_stream():
    buffer = replay("episode", num_envs=2)
    add_episode(buffer, [0.0, 1.0, 2.0], env_count=2)
    batch = buffer.sample(1000)
    state, goal = read(batch.observations, "observation"), read(batch.observations, "desired_goal")
    relabelled = goal != 7.0
    assert np.all((state[relabelled] >= 100) == (goal[relabelled] >= 100))


def test_a_restored_replay_relabels_as_the_saved_one_would_have():
    buffer = replay("future", seed=3)
    add_episode(buffer, [0.0, 1.0, 2.0, 3.0])
    add_episode(buffer, [5.0, 6.0], ended=False)
    restored = replay("future", seed=99)
    restored.load_state_dict(buffer.state_dict())
    np.testing.assert_array_equal(restored.steps_in_episode, buffer.steps_in_episode)
    for a, b in zip(buffer.sample(64), restored.sample(64)):
        assert a is None and b is None or torch.equal(a, b)
    # and both go on writing the running episode alike
    for memory in (buffer, restored):
        add_episode(memory, [6.0, 7.0], ended=True)
    torch.testing.assert_close(buffer.storage["episode_lengths"], restored.storage["episode_lengths"])


def test_her_trains_from_the_command_line(workdir):
    result = run_cli(["train", "algo=td3", "env.id=tests.toy_envs:BitFlippingContinuous-v0", "algo.her=true",
                      "algo.her_goal_selection_strategy=final", "env.num_envs=2", *TINY], cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "completed"


OFF_POLICY = [name for name, spec in algorithms().items() if spec.family is Family.OFF_POLICY]
#: small networks for the algorithms whose defaults are large
SMALL = {"crossq": ["algo.critic_hidden_sizes=[16]"], "tqc": ["algo.n_quantiles=5"]}


@pytest.mark.parametrize("algo", OFF_POLICY)
def test_every_off_policy_algorithm_trains_with_her(algo, workdir):
    env = "BitFlipping-v0" if ActionKind.DISCRETE in algorithms()[algo].actions else "BitFlippingContinuous-v0"
    # (Rainbow's prioritized 3-step replay off: HER relabels uniform 1-step transitions)
    result = train_in_process(["train", f"algo={algo}", f"env.id=tests.toy_envs:{env}", "algo.her=true",
                               "algo.prioritized=false", "algo.n_step=1", *SMALL.get(algo, []), *TINY], workdir)
    assert result.returncode == 0, result.stderr
    assert json.loads((workdir / "run" / "results.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("args, message", [
    (["algo=sac", "env=Pendulum-v1"], "algo.her=true relabels goals, and Pendulum-v1 (observations Box("),
    (["algo=sac", "env.id=tests.toy_envs:GoalPoint-v0"], "has observations with the entries ['goal', 'position', "
                                                          "'speed']: HER needs Dict observations with observation, "
                                                          "achieved_goal, desired_goal"),
    (["algo=dqn", "env.id=tests.toy_envs:BitFlipping-v0", "algo.n_step=3"],
     "algo.her=true relabels uniform replay's 1-step transitions, and algo.n_step=3 asks for n-step returns; use "
     "algo.n_step=1"),
    (["algo=dqn", "env.id=tests.toy_envs:BitFlipping-v0", "algo.prioritized=true"], "use algo.prioritized=false"),
    (["algo=td3", "env.id=tests.toy_envs:BitFlippingContinuous-v0", "env.normalize.obs=true"],
     "and env.normalize.obs=true stores standardised (or scaled) ones it cannot read; use env.normalize.obs=false"),
    (["algo=dqn", "env.id=tests.toy_envs:BitFlipping-v0", "algo.her_n_sampled_goal=0"],
     "algo.her_n_sampled_goal=0 must be a positive integer"),
])
def test_her_where_it_cannot_work_is_refused_in_one_line(args, message, workdir, capsys, monkeypatch):
    result = run_in_process(["train", *args, "algo.her=true", "hydra.run.dir=run"], workdir, capsys, monkeypatch)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
