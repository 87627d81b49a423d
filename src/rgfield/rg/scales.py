"""The factors of the hierarchical model, coarse to fine, and their normalised variables.

p(x_0) = p_J(x_J) Π_{j=1..J} p̄_j(x̄_j | x_j): the coarsest field first, then the conditionals
j = J, ..., 1. Each factor works in normalised units (docs/architecture.md, "The RG model"):
the conditional of scale j models y = x̄_j / γ_j given c = x_j / γ_j, so that
merge(x_j, x̄_j) / γ_j = merge(c, y) stays linear; the coarsest field is y = x_J / γ_low with
no condition. γ are the root mean squares of :func:`rgfield.wavelets.estimate_scales`.
:func:`coarse_to_fine` is the one loop over factors used by fitting, refinement, sampling,
the energy and the mixing study.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rgfield._validate import is_integer
from rgfield.wavelets import Pyramid, PyramidScales, merge

__all__ = ["Scale", "coarse_to_fine", "per_scale"]


@dataclass(frozen=True)
class Scale:
    """One factor: the coarsest field (``level`` J, ``conditional`` False) or p̄_j (level j).

    Attributes
    ----------
    name : str
        ``"low"`` or ``"j=<level>"`` (the labels of the model's reports).
    level : int
    gamma : float
        γ of the factor's variables.
    conditional : bool
    """

    name: str
    level: int
    gamma: float
    conditional: bool

    def variables(self, pyramid: Pyramid) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The normalised (y, c) of data: (x̄_j/γ_j, x_j/γ_j), or (x_J/γ_low (B, 1, n, n), None)."""
        if not self.conditional:
            return pyramid.low.unsqueeze(1) / self.gamma, None
        return pyramid.details[self.level - 1] / self.gamma, pyramid.coarse(self.level) / self.gamma

    @property
    def finest(self) -> bool:
        """The finest conditional (j = 1): the details of the fields themselves."""
        return self.conditional and self.level == 1

    def condition(self, coarse: torch.Tensor | None) -> torch.Tensor | None:
        """c = x_j / γ_j of a coarse field x_j (None for the coarsest factor or no field)."""
        return coarse / self.gamma if self.conditional and coarse is not None else None

    def shape(self, n: int, coarse_shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Shape of n draws of y: (n, 3, *x_j's shape), or (n, 1, *x_J's shape)."""
        return (n, 3 if self.conditional else 1, *coarse_shape)

    def grow(self, coarse: torch.Tensor | None, y: torch.Tensor, wavelet: str) -> torch.Tensor:
        """The finer field from normalised draws: merge(x_j, γ_j y) = x_{j−1}, or x_J = γ_low y."""
        if not self.conditional:
            return y[:, 0] * self.gamma
        return merge(coarse, y * self.gamma, wavelet)


def coarse_to_fine(scales: PyramidScales) -> list[Scale]:
    """The model's factors in generation order: the coarsest field, then j = J, ..., 1."""
    levels = len(scales.details)
    order = [Scale("low", levels, float(scales.low), conditional=False)]
    order += [
        Scale(f"j={j}", j, float(scales.details[j - 1]), conditional=True)
        for j in range(levels, 0, -1)
    ]
    return order


def per_scale(value, levels: int, name: str) -> list[int]:
    """Counts per factor from one int or J + 1 ints (finest conditional first, coarsest last).

    Returns them in :func:`coarse_to_fine` order (coarsest first).
    """
    values = [value] * (levels + 1) if is_integer(value) else list(value)
    if len(values) != levels + 1 or not all(is_integer(v) and v >= 0 for v in values):
        raise ValueError(
            f"{name} must be a non-negative integer or {levels + 1} of them (one per conditional,"
            f" finest first, then the coarsest field); got {value!r}"
        )
    return [int(values[-1])] + [int(values[j - 1]) for j in range(levels, 0, -1)]
