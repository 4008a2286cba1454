"""GAE(lambda), pinned against hand calculations: terminations, time limits, and several envs."""

import torch

from rlexp.rollouts import generalized_advantages

GAMMA, LAM = 0.9, 0.8


def test_gae_by_hand_with_two_envs_one_terminating_one_truncated():
    # env 0: three steps, terminates at t=1, a new episode at t=2; env 1: truncated at t=0 (final obs valued 10)
    rewards = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    values = torch.tensor([[0.5, 4.0], [1.0, 2.0], [2.0, 1.0]])
    next_values = torch.tensor([[1.0, 10.0], [7.0, 1.0], [0.5, 3.0]])   # V(s'_t); env 0 t=1: ignored (terminal)
    terminations = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    ends = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    adv, ret = generalized_advantages(rewards, values, next_values, terminations, ends, GAMMA, LAM)
    # env 0: delta_2 = 3 + .9*.5 - 2 = 1.45; delta_1 = 0 + 0 - 1 = -1 (terminal); delta_0 = 1 + .9*1 - .5 = 1.4
    #        A_2 = 1.45; A_1 = -1 (ended: nothing from t=2 carries back); A_0 = 1.4 + .72 * -1 = 0.68
    # env 1: delta_2 = -1 + .9*3 - 1 = 0.7; delta_1 = 1 + .9*1 - 2 = -0.1; delta_0 = 2 + .9*10 - 4 = 7 (truncated:
    #        bootstraps from its final observation); A_2 = 0.7; A_1 = -0.1 + .72*.7 = 0.404; A_0 = 7 (ended)
    expected = torch.tensor([[0.68, 7.0], [-1.0, 0.404], [1.45, 0.7]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_lambda_one_gives_discounted_returns_and_lambda_zero_one_step_td():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.3], [0.2], [0.1]])
    next_values = torch.tensor([[0.2], [0.1], [5.0]])
    zeros = torch.zeros(3, 1)
    _, ret = generalized_advantages(rewards, values, next_values, zeros, zeros, GAMMA, 1.0)
    # lambda = 1: the Monte Carlo return bootstrapped from V(s_T) = 5 at the end
    torch.testing.assert_close(ret[0, 0], torch.tensor(1 + 0.9 + 0.81 + 0.729 * 5))
    adv, _ = generalized_advantages(rewards, values, next_values, zeros, zeros, GAMMA, 0.0)
    torch.testing.assert_close(adv, rewards + GAMMA * next_values - values)


def test_a_five_step_time_limit_bootstraps_from_the_final_observation_and_a_termination_does_not():
    # Reward 1 every step, V = 10 everywhere (the fixed point of 1 + 0.9 V). An episode cut by a 5-step time limit
    # is worth the same as one that goes on: every advantage is 0. Had the cut been taken for a termination, the
    # last step's target would be 1 instead of 10.
    steps = 12
    rewards = torch.ones(steps, 1)
    values = torch.full((steps, 1), 10.0)
    ends = torch.tensor([[1.0 if (t + 1) % 5 == 0 else 0.0] for t in range(steps)])
    adv, ret = generalized_advantages(rewards, values, values.clone(), torch.zeros(steps, 1), ends, GAMMA, 0.95)
    torch.testing.assert_close(adv, torch.zeros(steps, 1))
    torch.testing.assert_close(ret, torch.full((steps, 1), 10.0))
    adv, _ = generalized_advantages(rewards, values, values.clone(), ends, ends, GAMMA, 0.95)
    torch.testing.assert_close(adv[4, 0], torch.tensor(1.0 - 10.0))        # terminated: r - V(s)


# --- PPO's losses ----------------------------------------------------------------------------------------------

def test_the_clipped_surrogate_by_hand():
    from rlexp.rollouts.losses import clipped_surrogate

    old = torch.zeros(4)
    # ratios 1.5, 0.5, 1.1, 0.7 against advantages +1, +1, -2, -1, clip 0.2:
    #   min(1.5, 1.2) = 1.2;  min(0.5, 0.8) = 0.5;  min(-2.2, -2.2) = -2.2;  min(-0.7, -0.8) = -0.8
    log_prob = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.7])).requires_grad_()
    result = clipped_surrogate(log_prob, old, torch.tensor([1.0, 1.0, -2.0, -1.0]), 0.2)
    torch.testing.assert_close(result.loss, torch.tensor(-(1.2 + 0.5 - 2.2 - 0.8) / 4))
    torch.testing.assert_close(result.clip_fraction, torch.tensor(0.75))   # 1.5, 0.5 and 0.7 lie outside [0.8, 1.2]
    r = torch.tensor([1.5, 0.5, 1.1, 0.7])
    torch.testing.assert_close(result.approx_kl, ((r - 1) - r.log()).mean())
    result.loss.backward()
    # the clipped terms carry no gradient: only samples 1 (0.5 * +1 unclipped) and 2 (1.1 * -2) move the policy
    torch.testing.assert_close(log_prob.grad, torch.tensor([0.0, -0.5, 2.2, 0.0]) / 4)


