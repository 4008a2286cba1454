"""gSDE (generalized state-dependent exploration): its noise, log-probabilities and entropy against torch's
Normal, one matrix per env, and when PPO and SAC draw new matrices."""

import numpy as np
import torch

from rlexp.agents import ppo, sac
from rlexp.agents.base import BuildContext
from rlexp.envs import describe_spaces, make_env
from rlexp.networks.gsde import VARIANCE_EPSILON, StateDependentNoise, resample_due
from rlexp.replay import ReplayBatch
from tests.conftest import algo_config

CPU = torch.device("cpu")


def test_the_noise_is_the_features_times_each_envs_matrix_and_its_density_is_the_gaussian_over_the_matrices():
    torch.manual_seed(0)
    sde = StateDependentNoise(features=5, action_dim=2, log_std_init=-0.5)
    latent, mean = torch.randn(3, 5), torch.randn(3, 2)
    eps = sde.draw(3, torch.Generator().manual_seed(1))
    noise = sde.noise(latent, eps)
    for i in range(3):   # env i's own matrix W_i = sigma * eps_i
        torch.testing.assert_close(noise[i], latent[i] @ (sde.log_std.exp() * eps[i]))
    std = ((latent ** 2) @ sde.log_std.exp() ** 2 + VARIANCE_EPSILON).sqrt()
    normal = torch.distributions.Normal(mean, std)
    u = mean + noise
    torch.testing.assert_close(sde.log_prob(u, mean, latent), normal.log_prob(u).sum(-1))
    torch.testing.assert_close(sde.entropy(latent), normal.entropy().sum(-1))
    # over many matrices, z^T W has the variance the density uses
    many = sde.noise(latent[:1].expand(20000, 5), sde.draw(20000, torch.Generator().manual_seed(2)))
    torch.testing.assert_close(many.var(0), std[0] ** 2, rtol=0.05, atol=0.0)
    # one matrix for a batch of another size (an update's draws): every row with the first matrix
    torch.testing.assert_close(sde.noise(latent[:2], eps[:1]), latent[:2] @ (sde.log_std.exp() * eps[0]))


def test_matrices_are_drawn_at_the_start_of_a_period_and_every_sample_freq_steps():
    assert [resample_due(t, -1) for t in range(5)] == [True, False, False, False, False]
    assert [resample_due(t, 2) for t in range(5)] == [True, False, True, False, True]


def spaces_of(env_id):
    env = make_env(env_id)
    return describe_spaces(env.observation_space, env.action_space, env_id)


def test_ppo_with_gsde_acts_smoothly_between_draws():
    torch.manual_seed(0)
    algo = dict(lr=3e-4, lr_schedule="constant", ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
                normalize_advantage=True, gamma=0.9, gae_lambda=0.95, log_std_init=0.0, ortho_init=True, n_epochs=1,
                batch_size=8, clip_range=0.2, clip_range_schedule="constant", clip_range_vf=None, target_kl=None,
                use_sde=True, sde_sample_freq=3, n_steps=8)
    agent = ppo.build(algo_config(ppo.PPOConfig, algo), BuildContext(
        spaces=spaces_of("Pendulum-v1"), hidden_sizes=(16,), total_steps=64, planned_updates=0, num_envs=2, device=CPU,
        seed=0, activation="tanh"))
    assert agent.policy.log_std is None and agent.policy.sde.log_std.shape == (16, 1)
    obs = torch.randn(2, 3)
    actions = [agent.rollout_step(obs, t)[0] for t in range(7)]
    # given its matrix, the action is a function of the state: the same until the next draw (steps 0, 3, 6)
    assert torch.equal(actions[0], actions[1]) and torch.equal(actions[1], actions[2])
    assert not torch.equal(actions[2], actions[3]) and torch.equal(actions[3], actions[5])
    assert not torch.equal(actions[0][0], actions[0][1])   # each env its own matrix
    saved = agent.state_dict()
    agent.rollout_step(obs, 0)
    agent.load_state_dict(saved)          # a resumed run continues with the same matrices
    assert torch.equal(agent.rollout_step(obs, 7)[0], actions[6])


def make_sac(**overrides):
    algo = dict(actor_lr=1e-3, critic_lr=1e-3, ent_coef_lr=1e-3, tau=0.01, ent_coef=0.1, ent_coef_init=1.0,
                target_entropy="auto", lr_schedule="constant", use_sde=True, sde_sample_freq=-1, log_std_init=-3.67,
                train_freq=4)
    algo.update(overrides)
    return sac.build(algo_config(sac.SACConfig, algo), BuildContext(
        spaces=spaces_of("MountainCarContinuous-v0"), hidden_sizes=(16, 16), total_steps=100, planned_updates=10,
        num_envs=2, device=CPU, seed=0))


def test_sac_with_gsde_draws_each_envs_matrix_at_each_round_of_collection():
    torch.manual_seed(0)
    agent = make_sac()
    obs = np.zeros((2, 2), np.float32)
    # vector steps 0..7 (env steps 2..16); rounds of train_freq=4 start at vector steps 0 and 4
    actions = [agent.act(obs, explore=True, step=2 * (v + 1)) for v in range(8)]
    assert all(np.array_equal(actions[0], a) for a in actions[1:4])
    assert not np.array_equal(actions[3], actions[4]) and all(np.array_equal(actions[4], a) for a in actions[5:])
    assert actions[0][0] != actions[0][1]
    assert np.array_equal(agent.act(obs, explore=False), agent.act(obs * 1, explore=False))


def test_sac_with_gsde_learns_the_noise_scale_through_the_reparameterised_draw():
    torch.manual_seed(0)
    agent = make_sac()
    batch = ReplayBatch(observations=torch.randn(32, 2), actions=torch.rand(32, 1) * 2 - 1,
                        rewards=torch.randn(32), next_observations=torch.randn(32, 2),
                        discounts=torch.full((32,), 0.99), indices=torch.arange(32))
    before = agent.actor.sde.log_std.detach().clone()
    metrics = agent.update(batch)
    assert torch.isfinite(metrics["losses/actor_loss"])
    assert not torch.equal(agent.actor.sde.log_std.detach(), before)   # the actor's gradient reached sigma
    assert isinstance(agent.actor.mean[1], torch.nn.Hardtanh)           # mu clipped to [-2, 2] before the squash
