import math

import pytest
import torch

import rgfield.energies.quadratic as quadratic_module
from rgfield.energies import (
    FEATURES,
    ExponentialModel,
    FeatureFamily,
    FieldStiffness,
    QuadraticInteractions,
    ScalarPotential,
    ScatteringCovariance,
    SiteStiffness,
    make_feature,
    register_feature,
)
from rgfield.mcmc import HMC, run_chains
from rgfield.scorematching import ScoreMatchingStatistics, fit_closed_form
from rgfield.wavelets import merge


def small_inputs(conditioned: bool, n: int = 4, batch: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(batch, 3 if conditioned else 1, n, n, generator=gen, dtype=torch.float64)
    c = torch.randn(batch, n, n, generator=gen, dtype=torch.float64) if conditioned else None
    return y, c


def autograd_derivatives(family, y, c):
    """∇_y Φ_k and Δ_y Φ_k by autograd, one feature and one coordinate at a time."""
    if not family.n_features:
        return y.new_zeros(len(y), 0, *y.shape[1:]), y.new_zeros(len(y), 0)
    yy = y.clone().requires_grad_(True)
    values = family.values(yy, c)
    grads, laps = [], []
    for k in range(family.n_features):
        (g,) = torch.autograd.grad(values[:, k].sum(), yy, create_graph=True)
        flat = g.reshape(y.shape[0], -1)
        lap = torch.zeros(y.shape[0], dtype=y.dtype)
        for i in range(flat.shape[1]):
            (h,) = torch.autograd.grad(flat[:, i].sum(), yy, retain_graph=True)
            lap += h.reshape(y.shape[0], -1)[:, i]
        grads.append(g.detach())
        laps.append(lap.detach())
    return torch.stack(grads, 1), torch.stack(laps, 1)


FAMILIES = [
    lambda: ScalarPotential(windows=4),
    lambda: QuadraticInteractions(radius=1),
    lambda: ScatteringCovariance(scales=1, orientations=2, widths=2, within=True),
    lambda: ScatteringCovariance(
        scales=1, orientations=2, widths=2, within=True, field_square=True, marginal=True
    ),
    lambda: ScatteringCovariance(
        scales=1, orientations=2, widths=2, cross="modulus", marginal=True
    ),
    lambda: FieldStiffness(windows=4, smallest=1),  # on every grid: wrap-around bonds too
    lambda: FieldStiffness(windows=3, width=0.3, margin=0.0, smallest=1),  # narrow windows
    lambda: SiteStiffness(windows=4, smallest=1),
    lambda: SiteStiffness(windows=3, width=0.3, margin=0.0, smallest=1),
]


@pytest.mark.parametrize(("n", "wavelet"), [(4, "db2"), (2, "db4"), (1, "db4")])
@pytest.mark.parametrize("conditioned", [True, False])
@pytest.mark.parametrize("make", FAMILIES)
def test_gradients_and_laplacians_match_autograd(make, conditioned, n, wavelet):
    # n = 1, 2 with db4: the filter wraps around the periodic grid several times
    y, c = small_inputs(conditioned, n=n)
    family = make().fit(y, c, wavelet)
    grads, laps = autograd_derivatives(family, y, c)
    torch.testing.assert_close(family.gradients(y, c), grads, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(family.laplacians(y, c), laps, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("conditioned", [True, False])
@pytest.mark.parametrize("make", FAMILIES)
def test_bound_energy_equals_theta_dot_features(make, conditioned):
    y, c = small_inputs(conditioned, n=8)
    family = make().fit(y, c)
    theta = torch.randn(family.n_features, dtype=torch.float64)
    energy, grad = family.bind(theta)(y, c)
    torch.testing.assert_close(energy, family.values(y, c) @ theta)
    expected = torch.einsum("bf...,f->b...", family.gradients(y, c), theta)
    torch.testing.assert_close(grad, expected)
    # float32 fields with the float64 θ that score matching returns
    c32 = None if c is None else c.float()
    energy32, grad32 = family.bind(theta)(y.float(), c32)
    assert energy32.dtype == grad32.dtype == torch.float32
    torch.testing.assert_close(grad32, expected.float(), rtol=1e-4, atol=1e-4)


def periodic_distance(n: int, p: int) -> torch.Tensor:
    """Chebyshev distance of every cell of an n × n periodic grid to cell (p, p)."""
    d = (torch.arange(n) - p).abs()
    d = torch.minimum(d, n - d)
    return torch.maximum(d[:, None], d[None, :])


@pytest.mark.parametrize(
    ("make", "conditioned", "wavelet", "reach"),
    [
        (lambda: ScalarPotential(windows=6), True, "db4", 3),
        (lambda: ScalarPotential(windows=6), True, "db2", 1),
        (lambda: ScalarPotential(windows=6), False, "db4", 3),
        (lambda: QuadraticInteractions(radius=2), True, "db4", 2),
        (lambda: QuadraticInteractions(radius=4), False, "db4", 4),
        (lambda: FieldStiffness(windows=4), True, "db4", 4),
        (lambda: FieldStiffness(windows=4), True, "db2", 2),
        (lambda: FieldStiffness(windows=4), False, "db4", 4),
        (lambda: SiteStiffness(windows=4), True, "db4", 4),
        (lambda: SiteStiffness(windows=4), False, "db4", 4),
    ],
)
def test_energy_density_sums_to_the_energy_and_stays_within_its_reach(
    make, conditioned, wavelet, reach
):
    # the block sampler's exactness rests on this: moving y at one cell changes the density
    # and the gradient only within `reach` cells (and the reach is the expected one)
    n, p = 16, 7
    y, c = small_inputs(conditioned, n=n, batch=2)
    family = make().fit(y, c, wavelet)
    theta = torch.randn(family.n_features, generator=torch.Generator().manual_seed(1)).double()
    assert family.reach == reach
    density, grad = family.bind_density(theta)(y, c)
    energy, grad_summed = family.bind(theta)(y, c)
    torch.testing.assert_close(density.sum((-2, -1)), energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, grad_summed, rtol=0, atol=0)
    moved = y.clone()
    moved[:, :, p, p] += 0.3
    density2, grad2 = family.bind_density(theta)(moved, c)
    changed = ((density2 - density).abs() > 1e-12).any(0)
    changed_grad = ((grad2 - grad).abs() > 1e-12).any(0).any(0)
    distance = periodic_distance(n, p)
    assert changed.any() and changed_grad.any()
    assert (distance[changed | changed_grad] <= reach).all()
    if not conditioned and isinstance(family, ScalarPotential | FieldStiffness):
        return  # the coarsest families reach 0 or 1 cell: their wavelet's bound is not reached
    assert distance[changed | changed_grad].max() == reach


def test_model_density_needs_every_family_local():
    y, c = small_inputs(True, n=8)

    class Global(QuadraticInteractions):
        name = "test-global"

        def bind_density(self, theta):
            return None

    families = [ScalarPotential(windows=4).fit(y, c), Global(radius=1).fit(y, c)]
    model = ExponentialModel(families, torch.zeros(sum(f.n_features for f in families)).double())
    assert model.reach is None
    model.energy_and_grad(y, c)  # the generic path still works
    with pytest.raises(ValueError, match="test-global"):
        model.density_and_grad(y, c)
    local = ExponentialModel(families[:1], torch.zeros(families[0].n_features).double())
    assert local.reach == 3


def test_quadratic_features_enumerate_channel_pairs_and_shifts():
    y, c = small_inputs(True, n=8)
    family = QuadraticInteractions(radius=1).fit(y, c)
    # 3 same-channel pairs × 5 shifts (9 up to ±s), 3 detail pairs and 3 detail-coarse × 9
    assert family.n_features == 3 * 5 + 6 * 9
    assert "coarse·coarse(0,0)" not in family.labels and "h·h(0,0)" in family.labels
    # on a 2×2 grid shifts −1 and 1 coincide: 4 distinct shifts, each its own negative
    y2, c2 = small_inputs(True, n=2)
    assert QuadraticInteractions(radius=1).fit(y2, c2).n_features == 9 * 4
    with pytest.raises(ValueError, match="radius"):
        QuadraticInteractions(radius=-1)


def test_potential_is_infinite_outside_the_support():
    y, c = small_inputs(False, n=4)
    family = ScalarPotential(windows=3, margin=0.0).fit(y, c)
    fn = family.bind(torch.ones(family.n_features, dtype=torch.float64))
    assert torch.isfinite(fn(y, c)[0]).all()
    outside = y.clone()
    outside[0, 0, 0, 0] = y.max() + 1.0
    assert torch.isinf(fn(outside, c)[0][0]) and torch.isfinite(fn(outside, c)[0][1:]).all()
    with pytest.raises(ValueError, match="windows"):
        ScalarPotential(windows=0)
    with pytest.raises(ValueError, match="constant"):
        ScalarPotential().fit(torch.ones(2, 1, 2, 2), None)


def test_state_round_trip_preserves_every_output():
    y, c = small_inputs(True, n=8)
    for make in FAMILIES:
        family = make().fit(y, c)
        again = type(family).from_state(family.get_state())
        theta = torch.randn(family.n_features, dtype=torch.float64)
        assert again.labels == family.labels
        for a, b in zip(family.bind(theta)(y, c), again.bind(theta)(y, c), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("diagonal", [1.0, 0.0])  # positive definite, then indefinite
def test_hessian_extremes_of_a_quadratic_model_match_eigvalsh(diagonal):
    y, c = small_inputs(True, n=4, batch=1)
    family = QuadraticInteractions(radius=1).fit(y, c)
    theta = 0.3 * torch.randn(
        family.n_features, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    theta[[i for i, s in enumerate(family.labels) if s.endswith("(0,0)") and s[0] == s[2]]] = (
        diagonal
    )
    model = ExponentialModel([family], theta)

    def energy(flat):
        return model.energy(flat.reshape(y.shape), c).sum()

    hessian = torch.autograd.functional.hessian(energy, y.reshape(-1))
    eig = torch.linalg.eigvalsh(hessian)
    if diagonal == 0.0:
        assert eig[0] < 0 < eig[-1]
    lo, hi = model.hessian_extremes(y, c, steps=2000)
    spread = float(eig[-1] - eig[0])
    assert float(hi) == pytest.approx(float(eig[-1]), abs=1e-3 * spread)
    assert float(lo) == pytest.approx(float(eig[0]), abs=1e-3 * spread)


def test_sixty_lanczos_steps_find_the_extremes_of_a_768_variable_hessian():
    """The curvature floor's budget (60 Hessian products per sample) on 3 × 16² details of a
    quadratic model with a near-zero lowest eigenvalue, against a dense eigvalsh; the Ritz
    vector is an eigenvector (its residual ‖Hv − λv‖ is small)."""
    y, c = small_inputs(True, n=16, batch=2)
    family = QuadraticInteractions(radius=1).fit(y, c)
    gen = torch.Generator().manual_seed(3)
    theta = 0.2 * torch.randn(family.n_features, generator=gen, dtype=torch.float64)
    model = ExponentialModel([family], theta)
    d = y[0].numel()
    basis = torch.eye(d, dtype=torch.float64).view(d, *y.shape[1:])
    columns = model.gradient(basis, c[:1].expand(d, -1, -1)) - model.gradient(
        torch.zeros_like(basis), c[:1].expand(d, -1, -1)
    )
    hessian = columns.view(d, d)
    eig = torch.linalg.eigvalsh(0.5 * (hessian + hessian.T))
    shift = float(eig[0]) - 1e-3  # λ_min of the shifted model: 1e-3, the rest up to ~10
    theta[[i for i, s in enumerate(family.labels) if s.endswith("(0,0)") and s[0] == s[2]]] -= shift
    model = ExponentialModel([family], theta)
    lowest, vector = model.lowest_curvature(y[:1], c[:1], steps=60)
    lo, hi = model.hessian_extremes(y[:1], c[:1], steps=60)
    spread = float(eig[-1] - eig[0])
    assert float(lowest) == pytest.approx(1e-3, abs=1e-3 * spread)
    assert float(hi) == pytest.approx(float(eig[-1]) - shift, abs=1e-3 * spread)
    assert float(lo) == float(lowest)
    hv = model.gradient(y[:1] + vector, c[:1]) - model.gradient(y[:1], c[:1])
    residual = (hv - lowest * vector).norm() / vector.norm()
    assert float(residual) < 0.05 * spread


@pytest.mark.parametrize(("n", "radius"), [(4, 1), (6, 2), (1, 0)])
@pytest.mark.parametrize("conditioned", [True, False])
def test_quadratic_curvature_is_the_smallest_eigenvalue_of_the_dense_hessian(
    n, radius, conditioned
):
    y, c = small_inputs(conditioned, n=n, batch=1)
    family = QuadraticInteractions(radius=radius).fit(y, c)
    gen = torch.Generator().manual_seed(n)
    theta = torch.randn(family.n_features, generator=gen, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(
        lambda flat: ExponentialModel([family], theta).energy(flat.reshape(y.shape), c).sum(),
        y.reshape(-1),
    )
    smallest = float(torch.linalg.eigvalsh(hessian)[0])
    assert family.curvature(theta) == pytest.approx(smallest, abs=1e-10 * (1 + abs(smallest)))
    # θ on the features ½ Σ_u y_a(u)² adds to the Hessian a multiple of the identity: the
    # curvature moves to ±0.5, and with it the verdict (a Gaussian, or no density)
    pairs = [label.split("(")[0].split("·") for label in family.labels]
    same = [i for i, (a, b) in enumerate(pairs) if a == b and family.labels[i].endswith("(0,0)")]
    for target, verdict in ((0.5, True), (-0.5, False)):
        shifted = theta.clone()
        shifted[same] += target - smallest
        model = ExponentialModel([family], shifted)
        assert model.curvature() == pytest.approx(target, abs=1e-9)
        assert model.normalisable() is verdict


def test_normalisability_with_a_bounding_family_or_an_undecided_mixture():
    y, c = small_inputs(True, n=4, batch=2)
    quadratic = QuadraticInteractions(radius=1).fit(y, c)
    potential = ScalarPotential(windows=4).fit(y, c)
    unstable = -torch.ones(quadratic.n_features, dtype=torch.float64)
    assert ExponentialModel([quadratic], unstable).normalisable() is False
    # the potential's support bounds y: normalisable whatever the quadratic part
    theta = torch.cat([torch.zeros(potential.n_features, dtype=torch.float64), unstable])
    both = ExponentialModel([potential, quadratic], theta)
    assert potential.bounded and both.normalisable() is True and both.curvature() is None

    class Curved(QuadraticInteractions):  # a second quadratic family: only a bound is known
        name = "curved-test"

    twice = ExponentialModel([quadratic, Curved(radius=1).fit(y, c)], torch.cat([unstable] * 2))
    assert twice.normalisable() is None


def test_unknown_feature_and_extension_point():
    with pytest.raises(ValueError, match="unknown feature family .no-such-family."):
        make_feature("no-such-family")
    with pytest.raises(TypeError):
        register_feature(int)

    @register_feature
    class Mean(FeatureFamily):
        """Φ = Σ y: a linear feature, to exercise the generic bind."""

        name = "test-mean"

        def fit(self, y, c, wavelet="db4"):
            return self

        labels = property(lambda self: ["mean"])

        def values(self, y, c):
            return y.sum((1, 2, 3))[:, None]

        def gradients(self, y, c):
            return torch.ones_like(y)[:, None]

        def laplacians(self, y, c):
            return y.new_zeros(y.shape[0], 1)

        def get_state(self):
            return {}

        @classmethod
        def from_state(cls, state):
            return cls()

    try:
        y, c = small_inputs(True)
        model = ExponentialModel([make_feature("test-mean").fit(y, c)], torch.tensor([2.0]))
        energy, grad = model.energy_and_grad(y.float(), c)
        torch.testing.assert_close(energy, 2 * y.float().sum((1, 2, 3)))
        torch.testing.assert_close(grad, torch.full_like(y.float(), 2.0))
        with pytest.raises(ValueError, match="theta"):
            ExponentialModel([Mean()], torch.zeros(2))
    finally:
        del FEATURES["test-mean"]


def test_batches_larger_than_a_cpu_chunk_give_each_fields_own_energy_and_gradient(monkeypatch):
    import rgfield.energies.base as base

    y, c = small_inputs(True, n=8, batch=7)
    families = [ScalarPotential(windows=6).fit(y, c), QuadraticInteractions(radius=1).fit(y, c)]
    theta = (
        0.1
        * torch.randn(
            sum(f.n_features for f in families), generator=torch.Generator().manual_seed(2)
        ).double()
    )
    model = ExponentialModel(families, theta)
    monkeypatch.setattr(base, "_CPU_CHUNK", 3 * y[0].numel())  # chunks of 3, 3 and 1 fields
    evaluate, chunks = model._bound[0], []

    def counted(y, c):
        chunks.append(len(y))
        return evaluate(y, c)

    model._bound[0] = counted
    energy, grad = model.energy_and_grad(y, c)
    assert chunks == [3, 3, 1]
    model._bound[0] = evaluate
    for i in range(len(y)):
        alone = model.energy_and_grad(y[i : i + 1], c[i : i + 1])
        torch.testing.assert_close(energy[i : i + 1], alone[0], rtol=1e-13, atol=0)
        torch.testing.assert_close(grad[i : i + 1], alone[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("conditioned", [True, False])
def test_energy_given_a_coarse_field_equals_the_energy_at_every_call(monkeypatch, conditioned):
    # the chain's energy y ↦ U(y | c) binds c once per chunk (scatcov keeps its fixed maps'
    # share); new y at every call (a chain's steps) must give what U(y, c) gives afresh
    import rgfield.energies.base as base

    y, c = small_inputs(conditioned, n=8, batch=7)
    families = [
        ScalarPotential(windows=6).fit(y, c),
        QuadraticInteractions(radius=1).fit(y, c),
        ScatteringCovariance(
            scales=1, orientations=2, widths=2, field_square=True, marginal=True
        ).fit(y, c),
    ]
    generator = torch.Generator().manual_seed(3)
    theta = 0.1 * torch.randn(sum(f.n_features for f in families), generator=generator).double()
    model = ExponentialModel(families, theta)
    monkeypatch.setattr(base, "_CPU_CHUNK", 3 * y[0].numel())  # chunks of 3, 3 and 1 fields
    chain = model.given(c)
    scatcov, made = families[2], []
    fixed_maps = scatcov._fixed_maps
    monkeypatch.setattr(
        scatcov, "_fixed_maps", lambda c, like: made.append(len(like)) or fixed_maps(c, like)
    )
    convolved = []  # channels of each quadratic convolution
    convolve = quadratic_module._convolve
    monkeypatch.setattr(
        quadratic_module,
        "_convolve",
        lambda spectrum, x, outputs: convolved.append(x.shape[1]) or convolve(spectrum, x, outputs),
    )
    for i in range(3):
        step = y + 0.3 * torch.randn(y.shape, generator=generator, dtype=y.dtype)
        made.clear()
        convolved.clear()
        energy, grad = chain(step)
        # the fixed maps are made once per chunk (3, 3 and 1 fields), at the first step only
        assert made == ([3, 3, 1] if i == 0 else [])
        # the quadratic family's own given path: each step convolves the sampled channels
        # only, the coarse field's share once per chunk at the first step
        coarse = [1, 1, 1] if i == 0 and conditioned else []
        assert sorted(convolved) == sorted(coarse + [y.shape[1]] * 3)
        expected_energy, expected_grad = model.energy_and_grad(step, c)  # made afresh
        torch.testing.assert_close(energy, expected_energy, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)
    if conditioned:
        with pytest.raises(ValueError, match="one per coarse field"):
            chain(y[:3])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("conditioned", [True, False])
def test_quadratic_energy_given_c_is_theta_times_the_features(conditioned, dtype):
    # the chain energy splits U = ½ yᵀK_yy y + yᵀ(K_yc c); the reference is θᵀΦ from the
    # features' own cross-correlations and Σ θ_f ∇Φ_f from their rolled gradients
    y, c = small_inputs(conditioned, n=8, batch=3, seed=5)
    family = QuadraticInteractions(radius=2).fit(y, c)
    theta = 0.1 * torch.randn(family.n_features, generator=torch.Generator().manual_seed(6))
    theta = theta.double()
    energy = family.values(y, c) @ theta
    grad = torch.einsum("bf...,f->b...", family.gradients(y, c), theta)
    given = family.bind_given(theta)(None if c is None else c.to(dtype))
    value, gradient = given(y.to(dtype))
    assert value.dtype == gradient.dtype == dtype
    tol = {torch.float64: 1e-12, torch.float32: 1e-5}[dtype]
    torch.testing.assert_close(value.double(), energy, rtol=tol, atol=tol)
    torch.testing.assert_close(gradient.double(), grad, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="fitted with" if conditioned else "fitted without"):
        family.bind_given(theta)(None if conditioned else y[:, 0])


# -- the field-stiffness family ------------------------------------------------------------


@pytest.mark.parametrize("stiffness", [FieldStiffness, SiteStiffness])
def test_stiffness_is_constant_beyond_the_support_in_features_and_energy(stiffness):
    # fitted to small fields, evaluated on larger ones: values beyond the support see
    # Z of the support's end, with zero slope, in the features and in the tabulated energy
    y, c = small_inputs(True, n=4)
    family = stiffness(windows=3, margin=0.0).fit(0.2 * y, 0.2 * c)
    grads, laps = autograd_derivatives(family, y, c)
    torch.testing.assert_close(family.gradients(y, c), grads, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(family.laplacians(y, c), laps, rtol=1e-10, atol=1e-10)
    theta = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)[: family.n_features]
    energy, grad = family.bind(theta)(y, c)
    torch.testing.assert_close(energy, family.values(y, c) @ theta)
    torch.testing.assert_close(grad, torch.einsum("bf...,f->b...", family.gradients(y, c), theta))
    # the torch path (autograd, other devices) gives the compiled pass's density and gradient
    density, grad = family.bind_density(theta)(y, c)
    followed = family.bind_density(theta)(y.clone().requires_grad_(True), c)
    torch.testing.assert_close(followed[0].detach(), density, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(followed[1].detach(), grad, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="theta"):
        family.bind_density(theta[:1])


def test_a_one_pixel_field_has_no_bonds_and_no_features():
    small = torch.randn(5, 1, 4, 4, dtype=torch.float64)  # below `smallest` (8): none either
    assert FieldStiffness().fit(small, None).n_features == 0
    assert FieldStiffness(smallest=4).fit(small, None).n_features > 0
    y = torch.randn(5, 1, 1, 1, dtype=torch.float64)
    family = FieldStiffness().fit(y, None)
    assert family.n_features == 0 and family.values(y, None).shape == (5, 0)
    assert family.gradients(y, None).shape == (5, 0, 1, 1, 1)
    assert family.laplacians(y, None).shape == (5, 0)
    energy, grad = family.bind(torch.zeros(0, dtype=torch.float64))(y, None)
    assert (energy == 0).all() and (grad == 0).all()
    again = FieldStiffness.from_state(FieldStiffness(smallest=1).fit(y, None).get_state())
    assert again.n_features == 0 and again.smallest == 1
    site = SiteStiffness().fit(small, None)  # the site form too
    assert site.n_features == 0 and site.values(small, None).shape == (5, 0)
    assert site.laplacians(small, None).shape == (5, 0)


def test_one_site_stiffness_window_is_a_constant_stiffness():
    # values too few for two windows: Z constant, the features ½ Σ d² of both forms alike
    y, c = small_inputs(True, n=4, batch=1)
    family = SiteStiffness(windows=1).fit(y, c)
    midpoint = FieldStiffness(windows=1).fit(y, c)
    assert family.n_features == 1
    x = merge(c, y, "db4")
    expected = 0.5 * sum(((x.roll(-1, a) - x) ** 2).sum((-2, -1)) for a in (-2, -1))
    torch.testing.assert_close(family.values(y, c)[:, 0], expected)
    grads, laps = autograd_derivatives(family, y, c)
    torch.testing.assert_close(family.gradients(y, c), grads, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(family.laplacians(y, c), laps, rtol=1e-10, atol=1e-10)
    assert midpoint.n_features == 1  # its one window is a bump, not a constant


def _statistics(model: ExponentialModel, y: torch.Tensor) -> ScoreMatchingStatistics:
    stats = ScoreMatchingStatistics.empty(model.theta.numel())
    gradients = torch.cat([f.gradients(y, None) for f in model.features], 1)
    laplacians = torch.cat([f.laplacians(y, None) for f in model.features], 1)
    stats.update(gradients, laplacians)
    return stats


def _fit_with_group_error(
    model: ExponentialModel, y: torch.Tensor, groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form score-matching θ of all samples, and its standard error from the spread of
    the fits of ``groups`` disjoint groups (std / √groups)."""
    size = len(y) // groups
    parts = [
        fit_closed_form(_statistics(model, y[g * size : (g + 1) * size])).theta
        for g in range(groups)
    ]
    error = torch.stack(parts).std(0) / math.sqrt(groups)
    return fit_closed_form(_statistics(model, y)).theta, error


@pytest.mark.parametrize("stiffness", [FieldStiffness, SiteStiffness])
def test_score_matching_recovers_a_known_field_dependent_stiffness(stiffness):
    # U = ½ μ Σ y² + ½ Σ_bonds W d² with W from Z = Σ θ_k w_k on three windows (at the bond's
    # midpoint or its two ends): a non-Gaussian law sampled by long HMC chains (independent),
    # then fitted by closed-form score matching; θ recovered within 5 standard errors from
    # the spread of disjoint groups
    gen = torch.Generator().manual_seed(3)
    chains, groups, n = 2000, 20, 8
    family = stiffness(windows=3)
    family.wavelet = "db4"
    family.centres = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    family.scales = torch.full((3,), 0.7, dtype=torch.float64)
    family.support = torch.tensor([-4.0, 4.0], dtype=torch.float64)
    mass = QuadraticInteractions(radius=0).fit(torch.zeros(2, 1, n, n, dtype=torch.float64), None)
    exact = torch.tensor([0.4, 1.2, 0.4, 1.0], dtype=torch.float64)  # stiff walls, then μ
    model = ExponentialModel([family, mass], exact)

    def logdensity_and_grad(y):
        energy, grad = model.energy_and_grad(y, None)
        return -energy, -grad

    start = torch.randn(chains, 1, n, n, generator=gen, dtype=torch.float64)
    kernel = HMC(logdensity_and_grad, 0.2, length=1.0, jitter=0.5)
    y = run_chains(kernel, start, gen, warmup=50, steps=150).state.position
    theta, error = _fit_with_group_error(model, y, groups)
    assert ((theta - exact).abs() < 5 * error).all(), (theta, exact, error)
    assert (error < 0.1).all()  # the test has power: errors well below θ's 0.4 – 1.2


def test_lanczos_gives_nan_where_the_hessian_products_are_not_finite(monkeypatch):
    """A batch element whose gradient is not finite (a probe off a potential's support) gets
    NaN extremes and vector; the other elements keep the values they have alone."""
    y, c = small_inputs(True, n=8, batch=3)
    family = QuadraticInteractions(radius=1).fit(y, c)
    theta = 0.2 * torch.randn(
        family.n_features, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    model = ExponentialModel([family], theta)
    alone_lo, alone_hi = model.hessian_extremes(y[[0, 2]], c[[0, 2]], steps=200)  # every direction
    gradient, calls = ExponentialModel.gradient, []

    def broken_for_the_second(self, yb, cb=None):  # from the fourth Hessian product on
        g = gradient(self, yb, cb)
        calls.append(1)
        if len(calls) > 6:
            g[1, 0, 0, 0] = float("nan")
        return g

    monkeypatch.setattr(ExponentialModel, "gradient", broken_for_the_second)
    lowest, vector = model.lowest_curvature(y, c, steps=200)
    calls.clear()
    lo, hi = model.hessian_extremes(y, c, steps=200)
    assert torch.isnan(lowest[1]) and torch.isnan(hi[1]) and torch.isnan(vector[1]).all()
    torch.testing.assert_close(lo[[0, 2]], alone_lo)
    torch.testing.assert_close(hi[[0, 2]], alone_hi)
    assert torch.isfinite(vector[[0, 2]]).all()


def test_score_matching_recovers_the_marginal_modulus_of_laplace_like_coefficients():
    # U = b Σ √(y² + ε²) + ½ a Σ y²: i.i.d. coefficients, drawn exactly by inverting their
    # CDF on a fine grid (no MCMC, no rgfield code), then fitted by closed-form score
    # matching with the scatcov family's marginal moduli and the quadratic family's ½y²;
    # (b, a) recovered within 5 standard errors from the spread of disjoint groups
    gen = torch.Generator().manual_seed(5)
    b, a, epsilon, n, fields, groups = 1.5, 0.3, 0.1, 8, 4000, 20
    grid = torch.linspace(-30, 30, 600_001, dtype=torch.float64)
    density = torch.exp(-b * torch.sqrt(grid.square() + epsilon**2) - 0.5 * a * grid.square())
    cdf = torch.cumsum(density, 0)
    cdf /= cdf[-1].clone()
    u = torch.rand(fields * n * n, generator=gen, dtype=torch.float64)
    y = grid[torch.searchsorted(cdf, u).clamp_max(len(grid) - 1)].reshape(fields, 1, n, n)
    family = ScatteringCovariance(epsilon=epsilon, marginal=True).fit(y, None)
    mass = QuadraticInteractions(radius=0).fit(y, None)
    assert family.labels == ["|y0|·1"]
    model = ExponentialModel([family, mass], torch.zeros(2, dtype=torch.float64))
    theta, error = _fit_with_group_error(model, y, groups)
    exact = torch.tensor([b, a], dtype=torch.float64)
    assert ((theta - exact).abs() < 5 * error).all(), (theta, exact, error)
    assert (5 * error < 0.5 * exact).all()  # the test has power: 5 errors below half of b, a