def test_the_value_loss_clips_the_prediction_around_the_old_value():
    from rlexp.rollouts.losses import value_loss

    values, old, returns = torch.tensor([3.0, 0.0]), torch.tensor([1.0, 0.5]), torch.tensor([2.0, 1.0])
    torch.testing.assert_close(value_loss(values, old, returns, None), torch.tensor((1.0 + 1.0) / 2))
    # clip 0.2: predictions 1.2 and 0.3 -> errors 0.8 and 0.7
    torch.testing.assert_close(value_loss(values, old, returns, 0.2), torch.tensor((0.64 + 0.49) / 2))


def test_advantages_are_normalized_per_minibatch():
    from rlexp.rollouts.losses import normalize

    a = normalize(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    torch.testing.assert_close(a.mean(), torch.tensor(0.0))
    torch.testing.assert_close(a.std(), torch.tensor(1.0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(normalize(torch.tensor([4.0])), torch.tensor([4.0]))


# --- the rollout storage -----------------------------------------------------------------------------------------

def filled_storage(steps: int = 3):
    from rlexp.rollouts.storage import RolloutStorage

    storage = RolloutStorage(3, 2, (1,), (), discrete=True, device=torch.device("cpu"))
    # the two-env example of the first test: env 1 truncated at t=0 (final obs valued 10), env 0 terminates at t=1
    rows = [  # rewards, values, terminations, ends, final values
        ([1.0, 2.0], [0.5, 4.0], [0.0, 0.0], [0.0, 1.0], [0.0, 10.0]),
        ([0.0, 1.0], [1.0, 2.0], [1.0, 0.0], [1.0, 0.0], [7.0, 0.0]),
        ([3.0, -1.0], [2.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]),
    ]
    for t, (r, v, term, end, final) in enumerate(rows[:steps]):
        storage.add(torch.full((2, 1), float(t)), torch.tensor([t, t + 1]), torch.zeros(2), torch.tensor(v),
                    torch.tensor(r), torch.tensor(term), torch.tensor(end), torch.tensor(final))
    return storage


def test_the_storage_pairs_each_step_with_the_value_it_bootstraps_from():
    storage = filled_storage()
    assert storage.full
    storage.finish(torch.tensor([0.5, 3.0]), GAMMA, LAM)
    # V(s'_t): env 0 -> V(s_1) = 1, its final value 7 (ignored: terminal), V(s_T) = 0.5;
    #          env 1 -> its final value 10, V(s_2) = 1, V(s_T) = 3
    torch.testing.assert_close(storage.next_values, torch.tensor([[1.0, 10.0], [7.0, 1.0], [0.5, 3.0]]))
    torch.testing.assert_close(storage.advantages, torch.tensor([[0.68, 7.0], [-1.0, 0.404], [1.45, 0.7]]))


def test_minibatches_cover_the_rollout_once_per_epoch_in_the_generators_order():
    storage = filled_storage()
    storage.finish(torch.tensor([0.5, 3.0]), GAMMA, LAM)
    batches = list(storage.minibatches(4, torch.Generator().manual_seed(0)))
    assert [len(b.actions) for b in batches] == [4, 2]
    seen = torch.cat([b.observations[:, 0] * 10 + b.actions for b in batches])   # (t, action) pairs, all distinct
    assert sorted(seen.tolist()) == sorted([t * 10 + a for t in range(3) for a in (t, t + 1)])
    again = list(storage.minibatches(4, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a.actions, b.actions) for a, b in zip(batches, again))


def test_a_rollout_cut_by_a_checkpoint_continues_exactly():
    from rlexp.rollouts.storage import RolloutStorage

    whole = filled_storage()
    cut = RolloutStorage(3, 2, (1,), (), discrete=True, device=torch.device("cpu"))
    cut.load_state_dict(filled_storage(steps=2).state_dict())   # saved after two steps
    cut.add(torch.full((2, 1), 2.0), torch.tensor([2, 3]), torch.zeros(2), torch.tensor([2.0, 1.0]),
            torch.tensor([3.0, -1.0]), torch.zeros(2), torch.zeros(2), torch.zeros(2))
    for storage in (whole, cut):
        storage.finish(torch.tensor([0.5, 3.0]), GAMMA, LAM)
    torch.testing.assert_close(cut.advantages, whole.advantages)
