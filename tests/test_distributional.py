"""DQN's distributional values (C51's projection and cross-entropy, QR-DQN's quantile Huber loss) and noisy
networks, against hand-computed numbers and the papers' definitions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlexp.agents.distributional import CategoricalReturn, categorical_projection, quantile_huber_loss
from rlexp.agents.dqn import DQN
from rlexp.agents.registry import algorithms
from rlexp.commands.train import resolved_config
from rlexp.config.validate import validate
from rlexp.networks.members import stack_members
from rlexp.networks.noisy import NoisyLinear, clear_noise, sample_noise, scaled_noise
from rlexp.networks.q import CategoricalHead, DuelingQNetwork, QNetwork, QuantileHead
from rlexp.replay.batch import ReplayBatch
from tests.conftest import compose_config

CPU = torch.device("cpu")
SUPPORT = torch.tensor([-1.0, 0.0, 1.0])   # dz = 1


def test_the_projection_splits_each_points_mass_between_its_two_neighbouring_atoms():
    # r = 0.5, gamma = 1: the points Tz = -0.5, 0.5, 1.5 (clipped to 1) carry p = 0.2, 0.3, 0.5.
    projected = categorical_projection(0.5 + SUPPORT, torch.tensor([0.2, 0.3, 0.5]), SUPPORT)
    torch.testing.assert_close(projected, torch.tensor([0.1, 0.1 + 0.15, 0.15 + 0.5]))


def test_a_terminal_transition_projects_the_reward_alone_and_mass_on_an_atom_stays_there():
    # gamma = 0: every point is r = 0.3, 70% of the way from atom 0 to atom 1... 30%: 0.7 on z=0, 0.3 on z=1
    terminal = categorical_projection(0.3 + 0.0 * SUPPORT, torch.tensor([0.2, 0.3, 0.5]), SUPPORT)
    torch.testing.assert_close(terminal, torch.tensor([0.0, 0.7, 0.3]))
    on_atoms = categorical_projection(SUPPORT.clone(), torch.tensor([0.2, 0.3, 0.5]), SUPPORT)
    torch.testing.assert_close(on_atoms, torch.tensor([0.2, 0.3, 0.5]))


def test_the_categorical_target_and_loss_over_a_batch_with_a_member_axis():
    returns = CategoricalReturn(SUPPORT)
    batch = ReplayBatch(observations=torch.zeros(2, 1, 1), actions=torch.zeros(2, 1, dtype=torch.long),
                        rewards=torch.tensor([[0.5], [0.3]]), next_observations=torch.zeros(2, 1, 1),
                        discounts=torch.tensor([[1.0], [0.0]]), indices=torch.zeros(2, 1, dtype=torch.long))
    next_logits = torch.tensor([0.2, 0.3, 0.5]).log().expand(2, 1, 3)
    target = returns.target(batch, next_logits)
    torch.testing.assert_close(target, torch.tensor([[[0.1, 0.25, 0.65]], [[0.0, 0.7, 0.3]]]))
    logits = torch.randn(2, 1, 3)
    loss, priority = returns.loss(logits, target)
    expected = -(target * F.log_softmax(logits, dim=-1)).sum(-1)   # the cross-entropy, each transition's
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(priority, expected)


def test_the_categorical_head_values_a_distribution_by_its_mean():
    head = CategoricalHead(3, -1.0, 1.0)
    logits = torch.tensor([0.2, 0.3, 0.5]).log()
    torch.testing.assert_close(head.q_values(logits), torch.tensor(-0.2 + 0.5))


def test_the_quantile_huber_loss_by_hand():
    # quantiles 0 and 1 at tau = 1/4 and 3/4; one target sample 0.5: u = 0.5 and -0.5, Huber 0.125 each,
    # weighted |1/4 - 0| and |3/4 - 1|: 1/32 each, summed over the quantiles
    torch.testing.assert_close(quantile_huber_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.5])),
                               torch.tensor(1 / 16))
    # past kappa = 1 the Huber loss is linear: u = 3 -> 2.5, weighted |1/2 - 0|
    torch.testing.assert_close(quantile_huber_loss(torch.tensor([0.0]), torch.tensor([3.0])), torch.tensor(1.25))
    # the mean over the target samples: two samples 3 and -3 around one quantile at tau 1/2
    torch.testing.assert_close(quantile_huber_loss(torch.tensor([0.0]), torch.tensor([3.0, -3.0])),
                               torch.tensor(1.25))


def test_minimising_the_quantile_loss_finds_the_quantiles_of_the_target_samples():
    # U[0, 100]: the quantile at tau is 100 tau. (Near a sample, within kappa = 1, the Huber loss is quadratic,
    # which moves the minimum by less than kappa.)
    samples = torch.linspace(0.0, 100.0, 401)
    theta = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=1.0)
    for _ in range(800):
        optimizer.zero_grad()
        quantile_huber_loss(theta, samples).backward()
        optimizer.step()
    torch.testing.assert_close(theta.detach(), torch.tensor([12.5, 37.5, 62.5, 87.5]), atol=0.5, rtol=0)


def test_a_noisy_layer_is_its_mean_weights_without_noise_and_factorised_noise_with_it():
    torch.manual_seed(0)
    layer = NoisyLinear(3, 2, sigma0=0.5)
    torch.testing.assert_close(layer.weight_sigma, torch.full((2, 3), 0.5 / 3 ** 0.5))
    x = torch.randn(5, 3)
    assert torch.equal(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu))
    generator = torch.Generator().manual_seed(3)
    layer.sample_noise(generator)
    draws = torch.Generator().manual_seed(3)
    eps_in, eps_out = scaled_noise(torch.randn(3, generator=draws)), scaled_noise(torch.randn(2, generator=draws))
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(eps_out, eps_in)
    torch.testing.assert_close(layer(x), F.linear(x, weight, layer.bias_mu + layer.bias_sigma * eps_out))
    clear_noise(layer)
    assert torch.equal(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu))


def test_stacked_noisy_layers_draw_each_members_noise_from_its_own_generator():
    torch.manual_seed(1)
    layers = [NoisyLinear(3, 2) for _ in range(2)]
    alone = [NoisyLinear(3, 2) for _ in range(2)]
    for mine, theirs in zip(alone, layers):
        mine.load_state_dict(theirs.state_dict())
    stacked = stack_members(layers, "the Q-network")
    sample_noise(stacked, [torch.Generator().manual_seed(k) for k in range(2)])
    x = torch.randn(2, 4, 3)
    out = stacked(x)
    for k in range(2):
        alone[k].sample_noise(torch.Generator().manual_seed(k))
        torch.testing.assert_close(out[k], alone[k](x[k]))


@pytest.mark.parametrize("network", [QNetwork, DuelingQNetwork])
def test_distributional_networks_output_atoms_per_action_and_value_their_mean(network):
    torch.manual_seed(0)
    categorical = network(4, 3, [8, 8], head=CategoricalHead(5, -2.0, 2.0))
    obs = torch.randn(6, 4)
    logits = categorical.outputs(obs)
    assert logits.shape == (6, 3, 5)
    torch.testing.assert_close(categorical(obs), (logits.softmax(-1) * torch.linspace(-2, 2, 5)).sum(-1))
    quantiles = network(4, 3, [8, 8], head=QuantileHead(7))
    assert quantiles.outputs(obs).shape == (6, 3, 7)
    torch.testing.assert_close(quantiles(obs), quantiles.outputs(obs).mean(-1))


def noisy_agent(**overrides) -> DQN:
    torch.manual_seed(0)
    kwargs = dict(hidden_sizes=[16], lr=1e-3, tau=1.0, target_update_interval=1, exploration_fraction=0.5,
                  exploration_initial_eps=1.0, exploration_final_eps=1.0, max_grad_norm=10.0, lr_schedule="constant",
                  total_steps=100, total_updates=50, device=CPU, rng=np.random.default_rng(0), noisy_sigma=0.5)
    return DQN(4, 3, **{**kwargs, **overrides})


def test_noisy_nets_explore_through_their_weights_with_epsilon_off_and_act_on_their_means_otherwise():
    agent = noisy_agent()
    assert agent.exploration_metrics(0) == {"charts/epsilon": 0.0}   # whatever the exploration_* keys say
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    greedy = agent.act(obs, explore=False)
    np.testing.assert_array_equal(greedy, agent.q_network(torch.as_tensor(obs)).argmax(-1).numpy())
    explored = [agent.act(obs, explore=True) for _ in range(2)]
    assert (explored[0] != greedy).any() and (explored[0] != explored[1]).any()   # new noise at every step
    np.testing.assert_array_equal(agent.act(obs, explore=False), greedy)
    # the generator is the agent's state: an agent loaded from it explores alike
    other = noisy_agent()
    other.load_state_dict(agent.state_dict())
    np.testing.assert_array_equal(other.act(obs, explore=True), agent.act(obs, explore=True))


def test_rainbows_atari_networks_of_many_seeds_stack_and_value_as_each_alone():
    """The Nature convolutions (grouped), noisy dueling streams and C51's atoms, stacked over seeds: each seed's
    distribution as its own network gives it, with its own noise."""
    frames = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    networks = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        networks.append(DuelingQNetwork(0, 4, [], image_shape=(4, 84, 84), head=CategoricalHead(5, -1.0, 1.0),
                                        linear=lambda i, o: NoisyLinear(i, o, 0.1)))
    alone = [copy.deepcopy(network) for network in networks]
    stacked = stack_members(networks, "the Q-network")
    sample_noise(stacked, [torch.Generator().manual_seed(k) for k in (0, 1)])
    together = stacked.outputs(frames)
    assert together.shape == (2, 3, 4, 5)
    for k in (0, 1):
        sample_noise(alone[k], torch.Generator().manual_seed(k))
        torch.testing.assert_close(together[k], alone[k].outputs(frames[k]), rtol=1e-4, atol=1e-5)


def test_experiment_der_is_data_efficient_rainbow_on_any_atari_game():
    config = resolved_config(compose_config(["experiment=der", "env.id=ALE/Breakout-v5"]))
    assert validate(config, algorithms()).name == "rainbow"
    algo = config["algo"]
    assert config["total_steps"] == 100_000 and config["env"]["id"] == "ALE/Breakout-v5"
    assert (algo["train_freq"], algo["learning_starts"], algo["target_update_interval"], algo["n_step"]) == \
        (1, 1600, 2000, 10)
    assert (algo["lr"], algo["adam_eps"], algo["noisy_sigma"], algo["distribution"], algo["atoms"]) == \
        (1e-4, 1.5e-4, 0.1, "categorical", 51)
    assert algo["double"] and algo["dueling"] and algo["prioritized"] and algo["noisy"]
    assert config["env"]["atari"]["terminal_on_life_loss"] and config["eval"]["episodes"] == 100
