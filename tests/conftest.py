"""Shared test set-up.

kymatio 0.3.0, the independent reference of the scattering filter tests, imports
``scipy.special.sph_harm`` at import time; SciPy 1.17 removed it in favour of ``sph_harm_y``.
The 2D filters compared here never call it, so the old name is supplied (with the old argument
order: order m, degree n, azimuth θ, polar angle φ) before any test imports kymatio.

Fixtures shared by several test modules live here.
"""

import pytest
import scipy.special
import torch

from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum

FREE_BETA, FREE_M2 = 1.0, 0.5  # couplings of the `free_field` fixture

if not hasattr(scipy.special, "sph_harm"):

    def _sph_harm(m, n, theta, phi):
        return scipy.special.sph_harm_y(n, m, phi, theta)

    scipy.special.sph_harm = _sph_harm


@pytest.fixture(scope="session")
def free_field():
    """Factory of lattice Gaussian free fields, float64 (n, size, size); its couplings are the
    factory's attributes ``beta`` and ``m2``."""

    def make(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
        spectrum = lattice_free_field_spectrum(beta=FREE_BETA, m2=FREE_M2)
        return gaussian_field(spectrum, (size, size), n, seed=seed, dtype=torch.float64)

    make.beta, make.m2 = FREE_BETA, FREE_M2
    return make
