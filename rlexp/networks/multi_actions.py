"""The on-policy actor-critics' distributions over MultiDiscrete and MultiBinary actions, as SB3's
MultiCategoricalDistribution and BernoulliDistribution: the policy head gives one logit per choice of every component
(MultiDiscrete: sum(nvec) logits, split per component) or one per bit (MultiBinary); the components are independent,
so log pi(a|s) and the entropy are sums over the components.

Every function works on any leading axes (a batch, or many seeds' batches with the seed axis in front), and draws
take an explicit generator (or one per seed), as the categorical and Gaussian policies' draws do: torch.distributions
samples only from the global stream. Stored actions may come back as floats (a rollout keeps every non-Discrete action
as float32: exact for these small integers), so they are cast before indexing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rlexp.networks.members import uniform


class MultiCategorical:
    """Independent categoricals, component i over nvec[i] choices (actions 0 .. nvec[i] - 1)."""

    def __init__(self, nvec: Sequence[int]) -> None:
        self.nvec = [int(n) for n in nvec]

    @property
    def logits(self) -> int:
        """The policy head's outputs."""
        return sum(self.nvec)

    def _log_probs(self, logits: Tensor) -> list[Tensor]:
        return [part.log_softmax(-1) for part in logits.split(self.nvec, dim=-1)]

    def log_prob(self, logits: Tensor, actions: Tensor) -> Tensor:
        actions = actions.long()
        return torch.stack([lp.gather(-1, actions[..., i:i + 1]).squeeze(-1)
                            for i, lp in enumerate(self._log_probs(logits))], dim=-1).sum(-1)

    def entropy(self, logits: Tensor) -> Tensor:
        return torch.stack([-(lp.exp() * lp).sum(-1) for lp in self._log_probs(logits)], dim=-1).sum(-1)

    def mode(self, logits: Tensor) -> Tensor:
        return torch.stack([part.argmax(-1) for part in logits.split(self.nvec, dim=-1)], dim=-1)

    def sample(self, logits: Tensor, generator: torch.Generator | Sequence[torch.Generator]) -> Tensor:
        """One draw per component by inverting its CDF with a uniform number (a NaN policy, a diverged seed's,
        draws action 0 rather than stopping the other seeds' draws)."""
        u = uniform((*logits.shape[:-1], len(self.nvec)), generator, logits.device)
        actions = [((lp.exp().cumsum(-1) <= u[..., i:i + 1]).sum(-1)).clamp(max=n - 1)
                   for i, (lp, n) in enumerate(zip(self._log_probs(logits), self.nvec))]
        return torch.stack(actions, dim=-1)


class Bernoulli:
    """Independent Bernoullis, one logit per bit (actions 0 or 1)."""

    def __init__(self, bits: int) -> None:
        self.bits = int(bits)

    @property
    def logits(self) -> int:
        return self.bits

    def log_prob(self, logits: Tensor, actions: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(logits, actions.to(logits.dtype), reduction="none").sum(-1)

    def entropy(self, logits: Tensor) -> Tensor:
        p = torch.sigmoid(logits)
        return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).sum(-1)

    def mode(self, logits: Tensor) -> Tensor:
        return (logits > 0).long()

    def sample(self, logits: Tensor, generator: torch.Generator | Sequence[torch.Generator]) -> Tensor:
        return (uniform(logits.shape, generator, logits.device) < torch.sigmoid(logits)).long()


MultiActions = MultiCategorical | Bernoulli
