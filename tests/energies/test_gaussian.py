"""The stationary Gaussian family: its derivatives, against finite differences and a dense
Hessian, and the whitened coordinates its chains move in."""

import numpy as np
import pytest
import torch

from rgfield.energies import ExponentialModel, make_feature
from rgfield.rg.coordinates import Whitened, chain_coordinates
from rgfield.wavelets import split


@pytest.fixture
def details(free_field):
    """Normalised details and coarse fields of 40 free fields of 8² (one RG step)."""
    c, y = split(free_field(40, size=8), "db4")
    return y / y.std(), c / y.std()


def test_gradient_and_laplacian_are_those_of_the_energy(details):
    y, c = details
    family = make_feature("gaussian").fit(y, c, "db4")
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(y[:3].shape, generator=gen, dtype=torch.float64)
    eps = 1e-5
    slope = (family.values(y[:3] + eps * v, c[:3]) - family.values(y[:3] - eps * v, c[:3])) / (
        2 * eps
    )
    directional = (family.gradients(y[:3], c[:3]) * v.unsqueeze(1)).flatten(2).sum(2)
    torch.testing.assert_close(slope, directional, rtol=1e-6, atol=1e-8)
    # the Laplacian: the trace of a dense Hessian built column by column
    basis = torch.eye(y[0].numel(), dtype=torch.float64).reshape(-1, *y.shape[1:])
    at = y[:1].expand_as(basis).clone()
    columns = torch.func.jvp(
        lambda z: family.gradients(z, c[:1].expand(len(basis), -1, -1)), (at,), (basis,)
    )[1]
    hessian = columns.reshape(len(basis), -1)
    torch.testing.assert_close(hessian, hessian.T)  # symmetric
    np.testing.assert_allclose(
        float(hessian.trace()), float(family.laplacians(y[:1], c[:1])), rtol=1e-10
    )
    # positive semi-definite, with the curvature the family reports as its smallest eigenvalue
    values = torch.linalg.eigvalsh(hessian)
    assert float(values.min()) > -1e-10
    np.testing.assert_allclose(family.curvature(torch.ones(1)), float(values.min()), rtol=1e-6)


def test_the_energy_is_the_fitted_gaussian_and_survives_a_file_round_trip(details):
    y, c = details
    family = make_feature("gaussian").fit(y, c, "db4")
    # θ = 1 is the Gaussian the family was fitted to: its residuals whitened are white, so
    # E[2Φ] over the training details is the number of variables
    twice = 2 * family.values(y, c).mean()
    np.testing.assert_allclose(float(twice), y[0].numel(), rtol=1e-8)
    state = family.get_state()
    again = type(family).from_state(state)
    torch.testing.assert_close(again.values(y, c), family.values(y, c))
    with pytest.raises(ValueError, match="y: expected shape"):
        family.values(y[:, :2], c)


def test_whitened_coordinates_map_back_and_forth_and_pull_back_the_gradient(details):
    y, c = details
    families = [make_feature(name).fit(y, c, "db4") for name in ("gaussian", "potential")]
    theta = torch.full((1 + families[1].n_features,), 0.01, dtype=torch.float64)
    theta[0] = 1.0
    model = ExponentialModel(families, theta)
    coordinates = chain_coordinates(model, None)
    assert isinstance(coordinates, Whitened)
    torch.testing.assert_close(coordinates.onto(coordinates.into(y[:4], c[:4]), c[:4]), y[:4])
    energy = coordinates.given(model.given(c[:4]), c[:4])
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(y[:4].shape, generator=gen, dtype=torch.float64)
    v = torch.randn(y[:4].shape, generator=gen, dtype=torch.float64)
    u, grad = energy(w)
    torch.testing.assert_close(u, model.energy(coordinates.onto(w, c[:4]), c[:4]))
    eps = 1e-5
    slope = (energy(w + eps * v)[0] - energy(w - eps * v)[0]) / (2 * eps)
    torch.testing.assert_close(slope, (grad * v).flatten(1).sum(1), rtol=1e-6, atol=1e-8)
    # a model whose Gaussian feature has θ ≤ 0 moves in the details themselves
    flipped = ExponentialModel(model.features, -model.theta)
    assert chain_coordinates(flipped, None) is None
