"""Scattering transforms and scattering-covariance statistics of periodic 1D and 2D fields.

A bank of complex wavelets ψ_λ, λ = (j, ℓ) — scale 2^j, orientation ℓ — and a low-pass φ is
built in Fourier (:func:`filter_bank`). With W x = x ⋆ ψ_λ (periodic convolution) and ⟨·⟩ the
spatial mean, the statistics are (Morel et al., "Scale dependencies and self-similar models
with wavelet scattering spectra", arXiv:2204.10177; Cheng et al., arXiv:2306.17210):

    mean  ⟨x⟩
    S1    ⟨|x ⋆ ψ_λ|⟩                                        sparsity
    S2    ⟨|x ⋆ ψ_λ|²⟩                                       power in the band of λ
    C01   ⟨(x ⋆ ψ_λ2) conj(|x ⋆ ψ_λ1| ⋆ ψ_λ2)⟩, j1 ≤ j2        phase alignment (skewness)
    C11   ⟨(|x ⋆ ψ_λ1| ⋆ ψ_λ3) conj(|x ⋆ ψ_λ2| ⋆ ψ_λ3)⟩, j1 ≤ j2 ≤ j3   envelopes

C01 and C11 are computed by Parseval, ⟨a conj(b)⟩ = Σ_k â(k) conj(b̂(k)) / N² (N pixels), over
only the modes where ψ̂_λ2 (resp. ψ̂_λ3) is not negligible, so large scales cost little.
FFTs are unnormalised; everything is periodic, batched, differentiable and on the input's device.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import xarray as xr

from rgfield._validate import is_integer

__all__ = [
    "FilterBank",
    "ScatteringCovariance",
    "filter_bank",
    "angular_harmonics",
    "band_powers",
    "normalized",
    "reduce",
    "scale_cosine",
    "scattering",
    "scattering_covariance",
    "significant",
]

KINDS = ("morlet", "bump")
TYPES = ("mean", "S1", "S2", "C01", "C11")
_KYMATIO_PI = 3.1415  # kymatio normalises its Gabor filters by 2·3.1415·σ²/slant; kept for equality
_CROP = 1e-7  # modes with ψ̂² below this fraction of its maximum are left out of C01 and C11


@dataclass(frozen=True)
class FilterBank:
    """Wavelets ψ̂_{j,ℓ} and low-pass φ̂ in Fourier, on the unshifted DFT grid (real-valued).

    Attributes
    ----------
    psi : torch.Tensor, shape (J, L, *shape)
    phi : torch.Tensor, shape shape
    kind : "morlet" or "bump"
    """

    psi: torch.Tensor
    phi: torch.Tensor
    kind: str

    @property
    def J(self) -> int:  # noqa: N802 — the standard name of the number of scales
        return self.psi.shape[0]

    @property
    def L(self) -> int:  # noqa: N802
        return self.psi.shape[1]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.phi.shape)

    def littlewood_paley(self) -> torch.Tensor:
        """A(ω) = |φ̂(ω)|² + ½ Σ_λ (|ψ̂_λ(ω)|² + |ψ̂_λ(−ω)|²); its bounds frame the energy."""
        power = self.psi.square().sum(dim=(0, 1))
        flipped = torch.flip(power, dims=tuple(range(power.ndim)))
        mirrored = torch.roll(flipped, shifts=(1,) * power.ndim, dims=tuple(range(power.ndim)))
        return self.phi.square() + (power + mirrored) / 2


def _frequencies(shape: tuple[int, ...]) -> list[torch.Tensor]:
    """ω (radians per pixel, each in [−π, π)) on the full DFT grid, float64."""
    return [2 * math.pi * u / n for u, n in zip(_pixels(shape), shape, strict=True)]


def _rotated(coords: list[torch.Tensor], theta: torch.Tensor) -> list[torch.Tensor]:
    """(c·u₀ + s·u₁, −s·u₀ + c·u₁) for each θ (leading dim); 1D coordinates are returned as is."""
    if len(coords) == 1:
        return [coords[0][None]]
    c = torch.cos(theta).view(-1, 1, 1)
    s = torch.sin(theta).view(-1, 1, 1)
    return [c * coords[0] + s * coords[1], -s * coords[0] + c * coords[1]]


def _gabor(
    shape: tuple[int, ...], sigma: float, theta: torch.Tensor, xi: float, slant: float
) -> torch.Tensor:
    """DFT of the periodised Gabor function of kymatio (one per θ), shape (len(θ), *shape):

        g(u) = exp(−(r₀² + slant² r₁²) / (2σ²) + i ξ e_θ·u) / (2·3.1415·σ²/slant),  r = R_θ⁻¹ u,

    summed over all periods of the grid. Its DFT is, by Poisson summation, the sum over the
    frequency aliases ω + 2πm of G(ω) = (π/3.1415) exp(−σ²(v₀² + v₁²/slant²)/2),
    v = R_θ⁻¹(ω − ξ e_θ). The periods (in space) or aliases (in Fourier) within 9 standard
    deviations are summed, in whichever domain needs fewer: space for narrow, Fourier for wide
    filters. (1D: slant 1 and e_θ = 1.)"""
    d = len(shape)
    norm = math.pi / _KYMATIO_PI
    spatial_width = sigma / min(1.0, slant)
    space_reach = [int((9 * spatial_width + n / 2) // n) for n in shape]
    fourier_reach = int((math.pi + abs(xi) + 9 * max(1.0, slant) / sigma) // (2 * math.pi))
    direction = [torch.cos(theta), torch.sin(theta)][:d]
    expand = (-1,) + (1,) * d
    if math.prod(2 * r + 1 for r in space_reach) < (2 * fourier_reach + 1) ** d:
        total = 0.0
        for period in itertools.product(*(range(-r, r + 1) for r in space_reach)):
            u = [g + p * n for g, p, n in zip(_pixels(shape), period, shape, strict=True)]
            r = _rotated(u, theta)
            quadratic = r[0] ** 2 + (slant * r[1]) ** 2 if d == 2 else r[0] ** 2
            phase = xi * sum(e.view(expand) * ui for e, ui in zip(direction, u, strict=True))
            total = total + torch.exp(-quadratic / (2 * sigma**2) + 1j * phase)
        total = total * norm * (slant if d == 2 else 1.0) / ((2 * math.pi) ** (d / 2) * sigma**d)
        return torch.fft.fftn(total, dim=tuple(range(1, d + 1))).real
    omega = _frequencies(shape)
    total = 0.0
    for alias in itertools.product(range(-fourier_reach, fourier_reach + 1), repeat=d):
        w = [
            o + 2 * math.pi * m - xi * e.view(expand)
            for o, m, e in zip(omega, alias, direction, strict=True)
        ]
        v = _rotated(w, theta) if d == 2 else [w[0]]
        quadratic = v[0] ** 2 + (v[1] / slant) ** 2 if d == 2 else v[0] ** 2
        total = total + torch.exp(-0.5 * sigma**2 * quadratic)
    return norm * total


def _pixels(shape: tuple[int, ...]) -> list[torch.Tensor]:
    """Pixel offsets u in [−n/2, n/2) on the full grid (DFT order), float64."""
    axes = [torch.fft.fftfreq(n, 1 / n, dtype=torch.float64) for n in shape]
    return list(torch.meshgrid(*axes, indexing="ij"))


def _orientations(L: int) -> torch.Tensor:  # noqa: N803
    """kymatio's orientation angles θ_ℓ = (⌊L/2⌋ − 1 − ℓ)π/L, ℓ = 0 … L−1 (float64)."""
    return (int(L - L / 2 - 1) - torch.arange(L, dtype=torch.float64)) * math.pi / L


