"""τ_int and the ESS against exact values (rgfield.mcmc.diagnostics); the jackknife error."""

import math

import numpy as np
import pytest

from rgfield import stats
from rgfield.mcmc import effective_sample_size, integrated_autocorrelation_time


def ar1(a: float, chains: int, length: int, seed: int) -> np.ndarray:
    """x_t = a x_{t−1} + ξ_t, started in its stationary law."""
    rng = np.random.default_rng(seed)
    x = np.empty((chains, length))
    x[:, 0] = rng.standard_normal(chains) / math.sqrt(1 - a * a)
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
    # kept here with the other error estimates of series until tests/test_stats.py takes it
    x = np.random.default_rng(0).standard_normal(50)
    est, err = stats.jackknife(x, lambda v: v.mean(0), blocks=50)
    assert est == pytest.approx(x.mean())
    assert err == pytest.approx(x.std(ddof=1) / math.sqrt(50), rel=1e-12)
    with pytest.raises(ValueError, match="blocks"):
        stats.jackknife(x, np.mean, blocks=1)
