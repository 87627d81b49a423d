"""Band-limited fields: Fourier modes where the training fields have no power.

Pseudo-spectral simulations are dealiased: rgfield's turbulence has no power beyond 2/3 of
the Nyquist wavenumber on either axis (9,159 of the 16,384 modes of the shipped 128² flows,
besides k = 0, are at rounding level, 1e-15 of the mean power per mode). The finest details
then lie on a subspace, no smooth density fits them (a score-matching loss of −1.35e6 per
variable at j = 1), and the fitted conditional confines the empty directions so tightly that
its chains need steps of 5e-5: 14,615 gradient evaluations per field (docs/rg_fields.md).

A :class:`Band` records the empty modes of the training fields, and
:meth:`~rgfield.rg.HierarchicalModel.sample` projects its fields onto the live ones, so the
samples are band-limited as the data are: what the chains put on the empty modes (on the
shipped 128² turbulence, up to 10¹⁰ times the data's rounding-level power there) is removed.
The fit is unchanged.

Tried and not adopted (docs/rg_fields.md, 128² turbulence with the curvature floor): filling
the empty modes with Gaussian noise for the fit, to be projected out of the samples, makes
the finest conditional an ordinary density (score-matching loss −1.15 per variable instead of
−1.35e6) and its chains up to 3× cheaper in gradient evaluations, but the local couplings of
the quadratic family cannot resolve the jump in the filled spectrum, and the live modes
suffered: flat noise at the 5 % quantile of the live powers raised the finest octave by up to
43 %; flat noise at the band's edge (0.56 s and 4,680 gradient evaluations per field, against
3.9 s and 14,615) left 27 % too little power just inside the cut and up to 87× too much in
the weak corners of the square band; noise continuing the isotropic spectrum made the
corners stiff (step 0.003, 14,573 gradient evaluations per field) and 10–5,000× too strong.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rgfield.stats import mirrored, mode_power

__all__ = ["EMPTY_POWER", "Band"]

EMPTY_POWER = 1e-10
"""A mode is empty where its mean power E|x̂(k)|² is below this fraction of the mean power
per mode: float32 rounding leaves about 1e-15, the weakest live mode of the shipped 128²
turbulence is at 5e-6."""


@dataclass(frozen=True, eq=False)
class Band:
    """The Fourier modes without power in band-limited training fields.

    Attributes
    ----------
    empty : torch.Tensor, bool, shape (ny, nx), on the CPU
        The empty modes k, in ``torch.fft.fft2`` order, symmetric under k → −k (so that the
        projection of real fields is real).
    """

    empty: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor) -> Band | None:
        """The band of fields ``x`` (B, L, L); None when every mode has power.

        Empty: P(k) < :data:`EMPTY_POWER` × mean_k P(k) (:func:`rgfield.stats.mode_power`),
        k ≠ 0 (fields of zero mean are not band-limited: the coarsest factor carries the mean).
        """
        power = mode_power(x).cpu()
        empty = power < EMPTY_POWER * power.mean()
        empty &= mirrored(empty)  # P(k) and P(−k) differ by rounding: empty on both sides
        empty[0, 0] = False  # a zero mean is the coarsest factor's to model
        return cls(empty=empty) if empty.any() else None

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Fields ``x`` (B, L, L) with their empty modes removed: F⁻¹[1_live · F x]."""
        live = ~self.empty.to(x.device)
        return torch.fft.ifft2(torch.fft.fft2(x) * live).real
