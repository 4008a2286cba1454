"""The on-policy runner's rollouts on real envs: what each step bootstraps from at a time limit and at a
termination, and the normalization of observations and rewards (hand-computed)."""

import numpy as np
import pytest
import torch

from rlexp.agents import a2c, ppo
from rlexp.agents.base import BuildContext
from rlexp.envs import describe_spaces, make_env, make_vector_env
from rlexp.envs.normalization import Normalization, NormalizeSettings, RunningMeanStd
from rlexp.rollouts.storage import RolloutStorage
from rlexp.runners.collector import Collector
from rlexp.runners.faults import NonFiniteGuard
from rlexp.runners.on_policy import OnPolicyRunner, OnPolicySettings, planned_steps
from rlexp.runners.requests import serve
from tests.conftest import algo_config

CPU = torch.device("cpu")
ALGO = dict(lr=3e-4, lr_schedule="constant", ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True,
            gamma=0.9, gae_lambda=0.8, log_std_init=0.0, ortho_init=True, n_epochs=1, batch_size=4, clip_range=0.2,
            clip_range_schedule="constant", clip_range_vf=None, target_kl=None, use_sde=False, sde_sample_freq=-1)


class Episodes:
    """The run context's part the collecting step reports to."""

    def __init__(self):
        self.guard, self.returns = NonFiniteGuard(), []

    def episodes_ended(self, returns, lengths, step):
        self.returns += list(returns)


class Recording(Collector):
    """A collector that keeps what each step returned, to compute the expected targets by hand."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = []

    def receive(self, step):
        t = super().receive(step)
        self.steps.append(t)
        return t


def rollout(env_id: str, n_steps: int, num_envs: int, kwargs: dict | None = None):
    """A PPO agent's rollout of n_steps vector steps, as the runner collects it."""
    torch.manual_seed(0)
    env = make_env(env_id, kwargs)
    spaces = describe_spaces(env.observation_space, env.action_space, env_id)
    agent = ppo.build(algo_config(ppo.PPOConfig, {**ALGO, "n_steps": n_steps}), BuildContext(
        spaces=spaces, hidden_sizes=(16,), total_steps=1000, planned_updates=0, num_envs=num_envs, device=CPU, seed=0,
        activation="tanh"))
    collector = Recording(make_vector_env(env_id, kwargs or {}, None, num_envs, "sync"), 0, env_id)
    storage = RolloutStorage(n_steps, num_envs, spaces.obs_shape, spaces.action_shape, spaces.discrete, CPU)
    runner = OnPolicyRunner(agent, collector, storage, OnPolicySettings(n_steps * num_envs, n_steps, num_envs,
                                                                        ALGO["gamma"], ALGO["gae_lambda"]),
                            Episodes())
    collector.start()
    for t in range(n_steps):
        serve(runner.collect((t + 1) * num_envs), agent)   # the calls it makes, answered by the agent
    return agent, collector, storage


def value(agent, obs) -> torch.Tensor:
    return agent.values(torch.as_tensor(np.asarray(obs), dtype=torch.float32))


