"""Every sampler driven by exact denoisers: the Wiener filter must give the Gaussian field's
spectrum, the empirical (softmax) denoiser must return training points, and the denoiser enters
every step with a positive coefficient."""

import math

import numpy as np
import pytest
import torch

from rgfield.diffusion import SAMPLERS, EmpiricalDenoiser, VarianceExploding, VariancePreserving
from rgfield.stats import power_spectrum

# steps per sampler: enough that the discretisation bias is well below the statistical error of
# 512 fields (1-2 % per shell); Heun is second order, the others first order (at 200 steps
# Euler's shells are 3-5 % low, Euler-Maruyama's 2-3 % high)
STEPS = {"heun": 48, "euler": 1000, "ddim": 1000, "euler_maruyama": 2000, "pc": 1000}
OPTIONS = {"heun": {}, "euler": {}, "ddim": {"eta": 0.5}, "euler_maruyama": {}, "pc": {}}


def expected_shells(power: torch.Tensor) -> np.ndarray:
    """The shell-averaged spectrum that :func:`rgfield.stats.power_spectrum` measures for a
    field with mode powers P_k: that of x = F⁻¹[√(P n)] (|F(x)_k|²/n = P_k exactly)."""
    exact = torch.fft.ifft2((power * power.numel()).sqrt()).real
    return power_spectrum(exact[None]).values[0]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_samplers_driven_by_the_wiener_filter_give_the_gaussian_spectrum(sampler, wiener):
    n = 512
    sigmas = VarianceExploding(sigma_max=80.0).sigmas(STEPS[sampler])
    generator = torch.Generator().manual_seed(7)
    x = wiener.mean + float(sigmas[0]) * torch.randn(
        n, 16, 16, generator=generator, dtype=torch.float64
    )
    fields = SAMPLERS[sampler](wiener, x, sigmas, generator=generator, **OPTIONS[sampler])
    spectra = power_spectrum(fields).values
    mean, error = spectra.mean(0), spectra.std(0) / math.sqrt(n)
    z = (mean - expected_shells(wiener.power)) / error
    assert np.abs(z).max() < 3, f"{sampler}: shell z-scores {np.round(z, 2)}"


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("process", [VarianceExploding(), VariancePreserving(schedule="cosine")])
def test_samplers_driven_by_the_empirical_denoiser_return_training_points(sampler, process):
    generator = torch.Generator().manual_seed(3)
    points = torch.randn(6, 8, 8, generator=generator, dtype=torch.float64)
    oracle = EmpiricalDenoiser(points)
    sigmas = process.sigmas(40)
    x = float(sigmas[0]) * torch.randn(32, 8, 8, generator=generator, dtype=torch.float64)
    samples = SAMPLERS[sampler](oracle, x, sigmas, generator=generator)
    _, distance = oracle.nearest(samples)
    assert float(distance.max()) < 1e-8 * oracle.typical_distance()


def _after_first_step(sampler, value: float) -> torch.Tensor:
    """x after the first of two steps (σ 2 → 1 → 0) of ``sampler`` driven by D ≡ value."""
    seen = []
    x = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    SAMPLERS[sampler](
        lambda x, sigma: torch.full_like(x, value),
        x,
        torch.tensor([2.0, 1.0, 0.0]),
        generator=torch.Generator().manual_seed(1),
        callback=lambda info: seen.append(info["x"]) if info["i"] == 0 else None,
    )
    return seen[0]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_the_denoiser_enters_every_step_with_a_positive_coefficient(sampler):
    """The sign rule: raising D everywhere raises x after a step (same x, same noise)."""
    low, high = _after_first_step(sampler, 0.0), _after_first_step(sampler, 1.0)
    assert bool(((high - low) > 0).all())


def test_ddim_without_noise_is_euler():
    """η = 0 DDIM and Euler's step are the same map, written two ways."""
    oracle = EmpiricalDenoiser(torch.randn(5, 8, 8, dtype=torch.float64))
    sigmas = VarianceExploding().sigmas(20)
    x = 80 * torch.randn(3, 8, 8, dtype=torch.float64)
    np.testing.assert_allclose(
        SAMPLERS["ddim"](oracle, x, sigmas).numpy(),
        SAMPLERS["euler"](oracle, x, sigmas).numpy(),
        rtol=1e-9,
        atol=1e-9,
    )


def test_samplers_refuse_a_bad_grid():
    with pytest.raises(ValueError, match="sigmas"):
        SAMPLERS["heun"](lambda x, s: x, torch.zeros(1, 4, 4), torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="sigmas"):
        SAMPLERS["euler"](lambda x, s: x, torch.zeros(1, 4, 4), torch.tensor([2.0, 1.0]))