def _morlet(shape: tuple[int, ...], J: int, L: int) -> torch.Tensor:  # noqa: N803
    """kymatio's Morlet wavelets: σ = 0.8·2^j, ξ = 3π/(4·2^j), slant 4/L (2D),
    θ_ℓ = (⌊L/2⌋ − 1 − ℓ)π/L, ψ = Gabor − K·Gaussian with K making the mean exactly zero."""
    theta = _orientations(L)
    slant = 4.0 / L if len(shape) == 2 else 1.0
    origin = (slice(None),) + (0,) * len(shape)
    scales = []
    for j in range(J):
        sigma, xi = 0.8 * 2**j, 3 * math.pi / 4 / 2**j
        gabor = _gabor(shape, sigma, theta, xi, slant)
        envelope = _gabor(shape, sigma, theta, 0.0, slant)
        zero_mean = (gabor[origin] / envelope[origin]).view(-1, *[1] * len(shape))
        scales.append(gabor - zero_mean * envelope)
    return torch.stack(scales)


def _bump(shape: tuple[int, ...], J: int, L: int) -> torch.Tensor:  # noqa: N803
    """Bump-steerable wavelets (Mallat, Zhang & Rochette, Inf. Inference 9, 721 (2020)):
    ψ̂(ω) = c exp(−(|ω| − ξ)² / (ξ² − (|ω| − ξ)²)) 1{0 < |ω| < 2ξ} cos^{L−1}(arg ω − θ)
    1{|arg ω − θ| < π/2}, ξ = 0.85π / 2^j, θ_ℓ as for the Morlet bank, c = 2^{L−1}(L−1)! /
    (1.29 √(L (2L−2)!)) (1D: one-sided, angular factor 1{ω > 0}). Summed over the frequency
    aliases ω + 2πm (the support reaches 1.7π at j = 0), i.e. the DFT of the sampled wavelet,
    so the bank is exactly covariant under 90° rotations of the grid."""
    norm = 2 ** (L - 1) * math.factorial(L - 1) / (1.29 * math.sqrt(L * math.factorial(2 * L - 2)))
    theta = _orientations(L)
    direction = [torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)]
    scales = [0.0] * J
    for alias in itertools.product((-1, 0, 1), repeat=len(shape)):
        omega = [o + 2 * math.pi * m for o, m in zip(_frequencies(shape), alias, strict=True)]
        radius = torch.sqrt(sum(w**2 for w in omega))
        if len(shape) == 1:
            angular = (omega[0] > 0).double()[None]
        else:
            cosine = sum(e * w for e, w in zip(direction, omega, strict=True))
            cosine = cosine / radius.clamp_min(1e-300)
            angular = torch.where(cosine > 0, cosine.clamp_min(0) ** (L - 1), 0.0)
        for j in range(J):
            xi = 0.85 * math.pi / 2**j
            offset = radius - xi
            inside = (radius > 0) & (radius < 2 * xi)
            denominator = torch.where(inside, xi**2 - offset**2, 1.0)
            radial = torch.where(inside, torch.exp(-(offset**2) / denominator), 0.0)
            scales[j] = scales[j] + norm * radial * angular
    return torch.stack(scales)


