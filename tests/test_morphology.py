"""Minkowski functionals and peak counts: exact agreement with scikit-image on binary images,
and the Gaussian-field formulas on periodic Gaussian random fields of known spectrum."""

import math

import numpy as np
import pytest
from scipy import integrate, stats
from skimage.measure import euler_number, perimeter_crofton

from rgfield.morphology import (
    gaussian_minkowski,
    gaussian_minkowski_lattice,
    gaussian_peak_density,
    minkowski_functionals,
    peak_counts,
    spectral_moments,
)

NU = np.linspace(-3.0, 3.0, 13)  # the acceptance thresholds |ν| ≤ 3
PEAK_EDGES = np.linspace(-3.5, 3.5, 29)


class GaussianEnsemble:
    """Periodic Gaussian fields of spectrum S(k) ∝ exp(−|k|² ℓ²) (k = 0 removed), unit
    variance, with their exact lattice covariance and spectral moments: the field is white
    noise filtered by √S, so C(r) = Σ_k S(k) e^{ik·r} / N."""

    def __init__(self, ell: float, size: int, samples: int, seed: int) -> None:
        k = 2 * np.pi * np.fft.fftfreq(size)
        k2 = k[:, None] ** 2 + k[None, :] ** 2
        spectrum = np.exp(-k2 * ell**2)
        spectrum[0, 0] = 0.0
        spectrum *= size**2 / spectrum.sum()
        covariance = np.fft.ifft2(spectrum).real
        self.rho_side, self.rho_diagonal = covariance[0, 1], covariance[1, 1]
        self.sigma = [math.sqrt((spectrum * k2**n).sum()) / size for n in range(3)]
        noise = np.random.default_rng(seed).standard_normal((samples, size, size))
        self.fields = np.fft.ifft2(np.fft.fft2(noise) * np.sqrt(spectrum)).real


@pytest.fixture(scope="module")
def smooth():
    """The acceptance ensemble: 256 fields of 256², correlation length ℓ = 8 pixels."""
    return GaussianEnsemble(ell=8.0, size=256, samples=256, seed=1)


def mean_and_error(values):
    return values.mean("sample"), values.std("sample") / math.sqrt(values.sizes["sample"])


def binary_image(rng, fill: float) -> np.ndarray:
    """A random binary image with an empty border, so that the torus and the plane agree."""
    rows, cols = rng.integers(4, 40, size=2)
    image = np.zeros((rows, cols))
    image[1:-1, 1:-1] = rng.random((rows - 2, cols - 2)) < fill
    return image


@pytest.mark.parametrize("seed", range(40))
def test_binary_images_match_scikit_image(seed):
    rng = np.random.default_rng(seed)
    image = binary_image(rng, fill=rng.uniform(0.1, 0.9))
    area = image.size
    counts = {
        c: minkowski_functionals(image, [0.5], mean=0, std=1, connectivity=c)[0, :, 0] * area
        for c in (None, 1, 2)
    }
    four, eight = euler_number(image, connectivity=1), euler_number(image, connectivity=2)
    exact = {"rel": 1e-12, "abs": 1e-12}  # counts divided by the area and multiplied back
    assert float(counts[1].sel(functional="V0")) == pytest.approx(image.sum(), **exact)
    assert float(counts[1].sel(functional="V2")) == pytest.approx(four, **exact)
    assert float(counts[2].sel(functional="V2")) == pytest.approx(eight, **exact)
    assert float(counts[None].sel(functional="V2")) == pytest.approx((four + eight) / 2, **exact)
    crofton = perimeter_crofton(image, directions=4)
    for c in (None, 1, 2):  # V₁ is a quarter of the Crofton perimeter, whatever χ's rule
        assert 4 * float(counts[c].sel(functional="V1")) == pytest.approx(crofton, rel=1e-12)


