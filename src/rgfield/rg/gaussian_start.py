"""Where the chains of a factor start: a draw of the stationary Gaussian fitted to its data.

Chains started from zero details must first grow every mode to its stationary amplitude; the
long-wavelength modes of the details relax slowest, so a chain stopped early is
under-dispersed at low wavenumbers (docs/rg_fields.md, "burn-in"). Starting instead from a
draw of the best stationary Gaussian conditional of the training data puts every mode at its
right second moment from the first step; MCMC then only has to correct what is not Gaussian
or not stationary. The start changes where the chains begin, never what they converge to.

In Fourier space (unitary ``rfft2`` of the n × n grid, wavenumber k), with Ŷ(k) ∈ ℂ^C the
C channels of the normalised details and Ĉ(k) the coarse field, the linear regression of Ŷ on
Ĉ at every k, over the N training fields, is

    g(k) = Σ Ŷ Ĉ* / Σ |Ĉ|²,        S(k) = (Σ Ŷ Ŷᴴ − g(k) (Σ Ŷ Ĉ*)ᴴ) / N,

and a start is Ŷ = g Ĉ + S^{1/2} Ξ with Ξ the transform of real white noise (E ΞΞᴴ = I), so
that E[Ŷ Ŷᴴ | Ĉ] = S + g g* |Ĉ|². S^{1/2} is the Hermitian square root (negative eigenvalues
of a noisy estimate clamped to 0); S(−k) = S(k)* holds exactly, so the draw is real. The
coarsest factor has no condition (g = 0).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = ["GaussianStart", "SpectralSums"]


def _spectrum(field: torch.Tensor) -> torch.Tensor:
    """Unitary real FFT over the last two axes."""
    return torch.fft.rfft2(field, norm="ortho")


@dataclass(frozen=True)
class SpectralSums:
    """Σ Ŷ Ŷᴴ (n, m, C, C), Σ Ŷ Ĉ* (n, m, C) and Σ |Ĉ|² (n, m) over ``count`` fields; the
    last two None without a coarse field. Sums of chunks add with ``+``."""

    yy: torch.Tensor
    yc: torch.Tensor | None
    cc: torch.Tensor | None
    count: int

    @classmethod
    def of(cls, y: torch.Tensor, c: torch.Tensor | None) -> SpectralSums:
        """The sums of details ``y`` (N, C, n, n) and coarse fields ``c`` (N, n, n) or None
        (N = 0 gives zero sums)."""
        if y.shape[0] == 0:  # the FFT refuses an empty batch
            y = y.new_zeros((1, *y.shape[1:]))
            c = None if c is None else c.new_zeros((1, *c.shape[1:]))
            return replace(cls.of(y, c), count=0)
        fy = _spectrum(y.to(torch.float64)).permute(0, 2, 3, 1)  # (N, n, m, C)
        yy = torch.einsum("bkla,bklc->klac", fy, fy.conj())
        if c is None:
            return cls(yy, None, None, y.shape[0])
        fc = _spectrum(c.to(torch.float64))
        yc = torch.einsum("bkla,bkl->kla", fy, fc.conj())
        return cls(yy, yc, fc.abs().square().sum(0), y.shape[0])

    def __add__(self, other: SpectralSums) -> SpectralSums:
        def add(a, b):
            return None if a is None else a + b

        return SpectralSums(
            self.yy + other.yy,
            add(self.yc, other.yc),
            add(self.cc, other.cc),
            self.count + other.count,
        )


@dataclass(frozen=True)
class GaussianStart:
    """A stationary Gaussian conditional of one factor's details (see the module docstring).

    Attributes
    ----------
    gain : torch.Tensor or None, complex (n, m, C)
        g(k); None for a factor with no coarse field.
    root : torch.Tensor, complex (n, m, C, C)
        S(k)^{1/2}, Hermitian.
    """

    gain: torch.Tensor | None
    root: torch.Tensor

    @classmethod
    def fit(cls, sums: SpectralSums) -> GaussianStart:
        """The regression and residual covariance of the module docstring, from ``sums``."""
        residual = sums.yy
        gain = None
        if sums.yc is not None:
            floor = torch.finfo(torch.float64).tiny
            gain = torch.where(
                (sums.cc > floor)[..., None], sums.yc / sums.cc.clamp_min(floor)[..., None], 0
            )
            residual = residual - gain[..., :, None] * sums.yc.conj()[..., None, :]
        covariance = residual / sums.count
        covariance = 0.5 * (covariance + covariance.mH)
        values, vectors = torch.linalg.eigh(covariance)
        root = (vectors * values.clamp_min(0).sqrt().to(vectors.dtype)[..., None, :]) @ vectors.mH
        return cls(gain, root)

    def mean(self, c: torch.Tensor | None, n: int) -> torch.Tensor:
        """E[y | c] (n, C, L, L), float64, on ``c``'s device: F⁻¹[g Ĉ] (zero without a
        condition)."""
        size, channels = self.root.shape[0], self.root.shape[-1]
        if self.gain is None:
            return torch.zeros((n, channels, size, size), dtype=torch.float64)
        modes = self.gain.to(c.device) * _spectrum(c)[..., None]
        return torch.fft.irfft2(modes.permute(0, 3, 1, 2), s=(size, size), norm="ortho")

    def noise(self, generator: torch.Generator, n: int) -> torch.Tensor:
        """``n`` draws of the residual F⁻¹[S^{1/2} Ξ] (n, C, L, L), float64, on the
        generator's device."""
        root = self.root.to(generator.device)
        size, channels = root.shape[0], root.shape[-1]
        white = torch.randn(
            (n, channels, size, size),
            generator=generator,
            dtype=torch.float64,
            device=generator.device,
        )
        modes = torch.einsum("klac,bklc->bkla", root, _spectrum(white).permute(0, 2, 3, 1))
        return torch.fft.irfft2(modes.permute(0, 3, 1, 2), s=(size, size), norm="ortho")

    def draw(self, c: torch.Tensor | None, generator: torch.Generator, n: int) -> torch.Tensor:
        """``n`` starts y = E[y | c] + residual (n, C, L, L), float64, on the generator's
        device, given coarse fields ``c`` (n, L, L) (None for the coarsest factor)."""
        noise = self.noise(generator, n)
        return self.mean(c, n).to(noise.device) + noise

    def get_state(self) -> dict[str, np.ndarray]:
        """Real arrays (real and imaginary parts on a last axis of 2) for a model file."""
        state = {"root": torch.view_as_real(self.root.resolve_conj()).numpy()}
        if self.gain is not None:
            state["gain"] = torch.view_as_real(self.gain.resolve_conj()).numpy()
        return state

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> GaussianStart:
        def complex_of(name: str) -> torch.Tensor:
            return torch.view_as_complex(torch.as_tensor(np.ascontiguousarray(state[name])))

        return cls(complex_of("gain") if "gain" in state else None, complex_of("root"))
