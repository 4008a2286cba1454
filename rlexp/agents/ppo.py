"""Proximal Policy Optimization: Schulman et al. 2017, "Proximal Policy Optimization Algorithms".

https://arxiv.org/abs/1707.06347

After each rollout of `n_steps` vector steps, `n_epochs` passes over it in shuffled minibatches, each minimising

    L = -L^CLIP + vf_coef * (R - V(s))^2 - ent_coef * H(pi(.|s))

with advantages normalised per minibatch (optional), the value prediction optionally clipped around the old one,
the global gradient norm clipped to `max_grad_norm`, and an optional early stop of the epochs once the
approximate KL to the rollout's policy passes 1.5 * target_kl (as SB3 stops). The learning rate and the clip range
can anneal linearly to 0 over the run's rollouts.

(The registry entry, config and on-policy runner that make this `algo=ppo` are the next step of this work.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.agents.base import obs_tensor
from rlexp.networks.policies import ActorCriticPolicy
from rlexp.rollouts.losses import clipped_surrogate, normalize, value_loss
from rlexp.rollouts.storage import RolloutStorage
from rlexp.schedules import LinearSchedule


class PPO:
    def __init__(self, policy: ActorCriticPolicy, *, lr: float, n_epochs: int, batch_size: int, clip_range: float,
                 clip_range_vf: float | None, ent_coef: float, vf_coef: float, max_grad_norm: float,
                 target_kl: float | None, normalize_advantage: bool, total_rollouts: int, device: torch.device,
                 action_low: np.ndarray | None = None, action_high: np.ndarray | None = None,
                 lr_schedule: str = "constant", clip_range_schedule: str = "constant",
                 optimizer: str = "adam", generator: torch.Generator | None = None) -> None:
        self.policy = policy.to(device)
        self.device = device
        self.n_epochs, self.batch_size = n_epochs, batch_size
        self.clip_range_vf, self.ent_coef, self.vf_coef = clip_range_vf, ent_coef, vf_coef
        self.max_grad_norm, self.target_kl, self.normalize_advantage = max_grad_norm, target_kl, normalize_advantage
        self.learning_rate = LinearSchedule(lr, 0.0, total_rollouts) if lr_schedule == "linear" \
            else LinearSchedule(lr, lr, 0)
        self.clip_range = LinearSchedule(clip_range, 0.0, total_rollouts) if clip_range_schedule == "linear" \
            else LinearSchedule(clip_range, clip_range, 0)
        if optimizer == "rmsprop":   # A2C as SB3 configures it: RMSprop(alpha=0.99, eps=1e-5)
            self.optimizer = torch.optim.RMSprop(self.policy.parameters(), lr=lr, alpha=0.99, eps=1e-5)
        else:
            self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr, eps=1e-5)
        self.action_low, self.action_high = action_low, action_high
        self.generator = generator if generator is not None else torch.Generator(device=device)
        self.n_updates = 0     # rollouts learned from

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray:
        """Env actions for a batch: a draw from pi when exploring, the mode otherwise (continuous ones clipped
        to the env's bounds: the Gaussian itself is unbounded, as in SB3)."""
        return self.to_env(self.rollout_step(obs)[0] if explore else
                           self.policy.deterministic(obs_tensor(obs, self.device)))

    @torch.no_grad()
    def rollout_step(self, obs: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """(actions, log pi_old(a|s), V_old(s)) for the rollout, drawn from the agent's generator."""
        return self.policy.sample(obs_tensor(obs, self.device), self.generator)

    @torch.no_grad()
    def values(self, obs: np.ndarray) -> Tensor:
        return self.policy.values(obs_tensor(obs, self.device))

    def to_env(self, actions: Tensor) -> np.ndarray:
        out = actions.cpu().numpy()
        return out if self.action_low is None else np.clip(out, self.action_low, self.action_high)

    def learn(self, rollout: RolloutStorage) -> dict[str, Tensor]:
        """The epochs over one finished rollout; returns the means of its losses and diagnostics."""
        clip_range = self.clip_range(self.n_updates)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.n_updates)
        sums: dict[str, list[Tensor]] = {}
        stop = False
        for _ in range(self.n_epochs):
            for batch in rollout.minibatches(self.batch_size, self.generator):
                log_prob, entropy, values = self.policy.evaluate(batch.observations, batch.actions)
                advantages = normalize(batch.advantages) if self.normalize_advantage else batch.advantages
                policy = clipped_surrogate(log_prob, batch.old_log_probs, advantages, clip_range)
                if self.target_kl is not None and policy.approx_kl > 1.5 * self.target_kl:
                    stop = True   # this minibatch moved too far already: no step on it, no more epochs
                    break
                v_loss = value_loss(values, batch.old_values, batch.returns, self.clip_range_vf)
                entropy_loss = -entropy.mean()
                loss = policy.loss + self.vf_coef * v_loss + self.ent_coef * entropy_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.optimizer.step()
                for name, value in (("policy_loss", policy.loss), ("value_loss", v_loss),
                                    ("entropy", -entropy_loss), ("approx_kl", policy.approx_kl),
                                    ("clip_fraction", policy.clip_fraction), ("grad_norm", grad_norm)):
                    sums.setdefault(name, []).append(value.detach())
            if stop:
                break
        self.n_updates += 1
        returns, values = rollout.returns.flatten(), rollout.values.flatten()
        # 1 - Var[R - V] / Var[R]: how much of the returns' variance the value function explained (SB3's)
        explained = 1.0 - (returns - values).var() / returns.var() if returns.var() > 0 else torch.tensor(float("nan"))
        metrics = {f"losses/{name}": torch.stack(values_).mean() for name, values_ in sums.items()}
        metrics.update({"losses/explained_variance": explained, "losses/clip_range": torch.tensor(clip_range),
                        "losses/learning_rate": torch.tensor(self.optimizer.param_groups[0]["lr"])})
        return metrics

    def episodes_started(self, envs: np.ndarray) -> None:
        """A policy without memory: nothing to reset."""

    def exploration_metrics(self, step: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.n_updates = int(state["n_updates"])
