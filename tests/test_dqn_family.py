"""DQN's improvements, each pinned against a hand-computed example, and every combination run end to end."""

import itertools

import numpy as np
import pytest
import torch

from rlexp.networks.q import DuelingQNetwork
from rlexp.replay import PrioritizedReplayBuffer, ReplayBatch, ReplayBuffer
from tests.conftest import algo_config
from tests.test_agents import batch, dqn, set_constant_output

CPU = torch.device("cpu")


# --- double DQN ---------------------------------------------------------------------------------------------

def test_double_dqn_lets_the_online_network_pick_and_the_target_network_value():
    vanilla, double = dqn(), dqn(double=True)
    for agent in (vanilla, double):
        set_constant_output(agent.q_network, [5.0, 0.0, 1.0])       # online: argmax is action 0
        set_constant_output(agent.target_network, [1.0, 4.0, 2.0])  # target: max is 4 (action 1)
    b = batch(torch.tensor([0, 2]))
    # DQN: 1 + 0.9 * max(1, 4, 2) = 4.6; double DQN: 1 + 0.9 * Q'(s', argmax Q(s', .) = 0) = 1 + 0.9 * 1 = 1.9
    torch.testing.assert_close(vanilla.td_target(b), torch.tensor([[4.6], [-0.5]]))   # (batch, atoms = 1)
    torch.testing.assert_close(double.td_target(b), torch.tensor([[1.9], [-0.5]]))


# --- dueling ------------------------------------------------------------------------------------------------

def test_dueling_aggregates_value_and_mean_centred_advantages():
    net = DuelingQNetwork(2, 3, [8, 8])
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.value.bias.fill_(2.0)                                  # V(s) = 2
        net.advantage.bias.copy_(torch.tensor([1.0, 2.0, 6.0]))    # A(s, .) = (1, 2, 6), mean 3
    torch.testing.assert_close(net(torch.randn(4, 2)), torch.tensor([[0.0, 1.0, 5.0]]).expand(4, 3))
    agent = dqn(dueling=True)
    assert isinstance(agent.q_network, DuelingQNetwork) and isinstance(agent.target_network, DuelingQNetwork)


# --- losses -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss, expected", [("huber", 0.3125), ("mse", 0.625)])
def test_huber_and_squared_losses(loss, expected):
    agent = dqn(loss=loss)
    set_constant_output(agent.q_network, [0.0, 0.0, 0.0])
    set_constant_output(agent.target_network, [0.0, 0.0, 0.0])
    # targets (1, -0.5) against Q = 0: Huber mean(0.5 * 1, 0.5 * 0.25) = 0.3125; squared mean(1, 0.25) = 0.625
    assert float(agent.update(batch(torch.tensor([1, 2])))["losses/td_loss"]) == pytest.approx(expected)


def test_importance_weights_scale_each_sample_and_td_errors_are_reported():
    reported = []
    agent = dqn(report_td_errors=lambda indices, errors: reported.append((indices, errors)))
    set_constant_output(agent.q_network, [0.0, 0.0, 0.0])
    set_constant_output(agent.target_network, [0.0, 0.0, 0.0])
    weighted = batch(torch.tensor([1, 2]))._replace(weights=torch.tensor([2.0, 0.0]))
    # Huber per sample (0.5, 0.125), weighted (1.0, 0): mean 0.5
    assert float(agent.update(weighted)["losses/td_loss"]) == pytest.approx(0.5)
    (indices, errors), = reported
    torch.testing.assert_close(indices, torch.tensor([0, 1]))
    torch.testing.assert_close(errors, torch.tensor([1.0, -0.5]))  # delta = y - Q(s, a), before the update


# --- n-step returns -----------------------------------------------------------------------------------------

def add_one(buffer: ReplayBuffer, obs: float, reward: float, next_obs: float, terminated: bool,
            truncated: bool = False) -> None:
    """One transition of a single env (a row of one), action 0."""
    buffer.add(np.array([[obs]], np.float32), np.zeros(1, np.int64), np.array([reward], np.float32),
               np.array([[next_obs]], np.float32), np.array([terminated]), np.array([truncated]))


def filled(n_step: int, gamma: float, rewards, terminated=(), truncated=(), capacity: int = 16) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, (1,), (), True, CPU, seed=0, n_step=n_step, gamma=gamma)
    for t, r in enumerate(rewards):
        add_one(buffer, t, r, t + 1, t in terminated, t in truncated)
    return buffer


def at(buffer: ReplayBuffer, *starts: int) -> ReplayBatch:
    return buffer.batch_at(torch.tensor(starts))


def test_n_step_return_stops_at_a_termination_without_bootstrapping():
    b = at(filled(3, 0.5, [1, 2, 4, 8, 16, 32], terminated={1}), 0, 1, 2)
    # from t=0: 1 + 0.5 * 2 = 2, the episode terminates at t=1: no bootstrap
    # from t=1: 2, terminal; from t=2 (next episode): 4 + 0.5 * 8 + 0.25 * 16 = 12, bootstrap from s_5 with 0.5^3
    torch.testing.assert_close(b.rewards, torch.tensor([2.0, 2.0, 12.0]))
    torch.testing.assert_close(b.discounts, torch.tensor([0.0, 0.0, 0.125]))
    torch.testing.assert_close(b.next_observations[:, 0], torch.tensor([2.0, 2.0, 5.0]))
    torch.testing.assert_close(b.observations[:, 0], torch.tensor([0.0, 1.0, 2.0]))