def test_periodic_topology():
    """On the torus: a band around it is a cylinder (χ = 0), a disc χ = 1, an annulus χ = 0,
    the whole torus has χ = 0 and no boundary; shifting the field changes nothing."""
    y, x = np.mgrid[:32, :32]
    r = np.hypot(y - 15.5, x - 15.5)
    fields = np.stack(
        [
            (np.abs(y - 10) < 3).astype(float),
            (r < 8).astype(float),
            ((r < 10) & (r > 5)).astype(float),
            np.ones((32, 32)),
        ]
    )
    v = minkowski_functionals(fields, [0.5], mean=0, std=1)[:, :, 0] * 32**2
    np.testing.assert_array_equal(v.sel(functional="V2"), [0, 1, 0, 0])
    assert float(v.sel(functional="V1")[3]) == 0
    shifted = minkowski_functionals(np.roll(fields, (7, -13), (1, 2)), [0.5], mean=0, std=1)
    np.testing.assert_allclose(shifted * 32**2, v.expand_dims(threshold=1, axis=-1), atol=1e-9)


def test_gaussian_fields_match_tomita(smooth):
    """Acceptance: 256 fields of 256², every |ν| ≤ 3 within 3 standard errors of the continuum
    formulas (at ℓ = 8 pixels the lattice bias is at most 0.35 standard errors, docs/compare.md)."""
    s0, s1, _ = smooth.sigma
    mean, error = mean_and_error(minkowski_functionals(smooth.fields, NU, mean=0, std=s0))
    z = (mean - gaussian_minkowski(NU, s0, s1)) / error
    assert float(np.abs(z).max()) < 3, z.values


def test_rough_gaussian_fields_need_the_lattice_formula():
    """At ℓ = 2 pixels the continuum formulas miss V₁ and V₂ by many standard errors; the exact
    lattice expectation holds within 3, for each rule of the Euler characteristic."""
    ensemble = GaussianEnsemble(ell=2.0, size=128, samples=128, seed=2)
    s0, s1, _ = ensemble.sigma
    continuum = gaussian_minkowski(NU, s0, s1)
    for connectivity in (None, 1, 2):
        values = minkowski_functionals(
            ensemble.fields, NU, mean=0, std=s0, connectivity=connectivity
        )
        mean, error = mean_and_error(values)
        lattice = gaussian_minkowski_lattice(
            NU, ensemble.rho_side, ensemble.rho_diagonal, connectivity
        )
        assert float(np.abs((mean - lattice) / error).max()) < 3
        assert float(np.abs((mean - continuum) / error).sel(functional="V1").max()) > 5


@pytest.mark.parametrize(
    ("rho_side", "rho_diagonal", "nu"),
    [(0.0, -0.6, -5.0), (0.3, 0.1, -2.0), (0.9, 0.85, 1.0), (0.2, -0.3, 0.5), (0.6, 0.3, 2.5)],
)
def test_cell_probabilities_match_scipy_multivariate_normal(rho_side, rho_diagonal, nu):
    """The lattice formula's cell terms against scipy's multivariate normal CDF (Genz's
    algorithm): D/2 = P(a, d > ν > b, c), the gap χ₄ − χ₈, and F = P(all four > ν) with the
    pair term E through V − χ₄ = 2E − F."""
    from scipy.stats import multivariate_normal

    r1, r2 = rho_side, rho_diagonal
    # corners in the order a, b, d, c around the cell
    cov = np.array([[1, r1, r2, r1], [r1, 1, r1, r2], [r2, r1, 1, r1], [r1, r2, r1, 1]])
    above = multivariate_normal(np.zeros(4), cov).cdf(-nu * np.ones(4))  # P(all > ν)
    flip = np.diag([-1.0, 1.0, -1.0, 1.0])  # (−a, b, −d, c) below (−ν, ν, −ν, ν)
    law = multivariate_normal(np.zeros(4), flip @ cov @ flip)
    diagonal_only = law.cdf(np.array([-nu, nu, -nu, nu]))
    lattice = {c: gaussian_minkowski_lattice([nu], r1, r2, c)[2, 0] for c in (1, 2)}
    assert float(lattice[1] - lattice[2]) == pytest.approx(2 * diagonal_only, abs=2e-5)
    v = float(gaussian_minkowski_lattice([nu], r1, r2, 1)[0, 0])
    edges = v - float(lattice[1])  # χ₄ = V − 2E + F, so V − χ₄ = 2E − F
    pair = multivariate_normal(np.zeros(2), [[1, r1], [r1, 1]]).cdf(-nu * np.ones(2))
    assert edges == pytest.approx(2 * pair - above, abs=2e-5)


