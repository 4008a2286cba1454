"""Runners run, agents learn: the off-policy runner's outer loop, the context every runner shares (logging,
evaluation, checkpoints, faults, results), the collector that steps the envs, and a job built from its config."""
