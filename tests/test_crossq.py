"""CrossQ (rlexp/agents/crossq.py) and batch renormalisation (rlexp/networks/batch_renorm.py), by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlexp.agents.compiled import CompiledMethod, compile_agent
from rlexp.agents.crossq import CrossQ, CrossQMembers
from rlexp.networks.batch_renorm import BatchRenorm, Renorm
from rlexp.networks.members import stack_members
from rlexp.replay.batch import ReplayBatch, stack_batches
from tests.test_compile import eager_backend  # noqa: F401  (the fixture)

CPU = torch.device("cpu")


def test_during_warmup_a_layer_is_batch_normalisation_and_moves_its_running_statistics():
    layer = BatchRenorm(2, momentum=0.1, eps=0.0, warmup_steps=5)
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])
    y = layer(x)
    # mean (3, 12), unbiased std (2, sqrt(12)): (x - mean) / std
    torch.testing.assert_close(y, torch.tensor([[-1.0, -2 / 12 ** 0.5], [0.0, -2 / 12 ** 0.5], [1.0, 4 / 12 ** 0.5]]))
    torch.testing.assert_close(layer.running_mean, torch.tensor([0.3, 1.2]))    # 0 + 0.1 (mean - 0)
    torch.testing.assert_close(layer.running_var, torch.tensor([1.3, 2.1]))     # 1 + 0.1 (var - 1)
    assert int(layer.steps) == 1


def test_past_warmup_the_batch_statistics_are_corrected_towards_the_running_ones_with_r_and_d_clipped():
    layer = BatchRenorm(1, momentum=0.5, eps=0.0, warmup_steps=0)
    with torch.no_grad():
        layer.running_mean.fill_(1.0)
        layer.running_var.fill_(4.0)
        layer.steps.fill_(1)
    x = torch.tensor([[2.0], [4.0]], requires_grad=True)   # mean 3, std sqrt(2)
    y = layer(x)
    r, d = 2 ** 0.5 / 2, (3 - 1) / 2    # sigma_B / sigma, (mu_B - mu) / sigma: inside the clips
    expected = (torch.tensor([[-1.0], [1.0]]) / 2 ** 0.5) * r + d
    torch.testing.assert_close(y, expected)
    # r and d are constants of the gradient: it is batch normalisation's, times r
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.zeros(2, 1), atol=1e-6, rtol=0)
    # the clips: a batch far from the running statistics gets r = 3 and d = 5 at most
    far = BatchRenorm(1, eps=0.0, warmup_steps=0)
    with torch.no_grad():
        far.steps.fill_(1)
    out = far(torch.tensor([[100.0], [140.0]]))   # sigma_B / sigma = 28.3 -> 3; (mu_B - mu) / sigma = 120 -> 5:
    # (x - mu_B) / sigma_B = -+1/sqrt(2), times 3, plus 5
    torch.testing.assert_close(out, torch.tensor([[5.0 - 3 / 2 ** 0.5], [5.0 + 3 / 2 ** 0.5]]))


def test_in_evaluation_a_layer_is_the_affine_map_of_its_running_statistics():
    layer = BatchRenorm(2, eps=0.0).eval()
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([1.0, -1.0]))
        layer.running_var.copy_(torch.tensor([4.0, 1.0]))
        layer.weight.copy_(torch.tensor([2.0, 1.0]))
        layer.bias.copy_(torch.tensor([0.0, 3.0]))
    torch.testing.assert_close(layer(torch.tensor([3.0, 0.0])), torch.tensor([2.0, 4.0]))
    assert int(layer.steps) == 0   # nothing moves


def test_stacked_seeds_normalise_each_by_its_own_batch_and_keep_their_statistics_as_views():
    layers = [BatchRenorm(3, momentum=0.2, warmup_steps=1) for _ in range(2)]
    alone = copy.deepcopy(layers)
    stacked = BatchRenorm.stack_members(layers)
    x = torch.randn(2, 8, 3) * torch.tensor([[[1.0]], [[5.0]]])
    for _ in range(3):   # past the warmup: the running statistics enter
        y = stacked(x)
        expected = torch.stack([layer(x[k]) for k, layer in enumerate(alone)])
        torch.testing.assert_close(y, expected)
    for k in range(2):
        torch.testing.assert_close(layers[k].running_var, alone[k].running_var)
        assert int(layers[k].steps) == 3


def agent(policy_delay: int = 2, hidden: tuple[int, ...] = (8,), warmup: int = 0) -> CrossQ:
    torch.manual_seed(0)
    return CrossQ(3, np.array([-2.0]), np.array([2.0]), hidden_sizes=list(hidden), actor_lr=1e-3, critic_lr=1e-3,
                  ent_coef_lr=1e-3, ent_coef=None, ent_coef_init=1.0, target_entropy=-1.0, n_critics=2, device=CPU,
                  critic_hidden_sizes=[16], renorm=Renorm(momentum=0.01, warmup_steps=warmup),
                  adam_betas=(0.5, 0.999), policy_delay=policy_delay)


def batch(size: int = 6, seed: int = 1) -> ReplayBatch:
    g = torch.Generator().manual_seed(seed)
    return ReplayBatch(observations=torch.randn(size, 3, generator=g), actions=torch.rand(size, 1, generator=g) * 4 - 2,
                       rewards=torch.randn(size, generator=g), next_observations=torch.randn(size, 3, generator=g),
                       discounts=torch.full((size,), 0.9), indices=torch.arange(size))


def test_the_critics_see_current_and_next_state_actions_in_one_pass_and_bootstrap_from_it():
    crossq = agent()
    assert not hasattr(crossq, "critic_target") and "critic_target" not in crossq.checkpointed
    b = batch()
    eps = torch.randn(6, 1)
    before = copy.deepcopy(crossq)
    loss, q = crossq.critic_gradients(b, torch.tensor(0.5), None, eps)
    # by hand: a' from the actor with its running statistics, then one training pass over the 2B rows
    with torch.no_grad():
        next_squashed, next_log_prob = before.actor.sample(b.next_observations, None, None, eps)
        next_actions = before.actor.to_env(next_squashed)
    before.critic.train()
    joint = before.critic(torch.cat([b.observations, b.next_observations]), torch.cat([b.actions, next_actions]))
    y = b.rewards + 0.9 * (joint[:, 6:].min(dim=0).values - 0.5 * next_log_prob)
    expected = sum(0.5 * ((joint[i, :6] - y.detach()) ** 2).mean() for i in range(2))
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(q, joint[:, :6].detach())
    # the statistics moved by the joint batch's: the first layer's input is (s, a) and (s', a') together
    first_input = torch.cat([torch.cat([b.observations, b.next_observations]),
                             torch.cat([b.actions, next_actions])], dim=-1)
    torch.testing.assert_close(crossq.critic.renorms[0].running_mean[0], 0.01 * first_input.mean(0))
    # the target is a constant of the gradient
    expected.backward()
    for mine, theirs in zip(crossq.critic.parameters(), before.critic.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad)
    assert not crossq.critic.training and not crossq.actor.training   # back to evaluation mode


def test_the_policy_and_alpha_learn_every_policy_delay_th_update_only():
    crossq = agent(policy_delay=2)
    actor, alpha = copy.deepcopy(crossq.actor.state_dict()), crossq.log_ent_coef.item()
    crossq.update(batch())
    assert all(torch.equal(v, crossq.actor.state_dict()[k]) for k, v in actor.items())
    assert crossq.log_ent_coef.item() == alpha
    metrics = crossq.update(batch(seed=2))
    assert not torch.equal(actor["torso.1.weight"], crossq.actor.state_dict()["torso.1.weight"])
    assert crossq.log_ent_coef.item() != alpha
    assert float(metrics["losses/actor_loss"]) != 0.0
    # the actor's training pass moved its statistics; acting reads them, in evaluation mode
    assert int(crossq.actor.torso[0].steps) == 1 and not crossq.actor.training
    assert crossq.actor_optimizer.param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.parametrize("warmup", [0, 2])
def test_many_seeds_as_one_model_learn_what_each_seed_learns_alone(warmup):
    seeds = [agent(warmup=warmup) for _ in range(2)]
    for k, member in enumerate(seeds):   # different critics per seed
        torch.manual_seed(10 + k)
        for name, p in member.critic.named_parameters():
            if name.startswith("layers"):
                p.data.normal_(0, 0.3)
    alone = copy.deepcopy(seeds)
    batched = CrossQMembers(seeds)
    for i in range(4):   # past the warmup with warmup=2: the running statistics enter
        step = [batch(seed=10 * k + i) for k in range(2)]
        metrics = batched.update(stack_batches(step))
        for k, single in enumerate(alone):
            torch.testing.assert_close(metrics["losses/critic_loss"][k], single.update(step[k])["losses/critic_loss"],
                                       rtol=1e-4, atol=1e-5)
    # each seed's networks answer as its own run's, statistics included (compared by their outputs: a hidden unit
    # that batch renormalisation makes blind to its bias has a gradient of rounding noise, which Adam scales up)
    probe = batch(seed=99)
    for k in range(2):
        torch.testing.assert_close(seeds[k].critic(probe.observations, probe.actions),
                                   alone[k].critic(probe.observations, probe.actions), rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(seeds[k].actor.deterministic(probe.observations),
                                   alone[k].actor.deterministic(probe.observations), rtol=1e-3, atol=1e-3)
        for name in ("running_mean", "running_var", "steps"):
            torch.testing.assert_close(getattr(seeds[k].critic.renorms[1], name),
                                       getattr(alone[k].critic.renorms[1], name), rtol=1e-3, atol=1e-4)


def test_an_actor_with_batch_renormalisation_stacks_over_seeds():
    actors = [agent().actor for _ in range(2)]
    stacked = stack_members(actors, "the policy")
    assert isinstance(stacked.torso[0], BatchRenorm) and stacked.torso[0].members == 2


@pytest.mark.usefixtures("eager_backend")
def test_a_compiled_crossq_learns_what_the_eager_one_does():
    # (the compiled critic pass switches the critics to training mode and back inside the captured graph)
    eager, fast = agent(warmup=2), compile_agent(agent(warmup=2), True, None, CPU)
    assert isinstance(fast.critic_gradients, CompiledMethod)
    for i in range(4):   # past the warmup, through two policy updates
        a, b = eager.update(batch(seed=i)), fast.update(batch(seed=i))
        assert all(torch.equal(a[key], b[key]) for key in a), i
    for name in ("actor", "critic"):
        mine, theirs = getattr(eager, name).state_dict(), getattr(fast, name).state_dict()
        assert all(torch.equal(mine[key], theirs[key]) for key in mine), name
    assert fast.critic_gradients.compiled is not None, "the compiled path fell back to eager"
    assert not fast.critic.training and not fast.actor.training
