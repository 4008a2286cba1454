"""What a builder is given, and helpers every agent shares (the contracts an agent keeps: rlexp/agents/contracts.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlexp.envs.spaces import SpaceInfo
from rlexp.networks.encoders import ObservationEncoder, make_encoder
from rlexp.networks.optimizers import Adam
from rlexp.networks.user_torso import Torso
from rlexp.replay import ReplayBuffer
from rlexp.schedules import LinearSchedule, annealed


@dataclass(frozen=True)
class BuildContext:
    """The runtime facts an algorithm's builder gets besides its own keys: they come from the env and the
    machine, not from the config."""

    spaces: SpaceInfo
    hidden_sizes: tuple[int, ...]
    total_steps: int
    planned_updates: int          # what schedules over the run's updates span (learning rate, PER's beta)
    num_envs: int
    device: torch.device
    seed: int
    replay: ReplayBuffer | None = None   # the run's replay memory (prioritized replay takes TD errors back)
    activation: str = "relu"             # network.activation: the MLPs' nonlinearity (relu | tanh)
    torso: Torso | None = None           # network.torso: the user's module in the encoder's position (None: none)


def obs_tensor(obs: np.ndarray, device: torch.device) -> Tensor:
    """A batch of observations on the device: floats as float32; integers (uint8 frames, Discrete observations)
    and booleans as they are, for the network's encoder (the CNN scales frames, one-hot encodes Discrete). Any
    numpy layout is taken (a reversed view `obs[::-1]` has negative strides, which torch cannot wrap: it is copied)."""
    obs = np.asarray(obs)
    if any(stride < 0 for stride in obs.strides):
        obs = obs.copy()
    return torch.as_tensor(obs, dtype=torch.float32 if obs.dtype.kind == "f" else None, device=device)


def observation_encoder(spaces: SpaceInfo, frames: bool = False, torso: Torso | None = None
                        ) -> ObservationEncoder | None:
    """What the networks read observations through (rlexp/networks/encoders.py: flattened, one-hot; images
    through the Nature CNN when `frames`, the algorithm's networks take it as their torso). None for
    frames otherwise: DQN's Q-networks hold the Nature CNN themselves (their checkpoints' layout). `torso`
    (network.torso): the user's module reads every observation, images too (rlexp/networks/user_torso.py)."""
    if torso is not None:
        return torso.build(spaces.obs_space)
    if spaces.frames and not frames:
        return None
    return make_encoder(spaces.obs_space, frames=spaces.frames, channels_last=spaces.channels_last,
                        entries=spaces.entries, cnn=spaces.cnn)


def features(encoder: ObservationEncoder | None, spaces: SpaceInfo) -> int:
    """The width of what the networks' first layer reads: the encoded observation."""
    return spaces.obs_dim if encoder is None else encoder.out_features


def fork_global_generator(device: torch.device) -> torch.Generator:
    """A generator of the agent's own, continuing torch's seeded global stream from where it stands now (after
    the networks were initialised from it). An agent's random draws then depend on no one else's, its state is
    saved with the agent, and the stream is the one the agent drew from the global generator before it had a
    generator of its own, so runs made before keep their numbers."""
    generator = torch.Generator(device=device)
    generator.set_state(torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device))
    return generator


def make_adam(params, lr: float, device: torch.device, weight_decay: float = 0.0,
              eps: float = 1e-8, betas: tuple[float, float] = (0.9, 0.999)) -> Adam:
    """Adam with the fused kernel (one launch for all tensors) where this torch build has it.

    `weight_decay` is the classic L2 penalty (added to the gradient), as the DDPG paper used on its critic.
    """
    params = list(params)
    try:
        return Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # no fused Adam for this device/build
        return Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, foreach=device.type != "cpu")


@torch.no_grad()
def grad_norm(params) -> Tensor:
    """The global L2 norm of the parameters' gradients (as clip_grad_norm_ computes it), left on the device."""
    norms = torch._foreach_norm([p.grad for p in params if p.grad is not None])
    return torch.linalg.vector_norm(torch.stack(norms))


@torch.no_grad()
def input_of(layer: torch.nn.Module, forward: Callable[[], Tensor]) -> tuple[Tensor, Tensor]:
    """(what `layer` received during `forward()`, what `forward()` returned): a network's last hidden layer is
    the input of its output layer."""
    received: list[Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: received.append(args[0]))
    try:
        output = forward()
    finally:
        handle.remove()
    return received[0], output


#: Optimizers with their learning rates' schedules over the agent's updates (rlexp.schedules.annealed).
LearningRates = list[tuple[torch.optim.Optimizer, LinearSchedule]]


def learning_rates(optimizers: Sequence[torch.optim.Optimizer | None], schedule: str, span: int) -> LearningRates:
    """Each optimizer's learning rate (as it was made with) on `schedule` over `span` updates."""
    return [(optimizer, annealed(optimizer.param_groups[0]["lr"], schedule, span)) for optimizer in optimizers
            if optimizer is not None]


def set_learning_rates(rates: LearningRates, update: int) -> None:
    """Every optimizer's learning rate at update `update` of its schedule."""
    for optimizer, schedule in rates:
        lr = schedule(update)
        for group in optimizer.param_groups:
            group["lr"] = lr


def rebound(rates: LearningRates, optimizers: Sequence[torch.optim.Optimizer | None]) -> LearningRates:
    """The same schedules, on other optimizers (a many-seeds agent's stacked ones, in the same order)."""
    return [(optimizer, schedule) for optimizer, (_, schedule) in
            zip([o for o in optimizers if o is not None], rates)]


def share_settings(batched: Any, first: Any) -> None:
    """Every attribute of the first seed's agent on the many-seeds agent `batched`: the seeds share every setting
    but the seed, so a setting is the first's; the members class then replaces what each member has of its own
    (networks, optimizers, generators). No list of names to keep in step with the single agent's attributes."""
    vars(batched).update(vars(first))


def state_of(agent: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The state dicts of the agent's named modules and optimizers, plus its update counter."""
    return {**{name: getattr(agent, name).state_dict() for name in names}, "n_updates": agent.n_updates}


def load_state(agent: Any, names: tuple[str, ...], state: dict[str, Any]) -> None:
    for name in names:
        getattr(agent, name).load_state_dict(state[name])
    agent.n_updates = int(state["n_updates"])
