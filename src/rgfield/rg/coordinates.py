"""The coordinates a factor's chains move in: the details themselves, the affine subspace of
band-limited fields' details, or white noise coloured by the factor's Gaussian family.

A chain moves a vector w; its details are y = onto(w, c), and its energy is w ↦ U(onto(w, c))
with the gradient pulled back to w (:meth:`given`). Two maps, composable:

* :class:`~rgfield.rg.subspace.DetailSubspace`: y = P w + o(c), so the chains move along the
  details band-limited fields allow (the projection P has no effect elsewhere: the energy is
  flat along its null space, where w may wander without changing y).
* :class:`Whitened`: y = m(c) + F⁻¹[S^{1/2} ŵ], the mean and residual covariance of the
  factor's stationary Gaussian family (:mod:`rgfield.energies.gaussian`). Its energy
  θ·½ rᵀS⁺r then has the Hessian θ·1 in w along the range of S, whatever the data's spectrum:
  MALA's step is set by what the other families add, not by the spread of the spectrum
  (10⁸ between the energetic and the dissipative modes of rgfield's 128² turbulence). A
  constant preconditioner: MALA and HMC stay exact (the chain on w targets exp(−U(onto(w)))
  on the range, a flat law on the null space, which onto forgets).

:func:`chain_coordinates` picks them for a factor; :meth:`into` maps details to coordinates
(its inverse on the range: onto(into(y)) = y for y there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from rgfield.energies import ExponentialModel, StationaryGaussian
from rgfield.energies.stationary import GaussianStart
from rgfield.rg.subspace import DetailSubspace

__all__ = ["Coordinates", "Whitened", "chain_coordinates"]

EnergyOf = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, eq=False)
class Whitened:
    """y = m(c) + F⁻¹[S^{1/2} ŵ] (then onto ``subspace`` when given)."""

    law: GaussianStart
    subspace: DetailSubspace | None = None

    def to(self, device: str | torch.device) -> Whitened:
        """The same coordinates with their arrays on ``device``."""
        subspace = None if self.subspace is None else self.subspace.to(device)
        return replace(self, law=self.law.to(device), subspace=subspace)

    def onto(self, w: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        y = self.law.mean(c, len(w), w.device) + self.law.colour(w)
        return y if self.subspace is None else self.subspace.onto(y, c)

    def into(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.law.whiten(y - self.law.mean(c, len(y), y.device))

    def given(self, energy_and_grad: EnergyOf, c: torch.Tensor | None) -> EnergyOf:
        """w ↦ (U(y), S^{1/2} ∇U(y)) at y = :meth:`onto` (w, c) (∇U projected first when on a
        subspace)."""
        inner = (
            energy_and_grad if self.subspace is None else self.subspace.given(energy_and_grad, c)
        )
        mean: list[torch.Tensor] = []

        def whitened(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if not mean or len(mean[0]) != len(w):
                mean[:] = [self.law.mean(c, len(w), w.device)]
            energy, grad = inner(mean[0] + self.law.colour(w))
            return energy, self.law.colour(grad).to(w.dtype)

        return whitened


Coordinates = DetailSubspace | Whitened


def chain_coordinates(
    factor: ExponentialModel, subspace: DetailSubspace | None
) -> Coordinates | None:
    """The chains' coordinates for ``factor``: :class:`Whitened` by its stationary Gaussian
    family where it has one with θ > 0 (on ``subspace`` when given), else ``subspace`` (None:
    the details themselves)."""
    for family, theta in zip(factor.features, factor.thetas, strict=True):
        if isinstance(family, StationaryGaussian) and float(theta[0]) > 0:
            return Whitened(family.law, subspace)
    return subspace
