"""A stationary Gaussian field with a known spectrum: the exact oracle of the diffusion tests."""

import pytest
import torch

from rgfield.diffusion import WienerDenoiser


def _power_law(size: int, mass2: float = 0.02, exponent: float = 1.0) -> torch.Tensor:
    """P_k ∝ (|k|² + m²)^(−exponent) on the size × size grid of the unnormalised FFT, scaled to
    unit variance per pixel (a smooth, strongly coloured spectrum)."""
    k = torch.fft.fftfreq(size, dtype=torch.float64)
    power = (k[:, None] ** 2 + k[None, :] ** 2 + mass2) ** -exponent
    return power / power.mean()


@pytest.fixture
def power_law():
    """``power_law(size, mass2=0.02, exponent=1)``: mode powers P_k ∝ (|k|² + m²)^(−exponent)."""
    return _power_law


@pytest.fixture
def wiener() -> WienerDenoiser:
    """The Wiener denoiser of a 16 × 16 power-law Gaussian field of mean 0.5."""
    return WienerDenoiser(_power_law(16), mean=0.5)
