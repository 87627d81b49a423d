"""The exact denoisers against brute-force linear algebra and direct sampling."""

import math

import numpy as np
import pytest
import torch

from rgfield.diffusion import EmpiricalDenoiser, WienerDenoiser


def test_wiener_filter_equals_the_dense_gaussian_posterior_mean(power_law):
    """D(x, σ) = μ + C (C + σ² I)⁻¹ (x − μ) with the covariance C built pixel by pixel from
    the spectrum (C_uv = (1/n) Σ_k P_k e^{2πi k (u − v)/n}, independent of the FFT filter)."""
    size, mean, sigma = 6, 0.3, 0.7
    power = power_law(size).numpy()
    coords = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(
        -1, 2
    )
    k = np.fft.fftfreq(size)
    modes = np.stack(np.meshgrid(k, k, indexing="ij"), -1).reshape(-1, 2)
    phase = np.exp(2j * np.pi * (coords @ modes.T))  # (pixel, mode)
    covariance = ((phase * power.reshape(-1)) @ phase.conj().T).real / size**2
    x = np.random.default_rng(0).standard_normal((3, size * size))
    gain = covariance @ np.linalg.inv(covariance + sigma**2 * np.eye(size * size))
    expected = mean + (x - mean) @ gain.T
    got = WienerDenoiser(torch.from_numpy(power), mean)(
        torch.from_numpy(x.reshape(3, size, size)), sigma
    )
    np.testing.assert_allclose(got.reshape(3, -1).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_wiener_samples_have_the_spectrum_and_mse_matches_direct_denoising(wiener):
    """The oracle's own sampler and MSE formula against a direct Monte Carlo denoising run."""
    generator = torch.Generator().manual_seed(0)
    clean = wiener.sample(400, generator)
    # each mode's periodogram |F(x − μ)_k|²/n is exponential with mean P_k (k ≠ 0, a real
    # field's k and −k are one variable): its mean over 400 samples has standard error P_k/20
    periodogram = torch.fft.fft2(clean - 0.5).abs().square().mean(0) / 16**2
    assert float((periodogram / wiener.power - 1).abs().max()) < 5 / math.sqrt(400)
    for sigma in (0.1, 1.0, 5.0):
        noisy = clean + sigma * torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        errors = (wiener(noisy, sigma) - clean).square().mean((1, 2))
        standard_error = float(errors.std()) / math.sqrt(len(errors))
        assert abs(float(errors.mean()) - wiener.mse(sigma)) < 4 * standard_error


def test_empirical_denoiser_is_the_softmax_average():
    points = torch.randn(5, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigma = 1.3
    expected = []
    for field in x.numpy():
        logits = np.array([-np.sum((field - p) ** 2) / (2 * sigma**2) for p in points.numpy()])
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        expected.append(np.tensordot(weights, points.numpy(), axes=1))
    got = EmpiricalDenoiser(points)(x, sigma)
    np.testing.assert_allclose(got.numpy(), np.array(expected), rtol=1e-12)


def test_oracles_refuse_bad_arguments():
    with pytest.raises(ValueError, match="power"):
        WienerDenoiser(torch.ones(4))
    with pytest.raises(ValueError, match="points"):
        EmpiricalDenoiser(torch.ones(0, 4, 4))
