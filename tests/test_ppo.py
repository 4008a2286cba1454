"""PPO's learning step on hand-made rollouts: it climbs the advantage, stops early on KL, and anneals."""

import numpy as np
import pytest
import torch

from rlexp.agents.ppo import PPO
from rlexp.networks.policies import ActorCriticPolicy
from rlexp.rollouts.storage import RolloutStorage

CPU = torch.device("cpu")


def bandit_rollout(policy: ActorCriticPolicy, generator: torch.Generator, steps: int = 16, envs: int = 4):
    """One-step episodes from the same state: action 0 pays +1, action 1 pays -1."""
    storage = RolloutStorage(steps, envs, (2,), (), discrete=True, device=CPU)
    obs = torch.ones(envs, 2)
    for _ in range(steps):
        actions, log_probs, values = policy.sample(obs, generator)
        rewards = torch.where(actions == 0, 1.0, -1.0)
        ones = torch.ones(envs)
        storage.add(obs, actions, log_probs.detach(), values.detach(), rewards, ones, ones, torch.zeros(envs))
    storage.finish(torch.zeros(envs), 0.99, 0.95)
    return storage


def ppo(policy, **overrides) -> PPO:
    kwargs = dict(lr=3e-3, n_epochs=4, batch_size=16, clip_range=0.2, clip_range_vf=None, ent_coef=0.0, vf_coef=0.5,
                  max_grad_norm=0.5, target_kl=None, normalize_advantage=True, total_rollouts=10, device=CPU,
                  generator=torch.Generator().manual_seed(0))
    kwargs.update(overrides)
    return PPO(policy, **kwargs)


@torch.no_grad()
def prob_of_good_action(policy: ActorCriticPolicy) -> float:
    return float(policy.policy_output(torch.ones(1, 2)).softmax(-1)[0, 0])


def test_learning_raises_the_probability_of_the_action_with_the_higher_advantage():
    torch.manual_seed(0)
    policy = ActorCriticPolicy(2, [16], "tanh", n_actions=2)
    agent = ppo(policy)
    before = prob_of_good_action(policy)
    for _ in range(5):
        metrics = agent.learn(bandit_rollout(policy, agent.generator))
    assert prob_of_good_action(policy) > before + 0.1
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance"):
        assert torch.isfinite(metrics[f"losses/{name}"]), name
    assert agent.n_updates == 5


def test_an_approximate_kl_past_the_target_stops_the_epochs():
    torch.manual_seed(0)
    policy = ActorCriticPolicy(2, [16], "tanh", n_actions=2)
    agent = ppo(policy, lr=0.05, target_kl=1e-9)
    agent.learn(bandit_rollout(policy, agent.generator))
    # the first minibatch starts at ratio 1 (KL 0) and steps; the next one has moved past 1.5 * target: stop
    steps = {int(state["step"]) for state in agent.optimizer.state.values()}
    assert steps == {1}


def test_learning_rate_and_clip_range_anneal_linearly_over_the_rollouts():
    torch.manual_seed(0)
    policy = ActorCriticPolicy(2, [8], "tanh", n_actions=2)
    agent = ppo(policy, lr_schedule="linear", clip_range_schedule="linear", total_rollouts=4)
    seen = []
    for _ in range(3):
        metrics = agent.learn(bandit_rollout(policy, agent.generator, steps=4))
        seen.append((float(metrics["losses/learning_rate"]), float(metrics["losses/clip_range"])))
    np.testing.assert_allclose(seen, [(3e-3, 0.2), (2.25e-3, 0.15), (1.5e-3, 0.1)], rtol=1e-6)


def test_continuous_actions_go_to_the_env_clipped_to_its_bounds():
    torch.manual_seed(0)
    policy = ActorCriticPolicy(3, [8], "tanh", action_dim=1, log_std_init=2.0)   # std e^2: draws past the bounds
    agent = ppo(policy, action_low=np.array([-2.0], np.float32), action_high=np.array([2.0], np.float32))
    actions = agent.act(np.zeros((256, 3), np.float32), explore=True)
    assert actions.min() == -2.0 and actions.max() == 2.0


def test_state_dict_round_trip_continues_the_same_draws():
    torch.manual_seed(0)
    a = ppo(ActorCriticPolicy(2, [8], "tanh", n_actions=3))
    a.learn(bandit_rollout(a.policy, a.generator, steps=4))
    b = ppo(ActorCriticPolicy(2, [8], "tanh", n_actions=3), generator=torch.Generator().manual_seed(5))
    b.load_state_dict(a.state_dict())
    obs = np.ones((64, 2), np.float32)
    np.testing.assert_array_equal(a.act(obs, explore=True), b.act(obs, explore=True))
    assert b.n_updates == 1


def test_a_rollout_already_past_target_kl_at_its_first_minibatch_steps_nothing_and_reports_that_minibatch():
    # target_kl is checked on each minibatch before its step. A rollout whose actions the policy now takes e times as
    # often as when it acted (log-probabilities 1 lower) is past the target at the first minibatch of the first
    # epoch: no minibatch steps, and the metrics are that minibatch's (its KL says why), with no gradient applied.
    torch.manual_seed(0)
    policy = ActorCriticPolicy(2, [16], "tanh", n_actions=2)
    agent = ppo(policy, target_kl=0.01)
    rollout = bandit_rollout(policy, agent.generator)
    rollout.log_probs -= 1.0
    before = [p.detach().clone() for p in policy.parameters()]
    metrics = agent.learn(rollout)
    assert not agent.optimizer.state   # no step
    assert all(torch.equal(p, q) for p, q in zip(policy.parameters(), before))
    for name, value in metrics.items():
        assert torch.isfinite(value), name
    assert float(metrics["losses/approx_kl"]) == pytest.approx(np.e - 2, rel=1e-5)   # E[(r - 1) - log r], r = e
    assert float(metrics["losses/clip_fraction"]) == 1.0 and float(metrics["losses/grad_norm"]) == 0.0
    assert agent.n_updates == 1
