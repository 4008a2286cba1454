"""Host staging for replay memory on a GPU: rows written on the host, copied to the device in bulk.

Writing each env step straight into device memory would cost a host-to-device copy (and on pageable memory a
synchronisation) per step. Instead rows go into pinned host memory and `flush` (called when a batch is sampled,
or when the staging area is full) copies them to the device with one asynchronous copy per field (two where the
ring wraps). The host rows are reused only once those copies have finished: a CUDA event, not a stream-wide sync.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class HostStaging:
    """Up to `max_rows` rows of `row_slots` slots each, for every field of `storage` (a dict of device tensors
    indexed by slot)."""

    def __init__(self, storage: dict[str, Tensor], row_slots: int, max_rows: int, device: torch.device) -> None:
        self.row_slots = row_slots
        self.max_rows = max_rows
        self.device = device
        pin = device.type == "cuda"
        self.stage = {key: torch.zeros((max_rows * row_slots, *stored.shape[1:]), dtype=stored.dtype,
                                       pin_memory=pin) for key, stored in storage.items()}
        self.writable = {key: staged.numpy() for key, staged in self.stage.items()}
        self.first_row = 0     # ring row of the first staged row
        self.rows = 0          # rows staged since the last flush
        self._copied: torch.cuda.Event | None = None

    @property
    def full(self) -> bool:
        return self.rows == self.max_rows

    def claim_row(self) -> int:
        """The first host slot of the next staged row (the caller flushes first when `full`)."""
        if self._copied is not None:  # the previous flush may still be reading these rows
            self._copied.synchronize()
            self._copied = None
        start = self.rows * self.row_slots
        self.rows += 1
        return start

    def flush(self, storage: dict[str, Tensor], ring_rows: int, next_first_row: int) -> None:
        """Copy the staged rows into `storage` from ring row `first_row` on (wrapping at `ring_rows`)."""
        if self.rows:
            first = min(self.rows, ring_rows - self.first_row)
            start, n = self.first_row * self.row_slots, self.rows * self.row_slots
            split = first * self.row_slots
            for key, stored in storage.items():
                staged = self.stage[key]
                stored[start:start + split].copy_(staged[:split], non_blocking=True)
                if n > split:
                    stored[:n - split].copy_(staged[split:n], non_blocking=True)
            if self.device.type == "cuda":
                self._copied = torch.cuda.Event()
                self._copied.record(torch.cuda.current_stream(self.device))
        self.first_row = next_first_row
        self.rows = 0

    def reset(self, first_row: int) -> None:
        """Drop whatever is staged (after a restore) and stage from `first_row` on."""
        self.first_row, self.rows = first_row, 0


def writable_views(storage: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """numpy views of CPU storage: `add` writes straight into it."""
    return {key: stored.numpy() for key, stored in storage.items()}
