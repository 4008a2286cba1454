"""How close an rlexp update is to the floor: a minimal hand-written update of the same algorithm and sizes.

    python benchmarks/update_floor.py                  # SAC, Pendulum-v1's sizes, batch 256, 256-256 networks
    python benchmarks/update_floor.py --device cuda

The floor is SAC written as plainly as it can be (nn.Sequential networks, two separate critics, torch.optim.Adam,
no metrics, no gradient norms): the least work one SAC update has to do. Both are timed interleaved, on the same
random batches, one torch thread; the table gives milliseconds per update (the median of the rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlexp.agents.sac import SAC
from rlexp.replay import ReplayBatch


class MinimalSAC:
    """SAC's update with nothing else: the floor."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int, device: torch.device) -> None:
        def mlp(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, outputs)).to(device)

        self.actor = mlp(obs_dim, 2 * action_dim)
        self.q1, self.q2 = mlp(obs_dim + action_dim, 1), mlp(obs_dim + action_dim, 1)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.zeros(1, device=device, requires_grad=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), 1e-3)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], 1e-3)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], 1e-3)
        self.target_entropy = -float(action_dim)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(-20, 2)
        u = mean + log_std.exp() * torch.randn_like(mean)
        log_prob = (-0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob

    def update(self, b: ReplayBatch) -> None:
        action, log_prob = self.sample(b.observations)
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_log_prob = self.sample(b.next_observations)
            x = torch.cat([b.next_observations, next_action], -1)
            q_next = torch.min(self.q1_target(x), self.q2_target(x)).squeeze(-1) - alpha * next_log_prob
            y = b.rewards + b.discounts * q_next
        x = torch.cat([b.observations, b.actions], -1)
        q_loss = 0.5 * (F.mse_loss(self.q1(x).squeeze(-1), y) + F.mse_loss(self.q2(x).squeeze(-1), y))
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        x = torch.cat([b.observations, action], -1)
        actor_loss = (alpha * log_prob - torch.min(self.q1(x), self.q2(x)).squeeze(-1)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for target, online in ((self.q1_target, self.q1), (self.q2_target, self.q2)):
                for t, p in zip(target.parameters(), online.parameters()):
                    t.lerp_(p, 0.005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--updates", type=int, default=300, help="updates per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    torch.manual_seed(0)
    obs_dim, action_dim = 3, 1   # Pendulum-v1
    ours = SAC(obs_dim, np.array([-2.0], np.float32), np.array([2.0], np.float32), hidden_sizes=[args.hidden] * 2,
               actor_lr=1e-3, critic_lr=1e-3, ent_coef_lr=1e-3, tau=0.005, ent_coef=None, ent_coef_init=1.0,
               target_entropy=-1.0, n_critics=2, device=device)
    floor = MinimalSAC(obs_dim, action_dim, args.hidden, device)
    batches = [ReplayBatch(observations=torch.randn(args.batch, obs_dim, device=device),
                           actions=torch.rand(args.batch, action_dim, device=device) * 4 - 2,
                           rewards=torch.randn(args.batch, device=device),
                           next_observations=torch.randn(args.batch, obs_dim, device=device),
                           discounts=torch.full((args.batch,), 0.99, device=device),
                           indices=torch.arange(args.batch, device=device)) for _ in range(8)]

    def timed(update) -> float:
        for b in batches[:3]:   # warm-up
            update(b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(args.updates):
            update(batches[i % len(batches)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / args.updates * 1e3

    rlexp_ms, floor_ms = [], []
    for _ in range(args.rounds):   # interleaved, so both see the same machine
        rlexp_ms.append(timed(ours.update))
        floor_ms.append(timed(floor.update))
    a, b = statistics.median(rlexp_ms), statistics.median(floor_ms)
    print(f"| SAC update, batch {args.batch}, {args.hidden}-{args.hidden}, {device} | rlexp ms | floor ms | "
          f"rlexp / floor |")
    print("|---|---|---|---|")
    print(f"| Pendulum-v1 sizes | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
