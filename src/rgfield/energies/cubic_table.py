"""A scalar function tabulated as cubic Hermite cells, evaluated pixel by pixel with its slope.

On cell i of a table of equal cells of width h on [lo, hi], v(lo + (i + t) h) = a_i + b_i t +
c_i t² + d_i t³ (t ∈ [0, 1]) and v'(x) = (b_i + 2 c_i t + 3 d_i t²) / h. :func:`evaluate`
returns, for fields x (B, N, M), the density Σ v(x(u)) over blocks of ``pool`` × ``pool``
pixels and the slope v'(x(u)) at every pixel; v = +∞ where x leaves [lo, hi] or is NaN (the
slope there is that of the nearest end, NaN for NaN).

On the CPU one compiled pass does it, in parallel over the rows of the batch; on any other
device, for an ``x`` that autograd follows (the microscopic energy's gradient, Hessian-vector
products), or with ``backend="torch"``, the same arithmetic runs as torch operations. Measured
for the potential family (docs/benchmarks.md, "Chain kernels"): the compiled pass replaces about ten
temporaries of the field's size per evaluation.

:func:`hermite` builds a table from v and v'; :func:`evaluate_bonds` evaluates a tabulated
stiffness Z on the bonds between neighbouring pixels, at their midpoints or their two ends
(the stiffness families), in one compiled pass on the CPU. The compiled passes share
:func:`cell_value_and_slope`, which lives here so that numba's on-disk cache of every pass
that inlines it is renewed when it changes.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import torch

__all__ = ["BOND_WEIGHTS", "evaluate", "evaluate_bonds", "hermite"]


@numba.njit(inline="always", cache=True, error_model="numpy")
def cell_value_and_slope(value, table, lo, h):  # pragma: no cover - compiled
    """v and v' of the table at ``value`` (no support test; NaN reads cell 0)."""
    cells = table.shape[0]
    u = (value - lo) / h
    u = min(u, cells) if u >= 0 else 0.0  # NaN → 0: a valid cell
    cell = min(int(u), cells - 1)
    t = u - cell
    a, b, c, d = table[cell, 0], table[cell, 1], table[cell, 2], table[cell, 3]
    return a + t * (b + t * (c + t * d)), (b + t * (2 * c + 3 * t * d)) / h


