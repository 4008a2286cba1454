"""TQC (rlexp/agents/tqc.py): the truncated mixture's target and the critics' loss, by hand and against the
paper's (and sb3-contrib's) definitions."""

from __future__ import annotations

import numpy as np
import torch

from rlexp.agents.tqc import TQC
from rlexp.replay.batch import ReplayBatch

CPU = torch.device("cpu")


def agent(n_critics: int = 2, n_quantiles: int = 3, drop: int = 1) -> TQC:
    torch.manual_seed(0)
    return TQC(3, np.array([-1.0]), np.array([1.0]), hidden_sizes=[8], actor_lr=1e-3, critic_lr=1e-3,
               ent_coef_lr=1e-3, tau=0.005, ent_coef=0.1, ent_coef_init=1.0, target_entropy=-1.0,
               n_critics=n_critics, device=CPU, n_quantiles=n_quantiles, top_quantiles_to_drop_per_net=drop)


def batch(size: int = 1) -> ReplayBatch:
    return ReplayBatch(observations=torch.zeros(size, 3), actions=torch.zeros(size, 1), rewards=torch.ones(size),
                       next_observations=torch.zeros(size, 3), discounts=torch.full((size,), 0.5),
                       indices=torch.arange(size))


def test_the_target_pools_every_critics_quantiles_and_drops_the_largest_d_per_critic():
    tqc = agent()
    # the target critics at (s', a'): critic 0 says 1, 5, 3; critic 1 says 2, 0, 4 -> pooled and sorted 0 .. 5,
    # the largest d N = 2 dropped: 0, 1, 2, 3
    tqc.critic_target = lambda obs, actions: torch.tensor([[[1.0, 5.0, 3.0]], [[2.0, 0.0, 4.0]]])
    tqc.actor.sample = lambda *args: (torch.zeros(1, 1), torch.tensor([-2.0]))   # log pi(a'|s') = -2
    # y_i = r + gamma (z_(i) - alpha log pi) = 1 + 0.5 (z_(i) + 0.2)
    y = tqc.td_target(batch(), ent_coef=torch.tensor(0.1))
    torch.testing.assert_close(y, torch.tensor([[1.1, 1.6, 2.1, 2.6]]))


def test_each_critic_fits_every_kept_atom_with_the_quantile_huber_loss():
    tqc = agent(n_critics=2, n_quantiles=4, drop=1)
    b = batch(5)
    atoms = torch.randn(5, 6) * 3
    tqc.td_target = lambda *args, **kwargs: atoms
    loss, _ = tqc.critic_gradients(b, torch.tensor(0.1), None, None)
    quantiles = tqc.critic(b.observations, b.actions).detach()   # (critics, batch, quantiles)
    tau = (torch.arange(4) + 0.5) / 4
    expected = []
    for n in range(2):
        for i in range(5):
            for m in range(4):
                for j in range(6):
                    u = float(atoms[i, j] - quantiles[n, i, m])
                    huber = 0.5 * u * u if abs(u) <= 1 else abs(u) - 0.5
                    expected.append(abs(float(tau[m]) - (u < 0)) * huber)
    torch.testing.assert_close(loss, torch.tensor(float(np.mean(expected))))
    assert all(p.grad is not None for p in tqc.critic.parameters())


def test_the_actor_climbs_the_mean_of_every_critics_quantiles():
    tqc = agent()
    obs = torch.randn(4, 3)
    squashed, log_prob = tqc.actor.sample(obs, tqc.generator)
    loss = tqc.actor_gradients(obs, squashed, log_prob, torch.tensor(0.1))
    q_pi = tqc.critic(obs, tqc.actor.to_env(squashed)).mean(dim=(0, 2))
    torch.testing.assert_close(loss, (0.1 * log_prob - q_pi).mean().detach())
    assert all(p.grad is None for p in tqc.critic.parameters())
