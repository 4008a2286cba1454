import numpy as np
import pytest

from rlexp.config import ConfigError
from rlexp.noise import GaussianNoise, LinearSchedule, OrnsteinUhlenbeckNoise, make_action_noise


def test_linear_schedule_anneals_then_holds():
    eps = LinearSchedule(1.0, 0.05, 100)
    assert eps(0) == 1.0
    assert eps(50) == pytest.approx(0.525)
    assert eps(100) == pytest.approx(0.05)
    assert eps(10_000) == pytest.approx(0.05)
    assert LinearSchedule(1.0, 0.1, 0)(0) == 0.1


def test_gaussian_noise_has_the_configured_scale_and_is_seeded():
    samples = np.stack([GaussianNoise(2, 0.3, np.random.default_rng(0))() for _ in range(1)])
    noise = GaussianNoise(2, 0.3, np.random.default_rng(1))
    draws = np.stack([noise() for _ in range(20_000)])
    assert draws.shape == (20_000, 2) and draws.dtype == np.float32
    assert abs(draws.mean()) < 0.01 and draws.std() == pytest.approx(0.3, rel=0.03)
    np.testing.assert_array_equal(samples[0], GaussianNoise(2, 0.3, np.random.default_rng(0))())


def test_ou_noise_is_correlated_and_resets_to_zero():
    noise = OrnsteinUhlenbeckNoise(1, sigma=0.5, theta=0.15, rng=np.random.default_rng(0))
    draws = np.array([noise()[0] for _ in range(5000)])
    lag1 = np.corrcoef(draws[:-1], draws[1:])[0, 1]
    assert lag1 > 0.9  # successive OU values are strongly correlated; Gaussian ones are not
    noise.reset()
    np.testing.assert_array_equal(noise.state, np.zeros(1))


def test_ou_step_matches_its_equation():
    rng = np.random.default_rng(0)
    noise = OrnsteinUhlenbeckNoise(1, sigma=0.2, theta=0.15, rng=np.random.default_rng(0), dt=0.01)
    noise.state = np.array([1.0])
    expected = 1.0 - 0.15 * 1.0 * 0.01 + 0.2 * np.sqrt(0.01) * rng.normal(size=1)
    np.testing.assert_allclose(noise(), expected.astype(np.float32), rtol=1e-6)


def test_unknown_noise_type_is_a_config_error():
    with pytest.raises(ConfigError, match="algo.noise.type='pink'"):
        make_action_noise("pink", 0.1, 0.15, 1, np.random.default_rng(0))