@numba.njit(parallel=True, cache=True, error_model="numpy")  # no fastmath: NaN tests below
def _evaluate_numba(x, table, lo, hi, h, pool, density, slope):  # pragma: no cover - compiled
    """x (R, N, M) → density (R, N/pool, M/pool) += v, slope (R, N, M) = v'; table (cells, 4)."""
    rows, n, m = x.shape
    blocks = n // pool
    for rk in numba.prange(rows * blocks):  # one density row each: no two write the same cell
        r, p = rk // blocks, rk % blocks
        for k in range(p * pool, (p + 1) * pool):
            for col in range(m):
                value = x[r, k, col]
                v, slope[r, k, col] = cell_value_and_slope(value, table, lo, h)
                if not (value >= lo and value <= hi):  # True for NaN
                    v = np.inf
                    if value != value:
                        slope[r, k, col] = value
                density[r, p, col // pool] += v


def _evaluate_torch(x, table, lo, hi, h, pool):
    cells = table.shape[0]
    u = ((x - lo) / h).clamp(0, cells)
    cell = u.long().clamp_(0, cells - 1)  # NaN casts to garbage: clamp both ends
    t = u - cell  # in [0, 1]; t = 1 only at the upper end of the support
    a, b, c, d = table[cell].unbind(-1)
    v = a + t * (b + t * (c + t * d))
    slope = (b + t * (2 * c + 3 * t * d)) / h
    v = torch.where((x < lo) | (x > hi) | x.isnan(), torch.inf, v)
    if pool > 1:
        n, m = x.shape[-2:]
        v = v.reshape(-1, n // pool, pool, m // pool, pool).sum((2, 4))
    return v, slope


def evaluate(
    x: torch.Tensor,
    table: torch.Tensor,
    lo: float,
    hi: float,
    pool: int = 1,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Density and slope of the tabulated function at ``x`` (see the module docstring).

    Parameters
    ----------
    x : torch.Tensor (B, N, M)
        Fields; N and M multiples of ``pool``.
    table : torch.Tensor (cells, 4)
        (a, b, c, d) per cell, in x's dtype and on its device.
    lo, hi : float
        The table's support; h = (hi − lo) / cells.
    pool : int
        Side of the blocks of pixels whose values are summed into one density cell.
    backend : {"auto", "numba", "torch"}
        ``"auto"``: the compiled pass for CPU tensors outside autograd, torch otherwise;
        ``"numba"`` forces the compiled pass (CPU only; its results carry no gradient).

    Returns
    -------
    density : torch.Tensor (B, N/pool, M/pool)
    slope : torch.Tensor (B, N, M)
    """
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'torch'; got {backend!r}")
    if x.dim() != 3 or x.shape[1] % pool or x.shape[2] % pool:
        raise ValueError(
            f"x: expected fields (B, N, M) with N and M multiples of pool = {pool};"
            f" got shape {tuple(x.shape)}"
        )
    h = (hi - lo) / table.shape[0]
    differentiated = x.requires_grad and torch.is_grad_enabled()
    if backend == "torch" or (backend == "auto" and (x.device.type != "cpu" or differentiated)):
        return _evaluate_torch(x, table, lo, hi, h, pool)
    if x.device.type != "cpu":
        raise ValueError(f"backend='numba' runs on CPU tensors; got a tensor on {x.device}")
    x = x.detach().contiguous()
    batch, n, m = x.shape
    density = x.new_zeros(batch, n // pool, m // pool)
    slope = torch.empty_like(x)
    # the limits and cell width in x's precision, as torch's arithmetic takes them
    lo, hi, h = (x.numpy().dtype.type(v) for v in (lo, hi, h))
    _evaluate_numba(
        x.numpy(), table.contiguous().numpy(), lo, hi, h, pool, density.numpy(), slope.numpy()
    )
    return density, slope


def hermite(
    function: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    lo: float,
    hi: float,
    cells: int,
) -> torch.Tensor:
    """Coefficients (a, b, c, d) (cells, 4) of the cubic Hermite interpolant of v on [lo, hi].

    ``function(t)`` returns v(t) and v'(t) at float64 nodes t. On cell i of width h,
    v(lo + (i + t) h) ≈ a + bt + ct² + dt³ with v and v' exact at both ends: a = v_i,
    b = h v'_i, c = 3(v_{i+1} − v_i) − h(2v'_i + v'_{i+1}), d = 2(v_i − v_{i+1}) +
    h(v'_i + v'_{i+1}). The error is at most h⁴ max|v⁗| / 384.
    """
    nodes = torch.linspace(lo, hi, cells + 1, dtype=torch.float64)
    v, slope = function(nodes)
    h = (hi - lo) / cells
    v0, v1, s0, s1 = v[:-1], v[1:], h * slope[:-1], h * slope[1:]
    return torch.stack([v0, s0, 3 * (v1 - v0) - 2 * s0 - s1, 2 * (v0 - v1) + s0 + s1], 1)


@numba.njit(inline="always", cache=True, error_model="numpy")
def _clamped_value_and_slope(value, table, lo, hi, h):  # pragma: no cover - compiled
    """Z and Z' at ``value`` clamped to [lo, hi]: Z constant beyond, Z' = 0 there."""
    z, slope = cell_value_and_slope(min(max(value, lo), hi), table, lo, h)
    if value < lo or value > hi:
        slope = 0.0
    return z, slope


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _bonds_numba(x, table, lo, hi, h, sites, density, grad):  # pragma: no cover - compiled
    """density (R, N, M) += ½ W d² of the bonds (p, p + e) starting at each pixel p (e one
    step along either axis, periodic; d the difference; W = Z at the midpoint, or with
    ``sites`` the mean of Z at the two ends, Z read at values clamped to [lo, hi]),
    grad (R, N, M) += ∇_x of their sum. Rows in parallel: a bond writes the gradient of both
    its ends, so only whole fields are split among threads."""
    rows, n, m = x.shape
    for r in numba.prange(rows):
        for i in range(n):
            for j in range(m):
                a = x[r, i, j]
                for axis in range(2):
                    qi, qj = ((i + 1) % n, j) if axis == 0 else (i, (j + 1) % m)
                    b = x[r, qi, qj]
                    d = b - a
                    if sites:
                        za, slope_a = _clamped_value_and_slope(a, table, lo, hi, h)
                        zb, slope_b = _clamped_value_and_slope(b, table, lo, hi, h)
                        z = 0.5 * (za + zb)
                        slope_a, slope_b = 0.5 * slope_a, 0.5 * slope_b
                    else:
                        z, slope_a = _clamped_value_and_slope(a + 0.5 * d, table, lo, hi, h)
                        slope_a = slope_b = 0.5 * slope_a
                    half_square = 0.5 * d * d
                    density[r, i, j] += z * half_square
                    grad[r, i, j] += slope_a * half_square - z * d
                    grad[r, qi, qj] += slope_b * half_square + z * d


def _clamped_torch(value, table, lo, hi, h):
    z, slope = _evaluate_torch(value.clamp(lo, hi), table, lo, hi, h, 1)
    return z, torch.where((value >= lo) & (value <= hi), slope, 0.0)


def _bonds_torch(x, table, lo, hi, h, sites):
    density, grad = torch.zeros_like(x), torch.zeros_like(x)
    z_site, slope_site = _clamped_torch(x, table, lo, hi, h) if sites else (None, None)
    for e in ((1, 0), (0, 1)):
        shift = (-e[0], -e[1]), (-2, -1)  # the bond's far end, stored at its start
        far = x.roll(*shift)
        d = far - x
        if sites:
            z = 0.5 * (z_site + z_site.roll(*shift))
            slope_a, slope_b = 0.5 * slope_site, 0.5 * slope_site.roll(*shift)
        else:
            z, slope = _clamped_torch(x + 0.5 * d, table, lo, hi, h)
            slope_a = slope_b = 0.5 * slope
        half_square = 0.5 * d.square()
        density = density + z * half_square
        grad = (
            grad
            + (slope_a * half_square - z * d)
            + (slope_b * half_square + z * d).roll(e, (-2, -1))
        )
    return density, grad


BOND_WEIGHTS = ("midpoints", "sites")
"""Where :func:`evaluate_bonds` reads Z: at each bond's midpoint, or at its two ends (mean)."""


def evaluate_bonds(
    x: torch.Tensor,
    table: torch.Tensor,
    lo: float,
    hi: float,
    backend: str = "auto",
    at: str = "midpoints",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel p of fields x (B, N, M): ½ Σ_e W d² over the bonds (p, p + e), e one step
    along each axis (periodic), d = x_{p+e} − x_p, and the gradient of their sum with respect
    to x. W = Z(m), m = (x_p + x_{p+e})/2, with ``at="midpoints"`` (the stiffness family,
    :class:`~rgfield.energies.FieldStiffness`); W = ½ (Z(x_p) + Z(x_{p+e})) with
    ``at="sites"`` (:class:`~rgfield.energies.SiteStiffness`). Z is tabulated in ``table``
    on [lo, hi] and read at values clamped to it (constant beyond, Z' = 0 there).
    ``backend`` as in :func:`evaluate`: one compiled pass on the CPU, torch operations on
    other devices or under autograd.
    """
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'torch'; got {backend!r}")
    if at not in BOND_WEIGHTS:
        raise ValueError(f"at must be one of {BOND_WEIGHTS}; got {at!r}")
    sites = at == "sites"
    h = (hi - lo) / table.shape[0]
    differentiated = x.requires_grad and torch.is_grad_enabled()
    if backend == "torch" or (backend == "auto" and (x.device.type != "cpu" or differentiated)):
        return _bonds_torch(x, table, lo, hi, h, sites)
    if x.device.type != "cpu":
        raise ValueError(f"backend='numba' runs on CPU tensors; got a tensor on {x.device}")
    x = x.detach().contiguous()
    density, grad = torch.zeros_like(x), torch.zeros_like(x)
    # the limits and cell width in x's precision, as torch's arithmetic takes them
    lo, hi, h = (x.numpy().dtype.type(v) for v in (lo, hi, h))
    _bonds_numba(
        x.numpy(), table.contiguous().numpy(), lo, hi, h, sites, density.numpy(), grad.numpy()
    )
    return density, grad
