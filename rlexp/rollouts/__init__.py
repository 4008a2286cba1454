"""On-policy rollouts: what the envs produced over `n_steps` vector steps, and the advantages computed from it."""

from rlexp.rollouts.advantages import generalized_advantages

__all__ = ["generalized_advantages"]
