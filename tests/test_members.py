"""Many seeds as one model: stacked networks (rlexp/networks/members.py) and DQN over a member axis.

Each member must be its own run: the same updates as its agent alone (up to the batched product's rounding), its
own gradient clipping, and nothing of another member's data in its parameters, not even a NaN."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from rlexp.agents.actor_critic import TD3, TD3Members
from rlexp.agents.dqn import DQN, DQNMembers
from rlexp.agents.exploration import make_action_noise
from rlexp.agents.sac import SAC, SACMembers
from rlexp.errors import ConfigError
from rlexp.io.checkpoints import FORMAT, load_checkpoint, save_checkpoint
from rlexp.networks.members import clip_grad_norm_per_member, stack_members
from rlexp.networks.q import CategoricalHead, QuantileHead
from rlexp.networks.torsos import mlp
from rlexp.replay.batch import ReplayBatch, stack_batches

CPU = torch.device("cpu")
N = 3


def agent(seed: int, **overrides) -> DQN:
    torch.manual_seed(seed)   # as a run seeds torch before it builds its agent
    kwargs = dict(hidden_sizes=[16, 16], lr=1e-2, tau=1.0, target_update_interval=2, exploration_fraction=0.5,
                  exploration_initial_eps=1.0, exploration_final_eps=0.1, max_grad_norm=10.0,
                  lr_schedule="constant", total_steps=100, total_updates=50, device=CPU,
                  rng=np.random.default_rng(seed))
    kwargs.update(overrides)
    return DQN(4, 3, **kwargs)


def random_batch(generator: torch.Generator, scale: float = 1.0, size: int = 32) -> ReplayBatch:
    return ReplayBatch(observations=torch.randn(size, 4, generator=generator),
                       actions=torch.randint(0, 3, (size,), generator=generator),
                       rewards=scale * torch.randn(size, generator=generator),
                       next_observations=torch.randn(size, 4, generator=generator),
                       discounts=0.99 * (torch.rand(size, generator=generator) > 0.1).float(),
                       indices=torch.arange(size))


def batches(updates: int, seed: int = 0) -> list[list[ReplayBatch]]:
    """updates x members batches, each member's from its own generator."""
    generators = [torch.Generator().manual_seed(seed + k) for k in range(N)]
    return [[random_batch(g) for g in generators] for _ in range(updates)]


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def train_members(plan: list[list[ReplayBatch]], variant: str = "dqn") -> tuple[DQNMembers, list[dict]]:
    members = DQNMembers([agent(k, **VARIANTS[variant]()) for k in range(N)])
    metrics = [members.update(stack_batches(step)) for step in plan]
    return members, metrics


def test_a_stacked_network_computes_each_member_and_its_members_are_views_of_it():
    torch.manual_seed(0)
    nets = [mlp(4, [8, 8], 2) for _ in range(N)]
    alone = [copy.deepcopy(net) for net in nets]
    stacked = stack_members(nets, "the network")
    x = torch.randn(N, 5, 4)
    out = stacked(x)
    for k in range(N):
        torch.testing.assert_close(out[k], alone[k](x[k]))
    with torch.no_grad():
        stacked[0].weight[1].add_(1.0)   # member 1's first layer, changed in the stacked module
    assert torch.equal(nets[1][0].weight, alone[1][0].weight + 1.0)
    assert torch.equal(nets[0][0].weight, alone[0][0].weight)


def test_layers_that_cannot_be_batched_are_refused_in_one_line():
    nets = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()) for _ in range(2)]
    with pytest.raises(ConfigError, match="the Q-network has a Conv2d layer, which cannot be batched"):
        stack_members(nets, "the Q-network")