def test_a_time_limit_bootstraps_from_the_final_observation_and_ends_the_advantage_sum():
    # Pendulum never terminates: with a 5-step limit, steps 4 and 9 of each env are truncated
    agent, collector, storage = rollout("Pendulum-v1", 8, 2, {"max_episode_steps": 5})
    truncated = np.array([t.truncations for t in collector.steps])
    assert truncated[:, 0].tolist() == [False] * 4 + [True] + [False] * 3 and (truncated[:, 0] == truncated[:, 1]).all()
    assert storage.terminations.sum() == 0 and storage.episode_ends[4].tolist() == [1.0, 1.0]
    t = collector.steps[4]
    # the final observation of the truncated episode, not the next episode's first one
    assert not np.allclose(t.next_obs, collector.steps[5].obs)
    torch.testing.assert_close(storage.next_values[4], value(agent, t.next_obs))
    for step in (0, 1, 2, 3, 5, 6):   # an env that went on bootstraps from its next state's stored value
        torch.testing.assert_close(storage.next_values[step], storage.values[step + 1])

    last = value(agent, collector.obs)
    storage.finish(last, ALGO["gamma"], ALGO["gae_lambda"])
    gamma, lam = ALGO["gamma"], ALGO["gae_lambda"]
    r, v = storage.rewards, storage.values
    delta4 = r[4] + gamma * value(agent, t.next_obs) - v[4]
    torch.testing.assert_close(storage.advantages[4], delta4)           # no sum over the next episode
    delta7 = r[7] + gamma * last - v[7]
    torch.testing.assert_close(storage.advantages[7], delta7)           # the rollout's cut bootstraps from V(s_T)
    delta3 = r[3] + gamma * v[4] - v[3]
    torch.testing.assert_close(storage.advantages[3], delta3 + gamma * lam * delta4)
    torch.testing.assert_close(storage.returns, storage.advantages + v)


def test_a_termination_bootstraps_from_nothing():
    agent, collector, storage = rollout("CartPole-v1", 64, 1)
    ends = [i for i, t in enumerate(collector.steps) if t.terminations[0]]
    assert ends, "a random CartPole policy falls within 64 steps"
    storage.finish(value(agent, collector.obs), ALGO["gamma"], ALGO["gae_lambda"])
    for i in ends:
        torch.testing.assert_close(storage.advantages[i], storage.rewards[i] - storage.values[i])


def test_a_rollout_is_on_the_training_device_and_budgets_are_whole_rollouts():
    _, _, storage = rollout("CartPole-v1", 4, 2)
    assert storage.observations.device == CPU and storage.full
    assert planned_steps(100_000, 32, 8) == 100_096 and planned_steps(512, 32, 8) == 512


def test_a2c_descends_the_policy_gradient_of_the_advantage():
    torch.manual_seed(0)
    env = make_env("CartPole-v1")
    spaces = describe_spaces(env.observation_space, env.action_space, "CartPole-v1")
    agent = a2c.build(algo_config(a2c.A2CConfig, {**ALGO, "n_steps": 4, "optimizer": "adam", "rms_prop_eps": 1e-5,
                                                  "normalize_advantage": False}),
                      BuildContext(spaces=spaces, hidden_sizes=(8,), total_steps=100, planned_updates=0, num_envs=1,
                                   device=CPU, seed=0, activation="tanh"))
    log_prob = torch.tensor([-0.5, -1.0], requires_grad=True)
    loss = agent.policy_loss(log_prob, log_prob.detach(), torch.tensor([2.0, -1.0]), 0.2)
    assert float(loss.loss.detach()) == pytest.approx(-(2.0 * -0.5 + -1.0 * -1.0) / 2)
    loss.loss.backward()
    assert log_prob.grad.tolist() == [-1.0, 0.5]   # d/dlogpi of -mean(A logpi)
    # the whole rollout is one minibatch, learned from once
    assert agent.n_epochs == 1 and agent.batch_size == 4


def test_running_mean_and_variance_match_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)) for n in (1, 7, 30)]
    stats = RunningMeanStd((3,))
    for batch in batches:
        stats.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, everything.var(0), rtol=1e-4)


