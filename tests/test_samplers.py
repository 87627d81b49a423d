import math

import numpy as np
import pytest
import torch

from rgfield import stats
from rgfield.samplers import (
    HMC,
    MALA,
    BlockMALA,
    adapt_step_size,
    effective_sample_size,
    integrated_autocorrelation_time,
)


def ar1(a: float, chains: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty((chains, length))
    x[:, 0] = rng.standard_normal(chains) / math.sqrt(1 - a * a)  # stationary start
    noise = rng.standard_normal((chains, length))
    for t in range(1, length):
        x[:, t] = a * x[:, t - 1] + noise[:, t]
    return x


@pytest.mark.parametrize("a", [0.0, 0.5, 0.9])
def test_tau_int_of_ar1_equals_its_exact_value(a):
    series = ar1(a, chains=20, length=50_000, seed=int(10 * a))
    result = integrated_autocorrelation_time(series)
    exact = (1 + a) / (2 * (1 - a))  # ½ + Σ_t a^t
    assert abs(result.tau - exact) < 4 * result.error
    np.testing.assert_allclose(result.rho[:4], a ** np.arange(4), atol=0.02)
    ess = effective_sample_size(series)
    assert ess == pytest.approx(series.size / (2 * result.tau))


def test_tau_int_errors():
    with pytest.raises(ValueError, match="constant"):
        integrated_autocorrelation_time(np.ones(100))
    with pytest.raises(ValueError, match="NaN"):
        integrated_autocorrelation_time(np.array([1.0, np.nan, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="time >= 4"):
        integrated_autocorrelation_time(np.ones((2, 2, 2)))


def test_jackknife_of_the_mean_is_the_standard_error():
    x = np.random.default_rng(0).standard_normal(50)
    est, err = stats.jackknife(x, lambda v: v.mean(0), blocks=50)
    assert est == pytest.approx(x.mean())
    assert err == pytest.approx(x.std(ddof=1) / math.sqrt(50), rel=1e-12)
    with pytest.raises(ValueError, match="blocks"):
        stats.jackknife(x, np.mean, blocks=1)


def test_hmc_samples_a_correlated_gaussian():
    # U(x) = ½ xᵀ P x with a known precision P: the sample covariance must approach P⁻¹
    precision = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    cov = torch.linalg.inv(precision)
    kernel = HMC(
        energy=lambda x: 0.5 * torch.einsum("ci,ij,cj->c", x, precision, x),
        grad=lambda x: x @ precision,
        step_size=0.3,
        n_leapfrog=5,
    )
    generator = torch.Generator().manual_seed(1)
    state = kernel.init(torch.zeros(200, 2, dtype=torch.float64))
    kernel, state, _ = kernel.adapt(state, generator, steps=100)
    draws, accepted = [], []
    for _ in range(200):
        state, accept = kernel.step(state, generator)
        draws.append(state.position)
        accepted.append(accept.double().mean())
    x = torch.stack(draws).reshape(-1, 2)
    sample_cov = torch.cov(x.T)
    # 40 000 draws, τ_int of a few: relative error of a variance ~ √(2·2τ/N) ≈ 2 %
    torch.testing.assert_close(sample_cov, cov, rtol=0.1, atol=0.03)
    assert 0.6 < float(torch.stack(accepted).mean()) < 0.95
    with pytest.raises(ValueError, match="step_size"):
        HMC(kernel.energy, kernel.grad, step_size=0.0)


def gaussian_target(precision: torch.Tensor):
    def energy_and_grad(x):
        return 0.5 * torch.einsum("ci,ij,cj->c", x, precision, x), x @ precision

    return energy_and_grad


def test_mala_reproduces_the_covariance_of_a_gaussian_target():
    # independent chains: each chain's last state is one independent draw, so the sample
    # covariance has the exact standard error √((Σ_ii Σ_jj + Σ_ij²) / N)
    precision = torch.tensor(
        [[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64
    )
    cov = torch.linalg.inv(precision)
    chains = 8000
    kernel = MALA(gaussian_target(precision), step_size=0.1)
    generator = torch.Generator().manual_seed(3)
    state = kernel.init(torch.zeros(chains, 3, dtype=torch.float64))
    kernel, state, warm = kernel.adapt(state, generator, steps=200)
    accepted = []
    for _ in range(300):  # τ_int is a few steps at the tuned step
        state, accept = kernel.step(state, generator)
        accepted.append(accept.double().mean())
    sample_cov = torch.cov(state.position.T)
    error = ((torch.diag(cov)[:, None] * torch.diag(cov)[None, :] + cov**2) / chains).sqrt()
    assert ((sample_cov - cov).abs() < 5 * error).all()
    # the warm-up tunes the acceptance to its target 0.574
    assert abs(float(torch.stack(accepted).mean()) - 0.574) < 0.05
    assert warm.shape == (200,)


def nearest_neighbour_gaussian(a: float, k: float):
    """u(p) = ½ y(p) (Ay)(p), Ay = a y + k Σ_(nearest neighbours) y: a Gaussian of reach 1."""

    def density_and_grad(y):
        ay = a * y + k * sum(torch.roll(y, s, d) for s in (1, -1) for d in (-2, -1))
        return 0.5 * (y * ay).sum(1), ay

    return density_and_grad


@pytest.mark.parametrize("block", [2, 4])
def test_block_mala_reproduces_the_covariance_of_a_local_gaussian(block):
    # exact moments from the Fourier eigenvalues a + 2k(cos q_y + cos q_x) of A; the chains
    # are independent, so the s.e. of a moment is the spread of the chains' time averages
    n, a, k, chains = 8, 1.0, 0.2, 400
    q = 2 * np.pi * np.fft.fftfreq(n)
    eigen = a + 2 * k * (np.cos(q)[:, None] + np.cos(q)[None, :])
    variance, neighbour = (1 / eigen).mean(), (np.cos(q)[None, :] / eigen).mean()
    kernel = BlockMALA(nearest_neighbour_gaussian(a, k), step_size=0.5, block=block)
    generator = torch.Generator().manual_seed(5)
    state = kernel.init(torch.zeros(chains, 1, n, n, dtype=torch.float64))
    kernel, state, _ = kernel.adapt(state, generator, steps=100)
    square, product, accepted = 0.0, 0.0, []
    for _ in range(300):
        state, accept = kernel.step(state, generator)
        y = state.position[:, 0]
        square = square + y.square().mean((1, 2)) / 300
        product = product + (y * torch.roll(y, 1, -1)).mean((1, 2)) / 300
        accepted.append(accept.mean())
    for estimate, exact in ((square, variance), (product, neighbour)):
        error = estimate.std() / np.sqrt(chains)
        assert abs(estimate.mean() - exact) < 4 * error
    assert abs(float(torch.stack(accepted).mean()) - 0.574) < 0.05
    # the density and gradient are updated region by region: they equal a fresh evaluation
    density, grad = nearest_neighbour_gaussian(a, k)(state.position)
    torch.testing.assert_close(state.density, density, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state.grad, grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state.energy, density.sum((-2, -1)), rtol=1e-12, atol=1e-12)


def test_block_mala_rejects_blocks_of_infinite_energy_and_checks_its_arguments():
    gaussian = nearest_neighbour_gaussian(1.0, 0.2)

    def walled(y):
        density, grad = gaussian(y)
        return torch.where(y[:, 0] > 1.0, torch.inf, density), grad

    kernel = BlockMALA(walled, step_size=0.5, block=2)
    state = kernel.init(torch.zeros(50, 1, 8, 8, dtype=torch.float64))
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        state, accept = kernel.step(state, generator)
        assert (state.position <= 1.0).all()
    assert 0 < float(accept.mean()) < 1
    with pytest.raises(ValueError, match="block"):
        BlockMALA(walled, step_size=0.5, block=3)
    with pytest.raises(ValueError, match="step_size"):
        BlockMALA(walled, step_size=0.0, block=2)
    with pytest.raises(ValueError, match="multiple of 2 × block"):
        BlockMALA(walled, step_size=0.5, block=4).init(torch.zeros(2, 1, 12, 12))


def test_mala_rejects_infinite_energy_and_ula_keeps_the_rest():
    def walled(x):
        energy, grad = gaussian_target(torch.eye(1, dtype=torch.float64))(x)
        return torch.where(x[:, 0] > 1.0, torch.inf, energy), grad

    generator = torch.Generator().manual_seed(0)
    for adjusted in (True, False):
        kernel = MALA(walled, step_size=0.5, adjusted=adjusted)
        state = kernel.init(torch.zeros(2000, 1, dtype=torch.float64))
        for _ in range(50):
            state, accept = kernel.step(state, generator)
            assert (state.position <= 1.0).all()
        if not adjusted:  # every finite proposal is kept
            assert accept.any() and not accept.all()
    with pytest.raises(ValueError, match="step_size"):
        MALA(walled, step_size=-1.0)
    with pytest.raises(ValueError, match="target"):
        adapt_step_size(kernel, state, generator, 10, target=1.5)