@lru_cache(maxsize=16)
def _cached_bank(shape: tuple[int, ...], J: int, L: int, kind: str, device, dtype) -> FilterBank:  # noqa: N803
    psi = _morlet(shape, J, L) if kind == "morlet" else _bump(shape, J, L)
    phi = _gabor(shape, 0.8 * 2 ** (J - 1), torch.zeros(1, dtype=torch.float64), 0.0, 1.0)
    return FilterBank(
        psi.to(device=device, dtype=dtype), phi[0].to(device=device, dtype=dtype), kind
    )


def filter_bank(
    shape: tuple[int, ...] | int,
    J: int,  # noqa: N803
    L: int = 8,  # noqa: N803
    kind: str = "morlet",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> FilterBank:
    """Wavelet filter bank in Fourier, cached per (shape, J, L, kind, device, dtype).

    ``kind="morlet"`` equals ``kymatio.scattering2d.filter_bank.filter_bank(M, N, J, L)`` (its
    full-resolution filters, ``levels[0]``; kymatio builds them in space with 5×5 periods, here
    they are summed analytically over frequency aliases). In 1D (``shape=(n,)``) there is one
    orientation (L must be 1): ψ̂ concentrated on positive frequencies.

    Parameters
    ----------
    shape : int or tuple of int
        Spatial shape, 1D or 2D.
    J : int
        Scales j = 0 … J−1 (wavelet ψ_j of width ≈ 0.8·2^j pixels); 2^J ≤ the smallest side.
    L : int
        Orientations over [0, π) (2D).
    kind : {"morlet", "bump"}
    device, dtype : of the filters.
    """
    shape = (shape,) if is_integer(shape) else tuple(shape)
    if not (1 <= len(shape) <= 2 and all(is_integer(n) and n >= 2 for n in shape)):
        raise ValueError(f"shape must be 1 or 2 integers ≥ 2; got {shape!r}")
    if not is_integer(J) or J < 1 or 2**J > min(shape):
        raise ValueError(f"J must be an integer with 1 ≤ J and 2^J ≤ {min(shape)}; got {J!r}")
    if not is_integer(L) or L < 1 or (len(shape) == 1 and L != 1):
        raise ValueError(f"L must be a positive integer (1 for 1D fields); got {L!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    return _cached_bank(shape, J, L, kind, torch.device(device or "cpu"), dtype)


# -- classic scattering ------------------------------------------------------------------------


def _convolve(x_hat: torch.Tensor, filters: torch.Tensor, ndim: int) -> torch.Tensor:
    dims = tuple(range(-ndim, 0))
    return torch.fft.ifftn(x_hat * filters, dim=dims)


def scattering(
    x: torch.Tensor,
    J: int,  # noqa: N803
    L: int = 8,  # noqa: N803
    *,
    kind: str = "morlet",
    local: bool = False,
) -> dict[str, torch.Tensor]:
    """Classic scattering coefficients up to order 2, periodic.

    S0 = x ⋆ φ_J, S1[λ] = |x ⋆ ψ_λ| ⋆ φ_J, S2[λ1, λ2] = ||x ⋆ ψ_λ1| ⋆ ψ_λ2| ⋆ φ_J for j2 > j1
    (Bruna & Mallat, IEEE TPAMI 35, 1872 (2013)), as global means (default) or, with
    ``local=True``, as maps subsampled by 2^J (kymatio's layout, but periodic instead of
    reflection-padded).

    Parameters
    ----------
    x : torch.Tensor, shape (..., M, N) real
    J, L, kind : the filter bank (:func:`filter_bank`).

    Returns
    -------
    dict with ``S0`` (...,), ``S1`` (..., J, L) and ``S2`` (..., J, L, J, L) — zeros where
    j2 ≤ j1 — plus trailing map dimensions with ``local=True``.
    """
    x = _real_field(x, 2)
    bank = filter_bank(tuple(x.shape[-2:]), J, L, kind, x.device, _real_dtype(x))

    def smooth(u: torch.Tensor) -> torch.Tensor:
        if not local:
            return u.mean(dim=(-2, -1)) * bank.phi[0, 0]
        low = torch.fft.ifft2(torch.fft.fft2(u) * bank.phi).real
        return low[..., :: 2**J, :: 2**J]

    u1 = _convolve(torch.fft.fft2(x)[..., None, None, :, :], bank.psi, 2).abs()  # (..., J, L, M, N)
    u1_hat = torch.fft.fft2(u1)
    s1 = smooth(u1)
    maps = tuple(s1.shape[-2:]) if local else ()
    s2 = s1.new_zeros(*x.shape[:-2], J, L, J, L, *maps)
    for j1 in range(J):  # one (j1, j2) block at a time: memory of B·L² maps, not B·J²L²
        for j2 in range(j1 + 1, J):
            u2 = _convolve(u1_hat[..., j1, :, None, :, :], bank.psi[j2], 2).abs()
            s2[(..., j1, slice(None), j2, slice(None)) + (slice(None),) * len(maps)] = smooth(u2)
    return {"S0": smooth(x), "S1": s1, "S2": s2}


def _real_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _real_field(x, ndim: int) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.is_complex() or x.ndim < ndim:
        raise ValueError(f"x must be real with at least {ndim} dimensions; got {x.dtype} {x.shape}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    return x


# -- scattering covariance -----------------------------------------------------------------


def _labels(J: int, L: int) -> dict[str, np.ndarray]:  # noqa: N803
    """The coefficient table: type and (j1, l1, j2, l2, j3, l3), −1 where not applicable."""
    rows = [("mean", -1, -1, -1, -1, -1, -1)]
    rows += [
        (t, j, ell, -1, -1, -1, -1) for t in ("S1", "S2") for j in range(J) for ell in range(L)
    ]
    # C01 and C11 in the order they are computed: the outer scale (j2, resp. j3) outermost
    rows += [
        ("C01", j1, l1, j2, l2, -1, -1)
        for j2 in range(J)
        for j1 in range(j2 + 1)
        for l1 in range(L)
        for l2 in range(L)
    ]
    rows += [
        ("C11", j1, l1, j2, l2, j3, l3)
        for j3 in range(J)
        for j1 in range(j3 + 1)
        for j2 in range(j1, j3 + 1)
        for l1 in range(L)
        for l2 in range(L)
        for l3 in range(L)
    ]
    columns = list(zip(*rows, strict=True))
    names = ("type", "j1", "l1", "j2", "l2", "j3", "l3")
    return {
        name: np.array(col, dtype=object if name == "type" else np.int64)
        for name, col in zip(names, columns, strict=True)
    }


class ScatteringCovariance:
    """Scattering-covariance statistics of 2D fields of one shape, with cached filters.

    ``stats = ScatteringCovariance((256, 256), J=7, L=4)``; ``stats(x)`` returns the complex
    coefficients (batch, n) as a differentiable torch tensor in the order of ``stats.labels``;
    ``stats.to_xarray(values)`` labels them. See the module docstring for the definitions.

    Parameters
    ----------
    shape : (M, N)
    J, L, kind : the filter bank (:func:`filter_bank`).
    device, dtype : where and in what precision (float32 or float64) to compute.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        J: int,  # noqa: N803
        L: int = 4,  # noqa: N803
        kind: str = "morlet",
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.bank = filter_bank(tuple(shape), J, L, kind, device, dtype)
        self.J, self.L, self.shape = J, L, tuple(shape)
        self.labels = _labels(J, L)
        # Parseval on the rfft2 half plane H of real fields a, b, with p = â conj(b̂):
        # Σ_full p w = Σ_H (p w(k) + conj(p) w(−k) m(k)), m = 0 on the columns that are their
        # own mirror (0 and N/2), 1 elsewhere; w = ψ̂² of the outer wavelet
        power = self.bank.psi.square()
        self._band_power = power.reshape(J * L, -1)  # ψ̂², for S2 over the full plane
        mirrored = torch.roll(torch.flip(power, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
        half = shape[1] // 2 + 1
        column = torch.arange(half, device=power.device)
        fold = ((column > 0) & (2 * column != shape[1])).to(power.dtype)
        plus = power[..., :half].reshape(J, L, -1)
        minus = (mirrored[..., :half] * fold).reshape(J, L, -1)
        self._support, self._plus, self._minus = [], [], []
        for j in range(J):  # the modes kept for the outer scale j (cropping), and w(±k) there
            peak = _CROP * power[j].max()
            keep = (plus[j].amax(dim=0) > peak) | (minus[j].amax(dim=0) > peak)
            index = torch.nonzero(keep).squeeze(1)
            self._support.append(index)
            self._plus.append(plus[j][:, index])
            self._minus.append(minus[j][:, index])

    @property
    def size(self) -> int:
        """Number of coefficients."""
        return len(self.labels["type"])

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Coefficients of each field of x (..., M, N), or the cross-statistics of x and y.

        Cross-statistics take the second factor of each product from y: S2 = ⟨Wx conj(Wy)⟩,
        C01 = ⟨(y ⋆ ψ_λ2) conj(|x ⋆ ψ_λ1| ⋆ ψ_λ2)⟩, C11 = ⟨(|x ⋆ ψ_λ1| ⋆ ψ_λ3)
        conj(|y ⋆ ψ_λ2| ⋆ ψ_λ3)⟩; the mean and S1 stay those of x.

        Returns
        -------
        torch.Tensor, complex, shape (..., n)
        """
        x = _real_field(x, 2)
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"x must have spatial shape {self.shape}; got {tuple(x.shape[-2:])}")
        y = x if y is None else _real_field(y, 2)
        if y.shape != x.shape:
            raise ValueError(f"y must have the shape of x {tuple(x.shape)}; got {tuple(y.shape)}")
        batch = x.shape[:-2]
        x, y = x.reshape(-1, *self.shape), y.reshape(-1, *self.shape)
        pixels = math.prod(self.shape)
        J, L = self.J, self.L  # noqa: N806
        psi = self.bank.psi.to(x.dtype)
        x_hat = torch.fft.fft2(x)
        y_hat = x_hat if y is x else torch.fft.fft2(y)
        s1, m_half = self._envelopes(x_hat, psi)
        m_half_y = m_half if y is x else self._envelopes(y_hat, psi)[1]
        y_half = y_hat[..., : self.shape[1] // 2 + 1].reshape(len(x), -1)
        cross = x_hat.reshape(len(x), -1) * y_hat.reshape(len(x), -1).conj()
        s2 = cross @ self._band_power.T.to(cross.dtype)  # (B, λ)
        parts = [
            x.mean(dim=(-2, -1)).to(s2.dtype)[:, None],
            s1.to(s2.dtype),
            s2 / pixels**2,
        ]
        for j2 in range(J):  # C01, j1 ≤ j2: Σ_k ŷ(k) conj(M̂_λ1(k)) ψ̂_λ2(k)² / N²
            k = self._support[j2]
            p = m_half[:, : (j2 + 1) * L, k].conj() * y_half[:, None, k]  # (B, λ1, K)
            block = self._fold("bak,lk->bal", p, j2)  # (B, λ1, l2)
            parts.append(block.reshape(len(x), -1) / pixels**2)
        for j3 in range(J):  # C11, j1 ≤ j2 ≤ j3: Σ_k M̂_λ1(k) conj(M̂'_λ2(k)) ψ̂_λ3(k)² / N²
            k = self._support[j3]
            a = m_half[:, : (j3 + 1) * L, k]
            b = m_half_y[:, : (j3 + 1) * L, k].conj()
            p = a[:, :, None, :] * b[:, None, :, :]  # (B, λ1, λ2, K)
            full = self._fold("back,lk->bacl", p, j3)  # (B, λ1, λ2, l3)
            parts.append(_upper_scale_blocks(full, j3, L) / pixels**2)
        return torch.cat(parts, dim=1).reshape(*batch, -1)

    def _envelopes(
        self, x_hat: torch.Tensor, psi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """⟨|x ⋆ ψ_λ|⟩ (B, J·L) and the rfft2 of |x ⋆ ψ_λ| (B, J·L, M·(N/2+1)), one scale at a
        time (keeps each temporary small enough for the allocator to reuse: 1.5× faster on CPU
        at 256², batch 4, than one block for all scales)."""
        means, spectra = [], []
        for j in range(self.J):
            modulus = _convolve(x_hat[:, None], psi[j], 2).abs()  # (B, L, M, N)
            means.append(modulus.mean(dim=(-2, -1)))
            spectra.append(torch.fft.rfft2(modulus).flatten(start_dim=-2))
        return torch.cat(means, dim=1), torch.cat(spectra, dim=1)

    def _fold(self, equation: str, p: torch.Tensor, j: int) -> torch.Tensor:
        """Σ_k p w over the full plane from the half plane: Σ_H p w₊ + conj(Σ_H p w₋)."""
        plus = torch.einsum(equation, p, self._plus[j].to(p.dtype))
        return plus + torch.einsum(equation, p, self._minus[j].to(p.dtype)).conj()

    def to_xarray(
        self, values: torch.Tensor, labels: dict | None = None, name: str = "scattering_covariance"
    ) -> xr.DataArray:
        """Label coefficients (..., n) from :meth:`__call__` (or, with their ``labels``, from
        :func:`reduce`) as a DataArray (sample, coeff)."""
        labels = self.labels if labels is None else labels
        return _as_xarray(values, labels, name, {"J": self.J, "L": self.L})


def _upper_scale_blocks(full: torch.Tensor, j3: int, L: int) -> torch.Tensor:  # noqa: N803
    """From C11 of all (λ1, λ2) with j1, j2 ≤ j3, shape (B, λ1, λ2, l3), the blocks with
    j1 ≤ j2, flattened in the labels' order (j1, j2, l1, l2, l3)."""
    blocks = [
        full[:, j1 * L : (j1 + 1) * L, j2 * L : (j2 + 1) * L, :].reshape(full.shape[0], -1)
        for j1 in range(j3 + 1)
        for j2 in range(j1, j3 + 1)
    ]
    return torch.cat(blocks, dim=1)


def _as_xarray(values: torch.Tensor, labels: dict, name: str, attrs: dict) -> xr.DataArray:
    """Coefficients (..., n) as a DataArray (sample, coeff) with the label columns as coords."""
    array = values.detach().cpu().numpy().reshape(-1, values.shape[-1])
    coords = {key: ("coeff", value) for key, value in labels.items()}
    return xr.DataArray(array, dims=("sample", "coeff"), coords=coords, name=name, attrs=attrs)


def scattering_covariance(
    x,
    J: int,  # noqa: N803
    L: int = 4,  # noqa: N803
    *,
    kind: str = "morlet",
    normalize: str | torch.Tensor | None = None,
    reduction: str | None = None,
) -> xr.DataArray:
    """Scattering-covariance statistics of each field of x (sample, M, N), labelled.

    Parameters
    ----------
    x : array_like, shape (sample, M, N)
    J, L, kind : the filter bank.
    normalize : None, "self" or a tensor of reference S2 (J, L)
        Divide S1 by √S2_λ, C01 and C11 by √(S2_λ1 S2_λ2), and S2 by S2 (a reference: the
        target's S2 makes synthesis stable; "self": each field's own).
    reduction : None, "isotropic", "scale" or "isotropic+scale"
        See :func:`reduce`.

    Returns
    -------
    xarray.DataArray, complex, dims (sample, coeff), coordinates type, j1, l1, j2, l2, j3, l3.
    """
    x = _real_field(x, 3)
    stats = ScatteringCovariance(tuple(x.shape[-2:]), J, L, kind, x.device, _real_dtype(x))
    values = stats(x)
    if isinstance(normalize, str) and normalize != "self":
        raise ValueError(f"normalize must be None, 'self' or a tensor of S2; got {normalize!r}")
    if normalize is not None:
        reference = band_powers(values, stats.labels) if isinstance(normalize, str) else normalize
        values = normalized(values, stats.labels, reference)
    labels = stats.labels
    if reduction is not None:
        values, labels = reduce(values, labels, reduction)
    return _as_xarray(values, labels, "scattering_covariance", {"J": J, "L": L, "kind": kind})


def band_powers(values: torch.Tensor, labels: dict) -> torch.Tensor:
    """The band powers S2 = ⟨|x ⋆ ψ_{j,ℓ}|²⟩, shape (..., J, L), of coefficient vectors.

    They are the reference of :func:`normalized` (and of ``normalize`` in
    :func:`scattering_covariance`).
    """
    mask = labels["type"] == "S2"
    J, L = labels["j1"][mask].max() + 1, labels["l1"][mask].max() + 1  # noqa: N806
    return values[..., np.flatnonzero(mask)].real.reshape(*values.shape[:-1], J, L)


def normalized(values: torch.Tensor, labels: dict, reference: torch.Tensor) -> torch.Tensor:
    """Coefficients divided by the reference band powers S2_ref (..., J, L) as in
    :func:`scattering_covariance`'s ``normalize``."""
    reference = torch.as_tensor(reference, device=values.device)
    flat = reference.reshape(*reference.shape[:-2], -1)
    L = reference.shape[-1]  # noqa: N806

    def band(j: np.ndarray, l: np.ndarray) -> torch.Tensor:  # noqa: E741
        index = torch.as_tensor(np.where(j >= 0, j * L + l, 0), device=values.device)
        return torch.where(torch.as_tensor(j >= 0, device=values.device), flat[..., index], 1.0)

    kind = labels["type"]
    first, second = band(labels["j1"], labels["l1"]), band(labels["j2"], labels["l2"])
    denominator = torch.where(
        torch.as_tensor(kind == "S1", device=values.device), first.sqrt(), (first * second).sqrt()
    )
    denominator = torch.where(
        torch.as_tensor(kind == "S2", device=values.device), first, denominator
    )
    return values / denominator.to(values.real.dtype)


def reduce(values: torch.Tensor, labels: dict, reduction: str) -> tuple[torch.Tensor, dict]:
    """Average coefficients over a global rotation and/or dilation.

    ``"isotropic"``: average over l1 at fixed (l2 − l1, l3 − l1) mod L (l1 becomes −1; l2, l3
    are then relative to l1). ``"scale"``: for C01 and C11, average over j1 at fixed
    (j2 − j1, j3 − j1) (j1 becomes −1; j2, j3 are then offsets). ``"isotropic+scale"``: both.
    Differentiable (a sparse average, by ``index_add``).
    """
    if reduction not in ("isotropic", "scale", "isotropic+scale"):
        raise ValueError(
            f"reduction must be 'isotropic', 'scale' or 'isotropic+scale'; got {reduction!r}"
        )
    keys = {name: col.copy() for name, col in labels.items()}
    L = max(int(labels["l1"].max()) + 1, 1)  # noqa: N806
    if "isotropic" in reduction:
        has_l1 = keys["l1"] >= 0
        for name in ("l2", "l3"):
            relative = (keys[name] - keys["l1"]) % L
            keys[name] = np.where(has_l1 & (keys[name] >= 0), relative, keys[name])
        keys["l1"] = np.full_like(keys["l1"], -1)
    if "scale" in reduction:
        pair = np.isin(keys["type"], ("C01", "C11"))
        for name in ("j2", "j3"):
            offset = keys[name] - keys["j1"]
            keys[name] = np.where(pair & (keys[name] >= 0), offset, keys[name])
        keys["j1"] = np.where(pair, -1, keys["j1"])
    names = list(keys)
    table = np.stack(
        [np.unique(keys["type"], return_inverse=True)[1]] + [keys[n] for n in names[1:]], 1
    )
    unique, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep the original order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    groups = torch.as_tensor(rank[inverse.ravel()], device=values.device)
    counts = torch.bincount(groups).to(values.real.dtype)
    total = torch.zeros(*values.shape[:-1], len(unique), dtype=values.dtype, device=values.device)
    total = total.index_add(-1, groups, values)
    reduced_labels = {name: keys[name][first[order]] for name in names}
    return total / counts, reduced_labels


def angular_harmonics(values: torch.Tensor, labels: dict) -> torch.Tensor:
    """Angular Fourier compression of isotropically reduced coefficients.

    For each (type, j1, j2, j3), C01(δl2) becomes Σ_δl C01(δl) e^{−2πi m δl / L} and C11(δl2,
    δl3) its 2D DFT, so that smooth angular dependence concentrates in few harmonics m (then
    small ones can be dropped); the mean, S1 and S2 are unchanged. The result has the layout
    of ``values``: in ``labels``, l2 and l3 then index the harmonics m2, m3.

    Parameters
    ----------
    values : torch.Tensor, (..., n) from :func:`reduce` with an isotropic reduction
    labels : dict, its labels
    """
    kind = labels["type"]
    pair = np.isin(kind, ("C01", "C11"))
    if (labels["l1"][pair] >= 0).any():
        raise ValueError("angular_harmonics needs isotropically reduced coefficients (reduce())")
    out = values.clone()
    if not pair.any():
        return out
    L = int(max(labels["l2"][pair].max(), labels["l3"][pair].max())) + 1  # noqa: N806
    for name, axes in (("C01", 1), ("C11", 2)):
        rows = np.flatnonzero(kind == name)
        if not len(rows):
            continue
        angles = [labels["l2"][rows]] + ([labels["l3"][rows]] if axes == 2 else [])
        scales = np.stack([labels[k][rows] for k in ("j1", "j2", "j3")], axis=1)
        _, group = np.unique(scales, axis=0, return_inverse=True)
        grid = np.full((group.max() + 1,) + (L,) * axes, -1)
        grid[(group.ravel(), *angles)] = rows
        if (grid < 0).any():
            raise ValueError(f"{name}: every relative orientation must be present")
        index = torch.as_tensor(grid, device=values.device)
        block = values[..., index]
        harmonics = torch.fft.fftn(block, dim=tuple(range(-axes, 0)))
        out[..., index.reshape(-1)] = harmonics.reshape(*values.shape[:-1], -1)
    return out


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II: D[k, m] = w_k cos(π k (2m + 1) / 2n), w_0 = √(1/n), w_k = √(2/n)."""
    k, m = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    weights = np.where(k == 0, np.sqrt(1 / n), np.sqrt(2 / n))
    return weights * np.cos(np.pi * k * (2 * m + 1) / (2 * n))


def scale_cosine(values: torch.Tensor, labels: dict) -> tuple[torch.Tensor, dict]:
    """Cosine compression along scale.

    Coefficients that differ only in their position j1 along the scale axis — same type,
    orientations and scale offsets (j2 − j1, j3 − j1) — form sequences x_n, n = j1 = 0 … N − 1;
    each becomes its orthonormal DCT-II

        c_k = w_k Σ_n x_n cos(π k (2n + 1) / 2N),  w_0 = √(1/N), w_{k>0} = √(2/N).

    For a self-similar field the (normalised) coefficients hardly depend on j1, so c_0 = √N ×
    their average over j1 (:func:`reduce`'s ``"scale"``) carries most of them and the few
    first k > 0 its departures from self-similarity; small ones can then be dropped (Morel et
    al., "Scale dependencies and self-similar models with wavelet scattering spectra", 2023).
    Orthonormal, so Σ_k |c_k|² = Σ_n |x_n|². S1 and S2 are transformed along j1 as well; the
    mean is unchanged. Composes with :func:`reduce` (isotropic) and :func:`angular_harmonics`.

    Returns
    -------
    (coefficients, labels): the layout of ``values``; in the labels j1 is then the cosine index
    k and j2, j3 are offsets from j1.
    """
    kind = labels["type"]
    along = np.flatnonzero(labels["j1"] >= 0)
    if (np.isin(kind, ("C01", "C11")) & (labels["j1"] < 0)).any():
        raise ValueError("scale_cosine needs coefficients not yet averaged over scale (reduce())")
    keys = {name: col.copy() for name, col in labels.items()}
    for name in ("j2", "j3"):
        offset = labels[name] - labels["j1"]
        keys[name] = np.where((labels["j1"] >= 0) & (labels[name] >= 0), offset, labels[name])
    rest = [np.unique(kind, return_inverse=True)[1].ravel()]
    rest += [keys[name] for name in ("j2", "j3", "l1", "l2", "l3")]
    _, group = np.unique(np.stack(rest, 1)[along], axis=0, return_inverse=True)
    group = group.ravel()
    order = np.lexsort((labels["j1"][along], group))  # each sequence contiguous, by j1
    rows, group = along[order], group[order]
    sizes = np.bincount(group)
    position = np.arange(len(rows)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    if not np.array_equal(labels["j1"][rows], position):
        raise ValueError("scale_cosine needs every scale j1 = 0, 1, … of each sequence")
    out = values.clone()
    for n in np.unique(sizes):
        grid = torch.as_tensor(rows[np.isin(group, np.flatnonzero(sizes == n))].reshape(-1, n))
        grid = grid.to(values.device)
        dct = torch.as_tensor(_dct_matrix(int(n)), dtype=values.dtype, device=values.device)
        out[..., grid] = values[..., grid] @ dct.T
    return out, keys  # j1 now labels the cosine index k (it runs over the same 0 … N − 1)


def significant(samples: torch.Tensor, threshold: float = 1.0) -> np.ndarray:
    """Which coefficients stand out of their sample noise: |mean| > threshold × std over the
    samples (dim 0 of ``samples`` (sample, coeff); for complex ones std² = mean |x − mean|²).

    Used after :func:`angular_harmonics` / :func:`scale_cosine` to keep only the coefficients
    that a model can be fitted to (Cheng et al. 2023 keep |mean|/std > 0.5 … 3).
    """
    samples = torch.as_tensor(samples)
    if samples.dim() != 2 or samples.shape[0] < 2:
        raise ValueError(
            f"samples must have shape (sample >= 2, coeff); got {tuple(samples.shape)}"
        )
    if not threshold >= 0:
        raise ValueError(f"threshold must be non-negative; got {threshold!r}")
    mean = samples.mean(0)
    std = (samples - mean).abs().square().mean(0).sqrt()
    return (mean.abs() > threshold * std).cpu().numpy()