def test_n_step_return_at_a_time_limit_bootstraps_from_the_last_state():
    b = at(filled(3, 0.5, [1, 2, 4, 8, 16], truncated={3}), 2, 3)
    # from t=2: 4 + 0.5 * 8 = 8, truncated at t=3: bootstrap from s_4 with 0.5^2 (a time limit is not terminal)
    torch.testing.assert_close(b.rewards, torch.tensor([8.0, 8.0]))
    torch.testing.assert_close(b.discounts, torch.tensor([0.25, 0.5]))  # not cut to 0: not terminal
    torch.testing.assert_close(b.next_observations[:, 0], torch.tensor([4.0, 4.0]))


def test_n_step_return_stops_at_the_newest_transition_and_across_the_ring():
    buffer = filled(3, 0.5, [1, 2, 4, 8, 16, 32], capacity=4)  # holds t = 2..5 in slots 2, 3, 0, 1
    b = at(buffer, 1, 0, 3)  # slot 1 = t=5 (newest), slot 0 = t=4, slot 3 = t=3
    torch.testing.assert_close(b.rewards, torch.tensor([32.0, 16 + 0.5 * 32, 8 + 0.5 * 16 + 0.25 * 32]))
    torch.testing.assert_close(b.discounts, torch.tensor([0.5, 0.25, 0.125]))
    torch.testing.assert_close(b.next_observations[:, 0], torch.tensor([6.0, 6.0, 6.0]))


def test_n_step_windows_stay_in_their_own_envs_stream():
    # Two envs stepping together: env 0 earns 1, 2, 4, 8; env 1 earns 10, 20, 40, 80 and terminates at t=1.
    buffer = ReplayBuffer(16, (1,), (), True, CPU, seed=0, num_envs=2, n_step=3, gamma=0.5)
    for t in range(4):
        buffer.add(np.array([[t], [100 + t]], np.float32), np.zeros(2, np.int64),
                   np.array([2**t, 10 * 2**t], np.float32), np.array([[t + 1], [101 + t]], np.float32),
                   np.array([False, t == 1]), np.zeros(2, bool))
    b = at(buffer, 0, 1, 4, 5)  # slot = row * 2 + env: (t=0, env 0), (t=0, env 1), (t=2, env 0), (t=2, env 1)
    # env 0 from t=0: 1 + 0.5 * 2 + 0.25 * 4 = 3, bootstrap from s_3 with 0.5^3; env 1 from t=0: 10 + 0.5 * 20 = 20,
    # terminal; env 0 from t=2: 4 + 0.5 * 8 = 8 (the newest row), bootstrap from s_4; env 1 from t=2: 40 + 40 = 80
    torch.testing.assert_close(b.rewards, torch.tensor([3.0, 20.0, 8.0, 80.0]))
    torch.testing.assert_close(b.discounts, torch.tensor([0.125, 0.0, 0.25, 0.25]))
    torch.testing.assert_close(b.next_observations[:, 0], torch.tensor([3.0, 102.0, 4.0, 104.0]))
    torch.testing.assert_close(b.observations[:, 0], torch.tensor([0.0, 100.0, 2.0, 102.0]))


def test_one_step_batches_are_the_plain_transition():
    b = at(filled(1, 0.9, [1, 2, 3], terminated={2}), 0, 2)
    torch.testing.assert_close(b.rewards, torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(b.discounts, torch.tensor([0.9, 0.0]))


# --- prioritized replay -------------------------------------------------------------------------------------

def prioritized(alpha: float, beta0: float, total_updates: int = 10) -> PrioritizedReplayBuffer:
    buffer = PrioritizedReplayBuffer(8, (1,), (), True, CPU, seed=0, alpha=alpha, beta0=beta0, eps=1e-6,
                                     total_updates=total_updates)
    for t in range(4):
        add_one(buffer, t, float(t), t + 1, False)
    return buffer


def test_new_transitions_get_the_maximal_priority():
    buffer = prioritized(alpha=1.0, beta0=0.4)
    buffer.sample(2)
    assert buffer.tree.get(torch.arange(4)).tolist() == [1.0] * 4   # max priority starts at 1
    buffer.update_priorities(torch.arange(4), torch.tensor([1.0, -3.0, 2.0, 6.0]))
    add_one(buffer, 9, 9.0, 10, False)
    buffer.sample(2)
    assert buffer.tree.get(torch.tensor([4])).item() == pytest.approx(6.0 + 1e-6)  # the largest |delta| + eps


def test_priorities_are_td_error_sizes_to_the_alpha_and_sampling_follows_them():
    buffer = prioritized(alpha=0.5, beta0=0.4)
    buffer.update_priorities(torch.arange(4), torch.tensor([1.0, -4.0, 9.0, 0.0]))
    p = (np.array([1.0, 4.0, 9.0, 0.0]) + 1e-6) ** 0.5
    np.testing.assert_allclose(buffer.tree.get(torch.arange(4)).numpy(), p)
    counts = np.bincount(torch.cat([buffer.sample(64).indices for _ in range(500)]).numpy(), minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), p / p.sum(), atol=0.01)


