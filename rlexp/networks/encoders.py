"""Observation encoders: the observation as the env gives it, in its own dtype and shape, to the flat float
features the networks' MLPs read (`out_features` wide).

Spaces decide encoders (gymnasium's spaces, as SB3's `preprocess_obs`): a Box of any rank that is not an image,
and MultiBinary, are flattened to floats; Discrete is one-hot encoded, MultiDiscrete one-hot per component,
concatenated; images in uint8 or floats, stacked frames (k, H, W) or channels first or last (channel-last ones
transposed in the encoder), go through a CNN (`FramesEncoder`: uint8 ones scaled by 1/255; the DQN paper's
convolutions and a 512-unit layer, as SB3's NatureCNN and CleanRL's ppo_atari, or IMPALA's ResNet and 256 units,
as CleanRL's ppo_procgen: network.image.cnn). The
encoding lives in the network, so replay and rollouts store each observation as it is (a
Discrete observation is one integer), and an export or `rlexp.load` takes the raw observation. Encoders work on
any leading axes (a batch; many seeds' (seeds, batch)), so a many-seeds model batches them as they are; the CNN,
which has parameters, stacks its seeds' layers (`FramesEncoder.stack_members`: grouped convolutions). Dict and
Tuple observations, which come packed into one uint8 row of bytes (rlexp/envs/packing.py), go through the
`MultiInputEncoder`: one of these encoders per entry, read from its bytes, the features concatenated (SB3's
MultiInputPolicy and CombinedExtractor).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol, cast

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rlexp.networks.members import MemberLinear
from rlexp.networks.torsos import CONVOLUTIONS


class ObservationEncoder(nn.Module):
    """Observations of shape (..., *obs_shape) to features of shape (..., out_features), float32."""

    out_features: int

    def __init__(self, obs_shape: Sequence[int]) -> None:
        super().__init__()
        self.rank = len(obs_shape)

    def components(self, observations: Tensor) -> Tensor:
        """(..., *obs_shape) -> (..., prod(obs_shape)); a scalar observation (Discrete) becomes one component.
        (flatten/unsqueeze, not a reshape computed from the shape, so TorchScript and ONNX keep the batch free.)"""
        if self.rank == 0:
            return observations.unsqueeze(-1)
        return observations.flatten(start_dim=observations.dim() - self.rank)


class FlatEncoder(ObservationEncoder):
    """A Box (any rank but an image's) or MultiBinary: the values as float32, flattened."""

    def __init__(self, obs_shape: Sequence[int]) -> None:
        super().__init__(obs_shape)
        self.out_features = int(np.prod(obs_shape))

    def forward(self, observations: Tensor) -> Tensor:
        return self.components(observations).to(torch.float32)


class OneHotEncoder(ObservationEncoder):
    """Discrete (`sizes` = [n]) or MultiDiscrete (`sizes` = nvec, flattened): each component's value v in
    [start, start + size) becomes a one-hot vector of `size`, the components' vectors concatenated.

    Computed as one comparison against every position, which exports to ONNX as Equal and ReduceSum and batches
    over seeds; a value out of its range (refused before it gets here: rlexp/envs/checks.py, `rlexp.load`'s act)
    would encode as zeros."""

    offsets: Tensor     # buffers (register_buffer, not saved: they follow from the space)
    positions: Tensor

    def __init__(self, obs_shape: Sequence[int], sizes: Sequence[int], starts: Sequence[int]) -> None:
        super().__init__(obs_shape)
        sizes = [int(n) for n in sizes]
        first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.out_features = int(sum(sizes))
        self.register_buffer("offsets", torch.as_tensor(first - np.asarray(starts, np.int64)), persistent=False)
        self.register_buffer("positions", torch.arange(self.out_features), persistent=False)

    def forward(self, observations: Tensor) -> Tensor:
        index = self.components(observations).long() + self.offsets           # (..., components)
        return (index.unsqueeze(-1) == self.positions).to(torch.float32).sum(-2)   # (..., out_features)


class FramesEncoder(ObservationEncoder):
    """Images (stacked frames (k, H, W), channels first or last): the Nature CNN (its convolutions scale uint8
    images to [0, 1] themselves; float ones, `scaled=False`, are read as they are) or IMPALA's ResNet (`cnn`), then
    a linear layer of `out_features` and a ReLU: SB3's NatureCNN features extractor, CleanRL's ppo_atari (and
    ppo_procgen) torso. Replay and rollouts keep the images in their dtype."""

    def __init__(self, obs_shape: Sequence[int], out_features: int | None = None, channels_last: bool = False,
                 scaled: bool = True, cnn: str = "nature") -> None:
        super().__init__(obs_shape)
        # channel-last images (H, W, C), e.g. CarRacing's, are transposed here: storage keeps the env's layout
        self.channels_last = channels_last
        height, width, channels = obs_shape if channels_last else (*obs_shape[1:], obs_shape[0])
        # network.image.cnn: the Nature CNN's convolutions (then 512 units) or IMPALA's ResNet (then 256)
        convolutions, width_after = CONVOLUTIONS[cnn]
        out_features = width_after if out_features is None else out_features
        self.convolutions = convolutions((channels, height, width), scaled)   # scaled: uint8 images
        self.linear: nn.Linear | MemberLinear = nn.Linear(self.convolutions.out_features, out_features)
        self.out_features = out_features
        self.seeds: int | None = None   # many seeds' encoders stacked as one (stack_members): their number

    @classmethod
    def stack_members(cls, members: list[FramesEncoder]) -> FramesEncoder:
        """Many seeds' CNNs as one (rlexp/networks/members.py): the convolutions' own stacking (grouped
        convolutions: rlexp/networks/torsos.py's SeedStackable), the 512-unit layer a MemberLinear. It takes
        (seeds, batch, k, H, W) frames and gives (seeds, batch, 512)."""
        stacked = copy.deepcopy(members[0])
        stacked.seeds = len(members)
        stacked.convolutions = type(members[0].convolutions).stack_members([m.convolutions for m in members])
        stacked.linear = MemberLinear([m.linear for m in members if isinstance(m.linear, nn.Linear)])
        return stacked

    def forward(self, observations: Tensor) -> Tensor:
        if self.channels_last:   # (..., H, W, C) -> (..., C, H, W)
            observations = observations.movedim(-1, -3)
        if self.seeds is not None or observations.dim() == 4:
            # (seeds, batch, k, H, W): the stacked convolutions group the seeds; (batch, k, H, W): what a single
            # run and an export see
            return torch.relu(self.linear(self.convolutions(observations)))
        leading = observations.shape[:-3]   # any other leading axes, folded into one batch for the convolutions
        features = self.convolutions(observations.reshape(-1, *observations.shape[-3:]))
        return torch.relu(self.linear(features)).reshape(*leading, self.out_features)


class PackedEntry(Protocol):
    """An entry of a packed Dict/Tuple observation (rlexp/envs/packing.py's Entry, which the env layer defines)."""

    @property
    def path(self) -> str: ...
    @property
    def space(self) -> gym.Space: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def offset(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def channels_last(self) -> bool | None: ...


class EntryViews:
    """Packed Dict/Tuple observations (..., nbytes) in uint8 read back entry by entry, each a zero-copy view of its
    bytes in its own dtype and shape (the packing aligns each entry's offset to its itemsize, and each row to 8
    bytes, which Tensor.view(dtype) needs)."""

    def __init__(self, entries: Sequence[PackedEntry]) -> None:
        self.paths = [entry.path for entry in entries]
        self.slices = [(entry.offset, entry.offset + entry.nbytes) for entry in entries]
        self.dtypes = [torch.from_numpy(np.zeros(0, entry.dtype)).dtype for entry in entries]
        self.shapes = [tuple(entry.shape) for entry in entries]

    def entry(self, observations: Tensor, i: int) -> Tensor:
        """Entry i of packed observations (..., nbytes): (..., *shape) in its dtype, a view of the bytes."""
        start, end = self.slices[i]
        return observations[..., start:end].view(self.dtypes[i]).reshape((*observations.shape[:-1], *self.shapes[i]))

    def entries(self, observations: Tensor) -> list[Tensor]:
        return [self.entry(observations, i) for i in range(len(self.paths))]


class EntriesInput(Protocol):
    """An encoder of packed Dict/Tuple observations that also takes the entries apart (what an export takes: one
    input per entry, rlexp/deploy/policy.py): MultiInputEncoder, or the user's torso on such observations."""

    paths: list[str]
    shapes: list[tuple[int, ...]]

    def encode(self, entries: Sequence[Tensor]) -> Tensor: ...


class MultiInputEncoder(ObservationEncoder):
    """Packed Dict/Tuple observations (..., nbytes) in uint8: each entry read back as a zero-copy view of its
    bytes in its own dtype and shape (EntryViews), through its own encoder (the Nature CNN for images, one-hot for
    Discrete and MultiDiscrete, flattened floats for other Boxes and MultiBinary), the features concatenated in
    the entries' order. Many seeds: the generic stacking (rlexp/networks/members.py) stacks the CNNs of image
    entries (FramesEncoder.stack_members); the other encoders have no parameters."""

    def __init__(self, entries: Sequence[PackedEntry], cnn: str = "nature") -> None:
        super().__init__((max(e.offset + e.nbytes for e in entries),))
        self.views = EntryViews(entries)
        self.paths, self.shapes = self.views.paths, self.views.shapes
        self.encoders = nn.ModuleList([make_encoder(entry.space, frames=entry.channels_last is not None,
                                                    channels_last=bool(entry.channels_last), cnn=cnn)
                                       for entry in entries])   # (`cnn`: network.image.cnn, for image entries)
        self.out_features = sum(cast(ObservationEncoder, encoder).out_features for encoder in self.encoders)

    def forward(self, observations: Tensor) -> Tensor:
        return self.encode(self.views.entries(observations))

    def encode(self, entries: Sequence[Tensor]) -> Tensor:
        """The features of the entries given apart, each (..., *shape) in its dtype (what an export takes: one
        input per entry, rlexp/deploy/policy.py)."""
        return torch.cat([encoder(entry) for encoder, entry in zip(self.encoders, entries)], dim=-1)


def encodable(space: gym.Space) -> bool:
    """Whether `make_encoder` takes `space`."""
    return isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary))


