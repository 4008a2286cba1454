"""Noisy networks: Fortunato et al. 2018, "Noisy Networks for Exploration", https://arxiv.org/abs/1706.10295.

A noisy layer's weights are w = mu + sigma * epsilon, where mu and sigma are learned and epsilon is noise drawn
afresh (factorised Gaussian noise, section 3.2 of the paper: one noise vector per input and one per output rather
than one number per weight). The agent explores by acting greedily through perturbed weights, and learns how much
to perturb each weight; epsilon-greedy is not needed.

The noise lives in buffers that are not saved: `sample_noise` draws it from the agent's generator before each use
(acting, each update: the online and the target network each their own draw), and `clear_noise` zeroes it, which
leaves exactly the mean weights mu: what evaluation, the exported policy and `rlexp.load` act with.

The perturbed weights are never formed: with factorised noise, (mu_w + sigma_w * f(eps_out) f(eps_in)^T) x =
mu_w x + f(eps_out) * (sigma_w (f(eps_in) * x)), two products with the layer's matrices and elementwise products
with vectors, where forming the weights costs three passes over a matrix (a 3136 x 512 one on Atari frames) at
every step acted and every forward pass of an update.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlexp.networks.members import standard_normal


def scaled_noise(epsilon: Tensor) -> Tensor:
    """f(x) = sgn(x) sqrt(|x|), the paper's scaling of factorised noise (eq. 11)."""
    return epsilon.sign() * epsilon.abs().sqrt()


class NoisyLinear(nn.Module):
    """y = (mu_w + sigma_w * epsilon_w) x + mu_b + sigma_b * epsilon_b with factorised Gaussian noise:
    epsilon_w = f(epsilon_out) f(epsilon_in)^T and epsilon_b = f(epsilon_out) (Fortunato et al. 2018, eq. 9-11).

    Initialised as the paper's factorised layers: mu ~ U[-1/sqrt(p), 1/sqrt(p)] and sigma = sigma0 / sqrt(p), p the
    layer's inputs (sigma0 = 0.5 in the paper, 0.1 in data-efficient Rainbow). Many seeds stack (`stack_members`):
    a member axis in front of every parameter and noise vector, each member's noise drawn from its own generator."""

    members: int | None = None   # many seeds' layers stacked as one: their number
    epsilon_in: Tensor           # the noise (buffers, not saved): (in,), (out,); stacked (members, in), ...
    epsilon_out: Tensor
    noisy: bool = False          # noise drawn (sample_noise); False: the mean weights alone (clear_noise)

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        self.register_buffer("epsilon_in", torch.zeros(in_features), persistent=False)
        self.register_buffer("epsilon_out", torch.zeros(out_features), persistent=False)

    @classmethod
    def stack_members(cls, layers: Sequence[NoisyLinear]) -> NoisyLinear:
        stacked = copy.deepcopy(layers[0])
        stacked.members = len(layers)
        for name, _ in layers[0].named_parameters():
            setattr(stacked, name, nn.Parameter(torch.stack([getattr(layer, name).detach() for layer in layers])))
        for name in ("epsilon_in", "epsilon_out"):
            stacked.register_buffer(name, torch.stack([getattr(layer, name) for layer in layers]), persistent=False)
        return stacked

    def forward(self, x: Tensor) -> Tensor:
        if self.members is None:
            mean = F.linear(x, self.weight_mu, self.bias_mu)
            if not self.noisy:
                return mean
            # mu_w x + mu_b + f(eps_out) * (sigma_w (f(eps_in) * x) + sigma_b)
            return mean + (F.linear(x * self.epsilon_in, self.weight_sigma) + self.bias_sigma) * self.epsilon_out
        # x: (members, batch, in) -> (members, batch, out)
        mean = torch.baddbmm(self.bias_mu.unsqueeze(1), x, self.weight_mu.transpose(1, 2))
        if not self.noisy:
            return mean
        noise = torch.baddbmm(self.bias_sigma.unsqueeze(1), x * self.epsilon_in.unsqueeze(1),
                              self.weight_sigma.transpose(1, 2))
        return mean + noise * self.epsilon_out.unsqueeze(1)

    @torch.no_grad()
    def sample_noise(self, generator: torch.Generator | Sequence[torch.Generator]) -> None:
        """New epsilon_in, then epsilon_out, from `generator` (stacked: one generator per member, each member's
        draws those its single run makes)."""
        lead = () if self.members is None else (self.members,)
        device = self.weight_mu.device
        self.epsilon_in.copy_(scaled_noise(standard_normal((*lead, self.in_features), generator, device)))
        self.epsilon_out.copy_(scaled_noise(standard_normal((*lead, self.out_features), generator, device)))
        self.noisy = True

    @torch.no_grad()
    def clear_noise(self) -> None:
        self.epsilon_in.zero_()
        self.epsilon_out.zero_()
        self.noisy = False


def noisy_layers(network: nn.Module) -> list[NoisyLinear]:
    return [m for m in network.modules() if isinstance(m, NoisyLinear)]


def sample_noise(network: nn.Module, generator: torch.Generator | Sequence[torch.Generator]) -> None:
    """Fresh noise in every noisy layer of `network`, layer by layer in the order they are built."""
    for layer in noisy_layers(network):
        layer.sample_noise(generator)


def clear_noise(network: nn.Module) -> None:
    """No noise in any layer of `network`: it computes with its mean weights mu."""
    for layer in noisy_layers(network):
        layer.clear_noise()
