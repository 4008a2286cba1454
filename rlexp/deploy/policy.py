"""The policy an export holds: raw observations in, the env's actions out, with nothing left outside the file."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rlexp.envs.normalization import EPSILON
from rlexp.networks.encoders import EntriesInput, MultiInputEncoder
from rlexp.networks.user_torso import UserTorso


class ExportedPolicy(nn.Module):
    """(x - mean) / sqrt(var + 1e-8), clipped to +-clip (the run's observation normalization with its training
    statistics, when it normalized observations), then the agent's deterministic policy
    (rlexp/networks/deterministic.py), which ends in the argmax or the clamp to the env's bounds.

    The normalization is computed in float64 from the observation's own dtype, then cast to float32: the same
    arithmetic, in the same order, as the numpy normalization the agent was trained and evaluated with, so an
    export reproduces its actions to the last bit of the normalized input. Stacked uint8 frames go in as they are
    (the Nature CNN scales them).
    """

    obs_mean: Tensor   # buffers (register_buffer), when normalizing
    obs_std: Tensor

    def __init__(self, policy: nn.Module, obs_mean: np.ndarray | None, obs_var: np.ndarray | None,
                 clip_obs: float, frames: bool = False) -> None:
        super().__init__()
        self.policy = policy
        self.normalize, self.frames, self.clip_obs = obs_mean is not None, frames, float(clip_obs)
        if obs_mean is not None and obs_var is not None:
            self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_mean, np.float64)))
            self.register_buffer("obs_std", torch.as_tensor(np.sqrt(np.asarray(obs_var, np.float64) + EPSILON)))

    def forward(self, obs: Tensor) -> Tensor:
        if self.normalize:
            x = ((obs.to(torch.float64) - self.obs_mean) / self.obs_std).clamp(-self.clip_obs, self.clip_obs)
            return self.policy(x.to(torch.float32))
        # (integer observations go in as they are: uint8 frames the CNN scales, Discrete ones the network
        # one-hot encodes, rlexp/networks/encoders.py)
        return self.policy(obs if self.frames or not obs.is_floating_point() else obs.to(torch.float32))


class ExportedEntriesPolicy(nn.Module):
    """The policy of an agent of Dict or Tuple observations, taking one input per entry (a tuple, in the entries'
    order, each (batch, *shape) in the entry's stored dtype: rlexp/envs/packing.py) rather than the packed bytes the
    agent reads: the network's MultiInputEncoder (or the user's torso) runs on the entries as they are (`encode`),
    and the network after
    it reads the features (its encoder slot an identity). The run's observation normalization, when it had one,
    standardises the float entries as ExportedPolicy does the whole observation: in float64, then float32."""

    obs_mean: Tensor   # buffers (register_buffer), when normalizing: the float entries' values, concatenated
    obs_std: Tensor

    def __init__(self, policy: nn.Module, encoder: EntriesInput, floats: list[int],
                 obs_mean: np.ndarray | None, obs_var: np.ndarray | None, clip_obs: float) -> None:
        super().__init__()
        self.policy, self.encoder = policy, encoder
        self.paths = list(encoder.paths)   # (the inputs' names: rlexp/deploy/export.py)
        self.normalize, self.floats, self.clip_obs = obs_mean is not None, floats, float(clip_obs)
        if obs_mean is not None and obs_var is not None:
            self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_mean, np.float64)))
            self.register_buffer("obs_std", torch.as_tensor(np.sqrt(np.asarray(obs_var, np.float64) + EPSILON)))

    def forward(self, obs: tuple[Tensor, ...]) -> Tensor:
        entries = list(obs)
        if self.normalize:
            start = 0
            for i in self.floats:   # each float entry's slice of the statistics, in its shape
                x = entries[i]
                size = int(np.prod(self.encoder.shapes[i], dtype=np.int64))
                mean = self.obs_mean[start:start + size].view(self.encoder.shapes[i])
                std = self.obs_std[start:start + size].view(self.encoder.shapes[i])
                entries[i] = ((x.to(torch.float64) - mean) / std).clamp(-self.clip_obs, self.clip_obs).to(
                    torch.float32)
                start += size
        return self.policy(self.encoder.encode(entries))


def split_encoder(policy: nn.Module) -> tuple[nn.Module, EntriesInput]:
    """`policy` (a copy of an agent's policy network, which it may change) with its encoder of Dict/Tuple entries
    (a MultiInputEncoder, or the user's torso reading them) taken out (an identity in its place), and that
    encoder."""
    found = [(name, module) for name, module in policy.named_modules()
             if isinstance(module, MultiInputEncoder) or isinstance(module, UserTorso) and module.views is not None]
    assert len(found) == 1, "a policy network reads its observations through one encoder"
    name, encoder = found[0]
    parent, _, child = name.rpartition(".")
    setattr(policy.get_submodule(parent) if parent else policy, child, nn.Identity())
    return policy, encoder
