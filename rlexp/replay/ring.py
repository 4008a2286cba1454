"""The ring every replay memory writes into: rows of one transition per env, and their slots.

A vector env step gives one transition per env; they are written together as one row. Transition (row, env)
lives at slot `row * num_envs + env`, the flat index into every storage tensor, so each env's transitions form
their own stream (the n-step window of a transition stays in its env) while a row is one contiguous write.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Ring:
    """Where the next row goes (`pos`) and how many rows hold data (`size`), in a ring of `rows` rows."""

    def __init__(self, rows: int, num_envs: int, device: torch.device) -> None:
        self.rows = rows
        self.num_envs = num_envs
        self.device = device
        self.pos = 0
        self.size = 0

    @property
    def capacity(self) -> int:
        """Transitions the ring holds when full."""
        return self.rows * self.num_envs

    def advance(self) -> int:
        """Claim the next row; returns it."""
        row = self.pos
        self.pos = (self.pos + 1) % self.rows
        self.size = min(self.size + 1, self.rows)
        return row

    def newest_rows(self, count: int) -> Tensor:
        """The last `count` rows written, oldest first."""
        return (torch.arange(count, device=self.device) + self.pos - count) % self.rows

    def slots_of(self, rows: Tensor) -> Tensor:
        """Every slot of `rows`, row by row (env 0 first)."""
        return (rows[:, None] * self.num_envs + torch.arange(self.num_envs, device=self.device)).reshape(-1)

    def split(self, slots: Tensor) -> tuple[Tensor, Tensor]:
        """(row, env) of each slot."""
        return slots // self.num_envs, slots % self.num_envs
