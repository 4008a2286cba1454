"""Deep Q-Network: Mnih et al. 2015, "Human-level control through deep reinforcement learning".

https://www.nature.com/articles/nature14236
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rlexp.agents.base import load_state, make_adam, obs_tensor, state_of
from rlexp.buffers import ReplayBatch
from rlexp.networks import QNetwork, polyak_update
from rlexp.noise import LinearSchedule, rng_state, set_rng_state


class DQN:
    """Q-learning with a target network, epsilon-greedy exploration, Huber loss and gradient clipping."""

    def __init__(self, obs_dim: int, n_actions: int, *, hidden_sizes: Sequence[int], lr: float, gamma: float,
                 tau: float, target_update_interval: int, exploration_fraction: float,
                 exploration_initial_eps: float, exploration_final_eps: float, max_grad_norm: float,
                 lr_schedule: str, total_steps: int, total_updates: int, device: torch.device,
                 rng: np.random.Generator) -> None:
        self.n_actions = n_actions
        self.gamma = gamma
        self.tau = tau
        self.target_update_interval = target_update_interval
        self.max_grad_norm = max_grad_norm
        self.device = device
        self.rng = rng
        self.epsilon = LinearSchedule(exploration_initial_eps, exploration_final_eps,
                                      int(exploration_fraction * total_steps))

        self.q_network = QNetwork(obs_dim, n_actions, hidden_sizes).to(device)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.optimizer = make_adam(self.q_network.parameters(), lr, device)
        # `linear` anneals the learning rate to 0 over the planned updates: late updates only fine-tune.
        self.learning_rate = (LinearSchedule(lr, 0.0, total_updates) if lr_schedule == "linear"
                              else LinearSchedule(lr, lr, 0))
        self.n_updates = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> int:
        if explore and self.rng.random() < self.epsilon(step):
            return int(self.rng.integers(self.n_actions))
        return int(self.q_network(obs_tensor(obs, self.device)).argmax(dim=1).item())

    @torch.no_grad()
    def td_target(self, batch: ReplayBatch) -> Tensor:
        """y = r + gamma * (1 - terminated) * max_a' Q_target(s', a'): no bootstrap past a true termination."""
        target_max = self.target_network(batch.next_observations).max(dim=1).values
        return batch.rewards + self.gamma * (1.0 - batch.terminations) * target_max

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        td_target = self.td_target(batch)
        q_values = self.q_network(batch.observations).gather(1, batch.actions.view(-1, 1)).squeeze(1)
        td_loss = F.smooth_l1_loss(q_values, td_target)  # the Huber loss = the paper's clipped error term

        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.n_updates)
        self.optimizer.zero_grad(set_to_none=True)
        td_loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.q_network.parameters(), self.max_grad_norm, foreach=True)
        self.optimizer.step()

        self.n_updates += 1
        if self.n_updates % self.target_update_interval == 0:
            polyak_update(self.target_network, self.q_network, self.tau)
        return {"losses/td_loss": td_loss.detach(), "losses/q_values": q_values.detach().mean(),
                "losses/grad_norm": grad_norm.detach()}

    def on_episode_start(self) -> None:
        """Epsilon-greedy keeps no per-episode state."""

    def exploration_metrics(self, step: int) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(step)}

    #: What a checkpoint holds of this agent (with the update counter and the exploration generator).
    checkpointed = ("q_network", "target_network", "optimizer")

    def state_dict(self) -> dict[str, Any]:
        return {**state_of(self, self.checkpointed), "rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state(self, self.checkpointed, state)
        set_rng_state(self.rng, state["rng"])
