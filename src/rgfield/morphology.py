"""Morphology of 2D fields: Minkowski functionals of excursion sets and peak counts, with the
Gaussian-field predictions they are judged against.

The excursion set of a field u at threshold ν is {u > μ + ν σ} (ν in units of the standard
deviation σ about the mean μ). Its Minkowski functionals per unit area are

- V₀, the area fraction;
- V₁ = L / 4A, a quarter of the boundary length per unit area;
- V₂ = χ / A, the Euler characteristic (components minus holes) per unit area,

with lengths in pixels. They are estimated by counting on the lattice of pixel values, which
is periodic (a torus): a pixel is in the set when its value exceeds the threshold,

- V₀ = V / A, V the number of pixels in the set;
- L by Crofton's formula over four directions (Serra 1982, *Image analysis and mathematical
  morphology*): with N_e the number of neighbour pairs along e = (0, 1), (1, 0), (1, 1),
  (1, −1) on either side of the threshold,
  L = (π/8) [N_(0,1) + N_(1,0) + (N_(1,1) + N_(1,−1)) / √2];
- χ as vertices minus edges plus faces of the set's cell complex: with 4-connectivity
  χ₄ = V − E_x − E_y + F (E_e the neighbour pairs along e both in the set, F the 2 × 2 cells
  wholly in it), with 8-connectivity χ₈ = χ₄ − D (D the 2 × 2 cells whose set is one diagonal
  pair), and by default their mean χ₄ − D/2, which is odd in ν for a field whose law is
  symmetric (χ₄ of a set is −χ₈ of its complement on the torus).

These are the counts scikit-image's ``perimeter_crofton(directions=4)`` and ``euler_number``
make on a binary image (the tests check them exactly). Every count is a sum over pixels of the
indicator that one of eight local values (the pixel, minima and maxima over its 2 × 2 cell)
exceeds the threshold, so all thresholds come from one pass over the field.

For a Gaussian field (Tomita, Prog. Theor. Phys. 76, 952 (1986); Schmalzing & Buchert, ApJ 482,
L1 (1997)), with σ₀² = ⟨u²⟩ and σ₁² = ⟨|∇u|²⟩,

    V₀ = ½ erfc(ν/√2),  V₁ = σ₁/(8√2 σ₀) e^{−ν²/2},  V₂ = σ₁²/(2 (2π)^{3/2} σ₀²) ν e^{−ν²/2}

(:func:`gaussian_minkowski`). The lattice counts differ from these by a discretisation bias
that vanishes as the correlation length grows; their exact Gaussian expectation is
:func:`gaussian_minkowski_lattice`. Peaks: :func:`peak_counts` and the density of Bond &
Efstathiou (1987), :func:`gaussian_peak_density`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
import xarray as xr
from scipy import integrate, special

from rgfield.stats import _ensemble

__all__ = [
    "gaussian_minkowski",
    "gaussian_minkowski_lattice",
    "gaussian_peak_density",
    "minkowski_functionals",
    "peak_counts",
    "spectral_moments",
]

FUNCTIONALS = ("V0", "V1", "V2")
THRESHOLDS = np.linspace(-3.0, 3.0, 25)
"""Default thresholds ν of the excursion sets (read-only)."""
PEAK_EDGES = np.linspace(-4.0, 5.0, 37)
"""Default bin edges of the peak heights ν (read-only)."""
THRESHOLDS.flags.writeable = PEAK_EDGES.flags.writeable = False
DIAGONAL_WEIGHT = {None: 0.5, 1: 0.0, 2: 1.0}
"""Euler characteristic χ₄ − w D by connectivity: 1 (4-connected sets, scikit-image's name),
2 (8-connected) or None (their mean)."""

# The eight local values whose exceedance counts make the functionals, per pixel (i, j) with
# its 2 × 2 cell a = u[i, j], b = u[i, j+1], c = u[i+1, j], d = u[i+1, j+1]:
_PIXEL, _EDGE_X, _EDGE_Y, _DIAGONAL, _ANTIDIAGONAL, _FACE, _DIAGONAL_ONLY, _ANTIDIAGONAL_ONLY = (
    range(8)
)


@numba.njit(parallel=True, cache=True)
def _exceedance_histograms(fields: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each field and local value q, the histogram over pixels of the number of thresholds
    below the value: entry k of the reversed cumulative sum counts the values above
    thresholds[k−1]. Local values: a, min(a, b), min(a, c), min(a, d), min(b, c),
    min(a, b, c, d), min(a, d, max(b, c)), min(b, c, max(a, d))."""
    samples, rows, cols = fields.shape
    out = np.zeros((samples, 8, thresholds.size + 1), dtype=np.int64)
    for s in numba.prange(samples):
        u = fields[s]
        h = out[s]
        for i in range(rows):
            i1 = i + 1 if i + 1 < rows else 0
            for j in range(cols):
                j1 = j + 1 if j + 1 < cols else 0
                a, b, c, d = u[i, j], u[i, j1], u[i1, j], u[i1, j1]
                ad, bc = min(a, d), min(b, c)
                h[0, np.searchsorted(thresholds, a)] += 1
                h[1, np.searchsorted(thresholds, min(a, b))] += 1
                h[2, np.searchsorted(thresholds, min(a, c))] += 1
                h[3, np.searchsorted(thresholds, ad)] += 1
                h[4, np.searchsorted(thresholds, bc)] += 1
                h[5, np.searchsorted(thresholds, min(ad, bc))] += 1
                h[6, np.searchsorted(thresholds, min(ad, max(b, c)))] += 1
                h[7, np.searchsorted(thresholds, min(bc, max(a, d)))] += 1
    return out


def _check_connectivity(connectivity) -> None:
    if connectivity not in DIAGONAL_WEIGHT:
        raise ValueError(f"connectivity must be None, 1 or 2; got {connectivity!r}")


def _standardise(x: np.ndarray, mean: float | None, std: float | None) -> tuple[float, float]:
    """The μ and σ of the thresholds: given, or those of all the ensemble's pixels."""
    mu = float(x.mean()) if mean is None else float(mean)
    sigma = float(x.std()) if std is None else float(std)
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(
            f"std must be positive and mean and std finite; got mean={mu!r}, std={sigma!r}"
            + (" (the fields are constant)" if std is None else "")
        )
    return mu, sigma


def _thresholds(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    nu = np.asarray(thresholds, dtype=np.float64)
    if nu.ndim != 1 or nu.size == 0 or not np.isfinite(nu).all() or (np.diff(nu) <= 0).any():
        raise ValueError(
            f"thresholds must be a 1-D increasing sequence of finite numbers; got {thresholds!r}"
        )
    return nu


def _fields_2d(fields) -> np.ndarray:
    """(sample, y, x) float64 numpy array (contiguous) from anything :mod:`rgfield.stats` takes."""
    return np.ascontiguousarray(_ensemble(fields, 2).double().cpu().numpy())


def minkowski_functionals(
    fields,
    thresholds: Sequence[float] | np.ndarray = THRESHOLDS,
    mean: float | None = None,
    std: float | None = None,
    connectivity: int | None = None,
) -> xr.DataArray:
    """Minkowski functionals V₀, V₁, V₂ per unit area of each field's excursion sets.

    For every threshold ν the set {u > μ + ν σ} on the periodic pixel lattice, with

        V₀ = V/A,  V₁ = (π/32A) [N_x + N_y + (N_d + N_d')/√2],  V₂ = χ/A,

    A the number of pixels, V the pixels in the set, N_e = 2 (V − E_e) the pairs of neighbours
    along e on either side of the threshold (E_e the pairs both in the set) and

        χ₄ = V − E_x − E_y + F,   χ₈ = χ₄ − D,

    F the 2 × 2 cells wholly in the set and D those whose set is one diagonal pair only. See the
    module docstring for the Gaussian predictions.

    Parameters
    ----------
    fields : array_like, shape (sample, y, x), or one field of shape (y, x)
    thresholds : sequence of float
        ν, increasing, in units of ``std`` about ``mean``.
    mean, std : float, optional
        μ and σ; by default the mean and standard deviation of all the ensemble's pixels (pass
        a reference's values to compare ensembles at the same absolute thresholds).
    connectivity : {None, 1, 2}
        Euler characteristic with 4-connected sets (1), 8-connected sets (2), or their mean
        (None, the default: odd in ν for a sign-symmetric law, with half the bias of either).

    Returns
    -------
    xarray.DataArray, dims (sample, functional, threshold)
        ``functional`` is "V0", "V1", "V2"; lengths in pixels. attrs: ``mean``, ``std``.
    """
    _check_connectivity(connectivity)
    x = _fields_2d(fields)
    nu = _thresholds(thresholds)
    mu, sigma = _standardise(x, mean, std)
    histograms = _exceedance_histograms(x, mu + sigma * nu)
    above = np.flip(np.flip(histograms, -1).cumsum(-1), -1)[..., 1:].astype(np.float64)
    area = x.shape[1] * x.shape[2]
    v, ex, ey, ed, ea, face, dd, da = (above[:, q] / area for q in range(8))
    diagonal_only = (ed - dd) + (ea - da)
    euler = v - ex - ey + face - DIAGONAL_WEIGHT[connectivity] * diagonal_only
    boundary = math.pi / 4 * ((v - ex) + (v - ey) + ((v - ed) + (v - ea)) / math.sqrt(2))
    return xr.DataArray(
        np.stack([v, boundary / 4, euler], axis=1),
        dims=("sample", "functional", "threshold"),
        coords={"functional": list(FUNCTIONALS), "threshold": nu},
        name="minkowski_functionals",
        attrs={
            "mean": mu,
            "std": sigma,
            "connectivity": "mean of 4 and 8" if connectivity is None else 4 * connectivity,
            "definition": "V0 area fraction, V1 boundary length / 4, V2 Euler characteristic,"
            " per pixel, of {u > mean + threshold * std}",
        },
    )


@numba.njit(parallel=True, cache=True)
def _extremum_histograms(fields: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histograms over ``edges`` of the values of strict local maxima (row 0) and minima (row
    1) among the 8 neighbours, periodic."""
    samples, rows, cols = fields.shape
    nbins = edges.size - 1
    out = np.zeros((samples, 2, nbins), dtype=np.int64)
    for s in numba.prange(samples):
        u = fields[s]
        for i in range(rows):
            for j in range(cols):
                v = u[i, j]
                is_max = True
                is_min = True
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        if di != 0 or dj != 0:
                            w = u[(i + di) % rows, (j + dj) % cols]
                            is_max &= v > w
                            is_min &= v < w
                if is_max or is_min:
                    k = np.searchsorted(edges, v, side="right") - 1
                    if 0 <= k < nbins:
                        out[s, 0 if is_max else 1, k] += 1
    return out


def peak_counts(
    fields,
    edges: Sequence[float] | np.ndarray = PEAK_EDGES,
    mean: float | None = None,
    std: float | None = None,
) -> xr.DataArray:
    """Number density of local maxima and minima of each field, by height.

    A maximum (minimum) is a pixel above (below) all its 8 neighbours, periodic. Its height is
    ν = (u − μ)/σ; the density in a bin [ν_k, ν_{k+1}) is the count / (A (ν_{k+1} − ν_k)), A
    the number of pixels, so it integrates over ν to the extrema per pixel.

    Parameters
    ----------
    fields : array_like, shape (sample, y, x), or one field of shape (y, x)
    edges : sequence of float
        Bin edges of ν, increasing.
    mean, std : float, optional
        μ and σ; by default those of all the ensemble's pixels.

    Returns
    -------
    xarray.DataArray, dims (sample, extremum, height)
        ``extremum`` is "maximum" or "minimum"; ``height`` the bin centres, ``width`` their
        widths. attrs: ``mean``, ``std``, ``edges``.
    """
    x = _fields_2d(fields)
    e = _thresholds(edges)
    if e.size < 2:
        raise ValueError(f"edges must hold at least 2 values; got {edges!r}")
    mu, sigma = _standardise(x, mean, std)
    counts = _extremum_histograms(x, mu + sigma * e)
    width = np.diff(e)
    return xr.DataArray(
        counts / (x.shape[1] * x.shape[2] * width),
        dims=("sample", "extremum", "height"),
        coords={
            "extremum": ["maximum", "minimum"],
            "height": (e[1:] + e[:-1]) / 2,
            "width": ("height", width),
        },
        name="peak_counts",
        attrs={"mean": mu, "std": sigma, "edges": e},
    )


def spectral_moments(fields) -> xr.DataArray:
    """σ₀, σ₁, σ₂ of each field: σ_n² = ⟨|∇ⁿ u|²⟩ in Fourier space, Σ_k |k|^{2n} |û(k)|²/N²
    over the periodic box's modes k ≠ 0 (radians per pixel), û the unnormalised DFT and N the
    number of pixels.

    Returns
    -------
    xarray.DataArray, dims (sample, order), order 0, 1, 2.
    """
    x = _fields_2d(fields)
    power = np.abs(np.fft.fft2(x)) ** 2 / (x.shape[1] * x.shape[2]) ** 2
    ky = 2 * np.pi * np.fft.fftfreq(x.shape[1])[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(x.shape[2])[None, :]
    k2 = ky**2 + kx**2
    power[:, 0, 0] = 0.0
    moments = np.stack([(power * k2**n).sum((1, 2)) for n in range(3)], axis=1)
    return xr.DataArray(
        np.sqrt(moments), dims=("sample", "order"), coords={"order": [0, 1, 2]}, name="sigma"
    )


def gaussian_minkowski(
    thresholds: Sequence[float] | np.ndarray, sigma0: float, sigma1: float
) -> xr.DataArray:
    """Minkowski functionals per unit area of a Gaussian field's excursion sets, continuum.

        V₀ = ½ erfc(ν/√2),  V₁ = (σ₁ / 8√2 σ₀) e^{−ν²/2},  V₂ = σ₁² / (2 (2π)^{3/2} σ₀²) ν e^{−ν²/2}

    (Tomita 1986; Schmalzing & Buchert 1997), with σ₀² = ⟨u²⟩ and σ₁² = ⟨|∇u|²⟩: the boundary
    length per area is E[|∇u| δ(u − νσ₀)] = σ₁ e^{−ν²/2} / (2√2 σ₀) by Rice's formula, and
    V₂ is Adler's expected Euler characteristic density λ₂ ν e^{−ν²/2} / ((2π)^{3/2} σ₀²),
    λ₂ = σ₁²/2.

    Returns
    -------
    xarray.DataArray, dims (functional, threshold)
    """
    nu = _thresholds(thresholds)
    gauss = np.exp(-(nu**2) / 2)
    ratio = sigma1 / sigma0
    values = [
        special.erfc(nu / math.sqrt(2)) / 2,
        ratio / (8 * math.sqrt(2)) * gauss,
        ratio**2 / (2 * (2 * math.pi) ** 1.5) * nu * gauss,
    ]
    return xr.DataArray(
        np.stack(values),
        dims=("functional", "threshold"),
        coords={"functional": list(FUNCTIONALS), "threshold": nu},
        name="gaussian_minkowski",
    )


def _upper_orthant(h: np.ndarray, rho: float) -> np.ndarray:
    """P(X > h, Y > h) for standard normals of correlation ρ: ½ erfc(h/√2) − 2 T(h, a),
    a = √((1 − ρ)/(1 + ρ)), T Owen's function (Owen, Ann. Math. Stat. 27, 1075 (1956))."""
    return special.erfc(h / math.sqrt(2)) / 2 - 2 * special.owens_t(
        h, math.sqrt((1 - rho) / (1 + rho))
    )


def _cell_probability(nu: float, rho1: float, rho2: float, diagonal_low: bool) -> float:
    """P(a > ν, d > ν, and b, c both above ν (or both below, ``diagonal_low``)) for the
    standardised corners of a 2 × 2 cell, sides of correlation ρ₁, diagonals ρ₂.

    Given s = a + d, (b, c) is normal with mean m s per coordinate, m = ρ₁/(1 + ρ₂), variance
    1 − 2ρ₁²/(1 + ρ₂) and covariance ρ₂ − 2ρ₁²/(1 + ρ₂); given s, a − d ~ N(0, 2(1 − ρ₂)) is
    independent of it, and a, d > ν ⟺ |a − d| < s − 2ν. One integral over s ~ N(0, 2(1 + ρ₂)).
    """
    var = 1 - 2 * rho1**2 / (1 + rho2)
    rho = (rho2 - 2 * rho1**2 / (1 + rho2)) / var
    m = rho1 / (1 + rho2)
    s_sd, d_sd = math.sqrt(2 * (1 + rho2)), math.sqrt(2 * (1 - rho2))

    def integrand(s: float) -> float:
        h = (nu - m * s) / math.sqrt(var)
        pair = _upper_orthant(-h, rho) if diagonal_low else _upper_orthant(h, rho)
        both = special.erf((s - 2 * nu) / (d_sd * math.sqrt(2)))  # P(|a − d| < s − 2ν)
        return math.exp(-0.5 * (s / s_sd) ** 2) / (s_sd * math.sqrt(2 * math.pi)) * both * pair

    low = max(2 * nu, -12 * s_sd)  # s ~ N(0, s_sd²), restricted to s > 2ν
    value, _ = integrate.quad(integrand, low, max(low, 0) + 12 * s_sd, epsabs=1e-13, epsrel=1e-10)
    return value


def gaussian_minkowski_lattice(
    thresholds: Sequence[float] | np.ndarray,
    rho_side: float,
    rho_diagonal: float,
    connectivity: int | None = None,
) -> xr.DataArray:
    """Expected :func:`minkowski_functionals` of a Gaussian field on the lattice, exactly.

    For a stationary Gaussian field whose correlation between pixel neighbours is ρ₁ along the
    axes and ρ₂ along both diagonals (as for a spectrum symmetric under the square's
    reflections), with ν in units of the true σ about the true mean, the expected counts per
    pixel are P₁ = ½ erfc(ν/√2), E_e = P(a > ν, b > ν) for the pair's correlation (Owen's T),
    F = P(all four corners > ν) and D = 2 P(a, d > ν > b, c), the last two by one integral
    (:func:`_cell_probability`). This is the discretisation bias correction of the estimator:
    it tends to :func:`gaussian_minkowski` as the correlation length grows.

    Returns
    -------
    xarray.DataArray, dims (functional, threshold)
    """
    _check_connectivity(connectivity)
    # the 2 × 2 cell's correlation matrix is circulant: eigenvalues 1 ± 2ρ₁ + ρ₂ and 1 − ρ₂
    if not (abs(2 * rho_side) < 1 + rho_diagonal and rho_diagonal < 1):
        raise ValueError(
            "rho_side and rho_diagonal must make a positive-definite 2 × 2 cell,"
            f" 2|rho_side| < 1 + rho_diagonal < 2; got {rho_side!r}, {rho_diagonal!r}"
        )
    nu = _thresholds(thresholds)
    v = special.erfc(nu / math.sqrt(2)) / 2
    side, diagonal = _upper_orthant(nu, rho_side), _upper_orthant(nu, rho_diagonal)
    face = np.array([_cell_probability(t, rho_side, rho_diagonal, False) for t in nu])
    diagonal_only = 2 * np.array([_cell_probability(t, rho_side, rho_diagonal, True) for t in nu])
    euler = v - 2 * side + face - DIAGONAL_WEIGHT[connectivity] * diagonal_only
    boundary = math.pi / 4 * (2 * (v - side) + 2 * (v - diagonal) / math.sqrt(2))
    return xr.DataArray(
        np.stack([v, boundary / 4, euler]),
        dims=("functional", "threshold"),
        coords={"functional": list(FUNCTIONALS), "threshold": nu},
        name="gaussian_minkowski_lattice",
    )


def gaussian_peak_density(
    heights: Sequence[float] | np.ndarray, sigma0: float, sigma1: float, sigma2: float
) -> np.ndarray:
    """Number density of maxima per unit area and unit height ν of a 2D Gaussian field.

        n(ν) = e^{−ν²/2} G(γ, γν) / ((2π)^{3/2} θ*²),  γ = σ₁²/(σ₀σ₂),  θ*² = 2σ₁²/σ₂²,

        G(γ, x) = (x² − γ²) [1 − ½ erfc(x/√(2(1 − γ²)))]
                  + x (1 − γ²) e^{−x²/(2(1 − γ²))} / √(2π(1 − γ²))
                  + e^{−x²/(3 − 2γ²)} [1 − ½ erfc(x/√(2(1 − γ²)(3 − 2γ²)))] / √(3 − 2γ²)

    (Bond & Efstathiou, MNRAS 226, 655 (1987); as written by Fan, Shan & Liu, ApJ 719, 1408
    (2010)), σ_n² = ⟨|∇ⁿu|²⟩. It integrates to σ₂² / (8√3 π σ₁²) maxima per unit area; the
    minima of a Gaussian field have the density n(−ν).
    """
    nu = np.asarray(heights, dtype=np.float64)
    gamma = sigma1**2 / (sigma0 * sigma2)
    if not 0 < gamma < 1:
        raise ValueError(f"sigma1²/(sigma0 sigma2) must lie in (0, 1); got {gamma!r}")
    theta2 = 2 * sigma1**2 / sigma2**2
    x, q = gamma * nu, 1 - gamma**2
    r = 3 - 2 * gamma**2
    g = (
        (x**2 - gamma**2) * (1 - special.erfc(x / math.sqrt(2 * q)) / 2)
        + x * q * np.exp(-(x**2) / (2 * q)) / math.sqrt(2 * math.pi * q)
        + np.exp(-(x**2) / r) * (1 - special.erfc(x / math.sqrt(2 * q * r)) / 2) / math.sqrt(r)
    )
    return np.exp(-(nu**2) / 2) * g / ((2 * math.pi) ** 1.5 * theta2)
