import gymnasium as gym
import numpy as np
import pytest

from rlexp.agents import registry
from rlexp.envs import describe_spaces, make_env, make_vector_env
from rlexp.errors import ConfigError


def space_info(env: gym.Env, algo: str, env_id: str):
    """The env's spaces, once the algorithm is known to fit them."""
    spaces = describe_spaces(env.observation_space, env.action_space, env_id)
    registry.check_fits(registry.get(algo), spaces)
    return spaces


def test_discrete_env_for_dqn():
    info = space_info(make_env("CartPole-v1"), "dqn", "CartPole-v1")
    assert info.discrete and info.n_actions == 2 and info.obs_dim == 4 and info.action_shape == ()
    assert info.flat and not info.frames and not info.continuous


def test_continuous_env_for_td3_keeps_its_bounds():
    info = space_info(make_env("Pendulum-v1"), "td3", "Pendulum-v1")
    assert not info.discrete and info.action_shape == (1,) and info.bounded
    np.testing.assert_array_equal(info.action_low, [-2.0])
    np.testing.assert_array_equal(info.action_high, [2.0])


def test_dqn_on_continuous_actions_says_what_to_use():
    with pytest.raises(ConfigError, match="algo=dqn needs a discrete action space.*Pendulum-v1.*use algo=a2c, "
                                          "algo=crossq, algo=ddpg, algo=ppo, algo=sac, algo=td3 or algo=tqc"):
        space_info(make_env("Pendulum-v1"), "dqn", "Pendulum-v1")


def test_td3_on_discrete_actions_says_what_to_use():
    with pytest.raises(ConfigError,
                       match="algo=td3 needs a continuous.*CartPole-v1.*use algo=a2c, algo=dqn, algo=ppo, "
                             "algo=qrdqn or algo=rainbow"):
        space_info(make_env("CartPole-v1"), "td3", "CartPole-v1")


def test_unknown_env_suggests_close_ids():
    with pytest.raises(ConfigError, match="CartPol-v1.*did you mean CartPole-v1"):
        make_env("CartPol-v1")


def test_bad_env_kwargs_name_the_key():
    with pytest.raises(ConfigError, match="env.kwargs"):
        make_env("CartPole-v1", {"no_such_option": 1})


def test_a_vector_env_of_one_steps_as_the_single_env_and_resets_within_the_step():
    single, vector = make_env("CartPole-v1", {"max_episode_steps": 5}), \
        make_vector_env("CartPole-v1", {"max_episode_steps": 5}, None, 1, "sync")
    obs, _ = single.reset(seed=3)
    vector_obs, _ = vector.reset(seed=3)
    np.testing.assert_array_equal(vector_obs[0], obs)
    for t in range(5):
        obs, reward, terminated, truncated, _ = single.step(t % 2)
        vector_obs, rewards, terminations, truncations, infos = vector.step(np.array([t % 2]))
        assert rewards[0] == reward and terminations[0] == terminated and truncations[0] == truncated
    assert truncations[0]  # SAME_STEP autoreset: the last observation is in final_obs, the new episode's first here
    np.testing.assert_array_equal(infos["final_obs"][0], obs)
    assert not np.array_equal(vector_obs[0], obs)
    vector.close()
