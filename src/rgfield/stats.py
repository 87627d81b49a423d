"""Statistics of ensembles of fields: spectra, one-point PDFs, structure functions, correlations.

Every function takes an ensemble of shape (sample, *spatial) — numpy, torch or an xarray
DataArray such as :func:`rgfield.io.load` returns — or a single field of shape ``spatial``, and
returns an :class:`xarray.DataArray` with a ``sample`` dimension: one estimate per field, so that
means and sample scatter follow with ``.mean("sample")`` and ``.std("sample")``. Computation is
batched torch on the input's device. Boundaries are periodic.

Wavenumbers are in radians per pixel: the mode with m_i cycles along an axis of n_i pixels has
k_i = 2π m_i / n_i, so k runs from 2π/n to π√ndim. For a square box of n pixels the integer
wavenumber is k·n/(2π).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from rgfield.io import as_tensor, check_finite

__all__ = [
    "bispectrum",
    "coarse_field_variance",
    "ks_statistic",
    "correlation_function",
    "jackknife",
    "mirrored",
    "mode_power",
    "moments",
    "nearest_distance",
    "pdf",
    "phi4_observables",
    "pixel_moments",
    "power_spectrum",
    "shell_power",
    "structure_functions",
]

_AXIS_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


def _ensemble(fields, ndim: int, name: str = "fields") -> torch.Tensor:
    """(sample, *spatial) real floating tensor; a single field gets a sample axis of length 1."""
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3; got {ndim!r}")
    x = as_tensor(fields)
    if x.dim() == ndim:
        x = x[None]
    if x.dim() != ndim + 1:
        raise ValueError(
            f"{name} must have shape (sample, *spatial) with {ndim} spatial dimensions;"
            f" got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or min(x.shape[1:]) < 2:
        raise ValueError(f"{name}: needs at least one field of size >= 2; got {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    check_finite(x, name)
    return x


def _shell_average(
    values: torch.Tensor, radius: torch.Tensor, weight: torch.Tensor, width: float, nbins: int
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Average (S, M) values over shells |r| ∈ [(i − ½) width, (i + ½) width), i = 0..nbins−1.

    ``weight`` (M,) counts how many modes each entry stands for. Returns the (S, nbins) shell
    means, each shell's weighted mean radius and its total weight (number of modes).
    """
    index = torch.floor(radius / width + 0.5).long()  # half-open shells, not round-half-even
    keep = index < nbins
    index, radius, weight, values = index[keep], radius[keep], weight[keep], values[:, keep]
    count = torch.zeros(nbins, dtype=weight.dtype, device=weight.device).index_add_(
        0, index, weight
    )
    mean_radius = torch.zeros_like(count).index_add_(0, index, weight * radius) / count
    values = values.double() * weight
    sums = values.new_zeros(values.shape[0], nbins).index_add_(1, index, values)
    return sums / count, mean_radius.cpu().numpy(), count.cpu().numpy()


def mode_power(fields: torch.Tensor) -> torch.Tensor:
    """P(k) = ⟨|x̂(k)|²⟩ / N of every Fourier mode (``torch.fft.fft2`` order over the last two
    axes), averaged over the fields (B, H, W): x̂ the unnormalised DFT and N the number of
    pixels, as in :func:`power_spectrum`, so white noise of variance σ² has P = σ² and the mean
    of P over k is the fields' mean square."""
    return torch.fft.fft2(fields).abs().square().mean(0) / fields[0].numel()


def mirrored(modes: torch.Tensor) -> torch.Tensor:
    """An array over Fourier modes (``torch.fft.fft2`` order, last two axes) at −k: a[−k]."""
    return modes.flip((-2, -1)).roll((1, 1), (-2, -1))


