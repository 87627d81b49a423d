"""The neighbour-envelope family: its derivatives against autograd and a dense Hessian, its
direct energy, its file round trip, and the fits that keep its θ non-negative."""

import numpy as np
import pytest
import torch

from rgfield.energies import ExponentialModel, make_feature
from rgfield.rg.convexity import fit_with_curvature_floor, sign_rows
from rgfield.scorematching import ScoreMatchingStatistics


@pytest.fixture
def details():
    """Heavy-tailed details (3 channels, 6 × 7 cells) and a fitted family."""
    gen = torch.Generator().manual_seed(0)
    shape = (5, 3, 6, 7)
    y = torch.randn(shape, generator=gen, dtype=torch.float64)
    y = y * torch.rand(shape, generator=gen, dtype=torch.float64) * 2
    family = make_feature("envelope", {"radius": 1}).fit(y, None)
    return y, family


def test_gradients_and_laplacians_against_autograd(details):
    y, family = details
    at = y[:2].clone().requires_grad_(True)
    values = family.values(at, None)
    gradients = family.gradients(y[:2], None)
    for k in range(values.shape[1]):
        (expected,) = torch.autograd.grad(values[:, k].sum(), at, retain_graph=True)
        torch.testing.assert_close(gradients[:, k], expected)
    laplacians = family.laplacians(y[:2], None)
    for b in range(2):
        for k in range(family.n_features):

            def feature(z, k=k):
                return family.values(z.view(1, *y.shape[1:]), None)[0, k]

            hessian = torch.autograd.functional.hessian(feature, y[b].flatten())
            np.testing.assert_allclose(float(hessian.trace()), float(laplacians[b, k]), rtol=1e-10)


def test_the_direct_energy_is_theta_times_the_features(details):
    y, family = details
    theta = torch.tensor([0.5, 1.0, 2.0, 0.0, 0.3, 0.1, 1.5, 0.2, 0.0], dtype=torch.float64)
    energy, gradient = family.bind(theta)(y, None)
    torch.testing.assert_close(energy, family.values(y, None) @ theta)
    expected = torch.einsum("bf...,f->b...", family.gradients(y, None), theta)
    torch.testing.assert_close(gradient, expected)
    # non-negative for θ ≥ 0, and its precision bounded by Σθ: ½ Σ y² Σθ_ak bounds it
    assert bool((energy >= 0).all())
    bound = 0.5 * (y.square().sum((2, 3)) * theta.view(3, 3).sum(1)).sum(1)
    assert bool((energy <= bound + 1e-12).all())


def test_file_round_trip_and_errors(details):
    y, family = details
    again = type(family).from_state(family.get_state())
    torch.testing.assert_close(again.values(y, None), family.values(y, None))
    assert again.labels == family.labels and len(family.labels) == 9
    assert family.nonnegative
    with pytest.raises(ValueError, match="y: expected shape"):
        family.values(y[:, :2], None)
    with pytest.raises(ValueError, match="radius"):
        make_feature("envelope", {"radius": 0})
    with pytest.raises(ValueError, match="quantiles"):
        make_feature("envelope", {"quantiles": (0.5, 1.2)})


def test_fits_keep_the_nonnegative_family_nonnegative(details):
    """A loss whose unconstrained minimum has negative envelope weights: the fit returns the
    constrained minimum (against a bound-constrained solve of the same loss), with or
    without a curvature floor on the other families."""
    y, family = details
    quadratic = make_feature("quadratic", {"radius": 0}).fit(y, None, "db4")
    families = [quadratic, family]
    n = quadratic.n_features + family.n_features
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(50, n, generator=gen, dtype=torch.float64)
    target = torch.cat([torch.ones(quadratic.n_features), -torch.ones(family.n_features)])
    h = g.T @ g
    stats = ScoreMatchingStatistics(h, h @ target.to(h), count=1, dimension=1)
    free = torch.linalg.solve(h, stats.b)
    signs = sign_rows(families)
    assert signs.shape == (family.n_features, n) and bool((signs @ free < 0).any())
    theta, report = fit_with_curvature_floor(families, stats, 0.0, free, y, None, None)
    assert bool((signs @ theta >= -1e-10).all()) and np.isnan(report["cuts"])
    from scipy.optimize import minimize

    bounds = [(None, None)] * quadratic.n_features + [(0.0, None)] * family.n_features
    primal = minimize(
        lambda t: (0.5 * t @ h.numpy() @ t - stats.b.numpy() @ t, h.numpy() @ t - stats.b.numpy()),
        np.zeros(n),
        jac=True,
        bounds=bounds,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )
    np.testing.assert_allclose(theta.numpy(), primal.x, atol=1e-5)
    # with a floor the other family's energy is made convex, the envelope stays ≥ 0
    theta, report = fit_with_curvature_floor(families, stats, 0.0, free, y, None, 0.5)
    assert bool((signs @ theta >= -1e-10).all())
    convex = ExponentialModel([quadratic], theta[: quadratic.n_features])
    assert float(convex.lowest_curvature(y, None)[0].min()) >= 0.45
