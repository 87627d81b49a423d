"""The stationary Gaussian family: the best stationary Gaussian conditional as one feature.

With the regression g(k) and residual covariance S(k) of the training details on their
coarse field, mode by mode (:class:`~rgfield.energies.stationary.GaussianStart`: unitary
Fourier transform, k the wavenumber, C channels), the family's one feature is the Gaussian
energy of the residual r = y − F⁻¹[g Ĉ],

    Φ(y, c) = ½ Σ_k r̂(k)ᴴ S⁺(k) r̂(k),   ∇_y Φ = F⁻¹[S⁺ r̂],   Δ_y Φ = Σ_k tr S⁺(k)

(S⁺: the pseudo-inverse, 0 along the directions without variance in the data). θ = 1 is the
Gaussian itself; the other families then only have to add what is not Gaussian. Local
couplings (:class:`~rgfield.energies.QuadraticInteractions`) cannot follow a spectrum that
falls by orders of magnitude within a few modes, as a simulation's dissipation range does
(rgfield's 128² turbulence, fitted on the details' subspace without this family: up to 1000×
the held-out power just inside the dealiasing cut; docs/rg_fields.md); this feature
follows it mode by mode, with no parameter but θ. Its Hessian is θ·S⁺ everywhere, so chains
in the coordinates z of y = F⁻¹[g Ĉ] + F⁻¹[S^{1/2} ẑ] see curvature θ in every direction
of the family: :mod:`rgfield.rg.coordinates` runs them there.
"""

from __future__ import annotations

import torch

from rgfield.energies.base import FeatureFamily, register_feature
from rgfield.energies.stationary import RELATIVE_FLOOR, GaussianStart, SpectralSums, per_mode

__all__ = ["StationaryGaussian"]


@register_feature
class StationaryGaussian(FeatureFamily):
    """One feature: the energy of the stationary Gaussian fitted to the training data.

    Attributes
    ----------
    law : GaussianStart or None
        The fitted regression and residual covariance (None before :meth:`fit`).
    """

    name = "gaussian"
    stationary_hessian = True

    def __init__(self) -> None:
        self.law: GaussianStart | None = None
        self._cached_precision: torch.Tensor | None = None

    def fit(self, y: torch.Tensor, c: torch.Tensor | None, wavelet: str = "db4"):
        del wavelet  # the law is that of the coefficients themselves
        self.law = GaussianStart.fit(SpectralSums.of(y, c))
        self._cached_precision = None
        return self

    @property
    def labels(self) -> list[str]:
        return ["gaussian"]

    def _residual_and_gradient(self, y: torch.Tensor, c: torch.Tensor | None):
        if tuple(y.shape[-2:]) != self.law.shape or y.shape[1] != self.law.root.shape[-1]:
            raise ValueError(
                f"y: expected shape (B, {self.law.root.shape[-1]}, {self.law.shape[0]},"
                f" {self.law.shape[1]}), got {tuple(y.shape)}"
            )
        residual = y - self.law.mean(c, y.shape[0], y.device).to(y.dtype)
        return residual, per_mode(self._precision(y.device), residual).to(y.dtype)

    def _precision(self, device: torch.device) -> torch.Tensor:
        cached = self._cached_precision
        if cached is None or cached.device != torch.device(device):
            cached = self.law.precision().to(device)
            self._cached_precision = cached
        return cached

    def values(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        residual, gradient = self._residual_and_gradient(y, c)
        return 0.5 * (residual * gradient).flatten(1).sum(1, keepdim=True)

    def gradients(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self._residual_and_gradient(y, c)[1].unsqueeze(1)

    def laplacians(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        trace = torch.diagonal(self._precision(y.device), dim1=-2, dim2=-1).real.sum(-1)
        # the half spectrum of rfft2 holds the modes ±k once, but for its columns kx = 0
        # (and kx = nx/2 on an even grid), which are their own mirror images
        weights = torch.full_like(trace, 2.0)
        weights[:, 0] = 1.0
        if self.law.shape[1] % 2 == 0:
            weights[:, -1] = 1.0
        total = (weights * trace).sum().to(y.dtype)
        return total.expand(y.shape[0], 1).clone()

    def curvature(self, theta: torch.Tensor) -> float | None:
        """θ times the extreme eigenvalue of S⁺ on the range of S: the directions without
        variance in the data are those of band-limited fields' empty modes, which the chains
        never move along (:mod:`rgfield.rg.subspace`)."""
        variances = torch.linalg.eigvalsh(self.law.root.to(torch.complex128) @ self.law.root)
        kept = variances[variances > RELATIVE_FLOOR * variances.max()]
        return float(theta[0]) / float(kept.max() if theta[0] >= 0 else kept.min())

    def bind(self, theta: torch.Tensor):
        t = float(theta[0])

        def energy_and_grad(y: torch.Tensor, c: torch.Tensor | None):
            return self._energy(t, *self._residual_and_gradient(y, c))

        return energy_and_grad

    def bind_given(self, theta: torch.Tensor):
        """As :meth:`bind`, with the mean F⁻¹[g Ĉ] of a fixed ``c`` computed once."""
        t = float(theta[0])

        def given(c: torch.Tensor | None):
            mean: list[torch.Tensor] = []

            def energy_and_grad(y: torch.Tensor):
                if not mean or mean[0].shape != y.shape:
                    mean[:] = [self.law.mean(c, y.shape[0], y.device).to(y.dtype)]
                residual = y - mean[0]
                gradient = per_mode(self._precision(y.device), residual).to(y.dtype)
                return self._energy(t, residual, gradient)

            return energy_and_grad

        return given

    @staticmethod
    def _energy(t: float, residual: torch.Tensor, gradient: torch.Tensor):
        """θ·½ rᵀS⁺r and its gradient θ·S⁺r from r and S⁺r."""
        return 0.5 * t * (residual * gradient).flatten(1).sum(1), t * gradient

    def get_state(self) -> dict:
        return self.law.get_state()

    @classmethod
    def from_state(cls, state: dict) -> StationaryGaussian:
        family = cls()
        family.law = GaussianStart.from_state(state)
        return family
