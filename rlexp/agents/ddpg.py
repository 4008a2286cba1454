"""Deep Deterministic Policy Gradient: Lillicrap et al. 2015, "Continuous control with deep reinforcement learning".

https://arxiv.org/abs/1509.02971
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlexp.agents.td3 import TD3
from rlexp.noise import ActionNoise


class DDPG(TD3):
    """One critic, no target smoothing, actor and targets updated every step: TD3 with its additions off."""

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray, *,
                 hidden_sizes: Sequence[int], actor_lr: float, critic_lr: float, tau: float,
                 exploration_noise: ActionNoise, device: torch.device, critic_weight_decay: float = 0.0,
                 batch_norm: bool = False, critic_action_layer: int = 0, final_layer_init: float = 0.0) -> None:
        super().__init__(obs_dim, action_low, action_high, hidden_sizes=hidden_sizes, actor_lr=actor_lr,
                         critic_lr=critic_lr, tau=tau, policy_delay=1, target_noise=0.0,
                         target_noise_clip=0.0, n_critics=1, exploration_noise=exploration_noise, device=device,
                         critic_weight_decay=critic_weight_decay, batch_norm=batch_norm,
                         critic_action_layer=critic_action_layer, final_layer_init=final_layer_init)