def test_importance_weights_are_normalised_by_the_largest_and_beta_anneals_to_one():
    buffer = prioritized(alpha=1.0, beta0=0.4, total_updates=2)
    buffer.update_priorities(torch.arange(4), torch.tensor([1.0, 3.0, 2.0, 6.0]) - 1e-6)  # p = 1, 3, 2, 6
    p = np.array([1.0, 3.0, 2.0, 6.0])
    for beta in (0.4, 0.7, 1.0, 1.0):  # w_i = (N P(i))^-beta / max_k w_k = (p_i / min_k p_k)^-beta
        b = buffer.sample(32)
        np.testing.assert_allclose(b.weights.numpy(), (p[b.indices.numpy()] / p.min()) ** -beta, rtol=1e-5)
    assert buffer.n_samples == 4


def test_prioritized_state_round_trip_continues_exactly():
    a = prioritized(alpha=0.6, beta0=0.4)
    a.update_priorities(torch.arange(4), torch.tensor([1.0, 3.0, 2.0, 6.0]))
    add_one(a, 7, 7.0, 8, False)
    b = prioritized(alpha=0.6, beta0=0.4)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        x, y = a.sample(16), b.sample(16)
        assert torch.equal(x.indices, y.indices) and torch.equal(x.weights, y.weights)


# --- every combination, end to end --------------------------------------------------------------------------

#: the other switches, taken in turn across the combinations above: (distribution, noisy)
HEADS = list(itertools.product(["expected", "categorical", "quantile"], [False, True]))


@pytest.mark.parametrize("case, double, dueling, n_step, prioritized_", [
    (i, *switches) for i, switches in enumerate(itertools.product([False, True], [False, True], [1, 3],
                                                                  [False, True]))])
def test_every_combination_learns_without_error(case, double, dueling, n_step, prioritized_):
    from rlexp.agents import registry
    from rlexp.agents.base import BuildContext
    from rlexp.envs import describe_spaces, make_env
    from rlexp.replay import Priorities, make_replay
    from rlexp.runners.off_policy import planned_updates

    algo = {"name": "dqn", "gamma": 0.99, "batch_size": 16, "buffer_size": 500, "learning_starts": 50,
            "train_freq": 1, "train_freq_unit": "step", "gradient_steps": 1, "n_step": n_step,
            "prioritized": prioritized_,
            "priority_alpha": 0.6, "priority_beta0": 0.4, "priority_eps": 1e-6, "lr": 1e-3, "lr_schedule": "linear",
            "tau": 0.01, "target_update_interval": 1, "exploration_fraction": 0.5, "exploration_initial_eps": 1.0,
            "exploration_final_eps": 0.05, "max_grad_norm": 10.0, "double": double, "dueling": dueling,
            "distribution": HEADS[case % 6][0], "noisy": HEADS[case % 6][1], "noisy_sigma": 0.5, "atoms": 11,
            "v_min": -10.0, "v_max": 10.0, "quantiles": 8, "adam_eps": 1e-8,
            "loss": "mse" if HEADS[case % 6][0] == "expected" else "huber"}
    env = make_env("CartPole-v1")
    spaces = describe_spaces(env.observation_space, env.action_space, "CartPole-v1")
    spec = registry.get("dqn")
    registry.check_fits(spec, spaces)
    updates = planned_updates(algo_config(spec.schema, algo), 200, 1)
    buffer = make_replay(capacity=min(algo["buffer_size"], 200), obs_shape=spaces.obs_shape,
                         action_shape=spaces.action_shape, discrete=spaces.discrete, image=spaces.frames, device=CPU,
                         seed=0, num_envs=1, n_step=n_step, gamma=algo["gamma"],
                         priorities=Priorities(algo["priority_alpha"], algo["priority_beta0"], algo["priority_eps"],
                                               updates) if prioritized_ else None)
    agent = spec.build(algo_config(spec.schema, algo), BuildContext(
        spaces=spaces, hidden_sizes=(16, 16), total_steps=200, planned_updates=updates, num_envs=1, device=CPU, seed=0,
        replay=buffer))
    obs, _ = env.reset(seed=0)
    for step in range(1, 201):
        action = agent.act(obs[None], explore=True, step=step)[0]
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs[None], np.array([action]), np.array([reward], np.float32), next_obs[None],
                   np.array([terminated]), np.array([truncated]))
        obs = env.reset()[0] if terminated or truncated else next_obs
        if step > 50:
            metrics = agent.update(buffer.sample(16))
    assert all(torch.isfinite(v) for v in metrics.values())
    assert isinstance(buffer, PrioritizedReplayBuffer) == prioritized_ and buffer.n_step == n_step


# (All six switches together from the command line: algo=rainbow's seeds, killed and resumed in tests/test_seeds.py.)
