import numpy as np
import pytest

from rlexp.agents.exploration import GaussianNoise, OrnsteinUhlenbeckNoise, make_action_noise
from rlexp.schedules import LinearSchedule, crossed


def test_linear_schedule_anneals_then_holds():
    eps = LinearSchedule(1.0, 0.05, 100)
    assert eps(0) == 1.0
    assert eps(50) == pytest.approx(0.525)
    assert eps(100) == pytest.approx(0.05)
    assert eps(10_000) == pytest.approx(0.05)
    assert LinearSchedule(1.0, 0.1, 0)(0) == 0.1


def test_an_event_every_n_steps_fires_when_a_step_of_several_envs_passes_it():
    assert crossed(96, 100, 100) and crossed(98, 102, 100) and not crossed(100, 104, 100)
    assert [step for step in range(4, 401, 4) if crossed(step - 4, step, 150)] == [152, 300]
    assert not crossed(0, 10**6, 0)  # every=0: never


def test_gaussian_noise_has_the_configured_scale_and_is_seeded():
    samples = np.stack([GaussianNoise(1, 2, 0.3, np.random.default_rng(0))(1) for _ in range(1)])
    noise = GaussianNoise(1, 2, 0.3, np.random.default_rng(1))
    draws = np.concatenate([noise(1) for _ in range(20_000)])
    assert draws.shape == (20_000, 2) and draws.dtype == np.float32
    assert abs(draws.mean()) < 0.01 and draws.std() == pytest.approx(0.3, rel=0.03)
    np.testing.assert_array_equal(samples[0], GaussianNoise(1, 2, 0.3, np.random.default_rng(0))(1))


def test_noise_is_drawn_for_each_env():
    for noise in (GaussianNoise(3, 2, 0.3, np.random.default_rng(0)),
                  OrnsteinUhlenbeckNoise(3, 2, 0.3, 0.15, np.random.default_rng(0))):
        draw = noise(3)
        assert draw.shape == (3, 2) and draw.dtype == np.float32
        assert len({tuple(row) for row in draw.tolist()}) == 3  # each env its own


def test_ou_noise_is_correlated_and_resets_to_zero():
    noise = OrnsteinUhlenbeckNoise(1, 1, sigma=0.5, theta=0.15, rng=np.random.default_rng(0))
    draws = np.array([noise(1)[0, 0] for _ in range(5000)])
    lag1 = np.corrcoef(draws[:-1], draws[1:])[0, 1]
    assert lag1 > 0.9  # successive OU values are strongly correlated; Gaussian ones are not
    noise.reset(np.array([True]))
    np.testing.assert_array_equal(noise.state, np.zeros((1, 1)))


def test_ou_noise_resets_only_the_envs_whose_episodes_started():
    noise = OrnsteinUhlenbeckNoise(3, 2, sigma=0.5, theta=0.15, rng=np.random.default_rng(0))
    for _ in range(10):
        noise(3)
    before = noise.state.copy()
    noise.reset(np.array([False, True, False]))
    np.testing.assert_array_equal(noise.state[1], np.zeros(2))
    np.testing.assert_array_equal(noise.state[[0, 2]], before[[0, 2]])


def test_ou_step_matches_its_equation():
    rng = np.random.default_rng(0)
    noise = OrnsteinUhlenbeckNoise(1, 1, sigma=0.2, theta=0.15, rng=np.random.default_rng(0), dt=0.01)
    noise.state = np.array([[1.0]])
    expected = 1.0 - 0.15 * 1.0 * 0.01 + 0.2 * np.sqrt(0.01) * rng.normal(size=(1, 1))
    np.testing.assert_allclose(noise(1), expected.astype(np.float32), rtol=1e-6)


def test_a_batch_of_another_size_is_a_new_set_of_envs():
    """A loaded agent acting on a batch of its own size: one draw per row; OU starts those envs from its mean."""
    gaussian = GaussianNoise(1, 2, 0.3, np.random.default_rng(0))
    assert gaussian(5).shape == (5, 2)
    ou = OrnsteinUhlenbeckNoise(1, 2, 0.3, 0.15, np.random.default_rng(0))
    for _ in range(10):
        ou(1)
    rng = np.random.default_rng(0)
    rng.normal(size=(10, 1, 2))   # the ten draws above
    expected = 0.3 * np.sqrt(0.01) * rng.normal(size=(4, 2))   # from x = 0
    np.testing.assert_allclose(ou(4), expected.astype(np.float32), rtol=1e-6)


def test_make_action_noise_builds_each_type_and_refuses_others():
    assert isinstance(make_action_noise("gaussian", 0.1, 0.15, 2, 1, np.random.default_rng(0)), GaussianNoise)
    ou = make_action_noise("ou", 0.1, 0.15, 2, 3, np.random.default_rng(0))
    assert isinstance(ou, OrnsteinUhlenbeckNoise) and ou.state.shape == (2, 3) and ou.theta == 0.15
    # The schema refuses any other algo.noise.type while Hydra composes (test_config); here only a ValueError.
    with pytest.raises(ValueError, match="unknown noise type 'pink'"):
        make_action_noise("pink", 0.1, 0.15, 1, 1, np.random.default_rng(0))
