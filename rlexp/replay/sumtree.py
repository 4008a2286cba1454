"""The sum tree behind proportional prioritized experience replay (Schaul et al. 2016, arXiv:1511.05952).

Everything is a tensor on the training device and every operation is vectorised over the batch: the only Python
loop is over the tree's log2(capacity) levels, so `sample` and `update` cost O(batch * log capacity) work in
O(log capacity) kernel launches, with no host round trip besides the one check that raises ValueError.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SumTree:
    """Priorities of `capacity` replay slots in a binary sum tree on `device` (float64: sums of up to millions of
    priorities must not drift).

    The tree is stored heap-style: node 1 is the root, node i's children are 2i and 2i+1, and slot s is leaf
    `first_leaf + s`, where `first_leaf` is `capacity` rounded up to a power of two (the padding leaves hold
    priority 0 and so are never sampled). `sums` holds each node's sum and `mins` each node's smallest non-zero
    priority (+inf where there is none), so `total` and `min_positive` are one read of the root.

    Every inner node is always exactly `sums[2i] + sums[2i+1]` as rounded in float64, recomputed from its children
    rather than adjusted by deltas, so no error accumulates however many updates a run makes.
    """

    def __init__(self, capacity: int, device: torch.device) -> None:
        if capacity < 1:
            raise ValueError(f"a sum tree needs a capacity of at least 1, got {capacity}")
        self.capacity = capacity
        self.device = device
        self.first_leaf = 1 << (capacity - 1).bit_length()   # leaves padded to a power of two
        self.depth = self.first_leaf.bit_length() - 1         # levels above the leaves
        # Column 0 holds each node's sum, column 1 its smallest positive priority, side by side so that one
        # gather reads, and one scatter writes, both trees: row i of `_children` is [sum, min] of node 2i, then
        # of node 2i+1. Launches, not arithmetic, are what a level costs at replay batch sizes.
        self._nodes = torch.zeros((2 * self.first_leaf, 2), dtype=torch.float64, device=device)
        self._nodes[:, 1] = torch.inf
        self._children = self._nodes.view(self.first_leaf, 4)
        self._is_sum = torch.tensor([True, False], device=device)
        self.sums = self._nodes[:, 0]   # views: they follow every update
        self.mins = self._nodes[:, 1]

    def update(self, indices: Tensor, priorities: Tensor, checked: bool = True) -> None:
        """Set the priorities of slots `indices` (int64, any order, duplicates allowed: the last value given for a
        slot wins) and recompute every ancestor sum, level by level (vectorised).

        Raises ValueError for a negative or non-finite priority or an index outside [0, capacity), before
        changing anything. That check is the one host-device synchronisation; `checked=False` skips it for callers
        whose inputs are valid by construction (the replay buffer, on its hot path).
        """
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise ValueError(f"slot indices must be integers, got {indices.dtype}")
        indices = indices.to(self.device, torch.int64).reshape(-1)
        priorities = priorities.to(self.device, torch.float64).reshape(-1)
        if indices.shape != priorities.shape:
            raise ValueError(f"update got {indices.numel()} indices but {priorities.numel()} priorities")
        if indices.numel() == 0:
            return
        bad_priority, bad_index = (False, False) if not checked else torch.stack([
            (~torch.isfinite(priorities) | (priorities < 0)).any(),
            ((indices < 0) | (indices >= self.capacity)).any(),
        ]).tolist()
        if bad_priority:
            raise ValueError("priorities must be finite and non-negative, got "
                             f"{priorities[~torch.isfinite(priorities) | (priorities < 0)][:3].tolist()}")
        if bad_index:
            raise ValueError(f"slot indices must lie in [0, {self.capacity}), got "
                             f"{indices[(indices < 0) | (indices >= self.capacity)][:3].tolist()}")

        # Duplicates: of several writes to one element, index_copy_ leaves unspecified which wins (on CUDA it
        # varies), so every occurrence of a slot writes the value of its last occurrence. A stable sort groups a
        # slot's occurrences in the order given; searchsorted finds the last of each group. No boolean mask: that
        # would call nonzero(), a host-device synchronisation on every update.
        sorted_slots, order = torch.sort(indices, stable=True)
        last = torch.searchsorted(sorted_slots, sorted_slots, right=True) - 1
        values = priorities[order[last]]
        nodes = sorted_slots + self.first_leaf
        self._nodes.index_copy_(0, nodes, torch.stack([values, torch.where(values > 0, values, torch.inf)], dim=1))

        # Siblings share a parent, so parents repeat; every copy writes the same value, so that is harmless.
        for _ in range(self.depth):
            nodes = nodes >> 1
            self._nodes.index_copy_(0, nodes, self._combine(torch.index_select(self._children, 0, nodes)))

    def _combine(self, children: Tensor) -> Tensor:
        """[sum, min] of the parents of (n, 4) rows of [sum, min] of a left child, then of its right sibling."""
        left, right = children[:, :2], children[:, 2:]
        return torch.where(self._is_sum, left + right, torch.minimum(left, right))

    def total(self) -> Tensor:
        """The sum of all priorities (0-dim float64)."""
        return self.sums[1].clone()

    def get(self, indices: Tensor) -> Tensor:
        """The priorities (float64) of slots `indices` (in [0, capacity)), in the same shape."""
        return self.sums[self.first_leaf:self.first_leaf + self.capacity][indices.to(self.device)]

    def min_positive(self) -> Tensor:
        """The smallest non-zero priority (0-dim float64), which sets PER's largest importance weight; +inf when
        every priority is 0. O(1): the root of the min tree."""
        return self.mins[1].clone()

    def sample(self, batch_size: int, generator: torch.Generator, checked: bool = True) -> Tensor:
        """Stratified proportional sampling: split [0, total) into batch_size equal segments, draw one uniform value
        in each (from `generator`, on the tree's device), descend the tree for all values at once. Returns int64 slot
        indices; a slot is drawn with probability proportional to its priority, and a slot with priority 0 is never
        returned (guard against floating-point edge cases at segment ends).

        The guard: the descent goes right only when the right child's sum is positive. Every node it enters then
        has a positive sum (a positive sum of non-negative children has a positive child), so it ends on a leaf of
        positive priority, never on a padding leaf, even when rounding puts a value at or past a subtree's end.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        total = self.sums[1]
        if checked and not bool(total > 0):  # `checked=False`: the caller knows the tree is not empty (no sync)
            raise ValueError("cannot sample from a sum tree whose priorities are all 0")
        segment = total / batch_size
        uniform = torch.rand(batch_size, dtype=torch.float64, device=self.device, generator=generator)
        mass = (torch.arange(batch_size, dtype=torch.float64, device=self.device) + uniform) * segment
        nodes = torch.ones(batch_size, dtype=torch.int64, device=self.device)
        for _ in range(self.depth):
            children = torch.index_select(self._children, 0, nodes)
            left, right = children[:, 0], children[:, 2]
            go_right = (mass >= left) & (right > 0)
            mass = torch.where(go_right, mass - left, mass)
            nodes = torch.add(go_right, nodes, alpha=2)
        return nodes - self.first_leaf

    def state_dict(self) -> dict[str, Tensor]:
        """The slots' priorities, a contiguous CPU copy: the inner nodes are a deterministic function of them.

        A copy, not a view: a view would change with later updates, and torch.save would write all of `_nodes`.
        """
        return {"priorities": self.sums[self.first_leaf:self.first_leaf + self.capacity].clone().cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore from `state_dict()` of a tree of the same capacity, bit for bit (both the sums and the mins are
        rebuilt bottom-up with the same float64 additions `update` makes)."""
        priorities = state["priorities"].to(self.device, torch.float64)
        if priorities.shape != (self.capacity,):
            raise ValueError(f"the saved sum tree has {priorities.numel()} slots, this one {self.capacity}")
        if not bool((torch.isfinite(priorities) & (priorities >= 0)).all()):
            raise ValueError("the saved sum tree holds negative or non-finite priorities")
        leaves = torch.zeros(self.first_leaf, dtype=torch.float64, device=self.device)
        leaves[:self.capacity] = priorities
        self._nodes[self.first_leaf:] = torch.stack([leaves, torch.where(leaves > 0, leaves, torch.inf)], dim=1)
        width = self.first_leaf
        while width > 1:
            width //= 2
            self._nodes[width:2 * width] = self._combine(self._children[width:2 * width])