def power_spectrum(fields, ndim: int = 2) -> xr.DataArray:
    """Isotropic (shell-averaged) power spectrum of each field.

    P(k) = ⟨|x̂(k')|²⟩_{|k'| ∈ shell} / N, with x̂ the unnormalised DFT and N the number of pixels,
    so white noise of variance σ² has P(k) = σ². Shells are one fundamental 2π/n_min wide,
    centred on its multiples 1..n_min/2 (complete shells only); k = 0 is left out.

    Returns
    -------
    xarray.DataArray, dims (sample, k)
        Coordinates ``k`` (mean |k| of the modes in the shell, radians per pixel) and ``count``
        (number of Fourier modes in the shell).
    """
    x = _ensemble(fields, ndim)
    spatial = x.shape[1:]
    dims = tuple(range(1, ndim + 1))
    power = torch.fft.rfftn(x, dim=dims).abs().square() / math.prod(spatial)
    freqs = [torch.fft.fftfreq(n, device=x.device) for n in spatial[:-1]]
    freqs.append(torch.fft.rfftfreq(spatial[-1], device=x.device))
    grid = torch.meshgrid(*freqs, indexing="ij")
    radius = 2 * math.pi * torch.sqrt(sum(g.double().square() for g in grid)).reshape(-1)
    # the half spectrum stands for ±k: columns other than 0 and the Nyquist count twice
    m = torch.arange(freqs[-1].numel(), device=x.device)
    column = torch.where((m == 0) | (2 * m == spatial[-1]), 1.0, 2.0).double()
    weight = column.expand(grid[0].shape).reshape(-1)
    nmin = min(spatial)
    width = 2 * math.pi / nmin
    p, k, count = _shell_average(
        power.reshape(x.shape[0], -1), radius, weight, width, nmin // 2 + 1
    )
    return xr.DataArray(
        p[:, 1:].double().cpu().numpy(),
        dims=("sample", "k"),
        coords={"k": k[1:], "count": ("k", count[1:].astype(np.int64))},
        name="power_spectrum",
        attrs={"definition": "shell mean of |DFT(x)|^2 / N", "k_units": "radians per pixel"},
    )


def correlation_function(fields, ndim: int = 2, mean: str = "field") -> xr.DataArray:
    """Isotropic two-point correlation function of each field.

    C(r) = ⟨(x(u) − x̄)(x(u + s) − x̄)⟩_u averaged over periodic displacements s with
    |s| ∈ [r − ½, r + ½) (minimum image); computed through C = IDFT(|x̂|²)/N (Wiener–Khinchin).
    x̄ is the field's own mean (``mean="field"``: C(0) is the field's variance) or the mean over
    the whole ensemble (``mean="ensemble"``: the ensemble average of C is then the connected
    two-point function ⟨x(0) x(r)⟩ − ⟨x⟩², as in lattice field theory).

    Returns
    -------
    xarray.DataArray, dims (sample, r)
        ``r`` = 0..n_min/2 pixels (mean |s| in each shell) and ``count`` (displacements per shell).
    """
    x = _ensemble(fields, ndim)
    spatial = x.shape[1:]
    dims = tuple(range(1, ndim + 1))
    if mean not in ("field", "ensemble"):
        raise ValueError(f"mean must be 'field' or 'ensemble'; got {mean!r}")
    x = x - (x.mean(dim=dims, keepdim=True) if mean == "field" else x.mean())
    power = torch.fft.rfftn(x, dim=dims).abs().square()
    cmap = torch.fft.irfftn(power, s=spatial, dim=dims) / math.prod(spatial)
    shifts = [torch.fft.fftfreq(n, d=1 / n, device=x.device) for n in spatial]  # minimum image
    grid = torch.meshgrid(*shifts, indexing="ij")
    radius = torch.sqrt(sum(g.double().square() for g in grid)).reshape(-1)
    weight = torch.ones_like(radius)
    c, r, count = _shell_average(
        cmap.reshape(x.shape[0], -1), radius, weight, 1.0, min(spatial) // 2 + 1
    )
    return xr.DataArray(
        c.double().cpu().numpy(),
        dims=("sample", "r"),
        coords={"r": r, "count": ("r", count.astype(np.int64))},
        name="correlation_function",
        attrs={"definition": "shell mean of <(x(u)-mean)(x(u+s)-mean)>_u", "r_units": "pixels"},
    )


def pixel_moments(x: torch.Tensor) -> torch.Tensor:
    """(mean, variance, skewness, excess kurtosis) over the last axis, shape (..., 4); torch,
    differentiable (the formulas of :func:`moments`)."""
    mean = x.mean(dim=-1, keepdim=True)
    centred = x - mean
    variance = centred.square().mean(dim=-1)
    skewness = centred.pow(3).mean(dim=-1) / variance.pow(1.5)
    kurtosis = centred.pow(4).mean(dim=-1) / variance.square() - 3
    return torch.stack([mean[..., 0], variance, skewness, kurtosis], dim=-1)