def make_encoder(space: gym.Space, frames: bool = False, channels_last: bool = False,
                 entries: Sequence[PackedEntry] = (), cnn: str = "nature") -> ObservationEncoder:
    """The encoder of an observation space (`encodable`); `frames`: the space is an image, stacked uint8 frames
    (k, H, W) or channels first or last (rlexp/envs/spaces.py's SpaceInfo.frames and channels_last), read by the
    Nature CNN or IMPALA's ResNet (`cnn`: network.image.cnn); `entries`: the space holds packed Dict/Tuple
    observations of these entries (SpaceInfo.entries)."""
    if entries:
        return MultiInputEncoder(entries, cnn)
    if frames:
        return FramesEncoder(tuple(space.shape or ()), channels_last=channels_last, scaled=space.dtype == np.uint8,
                             cnn=cnn)
    if isinstance(space, gym.spaces.Discrete):
        return OneHotEncoder((), [int(space.n)], [int(space.start)])
    if isinstance(space, gym.spaces.MultiDiscrete):
        start = getattr(space, "start", None)   # (gymnasium >= 1.0)
        return OneHotEncoder(space.shape, space.nvec.flatten().tolist(),
                             [0] * space.nvec.size if start is None else np.asarray(start).flatten().tolist())
    if isinstance(space, (gym.spaces.Box, gym.spaces.MultiBinary)):
        return FlatEncoder(space.shape)
    raise ValueError(f"no observation encoder for {space}")
