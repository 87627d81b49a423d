"""Per-step records of a batch of chains in one growing buffer."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Trace"]


class Trace:
    """Values of every chain at every step, (chains,) per step, kept in one buffer.

    Keeping a small tensor per step in a list pins the C heap: every kept tensor lands above
    the step's large temporaries, which glibc then can neither hand back nor merge into the
    next step's larger requests, so a long run's resident memory grows by about one chain
    state per step (32 chains of 3 × 64² details, 3,000 MALA steps: 9.9 GB; docs/rg.md,
    "Sampling"). One buffer, doubled when full, is allocated a handful of times per run.

    Parameters
    ----------
    initial : int
        Steps the first buffer holds.
    """

    def __init__(self, initial: int = 256) -> None:
        self.initial = max(1, int(initial))
        self.buffer: torch.Tensor | None = None
        self.size = 0

    def append(self, values: torch.Tensor | np.ndarray) -> None:
        """Record one step's values, shape (chains,): a tensor on any device (detached; the
        buffer takes the first step's dtype and device) or a numpy array."""
        values = torch.as_tensor(values).detach()
        if values.dim() != 1 or (self.buffer is not None and len(values) != len(self.buffer)):
            expected = "(chains,)" if self.buffer is None else f"({len(self.buffer)},)"
            raise ValueError(f"values: expected shape {expected}; got {tuple(values.shape)}")
        if self.buffer is None:
            self.buffer = values.new_empty((values.shape[0], self.initial))
        elif self.size == self.buffer.shape[1]:
            grown = self.buffer.new_empty((self.buffer.shape[0], 2 * self.size))
            grown[:, : self.size] = self.buffer
            self.buffer = grown
        self.buffer[:, self.size] = values
        self.size += 1

    def __len__(self) -> int:
        return self.size

    def values(self) -> torch.Tensor:
        """The record so far, (chains, steps), a view of the buffer; an empty (0, 0) tensor
        before the first step."""
        if self.buffer is None:
            return torch.empty((0, 0))
        return self.buffer[:, : self.size]
