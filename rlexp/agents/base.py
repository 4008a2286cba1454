"""What the training loop needs from an agent, and nothing more."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from rlexp.buffers import ReplayBatch


class Agent(Protocol):
    def act(self, obs: np.ndarray, explore: bool, step: int = 0) -> np.ndarray | int:
        """An action for one observation; `explore` adds the algorithm's exploration at env step `step`."""

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        """One gradient step. Metrics stay tensors on the device: the loop converts them only when it logs."""

    def on_episode_start(self) -> None:
        """Reset per-episode exploration state (e.g. Ornstein-Uhlenbeck noise)."""

    def exploration_metrics(self, step: int) -> dict[str, float]:
        """Scalars describing exploration at env step `step` (e.g. epsilon)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly: networks, target networks, optimizers, update counter, exploration state."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def obs_tensor(obs: np.ndarray, device: torch.device) -> Tensor:
    """One observation as a batch of one on the device: float32, or uint8 frames as they are (the CNN scales)."""
    obs = np.asarray(obs)
    return torch.as_tensor(obs, dtype=None if obs.dtype == np.uint8 else torch.float32, device=device).unsqueeze(0)


def make_adam(params, lr: float, device: torch.device, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel (one launch for all tensors) where this torch build has it.

    `weight_decay` is the classic L2 penalty (added to the gradient), as the DDPG paper used on its critic.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # no fused Adam for this device/build
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=device.type != "cpu")


@torch.no_grad()
def grad_norm(params) -> Tensor:
    """The global L2 norm of the parameters' gradients (as clip_grad_norm_ computes it), left on the device."""
    norms = torch._foreach_norm([p.grad for p in params if p.grad is not None])
    return torch.linalg.vector_norm(torch.stack(norms))


def state_of(agent: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The state dicts of the agent's named modules and optimizers, plus its update counter."""
    return {**{name: getattr(agent, name).state_dict() for name in names}, "n_updates": agent.n_updates}


def load_state(agent: Any, names: tuple[str, ...], state: dict[str, Any]) -> None:
    for name in names:
        getattr(agent, name).load_state_dict(state[name])
    agent.n_updates = int(state["n_updates"])
