"""Each agent's update, pinned against hand calculations on networks with known outputs."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlexp.agents import ddpg
from rlexp.agents.actor_critic import TD3
from rlexp.agents.base import BuildContext
from rlexp.agents.dqn import DQN
from rlexp.agents.exploration import GaussianNoise, OrnsteinUhlenbeckNoise
from rlexp.envs import describe_spaces
from rlexp.replay import ReplayBatch
from tests.conftest import algo_config

CPU = torch.device("cpu")


def td3(**overrides) -> TD3:
    kwargs = dict(hidden_sizes=[8], actor_lr=1e-2, critic_lr=1e-2, tau=0.5, policy_delay=2,
                  target_noise=0.2, target_noise_clip=0.5, n_critics=2,
                  exploration_noise=GaussianNoise(1, 1, 0.1, np.random.default_rng(0)), device=CPU)
    kwargs.update(overrides)
    return TD3(2, np.array([-2.0]), np.array([2.0]), **kwargs)


def dqn(**overrides) -> DQN:
    kwargs = dict(hidden_sizes=[8], lr=1e-2, tau=1.0, target_update_interval=3,
                  exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.1,
                  max_grad_norm=10.0, lr_schedule="constant", total_steps=100, total_updates=50, device=CPU,
                  rng=np.random.default_rng(0))
    kwargs.update(overrides)
    return DQN(2, 3, **kwargs)


GAMMA = 0.9


def batch(actions: torch.Tensor, n: int = 2) -> ReplayBatch:
    """Two one-step transitions: the first bootstraps (discount gamma), the second ends the episode."""
    terminations = torch.tensor([0.0, 1.0])
    return ReplayBatch(observations=torch.randn(n, 2), actions=actions, rewards=torch.tensor([1.0, -0.5]),
                       next_observations=torch.randn(n, 2), discounts=GAMMA * (1.0 - terminations),
                       indices=torch.arange(n))


def set_constant_output(layers, value) -> None:
    """Zero every weight and bias, then set the last bias: the network outputs `value` whatever its input."""
    with torch.no_grad():
        for p in layers.parameters():
            p.zero_()
        last = [m for m in layers.modules() if hasattr(m, "bias") and m.bias is not None][-1]
        last.bias.copy_(torch.as_tensor(value, dtype=torch.float32).reshape(last.bias.shape))


def test_td3_target_is_the_minimum_of_the_twin_critics_cut_at_termination():
    agent = td3()
    set_constant_output(agent.critic_target, [[[3.0]], [[5.0]]])  # Q1' = 3, Q2' = 5 everywhere
    b = batch(torch.zeros(2, 1))
    y = agent.td_target(b, agent.smoothing_noise(b.actions.shape))
    # r + gamma * (1 - d) * min(3, 5): 1 + 0.9 * 3 = 3.7 and -0.5 + 0 = -0.5
    torch.testing.assert_close(y, torch.tensor([3.7, -0.5]))


def test_td3_target_smoothing_noise_is_clipped_and_actions_stay_in_bounds():
    agent = td3(target_noise=10.0, target_noise_clip=0.5)
    set_constant_output(agent.actor_target.net, 0.0)  # mu'(s') = tanh(0) * 2 = 0
    actions = agent.target_actions(torch.randn(10_000, 2), agent.smoothing_noise((10_000, 1)))
    # noise clipped to +/- 0.5 of the half-range 2 -> actions in [-1, 1]; with sigma 10 nearly all hit the clip
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    assert (actions.abs() == 1.0).float().mean() > 0.9
    set_constant_output(agent.actor_target.net, 10.0)  # mu'(s') ~ 2 = the upper bound; noise cannot exceed it
    assert agent.target_actions(torch.randn(1000, 2), agent.smoothing_noise((1000, 1))).max() <= 2.0


def test_td3_delays_actor_and_target_updates():
    agent = td3(policy_delay=2)
    b = batch(torch.zeros(2, 1))
    actor_before = [p.clone() for p in agent.actor.parameters()]
    target_before = [p.clone() for p in agent.critic_target.parameters()]
    critic_before = [p.clone() for p in agent.critic.parameters()]
    agent.update(b)  # update 1: critics only
    assert all(torch.equal(a, p) for a, p in zip(actor_before, agent.actor.parameters()))
    assert all(torch.equal(a, p) for a, p in zip(target_before, agent.critic_target.parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(critic_before, agent.critic.parameters()))
    metrics = agent.update(b)  # update 2: actor and targets too
    assert not all(torch.equal(a, p) for a, p in zip(actor_before, agent.actor.parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(target_before, agent.critic_target.parameters()))
    assert set(metrics) == {"losses/critic_loss", "losses/actor_loss", "losses/q_values",
                            "losses/critic_grad_norm", "losses/actor_grad_norm"}


def test_ddpg_is_td3_with_one_critic_no_smoothing_and_no_delay():
    # DDPG's builder (its registry entry) makes a TD3 with the three additions off.
    algo = {"actor_lr": 1e-2, "critic_lr": 1e-2, "tau": 0.5, "noise": {"type": "gaussian", "sigma": 0.1, "theta": 0.15},
            "critic_weight_decay": 0.0, "batch_norm": False, "critic_action_layer": 0, "final_layer_init": 0.0}
    spaces = describe_spaces(gym.spaces.Box(-10.0, 10.0, (2,), np.float32), gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
                             "Test-v0")
    agent = ddpg.build(algo_config(ddpg.DDPGConfig, algo), BuildContext(
        spaces=spaces, hidden_sizes=(8,), total_steps=100, planned_updates=100, num_envs=1, device=CPU, seed=0))
    assert isinstance(agent, TD3) and ddpg.ALGORITHM.build is ddpg.build
    assert agent.critic.n_critics == 1 and agent.policy_delay == 1 and agent.target_noise == 0
    assert agent.target_noise_clip == 0
    next_obs = torch.randn(4, 2)
    assert agent.smoothing_noise((4, 1)) is None
    torch.testing.assert_close(agent.target_actions(next_obs, None), agent.actor_target(next_obs))
    actor_before = [p.clone() for p in agent.actor.parameters()]
    agent.update(batch(torch.zeros(2, 1)))
    assert not all(torch.equal(a, p) for a, p in zip(actor_before, agent.actor.parameters()))


def test_continuous_exploration_adds_scaled_noise_and_clips_to_bounds():
    agent = td3(exploration_noise=GaussianNoise(1, 1, 100.0, np.random.default_rng(0)))
    actions = np.array([agent.act(np.zeros((1, 2)), explore=True)[0] for _ in range(200)])
    assert actions.shape == (200, 1)
    assert actions.min() == -2.0 and actions.max() == 2.0
    greedy = agent.act(np.zeros((1, 2)), explore=False)
    assert greedy.shape == (1, 1) and np.array_equal(greedy, agent.act(np.zeros((1, 2)), explore=False))


def test_continuous_exploration_draws_each_envs_own_noise():
    agent = td3(exploration_noise=GaussianNoise(3, 1, 0.1, np.random.default_rng(0)))
    actions = agent.act(np.zeros((3, 2)), explore=True)  # three envs in the same state
    greedy = agent.act(np.zeros((3, 2)), explore=False)
    assert actions.shape == greedy.shape == (3, 1)
    assert np.all(greedy == greedy[0]) and len(set(actions[:, 0].tolist())) == 3


def test_ou_noise_is_reset_at_episode_start():
    noise = OrnsteinUhlenbeckNoise(2, 1, 0.5, 0.15, np.random.default_rng(0))
    agent = td3(exploration_noise=noise)
    for _ in range(10):
        noise(2)
    agent.episodes_started(np.array([True, False]))  # only env 0 began an episode
    assert np.all(noise.state[0] == 0) and np.all(noise.state[1] != 0)
    agent.episodes_started(np.array([True, True]))
    assert np.all(noise.state == 0)


def test_dqn_target_takes_the_max_over_actions_cut_at_termination():
    agent = dqn()
    set_constant_output(agent.target_network, [1.0, 4.0, 2.0])  # Q'(s', .) = (1, 4, 2)
    y = agent.td_target(batch(torch.tensor([0, 2])))
    torch.testing.assert_close(y, torch.tensor([[1.0 + 0.9 * 4.0], [-0.5]]))   # (batch, atoms = 1)


def test_dqn_loss_is_huber_on_the_taken_action():
    agent = dqn()
    set_constant_output(agent.q_network, [0.0, 0.0, 0.0])
    set_constant_output(agent.target_network, [0.0, 0.0, 0.0])
    metrics = agent.update(batch(torch.tensor([1, 2])))
    # targets (1, -0.5) vs Q = 0: Huber = mean(0.5 * 1^2, 0.5 * 0.5^2) = 0.3125
    assert float(metrics["losses/td_loss"]) == pytest.approx(0.3125)


def test_dqn_hard_target_copy_every_interval():
    agent = dqn(target_update_interval=3)
    b = batch(torch.tensor([0, 1]))
    initial = [p.clone() for p in agent.target_network.parameters()]
    for _ in range(2):
        agent.update(b)
    assert all(torch.equal(a, p) for a, p in zip(initial, agent.target_network.parameters()))
    agent.update(b)
    assert all(torch.equal(t, o) for t, o in zip(agent.target_network.parameters(), agent.q_network.parameters()))


def test_dqn_epsilon_greedy_follows_the_schedule():
    agent = dqn(exploration_fraction=0.5, total_steps=100)  # eps 1.0 -> 0.1 over 50 steps
    assert agent.exploration_metrics(0)["charts/epsilon"] == 1.0
    assert agent.exploration_metrics(80)["charts/epsilon"] == pytest.approx(0.1)
    greedy = agent.act(np.ones((1, 2)), explore=False)[0]
    late = [agent.act(np.ones((1, 2)), explore=True, step=80)[0] for _ in range(2000)]
    assert np.mean(np.array(late) != greedy) == pytest.approx(0.1 * 2 / 3, abs=0.03)
    early = [agent.act(np.ones((1, 2)), explore=True, step=0)[0] for _ in range(3000)]
    assert np.bincount(early, minlength=3).min() > 900  # uniform when eps = 1
    # With several envs, epsilon is drawn for each: one call explores in about 10% of 3000 identical envs.
    batch_of_envs = agent.act(np.ones((3000, 2)), explore=True, step=80)
    assert batch_of_envs.shape == (3000,)
    assert np.mean(batch_of_envs != greedy) == pytest.approx(0.1 * 2 / 3, abs=0.03)


def test_state_dict_round_trip_restores_every_network():
    a, b = td3(), td3()
    a.update(batch(torch.zeros(2, 1)))
    a.update(batch(torch.zeros(2, 1)))
    b.load_state_dict(a.state_dict())
    for name in ("actor", "actor_target", "critic", "critic_target"):
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters()):
            assert torch.equal(p, q)
    assert b.n_updates == 2
    # The target smoothing noise's generator continues where it was too.
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    next_obs = torch.randn(4, 2)
    torch.testing.assert_close(a.target_actions(next_obs, a.smoothing_noise((len(next_obs), 1))),
                               b.target_actions(next_obs, b.smoothing_noise((len(next_obs), 1))), rtol=0, atol=0)


def test_state_dict_restores_the_exploration_state():
    # DQN: the epsilon-greedy generator continues where it was.
    a, b = dqn(rng=np.random.default_rng(1)), dqn(rng=np.random.default_rng(2))
    obs = np.zeros((1, 2), np.float32)
    [a.act(obs, explore=True, step=0) for _ in range(5)]
    b.load_state_dict(a.state_dict())
    assert np.array_equal(np.stack([a.act(obs, True, 0) for _ in range(20)]),
                          np.stack([b.act(obs, True, 0) for _ in range(20)]))
    # TD3 with OU noise: the noise process (its value and its generator) continues too.
    ou = lambda seed: OrnsteinUhlenbeckNoise(1, 1, 0.3, 0.15, np.random.default_rng(seed))  # noqa: E731
    c, d = td3(exploration_noise=ou(1)), td3(exploration_noise=ou(2))
    [c.act(obs, explore=True) for _ in range(5)]
    d.load_state_dict(c.state_dict())
    assert np.array_equal(c.exploration_noise.state, d.exploration_noise.state)
    for _ in range(5):
        assert np.array_equal(c.act(obs, True), d.act(obs, True))


def test_dqn_linear_learning_rate_anneals_to_zero_over_the_planned_updates():
    agent = dqn(lr=1e-2, lr_schedule="linear", total_updates=4)
    b = batch(torch.tensor([0, 1]))
    seen = []
    for _ in range(5):
        agent.update(b)
        seen.append(agent.optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3, 0.0])
    constant = dqn(lr=1e-2)
    constant.update(b)
    assert constant.optimizer.param_groups[0]["lr"] == 1e-2 and constant.learning_rates[0][1](10**6) == 1e-2


def test_td3_linear_schedule_anneals_both_learning_rates_as_every_algorithm_does():
    # one schedule for every algorithm (rlexp.schedules.annealed): DQN's, PPO's, SAC's and TD3's (DDPG's too)
    agent = td3(actor_lr=1e-2, critic_lr=2e-2, lr_schedule="linear", total_updates=4)
    b = batch(torch.zeros(2, 1))
    seen = []
    for _ in range(4):
        agent.update(b)
        seen.append([opt.param_groups[0]["lr"] for opt in (agent.actor_optimizer, agent.critic_optimizer)])
    np.testing.assert_allclose(seen, [[1e-2, 2e-2], [7.5e-3, 1.5e-2], [5e-3, 1e-2], [2.5e-3, 5e-3]])


# --- SAC -----------------------------------------------------------------------------------------------------

def sac(**overrides):
    from rlexp.agents.sac import SAC

    kwargs = dict(hidden_sizes=[8], actor_lr=1e-2, critic_lr=1e-2, ent_coef_lr=0.1, tau=0.5, ent_coef=None,
                  ent_coef_init=0.5, target_entropy=-1.0, n_critics=2, device=CPU)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return SAC(2, np.array([-2.0]), np.array([2.0]), **kwargs)


def test_sac_log_probability_is_the_gaussians_minus_the_squash_correction():
    from rlexp.networks.squashed import squashed_log_prob

    mean, log_std = torch.tensor([[0.3, -1.0]]), torch.tensor([[-0.5, 0.2]])
    u = torch.tensor([[0.9, -2.5]])
    # by hand: sum_i [log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2)]
    sigma = log_std.exp()
    gaussian = -0.5 * ((u - mean) / sigma) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    expected = (gaussian - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(squashed_log_prob(u, mean, log_std), expected)
    # torch's own change of variables agrees
    dist = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, sigma),
                                                       [torch.distributions.TanhTransform()])
    torch.testing.assert_close(squashed_log_prob(u, mean, log_std), dist.log_prob(torch.tanh(u)).sum(-1))
    # where tanh(u) rounds to 1 in float32 the stable form stays finite
    assert torch.isfinite(squashed_log_prob(torch.tensor([[30.0]]), torch.zeros(1, 1), torch.zeros(1, 1))).all()


def test_sac_target_is_the_soft_minimum_of_the_twin_critics_cut_at_termination():
    agent = sac()
    set_constant_output(agent.critic_target, [[[3.0]], [[5.0]]])  # Q1' = 3, Q2' = 5 everywhere
    b = batch(torch.zeros(2, 1))
    state = agent.generator.get_state()
    y = agent.td_target(b, torch.tensor(0.5))
    agent.generator.set_state(state)
    _, next_log_prob = agent.actor.sample(b.next_observations, agent.generator)   # the same draw of a'
    # r + gamma * (1 - d) * (min(3, 5) - alpha * log pi(a'|s'))
    expected = torch.tensor([1.0, -0.5]) + torch.tensor([GAMMA, 0.0]) * (3.0 - 0.5 * next_log_prob)
    torch.testing.assert_close(y, expected)


def test_sac_entropy_tuning_moves_alpha_towards_the_target_entropy():
    # The policy's entropy at initialisation is about 1-2 nats (in [-1, 1]); far below the target alpha rises,
    # far above it alpha falls; Adam's first step moves log(alpha) by the learning rate exactly.
    b = batch(torch.zeros(2, 1))
    for target, sign in ((100.0, +1), (-100.0, -1)):
        agent = sac(target_entropy=target)
        agent.update(b)
        torch.testing.assert_close(agent.log_ent_coef.detach(), torch.tensor(float(np.log(0.5) + sign * 0.1)))
    fixed = sac(ent_coef=0.2)
    metrics = fixed.update(b)
    assert fixed.ent_coef_optimizer is None and float(metrics["losses/ent_coef"]) == pytest.approx(0.2)


def test_sac_acts_with_tanh_of_the_mean_when_evaluating_and_samples_per_env_when_exploring():
    agent = sac()
    set_constant_output(agent.actor.mean, 0.5)
    obs = np.zeros((4, 2), dtype=np.float32)
    np.testing.assert_allclose(agent.act(obs, explore=False), np.full((4, 1), 2.0 * np.tanh(0.5)), rtol=1e-6)
    explored = agent.act(obs, explore=True)
    assert explored.shape == (4, 1) and len(np.unique(explored)) == 4        # each env its own draw
    assert np.all(np.abs(explored) <= 2.0)


def test_sac_state_dict_restores_alpha_the_optimizers_and_the_generator():
    a, b = sac(), sac(actor_lr=1e-3)
    a.update(batch(torch.zeros(2, 1)))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.log_ent_coef, b.log_ent_coef)
    obs = np.zeros((3, 2), dtype=np.float32)
    np.testing.assert_array_equal(a.act(obs, explore=True), b.act(obs, explore=True))   # same next draws
    assert b.actor_optimizer.param_groups[0]["lr"] == 1e-2


def test_sac_linear_schedule_anneals_all_three_learning_rates_to_zero_over_the_planned_updates():
    agent = sac(lr_schedule="linear", total_updates=4)
    b = batch(torch.zeros(2, 1))
    seen = []
    for _ in range(4):
        agent.update(b)
        seen.append([opt.param_groups[0]["lr"] for opt in (agent.actor_optimizer, agent.critic_optimizer,
                                                            agent.ent_coef_optimizer)])
    np.testing.assert_allclose(seen, [[1e-2, 1e-2, 0.1], [7.5e-3, 7.5e-3, 0.075], [5e-3, 5e-3, 0.05],
                                      [2.5e-3, 2.5e-3, 0.025]])