def moments(fields, ndim: int = 2) -> xr.DataArray:
    """Mean, variance, skewness and excess kurtosis of each field's one-point distribution.

    With m = ⟨x⟩ and σ² = ⟨(x − m)²⟩ over the field's pixels: skewness ⟨(x − m)³⟩/σ³, excess
    kurtosis ⟨(x − m)⁴⟩/σ⁴ − 3 (0 for a Gaussian).

    Returns
    -------
    xarray.DataArray, dims (sample, moment), moment = mean, variance, skewness, kurtosis
    """
    x = _ensemble(fields, ndim)
    values = pixel_moments(x.reshape(x.shape[0], -1).double())
    return xr.DataArray(
        values.cpu().numpy(),
        dims=("sample", "moment"),
        coords={"moment": ["mean", "variance", "skewness", "kurtosis"]},
        name="moments",
    )


def pdf(
    fields,
    bins: int | Sequence[float] = 64,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
    ndim: int = 2,
) -> xr.DataArray:
    """One-point probability density of each field's values, on shared bins.

    Parameters
    ----------
    fields : array_like, shape (sample, *spatial), or one field of shape ``spatial``
    bins : int or sequence of float
        Number of equal bins, or their edges (increasing).
    range : (low, high), optional
        Range of equal bins; by default the ensemble's minimum and maximum.
    ndim : int
        Number of spatial dimensions.

    Returns
    -------
    xarray.DataArray, dims (sample, value)
        Density (counts / (pixels × bin width)), so it integrates to the fraction of a field's
        pixels inside the bins. Coordinates: ``value`` (bin centre) and ``width``; the edges are
        in ``attrs["edges"]``.
    """
    x = _ensemble(fields, ndim)
    x = x.reshape(x.shape[0], -1).double()
    if isinstance(bins, int | np.integer):
        if bins < 1:
            raise ValueError(f"bins must be a positive integer or a sequence of edges; got {bins}")
        if range is None:
            low, high = x.min().item(), x.max().item()
        elif np.ndim(range) == 1 and len(range) == 2:
            low, high = (float(v) for v in range)
        else:
            raise ValueError(f"range must be a (low, high) pair; got {range!r}")
        if not high > low:
            raise ValueError(f"range must satisfy low < high; got ({low}, {high})")
        edges = torch.linspace(low, high, int(bins) + 1, dtype=torch.float64, device=x.device)
    else:
        if range is not None:
            raise ValueError("range applies to a number of bins; bins already gives the edges")
        edges = torch.as_tensor(np.asarray(bins, dtype=np.float64), device=x.device)
        if edges.dim() != 1 or edges.numel() < 2 or not bool((edges.diff() > 0).all()):
            raise ValueError("bins: edges must be a 1D increasing sequence of at least 2 values")
    nbins = edges.numel() - 1
    inside = (x >= edges[0]) & (x <= edges[-1])
    index = (torch.bucketize(x, edges, right=True) - 1).clamp(0, nbins - 1)
    counts = x.new_zeros(x.shape[0], nbins).scatter_add_(1, index, inside.double())
    widths = edges.diff()
    density = counts / (x.shape[1] * widths)
    e = edges.cpu().numpy()
    return xr.DataArray(
        density.cpu().numpy(),
        dims=("sample", "value"),
        coords={"value": (e[1:] + e[:-1]) / 2, "width": ("value", np.diff(e))},
        name="pdf",
        attrs={"edges": e},
    )