def test_lattice_formula_tends_to_the_continuum():
    """As the correlation length grows the lattice expectation approaches Tomita's formulas:
    with ρ from a Gaussian correlation e^{−r²/4ℓ²}, σ₁/σ₀ = 1/ℓ."""
    for ell, tolerance in ((8.0, 2e-3), (32.0, 2e-4)):
        lattice = gaussian_minkowski_lattice(
            NU, math.exp(-1 / (4 * ell**2)), math.exp(-2 / (4 * ell**2))
        )
        continuum = gaussian_minkowski(NU, 1.0, 1.0 / ell)
        relative = np.abs(lattice - continuum) / np.abs(continuum).max("threshold")
        assert float(relative.max()) < tolerance


def test_peak_density_formula_integrates_to_the_total():
    """Bond & Efstathiou's density integrates to Longuet-Higgins' total σ₂²/(8√3 π σ₁²)."""
    for s0, s1, s2 in ((1.0, 0.5, 0.35), (2.0, 0.1, 0.012)):
        total, _ = integrate.quad(gaussian_peak_density, -12, 12, args=(s0, s1, s2))
        assert total == pytest.approx(s2**2 / (8 * math.sqrt(3) * math.pi * s1**2), rel=1e-8)


def test_peak_counts_match_bond_efstathiou(smooth):
    """Acceptance: maxima and minima per unit area and height within 3 standard errors of the
    Gaussian density at every bin with |ν| ≤ 3. Peaks in different fields are independent and
    their count in a bin is close to Poisson (the scatter over fields is 0.9–1.1 times
    Poisson's where counts are large), so each bin's total count is tested against the Poisson
    law of the predicted count: two-sided tail probability above 2Φ(−3), which is |z| < 3 where
    counts are large and stays exact where a tail bin expects less than one peak."""
    s0, s1, s2 = smooth.sigma
    counts = peak_counts(smooth.fields, PEAK_EDGES, mean=0, std=s0)
    pixels = smooth.fields.size
    inside = np.abs(counts["height"].values) <= 3
    for extremum, sign in (("maximum", 1), ("minimum", -1)):
        expected = pixels * np.array(
            [
                integrate.quad(gaussian_peak_density, sign * a, sign * b, args=(s0, s1, s2))[0]
                * sign
                for a, b in zip(PEAK_EDGES[:-1], PEAK_EDGES[1:], strict=True)
            ]
        )
        found = np.rint(
            pixels
            / smooth.fields.shape[0]
            * (counts * counts["width"]).sel(extremum=extremum).sum("sample").values
        )
        tail = 2 * np.minimum(
            stats.poisson.cdf(found, expected), stats.poisson.sf(found - 1, expected)
        )
        assert tail[inside].min() > 2 * stats.norm.sf(3), (extremum, found, expected.round(1))


def test_spectral_moments_of_a_plane_wave():
    """u = cos(k·x) with k = 2π(3, 4)/64: σ₀² = ½, σ₁² = |k|²/2, σ₂² = |k|⁴/2."""
    y, x = np.mgrid[:64, :64]
    k = 2 * math.pi * np.array([3, 4]) / 64
    sigma = spectral_moments(np.cos(k[0] * y + k[1] * x))[0].values
    k2 = float(k @ k)
    np.testing.assert_allclose(sigma**2, [0.5, k2 / 2, k2**2 / 2], rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: minkowski_functionals(f, [1.0, 0.0]), "thresholds"),
        (lambda f: minkowski_functionals(f, []), "thresholds"),
        (lambda f: minkowski_functionals(f, connectivity=8), "connectivity"),
        (lambda f: minkowski_functionals(f, std=0.0), "std"),
        (lambda f: minkowski_functionals(np.ones((2, 8, 8))), "constant"),
        (lambda f: minkowski_functionals(np.zeros((2, 4, 4, 4))), "2 spatial"),
        (lambda f: peak_counts(f, [0.0]), "edges"),
        (lambda f: gaussian_minkowski_lattice(NU, 1.0, 0.5), "rho_side"),
        (lambda f: gaussian_peak_density(NU, 1.0, 1.0, 0.1), "sigma1"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    fields = np.random.default_rng(0).standard_normal((2, 8, 8))
    with pytest.raises(ValueError, match=message):
        call(fields)
