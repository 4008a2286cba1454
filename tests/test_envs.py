import numpy as np
import pytest

from rlexp.config import ConfigError
from rlexp.envs import make_env, space_info


def test_discrete_env_for_dqn():
    info = space_info(make_env("CartPole-v1"), "dqn", "CartPole-v1")
    assert info.discrete and info.n_actions == 2 and info.obs_dim == 4 and info.action_shape == ()


def test_continuous_env_for_td3_keeps_its_bounds():
    info = space_info(make_env("Pendulum-v1"), "td3", "Pendulum-v1")
    assert not info.discrete and info.action_shape == (1,)
    np.testing.assert_array_equal(info.action_low, [-2.0])
    np.testing.assert_array_equal(info.action_high, [2.0])


def test_dqn_on_continuous_actions_says_what_to_use():
    with pytest.raises(ConfigError, match="algo=dqn needs a discrete action space.*Pendulum-v1.*use algo=td3"):
        space_info(make_env("Pendulum-v1"), "dqn", "Pendulum-v1")


def test_td3_on_discrete_actions_says_what_to_use():
    with pytest.raises(ConfigError, match="algo=td3 needs a continuous.*CartPole-v1.*use algo=dqn"):
        space_info(make_env("CartPole-v1"), "td3", "CartPole-v1")


def test_unknown_env_suggests_close_ids():
    with pytest.raises(ConfigError, match="CartPol-v1.*did you mean CartPole-v1"):
        make_env("CartPol-v1")


def test_bad_env_kwargs_name_the_key():
    with pytest.raises(ConfigError, match="env.kwargs"):
        make_env("CartPole-v1", {"no_such_option": 1})