def structure_functions(
    fields,
    orders: Sequence[int] = (1, 2, 3, 4, 5, 6),
    max_lag: int | None = None,
    ndim: int = 2,
    lags: Sequence[int] | None = None,
) -> xr.DataArray:
    """Structure functions along the axes: S_p(r) = ⟨|x(u + r e_a) − x(u)|^p⟩_u.

    Parameters
    ----------
    orders : sequence of int
        Orders p ≥ 1.
    max_lag : int, optional
        Largest lag r in pixels; default n_min/2 (periodic lags beyond repeat themselves).
        Every lag 1..max_lag is computed, unless ``lags`` names them.
    lags : sequence of int, optional
        The lags r, increasing, in 1..n_min − 1 (instead of ``max_lag``), e.g. log-spaced.

    Returns
    -------
    xarray.DataArray, dims (sample, order, axis, lag)
    """
    x = _ensemble(fields, ndim).double()
    orders = [orders] if isinstance(orders, int | np.integer) else list(orders)
    if not orders or not all(isinstance(p, int | np.integer) and p >= 1 for p in orders):
        raise ValueError(f"orders must be positive integers; got {orders}")
    nmin = min(x.shape[1:])
    if lags is None:
        max_lag = nmin // 2 if max_lag is None else max_lag
        if not isinstance(max_lag, int | np.integer) or not 1 <= max_lag < nmin:
            raise ValueError(f"max_lag must be in 1..{nmin - 1}; got {max_lag}")
        lags = range(1, max_lag + 1)
    elif max_lag is not None:
        raise ValueError("give max_lag or lags, not both")
    lags = [int(r) for r in lags]
    if not lags or not all(1 <= r < nmin for r in lags) or sorted(set(lags)) != lags:
        raise ValueError(f"lags must be increasing integers in 1..{nmin - 1}; got {lags}")
    out = x.new_empty(x.shape[0], len(orders), ndim, len(lags))
    space = tuple(range(1, ndim + 1))
    lowest_first = sorted(range(len(orders)), key=lambda i: orders[i])
    for a in range(ndim):
        for k, r in enumerate(lags):
            increment = (torch.roll(x, -r, dims=a + 1) - x).abs()
            power, degree = torch.ones_like(increment), 0
            for i in lowest_first:  # |δ|^p by successive products: ~4× faster than pow
                while degree < orders[i]:
                    power, degree = power * increment, degree + 1
                out[:, i, a, k] = power.mean(space)
    return xr.DataArray(
        out.cpu().numpy(),
        dims=("sample", "order", "axis", "lag"),
        coords={"order": orders, "axis": list(_AXIS_NAMES[ndim]), "lag": np.array(lags)},
        name="structure_functions",
    )


def _shell_masks(
    shape: tuple[int, int], ks: Sequence[float], width: float, device: torch.device
) -> dict[float, torch.Tensor]:
    """1_k for each k: the modes q of an FFT grid with | |q| − k | < width/2 (q in units of the
    fundamental), as float64 masks of ``shape``."""
    freqs = [torch.fft.fftfreq(m, 1 / m, device=device, dtype=torch.float64) for m in shape]
    radius = torch.sqrt(sum(g.square() for g in torch.meshgrid(*freqs, indexing="ij")))
    return {k: ((radius - k).abs() < width / 2).double() for k in ks}


def _check_triangles(triangles, n: int) -> list[tuple[float, float, float]]:
    triangles = [tuple(float(k) for k in t) for t in triangles]
    for t in triangles:
        a, b, c = sorted(t) if len(t) == 3 else (0, 0, 0)
        if a <= 0 or c > a + b or c >= n / 2:
            raise ValueError(f"triangles must be 3 closable sides in (0, {n // 2}); got {t}")
    return triangles


def bispectrum(
    fields, triangles: Sequence[tuple[float, float, float]], width: float = 1.0
) -> xr.DataArray:
    """Shell-averaged bispectrum of 2D fields at given triangles (k₁, k₂, k₃).

    B(k₁, k₂, k₃) = Σ_u Π_i I_{k_i}(u) / Σ_u Π_i J_{k_i}(u) with I_k = IDFT(x̂ 1_k)
    and J_k = IDFT(1_k), 1_k the indicator of the shell | |q| − k | < width/2 (q in units of
    the fundamental 2π/n): the mean of x̂(q₁) x̂(q₂) x̂(q₃) / N over the closed triangles
    q₁ + q₂ + q₃ = 0 with |q_i| in the shells (Scoccimarro, Phys. Rev. D 92, 083532 (2015)).
    With the convention of :func:`power_spectrum`, i.i.d. pixels of third cumulant κ₃ have
    B = κ₃ at every triangle. The mean of each field is removed first.

    Parameters
    ----------
    fields : array_like, shape (sample, y, x)
    triangles : sequence of (k₁, k₂, k₃)
        Side lengths in units of the fundamental; each triple must close (triangle inequality).
    width : float
        Shell width in fundamentals.

    Returns
    -------
    xarray.DataArray, dims (sample, triangle), coordinates k1, k2, k3 and ``count`` (the
    number of closed triangles of modes, Σ_u Π J_{k_i} · N²).
    """
    x = _ensemble(fields, 2).double()
    triangles = _check_triangles(triangles, min(x.shape[1:]))
    masks = _shell_masks(x.shape[1:], sorted({k for t in triangles for k in t}), width, x.device)
    x_hat = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True))
    filtered = {
        k: (torch.fft.ifft2(x_hat * mask).real, torch.fft.ifft2(mask).real)
        for k, mask in masks.items()
    }
    values, counts = [], []
    pixels = x.shape[1] * x.shape[2]
    for t in triangles:
        (i1, j1), (i2, j2), (i3, j3) = (filtered[k] for k in t)
        norm = (j1 * j2 * j3).sum()
        values.append((i1 * i2 * i3).sum(dim=(-2, -1)) / norm / pixels)
        counts.append(float(norm) * pixels**2)
    k1, k2, k3 = (np.array([t[i] for t in triangles]) for i in range(3))
    return xr.DataArray(
        torch.stack(values, dim=1).cpu().numpy(),
        dims=("sample", "triangle"),
        coords={
            "k1": ("triangle", k1),
            "k2": ("triangle", k2),
            "k3": ("triangle", k3),
            "count": ("triangle", np.round(counts).astype(np.int64)),
        },
        name="bispectrum",
        attrs={"k_units": "fundamentals 2π/n"},
    )