#: DQN's variants whose members must learn alike: Rainbow's networks (noisy layers drawing each member's noise from its
#: own generator, C51's distributions on dueling streams) and QR-DQN's quantiles
VARIANTS = {"dqn": dict,
            "rainbow": lambda: dict(head=CategoricalHead(11, -5.0, 5.0), noisy_sigma=0.5, dueling=True, double=True),
            "qrdqn": lambda: dict(head=QuantileHead(8), noisy_sigma=0.1)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_member_learns_what_its_agent_learns_alone(variant):
    plan = batches(6)
    members, metrics = train_members(plan, variant)
    obs = torch.randn(N, 5, 4).numpy()
    explored = members.act(obs, explore=True, step=90)   # (noisy: each member's own noise, drawn as alone)
    for k in range(N):
        alone = agent(k, **VARIANTS[variant]())
        for step in plan:
            reference = alone.update(step[k])
        np.testing.assert_array_equal(explored[k], alone.act(obs[k], explore=True, step=90))
        for mine, theirs in zip(members.members[k].q_network.parameters(), alone.q_network.parameters()):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
        for mine, theirs in zip(members.members[k].target_network.parameters(), alone.target_network.parameters()):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
        for key, value in reference.items():
            torch.testing.assert_close(metrics[-1][key][k], value, rtol=1e-4, atol=1e-5)
        assert members.members[k].n_updates == alone.n_updates == 6


def test_changing_one_members_data_changes_no_other_member():
    plan = batches(4)
    members, _ = train_members(plan)
    changed = [[b if k != 1 else b._replace(rewards=b.rewards * 1e6) for k, b in enumerate(step)] for step in plan]
    other, _ = train_members(changed)
    for k in (0, 2):   # bit for bit: rewards a million times larger in member 1 (its gradients clipped hard)
        assert all(torch.equal(a, b) for a, b in zip(params(members.members[k].q_network),
                                                     params(other.members[k].q_network)))
    assert not all(torch.equal(a, b) for a, b in zip(params(members.members[1].q_network),
                                                     params(other.members[1].q_network)))


def test_a_diverging_member_leaves_the_others_finite_and_unchanged():
    plan = batches(3)
    members, _ = train_members(plan)
    poisoned = [[b if k != 2 else b._replace(rewards=torch.full_like(b.rewards, float("nan"))) for k, b in
                 enumerate(step)] for step in plan]
    other, metrics = train_members(poisoned)
    assert all(torch.isnan(p).any() for p in other.members[2].q_network.parameters())
    for k in (0, 1):
        assert all(torch.equal(a, b) for a, b in zip(params(members.members[k].q_network),
                                                     params(other.members[k].q_network)))
    assert torch.isfinite(metrics[-1]["losses/td_loss"][:2]).all()


def test_gradients_are_clipped_per_member_not_by_one_norm_across_seeds():
    weights = nn.Parameter(torch.zeros(2, 3))
    weights.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])   # norms 5 and 0.5
    norms = clip_grad_norm_per_member([weights], max_norm=1.0, members=2)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5]))
    torch.testing.assert_close(weights.grad, torch.tensor([[0.6, 0.8, 0.0], [0.3, 0.4, 0.0]]), atol=1e-6,
                               rtol=0)