def test_observations_and_rewards_are_normalized_as_vecnormalize_does():
    norm = Normalization(NormalizeSettings(obs=True, reward=True, clip_obs=5.0, clip_reward=10.0, gamma=0.5), (1,), 2)
    obs = norm.observations(np.array([[1.0], [3.0]]), update=True)
    # statistics after the batch: mean ~2, var ~1 (count 1e-4 + 2)
    np.testing.assert_allclose(obs, [[-1.0], [1.0]], atol=1e-3)
    frozen = norm.observations(np.array([[100.0]]), update=False)
    assert frozen.tolist() == [[5.0]] and norm.obs_rms.count == pytest.approx(2.0001)   # clipped, not learned from
    scaled = norm.rewards(np.array([1.0, 2.0]), ended=np.array([False, True]))
    # G = [1, 2] (first step): var(G) over the batch = 0.25, plus the prior's weight
    expected = np.array([1.0, 2.0]) / np.sqrt(norm.return_rms.var + 1e-8)
    np.testing.assert_allclose(scaled, expected, rtol=1e-6)
    assert norm.returns.tolist() == [1.0, 0.0]        # the ended env's discounted return starts again
    norm.rewards(np.array([4.0, 4.0]), ended=np.array([False, False]))
    assert norm.returns.tolist() == [0.5 * 1.0 + 4.0, 4.0]
    copy = Normalization(norm.settings, (1,), 2)
    copy.load_state_dict(norm.state_dict())
    assert copy.observations(np.array([[2.5]]), False) == norm.observations(np.array([[2.5]]), False)
    assert copy.returns.tolist() == norm.returns.tolist()


def test_the_collector_hands_normalized_observations_and_final_observations_but_reports_raw_returns():
    settings = NormalizeSettings(obs=True, reward=True, clip_obs=10.0, clip_reward=10.0, gamma=0.99)
    kwargs = {"max_episode_steps": 3}
    plain = Collector(make_vector_env("Pendulum-v1", kwargs, None, 2, "sync"), 0, "Pendulum-v1")
    norm, reference = Normalization(settings, (3,), 2), Normalization(settings, (3,), 2)
    normed = Collector(make_vector_env("Pendulum-v1", kwargs, None, 2, "sync"), 0, "Pendulum-v1", norm)
    plain.start(), normed.start()
    reference.observations(plain.obs, update=True)
    for step in range(3):
        actions = np.full((2, 1), 0.5 * step, np.float32)
        plain.send(actions), normed.send(actions)
        raw, t = plain.receive(2 * (step + 1)), normed.receive(2 * (step + 1))
        reference.observations(plain.obs, update=True)   # the statistics learn from the returned observations
        np.testing.assert_allclose(t.rewards, reference.rewards(raw.rewards, raw.ended), rtol=1e-6)
        np.testing.assert_allclose(normed.obs, reference.observations(plain.obs, update=False), rtol=1e-6)
    assert t.ended.all()
    # the final observations (what a truncated step bootstraps from) are normalized too, not the reset ones
    np.testing.assert_allclose(t.next_obs, reference.observations(raw.next_obs, update=False), rtol=1e-6)
    assert not np.allclose(t.next_obs, normed.obs)
    # logged returns are the envs' raw returns
    assert t.episode_returns.tolist() == raw.episode_returns.tolist() and (t.episode_returns < -0.1).all()
    plain.close(), normed.close()


def test_an_undefined_explained_variance_is_nan_and_not_taken_for_divergence():
    from rlexp.runners.context import RunContext

    torch.manual_seed(0)
    agent, collector, storage = rollout("CartPole-v1", 4, 2)
    storage.finish(torch.zeros(2), ALGO["gamma"], ALGO["gae_lambda"])
    storage.returns = torch.ones_like(storage.returns)      # returns that do not vary: nothing to explain
    metrics = agent.learn(storage)
    assert torch.isnan(metrics["losses/explained_variance"])
    assert all(value.device == CPU for value in metrics.values())   # every metric on the training device
    context = RunContext(*[None] * 8, meta={})   # only the guard and the metrics are used
    context.observe(metrics, 8, undefined_ok=("losses/explained_variance",))
    context.guard.check()                                     # no NonFiniteError
    context.observe({**metrics, "losses/value_loss": torch.tensor(float("nan"))}, 16,
                    undefined_ok=("losses/explained_variance",))
    with pytest.raises(Exception, match="losses/value_loss became non-finite"):
        context.guard.check()
