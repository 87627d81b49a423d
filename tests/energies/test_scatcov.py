"""The scattering-covariance family: score matching recovers a known θ from MALA samples."""

import numpy as np
import pytest
import torch

from rgfield.energies import ExponentialModel, QuadraticInteractions, ScatteringCovariance
from rgfield.mcmc import run_chains
from rgfield.rg.sampling import kernel_for
from rgfield.rg.scorematching import accumulate
from rgfield.scorematching import fit_closed_form


def smooth_coarse_fields(samples: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian coarse fields with a red spectrum, unit variance, positive mean."""
    k = torch.fft.fftfreq(n).abs()
    filt = torch.exp(-8 * (k[:, None] ** 2 + k[None, :] ** 2))
    white = torch.randn(samples, n, n, generator=generator, dtype=torch.float64)
    c = torch.fft.ifft2(torch.fft.fft2(white) * filt).real
    return c / c.std() + 0.5


def per_sample_sandwich(families, y, c, theta):
    """Standard errors of the closed-form score-matching θ from the per-sample estimating
    equations ψ_i = H_i θ − b_i: cov θ̂ = H̄⁻¹ Cov(ψ) H̄⁻¹ / N."""
    grads = torch.cat([f.gradients(y, c) for f in families], 1).flatten(2)
    laps = torch.cat([f.laplacians(y, c) for f in families], 1)
    h_i = torch.einsum("bfd,bgd->bfg", grads, grads)
    psi = h_i @ theta - laps
    inverse = torch.linalg.inv(h_i.mean(0))
    cov = inverse @ torch.cov(psi.T) @ inverse / len(y)
    return cov.diagonal().sqrt()


def test_score_matching_recovers_the_theta_of_mala_samples():
    """Samples of a known quadratic + scattering-covariance energy, drawn by long MALA chains
    (whose energy is the family's autograd-differentiated bind, not the closed-form feature
    gradients the fit uses), give back θ within its standard error."""
    gen = torch.Generator().manual_seed(3)
    samples, n = 1000, 8
    c = smooth_coarse_fields(samples, n, gen)
    y0 = torch.randn(samples, 3, n, n, generator=gen, dtype=torch.float64)
    families = [
        QuadraticInteractions(radius=0).fit(y0, c),
        ScatteringCovariance(scales=1, orientations=2, radius=0, widths=1, within=True).fit(y0, c),
    ]
    quadratic, scatcov = (np.array(f.labels) for f in families)
    theta_q = torch.zeros(len(quadratic), dtype=torch.float64)
    theta_q[[i for i, label in enumerate(quadratic) if label in ("h·h(0,0)", "v·v(0,0)")]] = 2.0
    theta_q[list(quadratic).index("d·d(0,0)")] = 3.0
    theta_q[list(quadratic).index("h·coarse(0,0)")] = -0.5
    truth = {"h·M0,0": 0.4, "v·M0,1": -0.3, "½d²·M0,0": 0.5, "½h²·c": -0.4, "v·|h|": 0.3}
    theta_s = torch.zeros(len(scatcov), dtype=torch.float64)
    for label, value in truth.items():
        theta_s[list(scatcov).index(label)] = value
    theta = torch.cat([theta_q, theta_s])
    model = ExponentialModel(families, theta)

    kernel = kernel_for(model, c, n, step_size=0.1)
    run = run_chains(kernel, y0 * 0.5, gen, warmup=150, steps=150)
    y = run.state.position

    fit = fit_closed_form(accumulate(families, y, c, batch=250))
    se = per_sample_sandwich(families, y, c, fit.theta)
    z = ((fit.theta - theta) / se).numpy()
    assert np.abs(z).max() < 4.5, dict(zip([*quadratic, *scatcov], np.round(z, 2), strict=True))
    assert np.mean(z**2) < 2.0  # about 1 for a consistent estimator with the right errors
    for label, value in truth.items():  # the estimator resolves every non-zero coupling
        i = len(quadratic) + list(scatcov).index(label)
        assert abs(value) > 8 * se[i], (label, float(se[i]))


def test_options_are_checked_and_parameters_counted():
    with pytest.raises(ValueError, match="scales"):
        ScatteringCovariance(scales=-1)
    with pytest.raises(ValueError, match="epsilon"):
        ScatteringCovariance(epsilon=0)
    with pytest.raises(ValueError, match="cross"):
        ScatteringCovariance(cross="phase")
    y = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    c = torch.randn(4, 16, 16, dtype=torch.float64)
    assert ScatteringCovariance().fit(y, c).n_features == 249  # the docstring's counts
    assert ScatteringCovariance(within=True).fit(y, c).n_features == 291
    assert ScatteringCovariance(field_square=True).fit(y, c).n_features == 249 + 27
    assert ScatteringCovariance().fit(y[:, :1], None).n_features == 0
    assert ScatteringCovariance(within=True).fit(y[:, :1], None).n_features == 5
    assert ScatteringCovariance(marginal=True).fit(y, c).n_features == 249 + 3
    assert ScatteringCovariance(marginal=True).fit(y[:, :1], None).n_features == 1


def test_a_state_written_before_the_optional_terms_loads_without_them():
    # model files written before field_square and marginal existed carry neither key
    y = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    c = torch.randn(2, 8, 8, dtype=torch.float64)
    family = ScatteringCovariance(scales=1, orientations=2).fit(y, c)
    state = {k: v for k, v in family.get_state().items() if k not in ("field_square", "marginal")}
    loaded = ScatteringCovariance.from_state(state)
    assert not loaded.field_square and not loaded.marginal
    assert loaded.labels == family.labels
    theta = torch.linspace(-0.1, 0.1, family.n_features, dtype=torch.float64)
    for got, expected in zip(loaded.bind(theta)(y, c), family.bind(theta)(y, c), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-13, atol=1e-13)
