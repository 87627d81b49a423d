"""The finest details of band-limited fields: their affine subspace, against a dense
construction, and the Hutchinson traces of score matching along it, against exact ones."""

import numpy as np
import pytest
import torch

from rgfield.energies import ExponentialModel, make_feature
from rgfield.rg.band import Band
from rgfield.rg.coordinates import Whitened, chain_coordinates
from rgfield.rg.subspace import DetailSubspace, LaplaciansAlong
from rgfield.stats import mode_power
from rgfield.wavelets import merge, split

SIZE = 8


def dealiased(n: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """White fields without the modes beyond 2/3 of the Nyquist wavenumber on either axis."""
    k = torch.fft.fftfreq(size, 1 / size).abs()
    cut = (k[:, None] > size / 3) | (k[None, :] > size / 3)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, size, size, generator=gen, dtype=torch.float64)
    return torch.fft.ifft2(torch.fft.fft2(x) * ~cut).real


def dense_constraint(band: Band, wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    """The linear map details → empty modes of merge(0, details) and coarse → empty modes of
    merge(coarse, 0), as dense real matrices (real and imaginary parts stacked)."""
    n = SIZE // 2
    eye_details = torch.eye(3 * n * n, dtype=torch.float64).reshape(-1, 3, n, n)
    eye_coarse = torch.eye(n * n, dtype=torch.float64).reshape(-1, n, n)
    of_details = torch.fft.fft2(merge(torch.zeros(3 * n * n, n, n).double(), eye_details, wavelet))
    of_coarse = torch.fft.fft2(merge(eye_coarse, torch.zeros(n * n, 3, n, n).double(), wavelet))

    def rows(spectra):
        empty = spectra[:, band.empty]
        return torch.cat([empty.real, empty.imag], 1).T.numpy()

    return rows(of_details), rows(of_coarse)


@pytest.mark.parametrize("wavelet", ["db1", "db4", "sym5"])
def test_the_subspace_agrees_with_a_dense_null_space(wavelet):
    x = dealiased(20)
    band = Band.of(x)
    subspace = DetailSubspace.of(band, wavelet)
    a, b = dense_constraint(band, wavelet)  # merge(c, y) is band-limited ⟺ a y + b c = 0
    u, s, vt = np.linalg.svd(a)
    rank = int((s > 1e-10 * s[0]).sum())
    null = vt[rank:].T
    dense = null @ null.T  # orthogonal projection onto {y : a y = 0}
    n = SIZE // 2
    basis = torch.eye(3 * n * n, dtype=torch.float64).reshape(-1, 3, n, n)
    projected = subspace.project(basis).reshape(3 * n * n, -1).numpy()
    np.testing.assert_allclose(projected, dense, atol=1e-12)
    assert subspace.dimension == 3 * n * n - rank
    # the fixed part: the minimum-norm solution of a y = −b c
    c, y = split(x, wavelet)
    fixed = -np.linalg.pinv(a, rcond=1e-10) @ b @ c.reshape(len(c), -1).numpy().T
    np.testing.assert_allclose(subspace.fixed(c).reshape(len(c), -1).numpy(), fixed.T, atol=1e-12)
    # the data's details lie on the subspace, and every point of it makes a band-limited field
    torch.testing.assert_close(subspace.onto(y, c), y)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    power = mode_power(merge(c, subspace.onto(w, c), wavelet))
    assert float(power[band.empty].max()) < 1e-25 * float(power.mean())


def hessian_product(family, y, c, v):
    """∇²_y Φ_k v for every feature k of ``family``, exactly (forward-mode differentiation)."""
    return torch.func.jvp(lambda z: family.gradients(z, c), (y,), (v,))[1]


@pytest.mark.parametrize("name", ["quadratic", "gaussian", "potential", "scatcov", "stiffness"])
def test_the_projected_laplacians_are_the_traces_along_the_subspace(name):
    x = dealiased(3)
    band = Band.of(x)
    subspace = DetailSubspace.of(band, "db4")
    c, y = split(x, "db4")
    family = make_feature(name, {"radius": 1} if name == "quadratic" else {}).fit(y, c, "db4")
    n = SIZE // 2
    basis = subspace.project(torch.eye(3 * n * n, dtype=torch.float64).reshape(-1, 3, n, n))
    exact = []
    for i in range(len(y)):  # tr(P H P) = Σ_k e_kᵀ P H P e_k, by exact Hessian products
        yi = y[i : i + 1].expand(len(basis), -1, -1, -1).clone()
        ci = c[i : i + 1].expand(len(basis), -1, -1).clone()
        hp = hessian_product(family, yi, ci, basis)
        exact.append((hp * basis.unsqueeze(1)).flatten(2).sum((0, 2)))
    exact = torch.stack(exact)
    # with P = 1 (no empty mode) they would be the family's own Laplacians: the traces differ,
    # but for the Gaussian family's, whose S⁺ fitted to band-limited data vanishes off P
    own = family.laplacians(y, c)
    if name == "gaussian":
        torch.testing.assert_close(exact, own, rtol=1e-9, atol=1e-9)
    else:
        assert float((exact - own).abs().max()) > 1e-3 * float(own.abs().max())
    gen = torch.Generator().manual_seed(0)
    if family.stationary_hessian:  # exact, mode by mode
        torch.testing.assert_close(
            LaplaciansAlong([family], subspace, gen, 1)(y, c), exact, rtol=1e-9, atol=1e-9
        )
        return
    probes = 400  # Hutchinson: unbiased, within its standard error
    along = LaplaciansAlong([family], subspace, gen, 1)
    estimates = torch.stack([along(y, c) for _ in range(probes)])
    mean, se = estimates.mean(0), estimates.std(0) / probes**0.5
    z = (mean - exact)[se > 0] / se[se > 0]
    assert float(z.abs().max()) < 5.0, float(z.abs().max())  # ≤ 750 values: p(5σ) ≈ 4e-4
    torch.testing.assert_close(mean[se == 0], exact[se == 0], rtol=0, atol=1e-9)


def test_whitened_chains_on_the_subspace_stay_on_it_and_pull_back_the_gradient():
    x = dealiased(12)
    subspace = DetailSubspace.of(Band.of(x), "db4")
    c, y = split(x, "db4")
    families = [make_feature(name).fit(y, c, "db4") for name in ("gaussian", "potential")]
    theta = torch.full((1 + families[1].n_features,), 0.01, dtype=torch.float64)
    theta[0] = 1.0
    model = ExponentialModel(families, theta)
    coordinates = chain_coordinates(model, subspace)
    assert isinstance(coordinates, Whitened) and coordinates.subspace is subspace
    torch.testing.assert_close(coordinates.onto(coordinates.into(y, c), c), y)
    gen = torch.Generator().manual_seed(2)
    w, v = (torch.randn(y.shape, generator=gen, dtype=torch.float64) for _ in range(2))
    on = coordinates.onto(w, c)
    torch.testing.assert_close(subspace.onto(on, c), on)  # every chain position is on A(c)
    energy = coordinates.given(model.given(c), c)
    u, grad = energy(w)
    torch.testing.assert_close(u, model.energy(on, c))
    eps = 1e-5
    slope = (energy(w + eps * v)[0] - energy(w - eps * v)[0]) / (2 * eps)
    torch.testing.assert_close(slope, (grad * v).flatten(1).sum(1), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ),
    ],
)
def test_whitened_coordinates_moved_to_a_device_keep_their_maps_there(device):
    """Coordinates.to(device) holds the law's and the subspace's arrays on the device (the
    chains then copy nothing from the host per step) and maps as on the CPU."""
    x = dealiased(12)
    subspace = DetailSubspace.of(Band.of(x), "db4")
    c, y = split(x, "db4")
    family = make_feature("gaussian").fit(y, c, "db4")
    coordinates = Whitened(family.law, subspace)
    moved = coordinates.to(device)
    arrays = [moved.law.gain, moved.law.root, moved.law.offset, moved.subspace.projector]
    assert all(a.device.type == device for a in arrays + [moved.subspace.offset])
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    on = moved.onto(w.to(device), c.to(device))
    assert on.device.type == device
    torch.testing.assert_close(on.cpu(), coordinates.onto(w, c))
    torch.testing.assert_close(moved.into(on, c.to(device)).cpu(), coordinates.into(on.cpu(), c))