def test_a_members_checkpoint_is_a_single_runs_and_holds_only_its_own_slice(tmp_path):
    plan = batches(5)
    members, _ = train_members(plan)
    member = members.members[1]
    save_checkpoint({"format": FORMAT, "agent": member.state_dict()}, tmp_path / "member.pt")
    alone = agent(1)
    alone.update(plan[0][1])   # an optimizer with state, to compare file sizes like for like
    save_checkpoint({"format": FORMAT, "agent": alone.state_dict()}, tmp_path / "alone.pt")
    assert (tmp_path / "member.pt").stat().st_size < 1.2 * (tmp_path / "alone.pt").stat().st_size
    restored = agent(7)
    restored.load_state_dict(load_checkpoint(tmp_path / "member.pt")["agent"])
    assert all(torch.equal(a, b) for a, b in zip(params(restored.q_network), params(member.q_network)))
    # Its Adam moments came along: one more update from the same batch lands where the member's does.
    extra = batches(1, seed=50)[0]
    restored.update(extra[1])
    members.update(stack_batches(extra))
    for a, b in zip(restored.q_network.parameters(), member.q_network.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_members_resume_from_their_agents_checkpoints_exactly():
    plan = batches(6)
    straight, _ = train_members(plan)
    first, _ = train_members(plan[:3])
    saved = [copy.deepcopy(m.state_dict()) for m in first.members]
    fresh = [agent(10 + k) for k in range(N)]
    for member, state in zip(fresh, saved):
        member.load_state_dict(state)
    resumed = DQNMembers(fresh)
    for step in plan[3:]:
        resumed.update(stack_batches(step))
    for k in range(N):
        assert all(torch.equal(a, b) for a, b in zip(params(straight.members[k].q_network),
                                                     params(resumed.members[k].q_network)))


def test_members_act_greedily_together_and_explore_with_their_own_generators():
    members = DQNMembers([agent(k) for k in range(N)])
    obs = np.random.default_rng(0).standard_normal((N, 5, 4)).astype(np.float32)
    greedy = members.act(obs, explore=False)
    for k in range(N):
        np.testing.assert_array_equal(greedy[k], agent(k).act(obs[k], explore=False))
    exploring = members.act(obs, explore=True, step=0)   # epsilon 1: every action drawn by its member's generator
    for k in range(N):
        np.testing.assert_array_equal(exploring[k], agent(k).act(obs[k], explore=True, step=0))


# --- TD3 (and DDPG, its special case) --------------------------------------------------------------------------

def td3_agent(seed: int, **overrides) -> TD3:
    torch.manual_seed(seed)
    kwargs = dict(hidden_sizes=[16, 16], actor_lr=1e-3, critic_lr=1e-3, tau=0.05, policy_delay=2, target_noise=0.2,
                  target_noise_clip=0.5, n_critics=2, device=CPU,
                  exploration_noise=make_action_noise("gaussian", 0.1, 0.15, 2, 1, np.random.default_rng(seed)))
    kwargs.update(overrides)
    return TD3(3, np.array([-2.0]), np.array([2.0]), **kwargs)


def td3_batches(updates: int, seed: int = 0, poison: int | None = None) -> list[list[ReplayBatch]]:
    generators = [torch.Generator().manual_seed(seed + k) for k in range(N)]
    plan = [[ReplayBatch(observations=torch.randn(32, 3, generator=g), actions=2 * torch.rand(32, 1, generator=g) - 1,
                         rewards=torch.randn(32, generator=g), next_observations=torch.randn(32, 3, generator=g),
                         discounts=torch.full((32,), 0.99), indices=torch.arange(32)) for g in generators]
            for _ in range(updates)]
    if poison is not None:
        plan = [[b if k != poison else b._replace(rewards=torch.full_like(b.rewards, float("nan")))
                 for k, b in enumerate(step)] for step in plan]
    return plan


@pytest.mark.parametrize("kind", ["td3", "ddpg", "td3_linear_lr"])
def test_each_td3_member_learns_what_its_agent_learns_alone(kind):
    overrides = {"td3": {}, "ddpg": dict(n_critics=1, policy_delay=1, target_noise=0.0),
                 # the members' stacked optimizers follow each member's learning-rate schedule
                 "td3_linear_lr": dict(lr_schedule="linear", total_updates=4)}[kind]
    plan = td3_batches(6)
    members = TD3Members([td3_agent(k, **overrides) for k in range(N)])
    metrics = [members.update(stack_batches(step)) for step in plan]
    for k in range(N):
        alone = td3_agent(k, **overrides)
        for step in plan:
            reference = alone.update(step[k])
        for name in ("actor", "actor_target", "critic", "critic_target"):
            for mine, theirs in zip(getattr(members.members[k], name).parameters(),
                                    getattr(alone, name).parameters()):
                torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
        for key, value in reference.items():
            torch.testing.assert_close(metrics[-1][key][k], value, rtol=1e-4, atol=1e-5)
    obs = np.random.default_rng(0).standard_normal((N, 2, 3)).astype(np.float32)
    twins = [td3_agent(k, **overrides) for k in range(N)]
    for twin, member in zip(twins, members.members):
        twin.load_state_dict(copy.deepcopy(member.state_dict()))   # its networks and its exploration generator
    acted = members.act(obs, explore=True)
    for k, twin in enumerate(twins):
        np.testing.assert_allclose(acted[k], twin.act(obs[k], explore=True), rtol=1e-5, atol=1e-6)


def test_a_diverging_td3_member_leaves_the_others_bit_for_bit_as_they_were():
    clean = TD3Members([td3_agent(k) for k in range(N)])
    for step in td3_batches(4):
        clean.update(stack_batches(step))
    poisoned = TD3Members([td3_agent(k) for k in range(N)])
    for step in td3_batches(4, poison=1):
        poisoned.update(stack_batches(step))
    assert all(torch.isnan(p).any() for p in poisoned.members[1].critic.parameters())
    for k in (0, 2):
        for name in ("actor", "critic", "critic_target"):
            assert all(torch.equal(a, b) for a, b in zip(getattr(clean.members[k], name).parameters(),
                                                         getattr(poisoned.members[k], name).parameters()))


# --- SAC --------------------------------------------------------------------------------------------------------

def sac_agent(seed: int, **overrides) -> SAC:
    torch.manual_seed(seed)
    kwargs = dict(hidden_sizes=[16, 16], actor_lr=1e-3, critic_lr=1e-3, ent_coef_lr=1e-3, tau=0.05, ent_coef=None,
                  ent_coef_init=1.0, target_entropy=-1.0, n_critics=2, device=CPU, lr_schedule="linear",
                  total_updates=20)
    kwargs.update(overrides)
    return SAC(3, np.array([-2.0]), np.array([2.0]), **kwargs)


@pytest.mark.parametrize("ent_coef, sde", [(None, False), (0.2, False), (None, True)],
                         ids=["tuned alpha", "fixed alpha", "gSDE"])
def test_each_sac_member_learns_what_its_agent_learns_alone(ent_coef, sde):
    plan = td3_batches(5)
    options = dict(ent_coef=ent_coef, use_sde=sde, num_envs=2)
    members = SACMembers([sac_agent(k, **options) for k in range(N)])
    obs = np.random.default_rng(0).normal(size=(N, 2, 3)).astype(np.float32)
    together = members.act(obs, explore=True, step=2)   # gSDE: each seed's matrices drawn from its own generator
    metrics = [members.update(stack_batches(step)) for step in plan]
    for k in range(N):
        alone = sac_agent(k, **options)
        np.testing.assert_allclose(together[k], alone.act(obs[k], explore=True, step=2), rtol=1e-5, atol=1e-6)
        if sde:
            assert torch.equal(members.members[k].sde_eps, alone.sde_eps)
        for step in plan:
            reference = alone.update(step[k])
        for name in ("actor", "critic", "critic_target"):
            for mine, theirs in zip(getattr(members.members[k], name).parameters(),
                                    getattr(alone, name).parameters()):
                torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(members.members[k].log_ent_coef, alone.log_ent_coef.detach(), rtol=1e-4, atol=1e-6)
        for key, value in reference.items():
            torch.testing.assert_close(metrics[-1][key][k], value, rtol=1e-4, atol=1e-5)
    # A member's checkpoint continues as a single run: the same next update.
    twin = sac_agent(9, **options)
    twin.load_state_dict(copy.deepcopy(members.members[1].state_dict()))
    extra = td3_batches(1, seed=40)[0]
    twin.update(extra[1])
    members.update(stack_batches(extra))
    for mine, theirs in zip(members.members[1].actor.parameters(), twin.actor.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_a_diverging_sac_member_leaves_the_others_bit_for_bit_as_they_were():
    clean = SACMembers([sac_agent(k) for k in range(N)])
    for step in td3_batches(4):
        clean.update(stack_batches(step))
    poisoned = SACMembers([sac_agent(k) for k in range(N)])
    for step in td3_batches(4, poison=0):
        poisoned.update(stack_batches(step))
    assert all(torch.isnan(p).any() for p in poisoned.members[0].critic.parameters())
    for k in (1, 2):
        for name in ("actor", "critic"):
            assert all(torch.equal(a, b) for a, b in zip(getattr(clean.members[k], name).parameters(),
                                                         getattr(poisoned.members[k], name).parameters()))
        assert torch.equal(clean.members[k].log_ent_coef, poisoned.members[k].log_ent_coef)