def shell_power(fields, ks: Sequence[float], width: float = 1.0) -> xr.DataArray:
    """Power of 2D fields in the shells of :func:`bispectrum`: P(k) = ⟨|x̂(q)|²⟩ / N over the
    modes q with | |q| − k | < width/2 (k in fundamentals), the convention of
    :func:`bispectrum` (i.i.d. pixels of variance σ² have P = σ²). The mean of each field is
    removed first. Dims (sample, k)."""
    x = _ensemble(fields, 2).double()
    ks = [float(k) for k in ks]
    if not all(0 < k < min(x.shape[1:]) / 2 for k in ks):
        raise ValueError(f"ks must lie in (0, {min(x.shape[1:]) // 2}); got {ks}")
    power = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs().square()
    masks = _shell_masks(x.shape[1:], ks, width, x.device)
    values = [(power * m).sum((-2, -1)) / m.sum() / m.numel() for m in masks.values()]
    return xr.DataArray(
        torch.stack(values, 1).cpu().numpy(),
        dims=("sample", "k"),
        coords={"k": np.array(ks)},
        name="shell_power",
        attrs={"k_units": "fundamentals 2π/n"},
    )


def coarse_field_variance(
    fields, levels: int, wavelet: str = "db4", mean: float = 0.0, ndim: int = 2
) -> xr.DataArray:
    """Mean square of each field's orthonormal coarse field about a given mean, per level.

    v_j = ⟨(x_j(u) − c_j)²⟩_u for j = 0..J, with x_j the coarse field after j steps of the
    orthonormal periodic wavelet transform (:func:`rgfield.wavelets.split`) and c_j the coarse
    field of the constant ``mean`` m (c_j = 2^{j·ndim/2} m, since the transform of x − m is
    computed). Averaged over an ensemble whose mean pixel value is m, v̄_j is the variance of x_j
    over samples and positions. In 2D x_j is 2^j times a local average over 2^j × 2^j blocks (up
    to the filter's shape), so the growth √(v̄_j / v̄_{j−1}) is 2^{1−η/2} for a critical field
    with anomalous dimension η (≈ 1.834 for the 2D Ising class, η = 1/4), 2 for a field with
    long-range order and 1 for white noise.

    Parameters
    ----------
    fields : array_like, shape (sample, *spatial), or one field of shape ``spatial``
    levels : int
        J ≥ 1; every side must be divisible by 2^J.
    wavelet : str
        A wavelet of :data:`rgfield.wavelets.WAVELETS`.
    mean : float
        The constant m subtracted before the transform (e.g. a reference ensemble's mean).
    ndim : int
        Number of spatial dimensions.

    Returns
    -------
    xarray.DataArray, dims (sample, level), level = 0..J (0: the fields themselves)
    """
    from rgfield.wavelets import max_levels, split

    x = _ensemble(fields, ndim).double() - float(mean)
    most = max_levels(x.shape[1:], "fields")
    if not isinstance(levels, int | np.integer) or not 1 <= levels <= most:
        raise ValueError(
            f"levels must be in 1..{most} for fields of shape {tuple(x.shape[1:])}; got {levels!r}"
        )
    space = tuple(range(1, ndim + 1))
    values = [x.square().mean(space)]
    for _ in range(levels):
        x, _details = split(x, wavelet, ndim)
        values.append(x.square().mean(space))
    return xr.DataArray(
        torch.stack(values, 1).cpu().numpy(),
        dims=("sample", "level"),
        coords={"level": np.arange(levels + 1)},
        name="coarse_field_variance",
        attrs={"wavelet": wavelet, "mean": float(mean)},
    )


