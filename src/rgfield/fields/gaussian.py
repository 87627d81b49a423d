"""Stationary Gaussian random fields with a given power spectrum, exactly sampled by FFT."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import xarray as xr

from rgfield import _progress
from rgfield._validate import fresh_seed, is_integer
from rgfield.fields import resolve_device, spectrum_attrs
from rgfield.io import to_dataset

__all__ = [
    "GaussianConfig",
    "gaussian_field",
    "lattice_free_field_spectrum",
    "rfft_wavevectors",
    "simulate",
]


def rfft_wavevectors(shape: tuple[int, ...], device=None) -> list[torch.Tensor]:
    """Components of k (radians per pixel) on the ``rfftn`` grid of ``shape``, float64, one
    broadcast tensor per axis."""
    freqs = [torch.fft.fftfreq(s, dtype=torch.float64, device=device) for s in shape[:-1]]
    freqs.append(torch.fft.rfftfreq(shape[-1], dtype=torch.float64, device=device))
    return list(torch.meshgrid(*(2 * torch.pi * f for f in freqs), indexing="ij"))


def gaussian_field(
    spectrum: Callable[..., torch.Tensor],
    shape: tuple[int, ...],
    n: int = 1,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``n`` periodic stationary Gaussian fields of zero mean with power spectrum P(k).

    With x̂ the unnormalised DFT and N the number of pixels, the fields satisfy
    E[x̂(k) conj(x̂(k'))] = N P(k) δ_kk' — the convention of :func:`rgfield.stats.power_spectrum`,
    so white noise of variance σ² has P = σ². They are made as x = IDFT(√P(k) · DFT(w)) from
    real white noise w, which is exact (no approximation beyond the lattice).

    Parameters
    ----------
    spectrum : callable
        P(k_1, ..., k_d) of the wavevector components in radians per pixel (each in [−π, π)),
        broadcast over the Fourier grid; must be finite and non-negative, and even in k.
    shape : tuple of int
        Spatial shape (1 to 3 dimensions).
    n : int
        Number of fields.
    seed : int, optional
    dtype, device : of the result (the computation is in float64, on ``device``).

    Returns
    -------
    torch.Tensor, shape (n, *shape)
    """
    if not (1 <= len(shape) <= 3 and all(is_integer(s) and s >= 1 for s in shape)):
        raise ValueError(f"shape must be 1 to 3 positive integers; got {shape!r}")
    if not is_integer(n) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    k = rfft_wavevectors(shape, device)
    power = torch.as_tensor(spectrum(*k), dtype=torch.float64, device=device).expand(k[0].shape)
    if not (torch.isfinite(power).all() and (power >= 0).all()):
        raise ValueError("spectrum must be finite and non-negative on the Fourier grid")
    generator = torch.Generator().manual_seed(fresh_seed() if seed is None else int(seed))
    # the noise is drawn on the CPU so that a seed gives the same field on every device
    noise = torch.randn(n, *shape, generator=generator, dtype=torch.float64).to(device)
    dims = tuple(range(1, len(shape) + 1))
    fields = torch.fft.irfftn(power.sqrt() * torch.fft.rfftn(noise, dim=dims), s=shape, dim=dims)
    return fields.to(dtype=dtype, device=device)


def lattice_free_field_spectrum(beta: float, m2: float) -> Callable[..., torch.Tensor]:
    """P(k) = 1 / (β Σ_μ 4 sin²(k_μ/2) + m²): the Gaussian free field
    E = (β/2) Σ_⟨xy⟩ (φ_x − φ_y)² + (m²/2) Σ φ_x² on a periodic lattice."""
    if not (beta > 0 and m2 > 0):
        raise ValueError(f"beta and m2 must be positive; got beta={beta!r}, m2={m2!r}")
    # a partial, not a closure, so that simulate can record beta and m2 (spectrum_attrs)
    return partial(lattice_free_field_power, beta=beta, m2=m2)


def lattice_free_field_power(*k: torch.Tensor, beta: float, m2: float) -> torch.Tensor:
    """P(k) = 1 / (β Σ_μ 4 sin²(k_μ/2) + m²) of the wavevector components k_μ."""
    return 1.0 / (beta * sum(4 * torch.sin(kk / 2) ** 2 for kk in k) + m2)


@dataclass(frozen=True)
class GaussianConfig:
    """An ensemble of :func:`gaussian_field` fields, for :func:`simulate`.

    Parameters
    ----------
    spectrum : callable
        P(k_1, ..., k_d) in radians per pixel, as in :func:`gaussian_field` (e.g.
        :func:`lattice_free_field_spectrum`).
    shape : tuple of int
        Spatial shape of a field: (y, x) or (z, y, x).
    """

    spectrum: Callable[..., torch.Tensor]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not callable(self.spectrum):
            raise ValueError(f"spectrum must be callable; got {type(self.spectrum).__name__}")
        shape = tuple(self.shape) if isinstance(self.shape, tuple | list) else None
        if not (shape and len(shape) in (2, 3) and all(is_integer(s) and s >= 1 for s in shape)):
            raise ValueError(f"shape must be 2 or 3 positive integers; got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))


def simulate(
    config: GaussianConfig,
    samples: int,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """``samples`` independent Gaussian fields (float32) with the spectrum of ``config``.

    Returns
    -------
    xarray.Dataset
        Variable ``field`` (sample, y, x) or (sample, z, y, x); attrs with the shape, the
        spectrum (name and, for a dataclass, its fields) and the seed.
    """
    if not isinstance(config, GaussianConfig):
        raise ValueError(f"config must be a GaussianConfig; got {type(config).__name__}")
    if not is_integer(samples) or samples < 1:
        raise ValueError(f"samples must be a positive integer; got {samples!r}")
    device = resolve_device(device)
    seed = fresh_seed() if seed is None else int(seed)
    with _progress.progress("gaussian fields", samples, enabled=progress) as on_step:
        fields = gaussian_field(config.spectrum, config.shape, samples, seed, device=device)
        on_step(samples)
    attrs = {
        "generator": "rgfield.fields.gaussian.simulate",
        "shape": list(config.shape),
        **spectrum_attrs(config.spectrum),
        "seed": seed,
    }
    return to_dataset(fields, "field", attrs)