@pytest.mark.parametrize("steps", [30, 500])
def test_lanczos_along_the_subspace_finds_the_extremes_of_the_restricted_hessian(steps):
    """The Hessian's extremes restricted to D (P H P on the range of P) by Lanczos against a
    dense eigendecomposition, with fewer steps than dim D and with more (the steps then stop
    when the basis spans D); the eigenvector lies in D."""
    x = dealiased(12, size=16)  # D = 57 of 192 variables
    subspace = DetailSubspace.of(Band.of(x), "db4")
    c, y = split(x, "db4")
    family = make_feature("quadratic").fit(y, c, "db4")
    theta = 0.2 * torch.randn(
        family.n_features, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    # stiff self-couplings: H is large off D as well, where the basis's rounding would grow
    self_terms = [
        s.endswith("(0,0)") and s.split("·")[0] == s.split("·")[1][:-5] for s in family.labels
    ]
    theta[torch.tensor(self_terms)] += 5.0
    model = ExponentialModel([family], theta)
    y1, c1 = y[:1], c[:1]
    d = y1[0].numel()
    eye = torch.eye(d, dtype=torch.float64).view(d, *y1.shape[1:])
    hessian = (model.gradient(y1 + eye, c1.expand(d, *c1.shape[1:])) - model.gradient(y1, c1)).view(
        d, d
    )
    projector = subspace.project(eye).view(d, d)
    values, vectors = torch.linalg.eigh(projector)
    range_ = vectors[:, values > 0.5]  # orthonormal basis of D
    assert range_.shape[1] == subspace.dimension < d
    exact = torch.linalg.eigvalsh(range_.T @ (0.5 * (hessian + hessian.T)) @ range_)
    lowest, vector = model.lowest_curvature(y1, c1, steps, along=subspace.project)
    low, high = model.hessian_extremes(y1, c1, steps, along=subspace.project)
    tolerance = 1e-6 if steps > subspace.dimension else 0.05 * float(exact[-1] - exact[0])
    assert abs(float(lowest) - float(exact[0])) < tolerance
    assert abs(float(high) - float(exact[-1])) < tolerance
    assert float(low) == float(lowest)
    torch.testing.assert_close(subspace.project(vector), vector, rtol=0, atol=1e-8)


def test_losses_along_the_subspace_are_per_free_variable():
    # details white along the subspace: y = fixed(c) + P z with z white, so U = ½|y|² restricted
    # to A(c) is their exact density (P fixed(c) = 0) and its Hyvärinen loss per free variable
    # is E[½|Pz|² − tr P] / D = −½, whatever D is among the 3n² details
    from rgfield.rg.scorematching import accumulate, sample_losses

    x = dealiased(200)
    subspace = DetailSubspace.of(Band.of(x), "db4")
    c, _ = split(x, "db4")
    z = torch.randn(c.shape[0], 3, *c.shape[-2:], generator=torch.Generator().manual_seed(3))
    y = subspace.fixed(c) + subspace.project(z.double())
    family = make_feature("quadratic", {"radius": 0}).fit(y, c, "db4")
    a, b, sy, sx = family.pairs.T
    theta = torch.as_tensor(((a == b) & (a < 3) & (sy == 0) & (sx == 0)).astype(float))
    stats = accumulate([family], y, c, batch=50, subspace=subspace)
    d = subspace.dimension
    assert d < 3 * c[0].numel()
    se = 1 / np.sqrt(2 * d * len(y))  # ½χ²_D / D per field: sd 1/√(2D)
    assert abs(stats.loss(theta) + 0.5) < 4 * se, stats.loss(theta)
    losses = sample_losses(ExponentialModel([family], theta), y, c, 50, subspace)
    assert float(losses.mean()) == pytest.approx(stats.loss(theta), rel=1e-9)
