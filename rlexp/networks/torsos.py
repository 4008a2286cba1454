"""Torsos: the MLP for vector observations; for images the Nature DQN's convolutions or IMPALA's ResNet."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import torch
from torch import Tensor, nn

#: `network.activation`: the nonlinearity after every hidden layer of an MLP (RL Zoo's PPO and A2C presets use tanh).
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(in_features: int, hidden_sizes: Sequence[int], out_features: int, activation: str = "relu",
        linear: Callable[[int, int], nn.Module] = nn.Linear) -> nn.Sequential:
    """Linear -> activation blocks, then a linear output layer (`linear` makes the layers: nn.Linear, or noisy
    ones)."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [linear(in_features, width), ACTIVATIONS[activation]()]
        in_features = width
    layers.append(linear(in_features, out_features))
    return nn.Sequential(*layers)


S = TypeVar("S", bound="SeedStackable")


class SeedStackable(nn.Module):
    """Convolutions whose seeds stack (rlexp/networks/members.py's stack_members): every Conv2d of N seeds' copies
    becomes one grouped convolution (groups = N; its weight the seeds' weights concatenated, seed k's the k-th
    block, so each seed's parameters are a view of its block), which reads N seeds' images as one batch of N times
    the channels. Pools, sums and ReLUs act per channel, so they need nothing. A stacked module takes
    (seeds, batch, C, H, W) images and gives (seeds, batch, features)."""

    net: nn.Sequential
    scaled: bool               # uint8 images, scaled to [0, 1]; float ones read as they are
    out_features: int          # the width of the flattened output, per seed
    seeds: int | None = None   # many seeds' convolutions stacked as one: their number

    @classmethod
    def stack_members(cls: type[S], members: Sequence[S]) -> S:
        stacked = copy.deepcopy(members[0])
        stacked.seeds = seeds = len(members)
        for name, layer in list(stacked.named_modules()):
            if isinstance(layer, nn.Conv2d):
                convs = [cast(nn.Conv2d, m.get_submodule(name)) for m in members]
                grouped = nn.Conv2d(layer.in_channels * seeds, layer.out_channels * seeds,
                                    cast("tuple[int, int]", layer.kernel_size),
                                    stride=cast("tuple[int, int]", layer.stride),
                                    padding=cast("tuple[int, int]", layer.padding), groups=seeds)
                grouped.weight = nn.Parameter(torch.cat([c.weight.detach() for c in convs]))
                grouped.bias = nn.Parameter(torch.cat([c.bias.detach() for c in convs if c.bias is not None]))
                parent, _, child = name.rpartition(".")
                setattr(stacked.get_submodule(parent), child, grouped)
        return stacked

    def forward(self, frames: Tensor) -> Tensor:
        images = frames.float() / 255.0 if self.scaled else frames.float()   # (scaled: uint8 images)
        if self.seeds is None:
            return self.net(images)
        # (seeds, batch, C, H, W) -> (batch, seeds * C, H, W): each seed its own group; the flattened output is
        # member-major (seed k's channels are the k-th block), so it splits back into (seeds, batch, features)
        seeds, batch = images.shape[:2]
        grouped = images.transpose(0, 1).reshape(batch, seeds * images.shape[2], *images.shape[3:])
        return self.net(grouped).view(batch, seeds, -1).transpose(0, 1)


class NatureConvolutions(SeedStackable):
    """The DQN paper's convolutions on stacked frames: 32 8x8 filters stride 4, 64 4x4 stride 2, 64 3x3 stride 1,
    each followed by a ReLU (Mnih et al. 2015, Methods). Takes uint8 frames and scales them to [0, 1] itself,
    so replay memory stays in uint8; float images (`scaled=False`) are read as they are."""

    def __init__(self, image_shape: Sequence[int], scaled: bool = True) -> None:
        super().__init__()
        self.scaled = scaled
        self.net = nn.Sequential(
            nn.Conv2d(image_shape[0], 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        # each side after the convolutions (no padding): (side - kernel) // stride + 1; 7x7x64 = 3136 for 84x84.
        # (Computed, not measured with a forward pass: these layers are also built on the meta device, to count
        # parameters, where a forward pass would import torch._dynamo: rlexp/networks/optimizers.py.)
        sides = list(image_shape[1:])
        for layer in self.net:
            if isinstance(layer, nn.Conv2d):
                sides = [(side - k) // s + 1 for side, k, s in zip(sides, layer.kernel_size, layer.stride)]
        self.out_features = 64 * sides[0] * sides[1]


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))), two 3x3 convolutions that keep the size and the channels (IMPALA's)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(nn.functional.relu(self.conv0(nn.functional.relu(x))))


class ImpalaConvolutions(SeedStackable):
    """IMPALA's ResNet (Espeholt et al. 2018, Figure 3, "large architecture"; CleanRL's ppo_procgen): three stacks,
    each a 3x3 convolution of 16, 32 and 32 channels, a 3x3 max pool of stride 2 (padding 1) and two residual
    blocks; then a ReLU on the flattened features (the 256-unit layer after it is the encoder's). Any side works
    (the pools halve it, rounding up: 84 -> 42 -> 21 -> 11). Scales uint8 images to [0, 1] as NatureConvolutions."""

    CHANNELS = (16, 32, 32)

    def __init__(self, image_shape: Sequence[int], scaled: bool = True) -> None:
        super().__init__()
        self.scaled = scaled
        layers: list[nn.Module] = []
        channels, sides = image_shape[0], list(image_shape[1:])
        for width in self.CHANNELS:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                       ResidualBlock(width), ResidualBlock(width)]
            channels, sides = width, [(side + 1) // 2 for side in sides]
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.ReLU())
        self.out_features = channels * sides[0] * sides[1]   # (computed: no forward pass, as NatureConvolutions)


#: `network.image.cnn`: the convolutions that read images, and the width of the linear layer the encoder puts after
#: them (the Nature DQN's 512; CleanRL's ppo_procgen and Espeholt et al.'s 256 for IMPALA)
CONVOLUTIONS: dict[str, tuple[type[SeedStackable], int]] = {
    "nature": (NatureConvolutions, 512), "impala": (ImpalaConvolutions, 256)}
