"""Torsos: the MLP for vector observations and the Nature DQN's convolutions for stacked frames."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

#: `network.activation`: the nonlinearity after every hidden layer of an MLP (RL Zoo's PPO and A2C presets use tanh).
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(in_features: int, hidden_sizes: Sequence[int], out_features: int, activation: str = "relu") -> nn.Sequential:
    """Linear -> activation blocks, then a linear output layer."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_features, width), ACTIVATIONS[activation]()]
        in_features = width
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class NatureConvolutions(nn.Module):
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

    def forward(self, frames: Tensor) -> Tensor:
        return self.net(frames.float() / 255.0 if self.scaled else frames.float())
