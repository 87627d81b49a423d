"""Noise processes: the grids and training distributions against their closed forms."""

import math

import numpy as np
import pytest
import torch

from rgfield.diffusion import VarianceExploding, VariancePreserving, make_process


def test_variance_exploding_grid_is_karras_rho_grid():
    process = VarianceExploding(sigma_min=0.01, sigma_max=10.0, rho=7.0)
    sigmas = process.sigmas(5).numpy()
    ramp = np.arange(5) / 4
    expected = (10 ** (1 / 7) + ramp * (0.01 ** (1 / 7) - 10 ** (1 / 7))) ** 7
    np.testing.assert_allclose(sigmas[:-1], expected, rtol=1e-12)
    assert sigmas[-1] == 0 and sigmas[0] == pytest.approx(10) and sigmas[-2] == pytest.approx(0.01)


@pytest.mark.parametrize("training", ["loguniform", "lognormal"])
def test_variance_exploding_training_sigmas_follow_their_law(training):
    process = VarianceExploding(training=training)
    n = 20000
    log_sigma = process.training_sigmas(n, torch.Generator().manual_seed(0)).log().numpy()
    low, high = math.log(process.sigma_min), math.log(process.sigma_max)
    assert log_sigma.min() >= low - 1e-12 and log_sigma.max() <= high + 1e-12
    if training == "loguniform":  # mean (a + b)/2, standard error (b − a)/√(12 n)
        assert abs(log_sigma.mean() - (low + high) / 2) < 4 * (high - low) / math.sqrt(12 * n)
    else:  # N(−1.2, 1.2²), clipped far in its tails
        assert abs(np.median(log_sigma) + 1.2) < 4 * 1.2 * 1.25 / math.sqrt(n)


def test_variance_preserving_sigma_matches_alpha():
    """σ_t of the unscaled variable and α_t of the VP process satisfy α² (1 + σ²) = 1 with
    α_t² = exp(−½ (β_max − β_min) t² − β_min t) (linear) or f(t)/f(0) (cosine)."""
    t = torch.linspace(0.01, 0.99, 7, dtype=torch.float64)
    linear = VariancePreserving("linear")
    alpha2 = torch.exp(-0.5 * (20.0 - 0.1) * t**2 - 0.1 * t)
    np.testing.assert_allclose((1 / (1 + linear.sigma(t) ** 2)).numpy(), alpha2.numpy(), rtol=1e-12)
    cosine = VariancePreserving("cosine")
    f = lambda u: torch.cos(math.pi / 2 * (u + 0.008) / 1.008) ** 2  # noqa: E731
    ratio = (f(t) / f(torch.zeros(1, dtype=torch.float64))).numpy()
    np.testing.assert_allclose((1 / (1 + cosine.sigma(t) ** 2)).numpy(), ratio, rtol=1e-10)
    np.testing.assert_allclose(
        linear.alpha(linear.sigma(t)).numpy() ** 2, alpha2.numpy(), rtol=1e-12
    )


def test_variance_preserving_grid_descends_from_t_max_to_t_min():
    process = VariancePreserving("cosine")
    sigmas = process.sigmas(10)
    assert bool((sigmas[:-1] > sigmas[1:]).all()) and float(sigmas[-1]) == 0
    assert float(sigmas[-2]) == pytest.approx(
        float(process.sigma(torch.tensor(1e-3, dtype=torch.float64)))
    )


def test_bad_process_options_are_named():
    with pytest.raises(ValueError, match="process must be one of"):
        make_process("flow")
    with pytest.raises(ValueError, match="sigma_min"):
        VarianceExploding(sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="training"):
        VarianceExploding(training="uniform")
    with pytest.raises(ValueError, match="schedule"):
        VariancePreserving("quadratic")
    with pytest.raises(ValueError, match="steps"):
        VarianceExploding().sigmas(1)
