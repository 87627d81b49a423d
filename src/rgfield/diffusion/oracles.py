"""Exact denoisers, for tests and as references: no network, no training.

* :class:`WienerDenoiser`: for a stationary Gaussian field the optimal denoiser is the Wiener
  filter, diagonal in Fourier space;
* :class:`EmpiricalDenoiser`: for the empirical distribution of a finite training set it is the
  softmax-weighted average of the training points, so a sampler driven by it returns training
  points (memorisation).
"""

from __future__ import annotations

import math

import torch

__all__ = ["EmpiricalDenoiser", "WienerDenoiser"]


class WienerDenoiser:
    """D(x, σ) = μ + F⁻¹[P_k/(P_k + σ²) F(x − μ)_k], the posterior mean of a stationary periodic
    Gaussian field x₀ ~ N(μ, C) given x = x₀ + σ n.

    Parameters
    ----------
    power : torch.Tensor, shape (H, W)
        The eigenvalues P_k of C, one per 2D Fourier mode: P_k = E|F(x₀ − μ)_k|²/(H W)
        (unnormalised FFT), so white noise of unit variance has P ≡ 1.
    mean : float
        μ.
    """

    def __init__(self, power: torch.Tensor, mean: float = 0.0) -> None:
        power = torch.as_tensor(power, dtype=torch.float64)
        if power.dim() != 2 or not (power >= 0).all():
            raise ValueError("power must be a 2D array of non-negative powers (one per mode)")
        self.power, self.mean = power, float(mean)

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        gain = (self.power / (self.power + sigma**2)).to(x.device)
        centred = torch.fft.fft2(x.double() - self.mean)
        return (torch.fft.ifft2(gain * centred).real + self.mean).to(x.dtype)

    def mse(self, sigma: float) -> float:
        """The minimum mean squared error per pixel, (1/HW) Σ_k P_k σ²/(P_k + σ²)."""
        return float((self.power * sigma**2 / (self.power + sigma**2)).mean())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` fields x₀ ~ N(μ, C) (float64): F⁻¹[√P_k F(w)_k], w white."""
        white = torch.randn((n, *self.power.shape), generator=generator, dtype=torch.float64)
        coloured = torch.fft.ifft2(self.power.sqrt() * torch.fft.fft2(white)).real
        return coloured + self.mean


class EmpiricalDenoiser:
    """D(x, σ) = Σ_i w_i x_i, w = softmax_i(−‖x − x_i‖²/2σ²): the posterior mean when x₀ is
    drawn uniformly from the training points x_i (Kadkhodaie et al., ICLR 2024, §2).

    Parameters
    ----------
    points : torch.Tensor, shape (N, ...)
        The training points.
    """

    def __init__(self, points: torch.Tensor) -> None:
        points = torch.as_tensor(points)
        if points.dim() < 2 or len(points) == 0:
            raise ValueError("points must be a non-empty batch (N, ...) of training points")
        self.points = points

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        flat_x = x.flatten(1).double()
        flat_points = self.points.flatten(1).to(device=x.device, dtype=torch.float64)
        distance = torch.cdist(flat_x, flat_points).square()
        weights = torch.softmax(-distance / (2 * sigma**2), dim=1)
        return (weights @ flat_points).reshape(x.shape).to(x.dtype)

    def nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index of the nearest training point, its distance) for each x."""
        flat_points = self.points.flatten(1).to(device=x.device, dtype=torch.float64)
        # the direct difference, not ‖x‖² + ‖y‖² − 2⟨x, y⟩: a copy must measure 0, not 1e-7
        distance = torch.cdist(
            x.flatten(1).double(), flat_points, compute_mode="donot_use_mm_for_euclid_dist"
        )
        best = distance.min(1)
        return best.indices, best.values

    def typical_distance(self) -> float:
        """The median distance between two distinct training points (a scale for "close")."""
        flat = self.points.flatten(1).double()
        distance = torch.cdist(flat, flat)
        upper = distance[torch.triu_indices(len(flat), len(flat), 1).unbind()]
        return float(upper.median()) if upper.numel() else math.nan
