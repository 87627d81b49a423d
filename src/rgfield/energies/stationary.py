"""Where the chains of a factor start: a draw of the stationary Gaussian fitted to its data.

Chains started from zero details must first grow every mode to its stationary amplitude; the
long-wavelength modes of the details relax slowest, so a chain stopped early is
under-dispersed at low wavenumbers (docs/rg_fields.md, "burn-in"). Starting instead from a
draw of the best stationary Gaussian conditional of the training data puts every mode at its
right second moment from the first step; MCMC then only has to correct what is not Gaussian
or not stationary. The start changes where the chains begin, never what they converge to.

In Fourier space (unitary ``rfft2`` of the ny × nx grid, wavenumber k), with Ŷ(k) ∈ ℂ^C the
C channels of the normalised details and Ĉ(k) the coarse field, the linear regression of Ŷ on
Ĉ at every k, over the N training fields, is

    g(k) = Σ Ŷ Ĉ* / Σ |Ĉ|²,        S(k) = (Σ Ŷ Ŷᴴ − g(k) (Σ Ŷ Ĉ*)ᴴ) / N,

and a start is Ŷ = g Ĉ + S^{1/2} Ξ with Ξ the transform of real white noise (E ΞΞᴴ = I), so
that E[Ŷ Ŷᴴ | Ĉ] = S + g gᴴ |Ĉ|². S^{1/2} is the Hermitian square root (negative eigenvalues
of a noisy estimate clamped to 0); S(−k) = S(k)* up to rounding, so the law is right on the
self-conjugate columns of the half spectrum as well. The coarsest factor has no condition:
there g = 0 and its mean enters through Ŷ(0), E[Ŷ(0)] = Σ Ŷ(0) / N (S(0) taken about it). A
conditional's details have no intercept (their mean is that of a high-pass of the field, 0).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = ["GaussianStart", "SpectralSums", "per_mode"]


def _spectrum(field: torch.Tensor) -> torch.Tensor:
    """Unitary real FFT over the last two axes."""
    return torch.fft.rfft2(field, norm="ortho")


@dataclass(frozen=True)
class SpectralSums:
    """Σ Ŷ Ŷᴴ (n, m, C, C), Σ Ŷ(0) (C,), Σ Ŷ Ĉ* (n, m, C) and Σ |Ĉ|² (n, m) over ``count``
    fields of grid ``shape``; the last two None without a coarse field. Sums of chunks add
    with ``+``."""

    yy: torch.Tensor
    first: torch.Tensor
    yc: torch.Tensor | None
    cc: torch.Tensor | None
    count: int
    shape: tuple[int, int]

    @classmethod
    def of(cls, y: torch.Tensor, c: torch.Tensor | None) -> SpectralSums:
        """The sums of details ``y`` (N, C, ny, nx) and coarse fields ``c`` (N, ny, nx) or
        None (N = 0 gives zero sums)."""
        if y.shape[0] == 0:  # the FFT refuses an empty batch
            y = y.new_zeros((1, *y.shape[1:]))
            c = None if c is None else c.new_zeros((1, *c.shape[1:]))
            return replace(cls.of(y, c), count=0)
        shape = (int(y.shape[-2]), int(y.shape[-1]))
        fy = _spectrum(y.to(torch.float64)).permute(0, 2, 3, 1)  # (N, ny, mx, C)
        yy = torch.einsum("bkla,bklc->klac", fy, fy.conj())
        first = fy[:, 0, 0].sum(0)
        if c is None:
            return cls(yy, first, None, None, y.shape[0], shape)
        fc = _spectrum(c.to(torch.float64))
        yc = torch.einsum("bkla,bkl->kla", fy, fc.conj())
        return cls(yy, first, yc, fc.abs().square().sum(0), y.shape[0], shape)

    def __add__(self, other: SpectralSums) -> SpectralSums:
        def add(a, b):
            return None if a is None else a + b

        return SpectralSums(
            self.yy + other.yy,
            self.first + other.first,
            add(self.yc, other.yc),
            add(self.cc, other.cc),
            self.count + other.count,
            self.shape,
        )


RELATIVE_FLOOR = 1e-10
"""Wavenumbers whose Σ|Ĉ|² is below this fraction of its largest get no gain (g = 0): the
k = 0 mode of zero-mean coarse fields is rounding, and a regression on it would blow up.
Likewise eigenvalues of S below this fraction of its largest are 0 in :meth:`GaussianStart.
precision` and :meth:`GaussianStart.whiten` (the empty modes of band-limited fields)."""


@dataclass(frozen=True)
class GaussianStart:
    """A stationary Gaussian conditional of one factor's details (see the module docstring).

    Attributes
    ----------
    gain : torch.Tensor or None, complex (ny, nx//2+1, C)
        g(k); None for a factor with no coarse field.
    root : torch.Tensor, complex (ny, nx//2+1, C, C)
        S(k)^{1/2}, Hermitian.
    offset : torch.Tensor, complex (C,)
        E[Ŷ(0)] of a factor with no coarse field (its fields' mean), 0 for a conditional.
    shape : tuple of int
        The grid (ny, nx).
    """

    gain: torch.Tensor | None
    root: torch.Tensor
    offset: torch.Tensor
    shape: tuple[int, int]

    @classmethod
    def fit(cls, sums: SpectralSums) -> GaussianStart:
        """The regression and residual covariance of the module docstring, from ``sums``;
        without a coarse field S(0) is taken about the mean Ŷ(0)."""
        residual = sums.yy
        gain = None
        offset = torch.zeros_like(sums.first)
        if sums.yc is not None:
            keep = sums.cc > RELATIVE_FLOOR * sums.cc.max()
            gain = torch.where(keep[..., None], sums.yc / sums.cc.where(keep, 1)[..., None], 0)
            residual = residual - gain[..., :, None] * sums.yc.conj()[..., None, :]
        else:
            offset = sums.first / sums.count
            residual = residual.clone()
            residual[0, 0] -= sums.count * torch.outer(offset, offset.conj())
        covariance = residual / sums.count
        covariance = 0.5 * (covariance + covariance.mH)
        values, vectors = torch.linalg.eigh(covariance)
        root = (vectors * values.clamp_min(0).sqrt().to(vectors.dtype)[..., None, :]) @ vectors.mH
        return cls(gain, root, offset, sums.shape)

    def to(self, device: str | torch.device) -> GaussianStart:
        """The same law with its arrays on ``device`` (chains there copy nothing per step)."""
        gain = None if self.gain is None else self.gain.to(device)
        return replace(self, gain=gain, root=self.root.to(device), offset=self.offset.to(device))

    def mean(self, c: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        """E[y | c] (n, C, ny, nx), float64, on ``device``: F⁻¹[g Ĉ] given coarse fields
        ``c`` (n, ny, nx), or the constant fields of Ŷ(0) = offset without a condition."""
        modes = torch.zeros(
            (n, *self.root.shape[:-1]), dtype=self.root.dtype, device=torch.device(device)
        )
        if self.gain is None:
            modes[:, 0, 0] = self.offset.to(modes.device)
        else:
            modes = self.gain.to(modes.device) * _spectrum(c.to(modes.device))[..., None]
        return torch.fft.irfft2(modes.permute(0, 3, 1, 2), s=self.shape, norm="ortho")

    def noise(self, generator: torch.Generator, n: int) -> torch.Tensor:
        """``n`` draws of the residual F⁻¹[S^{1/2} Ξ] (n, C, ny, nx), float64, on the
        generator's device."""
        white = torch.randn(
            (n, self.root.shape[-1], *self.shape),
            generator=generator,
            dtype=torch.float64,
            device=generator.device,
        )
        return self.colour(white)

    def colour(self, z: torch.Tensor) -> torch.Tensor:
        """F⁻¹[S^{1/2} F z] of fields ``z`` (B, C, ny, nx): white noise made the residual's."""
        return per_mode(self.root, z)

    def whiten(self, r: torch.Tensor) -> torch.Tensor:
        """F⁻¹[(S^{1/2})⁺ F r], the inverse of :meth:`colour` on its range (⁺: pseudo-inverse,
        eigenvalues of S below :data:`RELATIVE_FLOOR` of the largest taken as 0)."""
        return per_mode(_pseudo_inverse(self.root, RELATIVE_FLOOR**0.5), r)

    def precision(self) -> torch.Tensor:
        """S⁺(k), complex (ny, nx//2+1, C, C): the inverse residual covariance on its range."""
        return _pseudo_inverse(self.root.to(torch.complex128) @ self.root, RELATIVE_FLOOR)

    def draw(self, c: torch.Tensor | None, generator: torch.Generator, n: int) -> torch.Tensor:
        """``n`` starts y = E[y | c] + residual (n, C, ny, nx), float64, on the generator's
        device, given coarse fields ``c`` (n, ny, nx) (None for the coarsest factor)."""
        return self.mean(c, n, generator.device) + self.noise(generator, n)

    def get_state(self) -> dict[str, np.ndarray]:
        """Real arrays (real and imaginary parts on a last axis of 2) for a model file."""

        def real(value: torch.Tensor) -> np.ndarray:
            return torch.view_as_real(value.resolve_conj()).cpu().numpy()

        state = {
            "root": real(self.root),
            "offset": real(self.offset),
            "shape": np.array(self.shape, dtype=np.int64),
        }
        if self.gain is not None:
            state["gain"] = real(self.gain)
        return state

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> GaussianStart:
        """The start of :meth:`get_state`'s arrays; a ValueError for arrays of wrong shapes."""

        def complex_of(name: str) -> torch.Tensor:
            value = np.ascontiguousarray(state[name], dtype=np.float64)
            if value.shape[-1:] != (2,):
                raise ValueError(f"{name}: expected (real, imaginary) on the last axis")
            return torch.view_as_complex(torch.as_tensor(value))

        shape = tuple(int(v) for v in np.asarray(state["shape"]).reshape(-1))
        root, offset = complex_of("root"), complex_of("offset")
        gain = complex_of("gain") if "gain" in state else None
        channels = root.shape[-1]
        grid = (shape[0], shape[1] // 2 + 1) if len(shape) == 2 else None
        if (
            grid is None
            or root.shape != (*grid, channels, channels)
            or offset.shape != (channels,)
            or (gain is not None and gain.shape != (*grid, channels))
        ):
            raise ValueError(
                f"the arrays do not make a start of grid {shape}: root {tuple(root.shape)},"
                f" offset {tuple(offset.shape)}, gain {None if gain is None else tuple(gain.shape)}"
            )
        return cls(gain, root, offset, shape)


def per_mode(matrix: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """F⁻¹[A(k) F z] for a Hermitian A(k) (ny, nx//2+1, C, C) and real fields z (B, C, ny, nx)."""
    matrix = matrix.to(z.device)
    spectrum = _spectrum(z.to(torch.float64)).permute(0, 2, 3, 1)
    modes = torch.einsum("klac,bklc->bkla", matrix, spectrum)
    return torch.fft.irfft2(modes.permute(0, 3, 1, 2), s=z.shape[-2:], norm="ortho")


def _pseudo_inverse(matrix: torch.Tensor, tolerance: float) -> torch.Tensor:
    """A⁺ of Hermitian positive semi-definite A(k), eigenvalues below ``tolerance`` × the
    largest over every k taken as 0."""
    values, vectors = torch.linalg.eigh(matrix)
    keep = values > tolerance * values.max()
    inverse = torch.where(keep, 1 / values.where(keep, 1.0), 0.0)
    return (vectors * inverse.to(vectors.dtype)[..., None, :]) @ vectors.mH
