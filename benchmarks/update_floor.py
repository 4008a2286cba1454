"""How close an rlexp update is to the floor: a minimal hand-written update of the same algorithm and sizes.

    python benchmarks/update_floor.py                  # SAC, Pendulum-v1's sizes, batch 256, 256-256 networks
    python benchmarks/update_floor.py --algo ppo       # PPO's learning from one rollout, CartPole-v1's preset
    python benchmarks/update_floor.py --device cuda

The floor is the algorithm written as plainly as it can be, the least work its update has to do. SAC:
nn.Sequential networks, two separate critics, torch.optim.Adam, no metrics, no gradient norms. PPO (`--algo ppo`):
the learning from one rollout of RL Zoo's CartPole-v1 preset (8 envs x 32 steps, 20 epochs of one 256-sample
minibatch, 64-64 tanh policy and value MLPs as two nn.Sequential, normalised advantages, the clipped surrogate,
the value loss, gradient clipping at 0.5, torch.optim.Adam), no metrics. Both are timed interleaved, on the same
random batches (rollouts), one torch thread; the table gives milliseconds per update (per rollout learned from:
the median of the rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlexp.agents.ppo import PPO
from rlexp.agents.sac import SAC
from rlexp.networks.policies import ActorCriticPolicy
from rlexp.replay import ReplayBatch
from rlexp.rollouts.storage import RolloutStorage


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


class MinimalPPO:
    """PPO's epochs over one rollout with nothing else: the floor."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int, epochs: int) -> None:
        def mlp(outputs: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, outputs))

        self.pi, self.v = mlp(n_actions), mlp(1)
        self.parameters = [*self.pi.parameters(), *self.v.parameters()]
        self.optimizer = torch.optim.Adam(self.parameters, 1e-3, eps=1e-5)
        self.epochs = epochs

    def learn(self, rollout: RolloutStorage) -> None:
        assert rollout.advantages is not None and rollout.returns is not None
        obs, actions = rollout.observations.flatten(0, 1), rollout.actions.flatten()
        old_log_probs, returns = rollout.log_probs.flatten(), rollout.returns.flatten()
        advantages = rollout.advantages.flatten()
        for _ in range(self.epochs):   # one minibatch of the whole rollout per epoch, as the preset's
            log_pi = self.pi(obs).log_softmax(-1)
            log_prob = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            entropy = -(log_pi.exp() * log_pi).sum(-1)
            a = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            ratio = (log_prob - old_log_probs).exp()
            policy_loss = -torch.min(a * ratio, a * ratio.clamp(0.8, 1.2)).mean()
            value_loss = F.mse_loss(self.v(obs).squeeze(-1), returns)
            loss = policy_loss + 0.5 * value_loss - 0.0 * entropy.mean()
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.parameters, 0.5)
            self.optimizer.step()


def random_rollout(steps: int, envs: int, obs_dim: int, n_actions: int, generator: torch.Generator) -> RolloutStorage:
    """A finished rollout of random observations, actions, log-probabilities, values and rewards."""
    rollout = RolloutStorage(steps, envs, (obs_dim,), (), discrete=True, device=torch.device("cpu"))
    zeros = torch.zeros(envs)
    for _ in range(steps):
        rollout.add(torch.randn(envs, obs_dim, generator=generator),
                    torch.randint(0, n_actions, (envs,), generator=generator),
                    torch.full((envs,), -math.log(n_actions)), torch.randn(envs, generator=generator),
                    torch.ones(envs), zeros, zeros, zeros)
    rollout.finish(zeros, 0.98, 0.8)
    return rollout


def interleaved(ours: Callable[[Any], None], floor: Callable[[Any], None], inputs: list[Any], updates: int,
                rounds: int, device: torch.device) -> tuple[float, float]:
    """Milliseconds per call of each, the median of `rounds` interleaved rounds (so both see the same machine)."""
    def timed(update: Callable[[Any], None]) -> float:
        for item in inputs[:3]:   # warm-up
            update(item)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(updates):
            update(inputs[i % len(inputs)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / updates * 1e3

    ours_ms, floor_ms = [], []
    for _ in range(rounds):
        ours_ms.append(timed(ours))
        floor_ms.append(timed(floor))
    return statistics.median(ours_ms), statistics.median(floor_ms)


def ppo_rows(rounds: int) -> int:
    obs_dim, n_actions, steps, envs, epochs = 4, 2, 32, 8, 20   # CartPole-v1, RL Zoo's PPO preset
    torch.manual_seed(0)
    policy = ActorCriticPolicy(obs_dim, [64, 64], "tanh", n_actions=n_actions)
    ours = PPO(policy, lr=1e-3, n_epochs=epochs, batch_size=steps * envs, clip_range=0.2, clip_range_vf=None,
               ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, target_kl=None, normalize_advantage=True,
               total_rollouts=10**6, device=torch.device("cpu"), lr_schedule="linear",
               clip_range_schedule="linear")
    floor = MinimalPPO(obs_dim, n_actions, 64, epochs)
    generator = torch.Generator().manual_seed(0)
    rollouts = [random_rollout(steps, envs, obs_dim, n_actions, generator) for _ in range(4)]
    a, b = interleaved(ours.learn, floor.learn, rollouts, 40, rounds, torch.device("cpu"))
    print(f"| PPO learning from one rollout ({envs} x {steps} steps, {epochs} epochs of one minibatch, 64-64 tanh, "
          f"cpu) | rlexp ms | floor ms | rlexp / floor |")
    print("|---|---|---|---|")
    print(f"| CartPole-v1 preset | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["sac", "ppo"], default="sac")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--updates", type=int, default=300, help="updates per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.algo == "ppo":
        return ppo_rows(args.rounds)
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

    a, b = interleaved(ours.update, floor.update, batches, args.updates, args.rounds, device)
    print(f"| SAC update, batch {args.batch}, {args.hidden}-{args.hidden}, {device} | rlexp ms | floor ms | "
          f"rlexp / floor |")
    print("|---|---|---|---|")
    print(f"| Pendulum-v1 sizes | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