def nearest_distance(fields, train, shifts: bool = True, ndim: int = 2) -> xr.DataArray:
    """Distance of each field to its nearest training field, relative to that of an unrelated
    field:

        d(x) = min_{t, s} ‖x − T_s t‖ / √(‖x − μ‖² + ⟨‖t − μ‖²⟩_t),

    over the training fields t and, with ``shifts``, all periodic translations T_s (a shifted
    copy is a copy), μ the training set's mean value. The denominator is E‖x − t‖² for a t
    drawn independently of x, so d is near 1 for a field unrelated to the training set whatever
    its own variance, and near 0 for a memorised one; held-out fields give the yardstick (a
    little below 1: the nearest of many). A generator that does not copy matches their
    distribution (the memorisation test of Kadkhodaie et al., arXiv:2310.02557). Computed
    from ‖x‖² + ‖t‖² − 2 max_s ⟨x, T_s t⟩ (centred), the cross-correlation by FFT.

    Returns
    -------
    xarray.DataArray, dims (sample,)
    """
    x = _ensemble(fields, ndim).double()
    t = _ensemble(train, ndim, name="train").double().to(x.device)
    if t.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"train: fields of shape {tuple(t.shape[1:])}; the fields' are {tuple(x.shape[1:])}"
        )
    space = tuple(range(1, ndim + 1))
    pixels = math.prod(x.shape[1:])
    mean = t.mean()
    x, t = x - mean, t - mean
    x_norm, t_norm = x.square().sum(space), t.square().sum(space)
    if not t_norm.mean() > 0:
        raise ValueError("train: the training fields are constant; no scale for a distance")
    unrelated = x_norm + t_norm.mean()
    if shifts:
        x_hat, t_hat = torch.fft.rfftn(x, dim=space), torch.fft.rfftn(t, dim=space).conj()
    pairs = max(1, 2**24 // pixels)  # (field, training field) maps in about 128 MiB
    t_chunk = min(len(t), pairs)
    x_chunk = max(1, pairs // t_chunk)
    best = []
    for i in range(0, len(x), x_chunk):
        nearest = torch.full_like(x_norm[i : i + x_chunk], math.inf)
        for k in range(0, len(t), t_chunk):
            if shifts:
                product = x_hat[i : i + x_chunk, None] * t_hat[None, k : k + t_chunk]
                maps = torch.fft.irfftn(product, s=x.shape[1:], dim=[d + 1 for d in space])
                overlap = maps.flatten(2).amax(-1)
            else:
                overlap = x[i : i + x_chunk].flatten(1) @ t[k : k + t_chunk].flatten(1).T
            squared = x_norm[i : i + x_chunk, None] + t_norm[None, k : k + t_chunk] - 2 * overlap
            nearest = torch.minimum(nearest, squared.amin(1))
        best.append(nearest.clamp(min=0.0))
    distance = (torch.cat(best) / unrelated).sqrt()
    return xr.DataArray(
        distance.cpu().numpy(),
        dims=("sample",),
        name="nearest_distance",
        attrs={"shifts": int(shifts), "units": "distance of an unrelated field"},
    )


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov–Smirnov statistic of all values, normalised: D √(n m / (n + m)).

    D = sup_t |F_a(t) − F_b(t)| over the pooled values of two ensembles. The normalisation
    makes D of two samples of one distribution O(1) whatever their sizes, so the D of a
    generated ensemble against a reference can be set beside the D of two halves of the
    reference. (Pixels within a field are correlated, so Kolmogorov's p-values do not apply.)
    """
    x = np.sort(as_tensor(a).double().reshape(-1).cpu().numpy())
    y = np.sort(as_tensor(b).double().reshape(-1).cpu().numpy())
    if x.size == 0 or y.size == 0:
        raise ValueError("ks_statistic: both ensembles must be non-empty")
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    return float(np.abs(cdf_x - cdf_y).max() * np.sqrt(x.size * y.size / (x.size + y.size)))


def jackknife(values, estimator, blocks: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Blocked jackknife estimate and standard error of ``estimator(values)``.

    The samples (first axis) are cut into ``blocks`` contiguous blocks; θ_i is the estimate
    without block i, and the error is √((B − 1)/B Σ_i (θ_i − θ̄)²) (Efron & Stein; blocks
    longer than the autocorrelation time make it valid for correlated samples). The estimate
    returned is the estimator on all samples.
    """
    values = np.asarray(values)
    n = values.shape[0] if values.ndim else 0
    if n < 2:
        raise ValueError(f"values: the jackknife needs at least 2 samples; got {n}")
    blocks = int(blocks)
    if not 2 <= blocks <= n:
        raise ValueError(f"blocks must be in 2..{n} (the number of samples); got {blocks}")
    edges = np.linspace(0, n, blocks + 1).astype(int)
    keep = np.ones(n, dtype=bool)
    partial = []
    for b in range(blocks):
        keep[:] = True
        keep[edges[b] : edges[b + 1]] = False
        partial.append(np.asarray(estimator(values[keep]), dtype=np.float64))
    partial = np.array(partial)
    error = np.sqrt((blocks - 1) / blocks * ((partial - partial.mean(0)) ** 2).sum(0))
    return np.asarray(estimator(values), dtype=np.float64), error


def phi4_observables(fields, model=None, blocks: int = 20) -> xr.Dataset:
    """Standard observables of a lattice scalar field ensemble, with blocked-jackknife errors.

    With V sites and M = Σ_x φ_x / V per configuration:

    * ``abs_magnetization`` ⟨|M|⟩;
    * ``susceptibility`` χ = V (⟨M²⟩ − ⟨|M|⟩²);
    * ``binder_cumulant`` U₄ = 1 − ⟨M⁴⟩ / (3 ⟨M²⟩²) (2/3 when ordered, 0 for a Gaussian);
    * ``correlation_length`` ξ₂ = √(G̃(0)/G̃(k₁) − 1) / (2 sin(π/L)), G̃(k) = ⟨|φ̂(k)|²⟩/V and
      k₁ = 2π/L (both axes averaged): the second-moment correlation length;
    * ``energy_density`` ⟨E⟩/V when the ``model`` (with an ``energy`` method) is given.

    Samples are taken in their order, so the jackknife blocks also absorb autocorrelation.

    Returns
    -------
    xarray.Dataset with variables ``value`` and ``error`` along dim ``observable``.
    """
    x = _ensemble(fields, 2).double()
    size = x.shape[-1]
    if x.shape[-2] != size:
        raise ValueError(f"fields must be square lattices; got shape {tuple(x.shape[1:])}")
    volume = size * size
    m = x.mean((-1, -2))
    fx = torch.fft.fft2(x)
    g0 = fx[:, 0, 0].abs().square() / volume
    g1 = 0.5 * (fx[:, 0, 1].abs().square() + fx[:, 1, 0].abs().square()) / volume
    columns = [m.abs(), m.square(), m.pow(4), g0, g1]
    names = ["abs_magnetization", "susceptibility", "binder_cumulant", "correlation_length"]
    if model is not None:
        columns.append(model.energy(x) / volume)
        names.append("energy_density")
    table = torch.stack(columns, 1).cpu().numpy()

    def estimate(t: np.ndarray) -> np.ndarray:
        absm, m2, m4, g0m, g1m = t[:, :5].mean(0)
        ratio = max(g0m / g1m - 1.0, 0.0)
        out = [
            absm,
            volume * (m2 - absm**2),
            1 - m4 / (3 * m2**2),
            np.sqrt(ratio) / (2 * np.sin(np.pi / size)),
        ]
        if t.shape[1] > 5:
            out.append(t[:, 5].mean())
        return np.array(out)

    value, error = jackknife(table, estimate, blocks=min(blocks, table.shape[0]))
    return xr.Dataset(
        {"value": ("observable", value), "error": ("observable", error)},
        coords={"observable": names},
        attrs={
            "size": size,
            "samples": table.shape[0],
            "jackknife_blocks": min(blocks, table.shape[0]),
        },
    )
