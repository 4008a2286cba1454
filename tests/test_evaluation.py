"""The evaluation: episodes stepping together, one env each, one forward pass of a fixed shape for all, each env's
first reset from its own seed (rlexp/runners/evaluation.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlexp.envs import make_env
from rlexp.runners.context import Evaluator
from rlexp.runners.evaluation import evaluate, start_seed


def lean(obs: np.ndarray) -> np.ndarray:
    """A fixed CartPole policy whose episodes last some tens of steps, each its own: push toward the pole's lean."""
    return (obs[:, 2] > 0).astype(np.int64)


def one_after_another(env_id: str, starts: list[int | None]) -> list[float]:
    """The returns of episodes played one after another on one env, each reset with the given seed (None: the
    env's own generator continues), by hand."""
    env, returns = make_env(env_id), []
    for seed in starts:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(lean(obs[None])[0])
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return returns


def test_each_env_starts_from_its_own_seed_the_evaluation_seed_for_env_0():
    assert start_seed(100, 0) == 100   # one env evaluates as before eval.num_envs
    starts = [start_seed(100, j) for j in range(1, 8)]
    assert all(0 <= s < 2**32 for s in starts) and len(set(starts)) == 7
    assert starts[0] == int(np.random.SeedSequence(100, spawn_key=(1,)).generate_state(1)[0])   # numpy's, by hand
    # seeds 100 and 101 of a study share no start state (seed + j would: 100's env 1 is 101's env 0)
    assert not {start_seed(100, j) for j in range(16)} & {start_seed(101, j) for j in range(16)}


def test_each_episode_on_its_own_env_starts_from_that_envs_seed():
    envs = [make_env("CartPole-v1") for _ in range(6)]
    returns = evaluate(lean, envs, 6, seed=100)
    assert returns.tolist() == [one_after_another("CartPole-v1", [start_seed(100, j)])[0] for j in range(6)]
    assert len(set(returns.tolist())) > 1   # (the episodes differ: the check compares something)


def test_with_fewer_envs_env_j_plays_episodes_j_j_plus_k_and_continues_its_own_generator():
    envs = [make_env("CartPole-v1") for _ in range(2)]
    returns = evaluate(lean, envs, 5, seed=7)
    env0 = one_after_another("CartPole-v1", [7, None, None])                 # episodes 0, 2, 4
    env1 = one_after_another("CartPole-v1", [start_seed(7, 1), None])        # episodes 1, 3
    assert returns.tolist() == [env0[0], env1[0], env0[1], env1[1], env0[2]]


def test_one_env_plays_the_episodes_one_after_another_as_the_evaluation_did_before_envs_stepped_together():
    returns = evaluate(lean, [make_env("CartPole-v1")], 3, seed=5)
    assert returns.tolist() == one_after_another("CartPole-v1", [5, None, None])


class Counted(gym.Wrapper):
    """Counts its env's steps."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


def test_one_forward_pass_of_a_fixed_shape_per_step_and_a_done_env_is_not_stepped_again():
    batches: list[int] = []

    def policy(obs: np.ndarray) -> np.ndarray:
        batches.append(len(obs))
        return lean(obs)

    lengths = [one_after_another("CartPole-v1", [start_seed(3, j)])[0] for j in range(4)]   # (returns: 1 a step)
    envs = [Counted(make_env("CartPole-v1")) for _ in range(4)]
    evaluate(policy, envs, 4, seed=3)
    assert len(set(lengths)) > 1   # (the episodes end at different steps: the check compares something)
    assert batches == [4] * int(max(lengths))   # one pass a step, of all 4 rows, until the longest episode ends
    assert [env.steps for env in envs] == lengths   # each env stepped to its episode's end, no further


def test_more_envs_than_episodes_uses_as_many_as_episodes():
    batches: list[int] = []
    evaluate(lambda obs: batches.append(len(obs)) or lean(obs), [make_env("CartPole-v1") for _ in range(5)], 2, 0)
    assert batches[0] == 2


def test_the_evaluator_makes_its_other_envs_at_the_first_evaluation_and_closes_them():
    made: list = []

    def make():
        made.append(make_env("CartPole-v1"))
        return made[-1]

    class Agent:
        def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
            return lean(obs)

    evaluator = Evaluator(make_env("CartPole-v1"), episodes=4, seed=11, num_envs=3, make_env=make)
    assert made == []   # none before an evaluation
    first = evaluator(Agent())
    assert len(made) == 2   # the job's env and two more
    assert evaluator(Agent()).tolist() == first.tolist()   # the same starts every time
    assert len(made) == 2   # made once
    env0 = one_after_another("CartPole-v1", [11, None])
    assert first.tolist() == [env0[0], *one_after_another("CartPole-v1", [start_seed(11, 1)]),
                              *one_after_another("CartPole-v1", [start_seed(11, 2)]), env0[1]]
    evaluator.close()
    assert evaluator._more == []


def test_the_sb3_side_by_side_scripts_start_their_episodes_where_rlexps_evaluation_envs_do():
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("sb3_sac", ROOT / "benchmarks" / "sb3_sac_side_by_side.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scope: dict = {"np": np, "seed": 42}
    exec(module.EVAL_STARTS, scope)   # as the SB3 run's Python does, without rlexp
    assert scope["starts"] == [start_seed(42 + 10000, j) for j in range(10)]
