"""Many seeds as one model for the on-policy actor-critics (PPO, A2C): PPOMembers and MemberAdam.

Each member is its own run: its rollout, its shuffles, its clipping and its target_kl stop, which each seed meets
at its own minibatch; the same updates as its agent alone, and nothing of another member's data in its parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlexp.agents.a2c import A2C, A2CMembers
from rlexp.agents.ppo import PPO, PPOMembers
from rlexp.networks.members import MemberAdam
from rlexp.networks.policies import ActorCriticPolicy
from rlexp.rollouts.storage import RolloutStorage

CPU = torch.device("cpu")
N = 3
STEPS, ENVS = 8, 2


def ppo_agent(seed: int, discrete: bool = True, algo: type = PPO, use_sde: bool = False, **overrides) -> PPO:
    torch.manual_seed(seed)   # as a run seeds torch before it builds its agent
    actions = dict(n_actions=3) if discrete else dict(action_dim=2)
    policy = ActorCriticPolicy(4, [16, 16], "tanh", use_sde=use_sde, **actions)
    kwargs = dict(lr=3e-3, n_epochs=3, batch_size=4, clip_range=0.2, clip_range_vf=None, ent_coef=0.01,
                  vf_coef=0.5, max_grad_norm=0.5, target_kl=None, normalize_advantage=True, total_rollouts=10,
                  device=CPU, generator=torch.Generator().manual_seed(100 + seed))
    if not discrete:
        kwargs.update(action_low=-np.ones(2, np.float32), action_high=np.ones(2, np.float32))
    kwargs.update(overrides)
    return algo(policy, **kwargs)


def rollout(agent: PPO, seed: int, reward_scale: float = 1.0) -> RolloutStorage:
    """A finished rollout of random observations and rewards, acted by `agent` (from its own generator)."""
    g = torch.Generator().manual_seed(seed)
    policy = agent.policy
    storage = RolloutStorage(STEPS, ENVS, (4,), (2,), policy.discrete, CPU)
    for _ in range(STEPS):
        obs = torch.randn(ENVS, 4, generator=g)
        actions, log_probs, values = agent.rollout_step(obs, storage.pos)
        ends = (torch.rand(ENVS, generator=g) < 0.2).float()
        storage.add(obs, actions, log_probs, values, reward_scale * torch.randn(ENVS, generator=g), ends, ends,
                    torch.zeros(ENVS))
    storage.finish(torch.randn(ENVS, generator=g), 0.99, 0.95)
    return storage


def pair(n: int = N, **kwargs) -> tuple[list[PPO], PPOMembers]:
    """The same n agents twice: alone, and as the members of one batched agent."""
    alone = [ppo_agent(k, **kwargs) for k in range(n)]
    batched = A2CMembers if kwargs.get("algo") is A2C else PPOMembers   # as the registry entries pair them
    return alone, batched([ppo_agent(k, **kwargs) for k in range(n)])


def assert_members_learned_alike(alone: list[PPO], members: PPOMembers, scales=None, rollouts: int = 3) -> None:
    scales = scales or [1.0] * len(alone)
    for r in range(rollouts):
        alone_metrics = [a.learn(rollout(a, 10 * r + k, scales[k])) for k, a in enumerate(alone)]
        together = members.learn([rollout(m, 10 * r + k, scales[k]) for k, m in enumerate(members.members)])
        for k, (a, m) in enumerate(zip(alone, members.members)):
            for p, q in zip(a.policy.parameters(), m.policy.parameters()):
                torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5)
            for name, value in alone_metrics[k].items():
                torch.testing.assert_close(together[name][k], value, rtol=1e-4, atol=1e-5, equal_nan=True)
            assert a.generator.get_state().equal(m.generator.get_state()), "a member drew what its run did not"


@pytest.mark.parametrize("discrete, sde", [(True, False), (False, False), (False, True)],
                         ids=["categorical", "gaussian", "gSDE"])
def test_each_ppo_member_acts_and_learns_what_its_agent_does_alone(discrete, sde):
    alone, members = pair(discrete=discrete, use_sde=sde, sde_sample_freq=3)
    obs = torch.randn(N, ENVS, 4)
    together = members.rollout_step(obs, 0)
    for k, agent in enumerate(alone):
        for mine, its in zip(together, agent.rollout_step(obs[k], 0)):
            torch.testing.assert_close(mine[k], its)
    assert_members_learned_alike(alone, members)


def test_each_member_meets_target_kl_at_its_own_minibatch_and_sits_out_the_rest():
    # A large step and a tight KL bound: with rewards of different scales the seeds stop at different minibatches.
    kwargs = dict(lr=3e-2, target_kl=0.002, normalize_advantage=False, max_grad_norm=100.0)
    alone, members = pair(**kwargs)
    scales = [0.01, 1.0, 100.0]
    assert_members_learned_alike(alone, members, scales, rollouts=2)
    steps = [int(a.optimizer.state[next(iter(a.policy.parameters()))]["step"]) for a in alone]
    assert len(set(steps)) > 1, f"every seed took {steps[0]} steps: the test shows nothing"
    assert steps == [int(m.optimizer.state[next(iter(m.policy.parameters()))]["step"]) for m in members.members]


def test_each_a2c_member_learns_what_its_agent_learns_alone_with_rmsprop():
    kwargs = dict(algo=A2C, n_epochs=1, batch_size=STEPS * ENVS, clip_range=1.0, optimizer="rmsprop", lr=7e-4)
    alone, members = pair(**kwargs)
    assert isinstance(members.optimizer, torch.optim.RMSprop)
    assert_members_learned_alike(alone, members)


def test_a_diverging_ppo_member_leaves_the_others_bit_for_bit_as_they_were():
    clean, poisoned = PPOMembers([ppo_agent(k) for k in range(N)]), PPOMembers([ppo_agent(k) for k in range(N)])
    clean.learn([rollout(m, k) for k, m in enumerate(clean.members)])
    poisoned.learn([rollout(m, k, float("nan") if k == 1 else 1.0) for k, m in enumerate(poisoned.members)])
    assert not all(torch.isfinite(p).all() for p in poisoned.members[1].policy.parameters())
    # the batched agent still acts for every seed (the diverged one at random), the others as they would
    obs = torch.randn(N, ENVS, 4)
    clean_step, poisoned_step = clean.rollout_step(obs, 0), poisoned.rollout_step(obs, 0)
    for k in (0, 2):
        for p, q in zip(clean.members[k].policy.parameters(), poisoned.members[k].policy.parameters()):
            assert torch.equal(p, q)
        for mine, its in zip(clean_step, poisoned_step):
            assert torch.equal(mine[k], its[k])


def test_member_adam_is_torch_adam_per_member_and_a_member_left_out_keeps_its_state():
    torch.manual_seed(0)
    singles = [torch.nn.Parameter(torch.randn(3, 2)) for _ in range(N)]
    stacked = torch.nn.Parameter(torch.stack([p.detach() for p in singles]))
    torch_adams = [torch.optim.Adam([p], lr=0.1) for p in singles]
    adam = MemberAdam([stacked], N, lr=0.1)
    skips = {1: {0, 2}, 3: {0}}   # step -> members left out
    for step in range(5):
        grads = torch.randn(N, 3, 2)
        stacked.grad = grads.clone()
        active = torch.tensor([k not in skips.get(step, ()) for k in range(N)])
        adam.step(active)
        for k, (p, opt) in enumerate(zip(singles, torch_adams)):
            if active[k]:
                p.grad = grads[k].clone()
                opt.step()
            torch.testing.assert_close(stacked.detach()[k], p.detach())
    assert adam.state[stacked]["step"].tolist() == [3.0, 5.0, 4.0]


def test_gsde_members_draw_their_own_matrices_and_keep_them_in_their_checkpoints():
    alone, members = pair(discrete=False, use_sde=True, sde_sample_freq=2)
    obs = torch.randn(N, ENVS, 4)
    for t in range(3):   # new matrices at t = 0 and 2
        members.rollout_step(obs, t)
        for agent in alone:
            agent.rollout_step(obs[0], t)
    for k, agent in enumerate(alone):
        torch.testing.assert_close(members.members[k].state_dict()["sde_eps"], agent.policy.sde_eps)
    assert not torch.equal(alone[0].policy.sde_eps, alone[1].policy.sde_eps)


def test_a_member_past_target_kl_at_its_first_minibatch_steps_nothing_and_reports_that_minibatch_as_alone():
    # Member 1's rollout is past target_kl from its first minibatch on (its log-probabilities 1 lower than the
    # policy's): it steps on nothing, and its metrics are those of that minibatch, finite, as its agent's alone.
    kwargs = dict(target_kl=0.01)
    alone, members = pair(**kwargs)
    rollouts = [[rollout(a, k) for k, a in enumerate(agents)] for agents in (alone, members.members)]
    for own in rollouts:
        own[1].log_probs -= 1.0
    alone_metrics = [a.learn(r) for a, r in zip(alone, rollouts[0])]
    together = members.learn(rollouts[1])
    for k, (a, m) in enumerate(zip(alone, members.members)):
        for p, q in zip(a.policy.parameters(), m.policy.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5)
        for name, value in alone_metrics[k].items():
            assert torch.isfinite(together[name][k]), (k, name)
            torch.testing.assert_close(together[name][k], value, rtol=1e-4, atol=1e-5)
    assert not alone[1].optimizer.state and float(together["losses/grad_norm"][1]) == 0.0
    assert all(a.optimizer.state for a in (alone[0], alone[2]))   # the others stepped
