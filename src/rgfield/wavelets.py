"""Orthogonal periodic discrete wavelet transforms: one RG step and the full pyramid.

One RG step maps a field x_{j-1} of shape (..., N, N) to its coarse field x_j (..., N/2, N/2) and
its details x̄_j (..., 3, N/2, N/2). The transform is orthonormal (periodic boundaries, no
padding), so it preserves the Euclidean norm, its inverse is its adjoint, and densities
factorise exactly: p(x_0) = p_J(x_J) Π_j p̄_j(x̄_j | x_j).

Conventions (identical to PyWavelets with ``mode="periodization"``)
----------------------------------------------------------------------
Along one axis of even length N, with the decomposition filters h (low pass) and g (high pass)
of length L taken from PyWavelets::

    a[k] = Σ_m h[m] x[(2k + L/2 − m) mod N],    d[k] = Σ_m g[m] x[(2k + L/2 − m) mod N].

In ``ndim`` dimensions the 1D step is applied along every spatial axis. A channel is labelled by
one letter per spatial axis, in axis order (first spatial axis first): ``a`` for the low pass,
``d`` for the high pass. The coarse field is ``aa…a``; the details are the other 2^ndim − 1
channels, ordered as :func:`detail_labels` says:

* 1D: ``("d",)``;
* 2D: ``("da", "ad", "dd")`` — PyWavelets' (horizontal, vertical, diagonal) = (cH, cV, cD);
* 3D: ``("aad", "ada", "add", "daa", "dad", "dda", "ddd")`` — the key order of ``pywt.wavedecn``.

Kernels
-------
Analysis and synthesis are both the periodic two-channel polyphase filter
``out_o[k] = Σ_i Σ_q T[o, i, q] in_i[(k + q + q0) mod n]`` (analysis: inputs are the even/odd
samples, outputs the low/high bands; synthesis uses the adjoint taps). On CPU it runs as numba
kernels (a 2D step fused into one pass over the data, parallel over rows); on other devices, or
with ``backend="torch"``, as a torch ``einsum`` one axis at a time. Gradients use orthonormality:
the backward pass of a split is a merge, and vice versa.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import numba
import numpy as np
import pywt
import torch

from rgfield._validate import is_integer
from rgfield.io import as_tensor

__all__ = [
    "WAVELETS",
    "Pyramid",
    "PyramidScales",
    "decompose",
    "detail_labels",
    "estimate_scales",
    "max_levels",
    "merge",
    "reconstruct",
    "split",
]

WAVELETS: tuple[str, ...] = tuple(f"db{i}" for i in range(1, 11)) + tuple(
    f"sym{i}" for i in range(2, 11)
)
"""Wavelets rgfield supports: Daubechies db1–db10 and symlets sym2–sym10."""

_BACKENDS = ("auto", "numba", "torch")


def detail_labels(ndim: int) -> tuple[str, ...]:
    """Labels of the detail channels of an ``ndim``-dimensional step, in channel order.

    Each label has one letter per spatial axis (first axis first): ``a`` low pass, ``d`` high pass.
    """
    _check_ndim(ndim)
    if ndim == 2:  # PyWavelets' (cH, cV, cD) order
        return ("da", "ad", "dd")
    return tuple("".join(p) for p in itertools.product("ad", repeat=ndim))[1:]


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


@cache
def _polyphase_taps(wavelet: str) -> tuple[np.ndarray, int, np.ndarray, int]:
    """Polyphase tap tables of the analysis and synthesis steps.

    Analysis: y_c[k] = Σ_ρ Σ_q A[c, ρ, q − q_a] x_ρ[k + q], with x_ρ[p] = x[2p + ρ] and
    A[c, ρ, q] = f_c[L/2 − ρ − 2q] (f_0 = h, f_1 = g, zero outside 0..L−1).
    Synthesis is the adjoint: x_ρ[p] = Σ_c Σ_q S[ρ, c, q − q_s] y_c[p + q] with
    S[ρ, c, q] = A[c, ρ, −q].

    Returns (A, q_a, S, q_s): float64 arrays of shape (2, 2, Q) and the offset of their first tap.
    """
    if wavelet not in WAVELETS:
        raise ValueError(f"wavelet must be one of {', '.join(WAVELETS)}; got {wavelet!r}")
    w = pywt.Wavelet(wavelet)
    filters = np.array([w.dec_lo, w.dec_hi], dtype=np.float64)
    length = filters.shape[1]
    qs = np.arange(-length, length + 1)  # every shift, trimmed to the nonzero ones below
    analysis = np.zeros((2, 2, qs.size))
    for rho in (0, 1):
        m = length // 2 - rho - 2 * qs
        ok = (m >= 0) & (m < length)
        analysis[:, rho, ok] = filters[:, m[ok]]
    used = np.flatnonzero(np.abs(analysis).sum(axis=(0, 1)) > 0)
    analysis = analysis[:, :, used[0] : used[-1] + 1]
    q_a = int(qs[used[0]])
    synthesis = np.ascontiguousarray(analysis.transpose(1, 0, 2)[:, :, ::-1])
    q_s = -(q_a + analysis.shape[2] - 1)
    return analysis, q_a, synthesis, q_s


# --------------------------------------------------------------------------------------------
# numba kernels (CPU). The building block is the two-channel periodic polyphase filter
#     d_o[k] = Σ_q T[o, 0, q] s_0[(k + q + q0) mod n] + T[o, 1, q] s_1[(k + q + q0) mod n].
# Analysis: s = (even, odd) samples, d = (low, high) bands, T = A. Synthesis: s = (low, high),
# d = (even, odd) samples, T = S. A 2D step is fused: filter along y (vectorised along x), then
# along x, writing the final channel layout, so each level reads and writes the data once.
# --------------------------------------------------------------------------------------------


@numba.njit(fastmath=True, cache=True)
def _load_periodic(row, q0, interleaved, buf0, buf1):  # pragma: no cover - compiled
    """buf_i[t] = s_i[(t + q0) mod n] for the two sequences s_0, s_1 of a contiguous row of 2n.

    ``interleaved``: s_i = row[i::2] (samples); otherwise s_i = row[i n:(i + 1) n] (bands).
    The middle, where no index wraps, is a branch-free loop the compiler vectorises.
    """
    n = row.shape[0] // 2
    m = buf0.shape[0]
    lo = min(m, max(0, -q0))
    hi = max(lo, min(m, n - q0))
    for u in range(lo + m - hi):  # the two ends, where indices wrap
        t = u if u < lo else hi + u - lo
        j = (t + q0) % n
        buf0[t] = row[2 * j] if interleaved else row[j]
        buf1[t] = row[2 * j + 1] if interleaved else row[n + j]
    if interleaved:
        for t in range(lo, hi):
            buf0[t] = row[2 * (t + q0)]
            buf1[t] = row[2 * (t + q0) + 1]
    else:
        for t in range(lo, hi):
            buf0[t] = row[t + q0]
            buf1[t] = row[n + t + q0]


@numba.njit(fastmath=True, cache=True)
def _polyphase_filter(buf0, buf1, taps, d0, d1):  # pragma: no cover - compiled
    """d_o[k] = Σ_q T[o, 0, q] buf0[k + q] + T[o, 1, q] buf1[k + q], k < len(d0)."""
    d0[:] = 0.0
    d1[:] = 0.0
    for q in range(taps.shape[2]):
        c00, c01, c10, c11 = taps[0, 0, q], taps[0, 1, q], taps[1, 0, q], taps[1, 1, q]
        for k in range(d0.shape[0]):
            u = buf0[k + q]
            v = buf1[k + q]
            d0[k] += c00 * u + c01 * v
            d1[k] += c10 * u + c11 * v


@numba.njit(fastmath=True, cache=True)
def _store_interleaved(even, odd, row):  # pragma: no cover - compiled
    """row[2k] = even[k], row[2k + 1] = odd[k] (an explicit loop the compiler vectorises)."""
    for k in range(even.shape[0]):
        row[2 * k] = even[k]
        row[2 * k + 1] = odd[k]


@numba.njit(fastmath=True, cache=True)
def _accumulate_rows(s0, s1, c00, c01, c10, c11, d0, d1):  # pragma: no cover - compiled
    for m in range(s0.shape[0]):
        u = s0[m]
        v = s1[m]
        d0[m] += c00 * u + c01 * v
        d1[m] += c10 * u + c11 * v


# Parallel loops run over a few chunks of rows per thread (see _nchunks), so that work buffers
# are allocated once per chunk rather than once per row.


@numba.njit(cache=True)
def _chunk(index, nchunks, total):  # pragma: no cover - compiled
    """Bounds of chunk ``index`` of ``nchunks`` near-equal chunks of range(total)."""
    return index * total // nchunks, (index + 1) * total // nchunks


@numba.njit(parallel=True, fastmath=True, cache=True)
def _filter_rows_numba(x, taps, q0, out, analysis, nchunks):  # pragma: no cover - compiled
    """Along the last axis of (R, 2n) arrays: interleaved → blocked (analysis) or back."""
    rows, length = x.shape
    n = length // 2
    nchunks = min(rows, nchunks)
    for chunk in numba.prange(nchunks):
        buf0 = np.empty(n + taps.shape[2] - 1, dtype=x.dtype)
        buf1 = np.empty_like(buf0)
        even = np.empty(n, dtype=x.dtype)
        odd = np.empty(n, dtype=x.dtype)
        start, stop = _chunk(chunk, nchunks, rows)
        for r in range(start, stop):
            _load_periodic(x[r], q0, analysis, buf0, buf1)
            if analysis:
                _polyphase_filter(buf0, buf1, taps, out[r, :n], out[r, n:])
            else:
                _polyphase_filter(buf0, buf1, taps, even, odd)
                _store_interleaved(even, odd, out[r])


@numba.njit(parallel=True, fastmath=True, cache=True)
def _filter_cols_numba(x, taps, q0, out, analysis):  # pragma: no cover - compiled
    """Along axis 1 of (R, 2n, M) arrays, vectorised along M; layouts as the rows kernel."""
    rows, length, _ = x.shape
    n = length // 2
    for rk in numba.prange(rows * n):
        r, k = rk // n, rk % n
        d0 = out[r, k] if analysis else out[r, 2 * k]
        d1 = out[r, n + k] if analysis else out[r, 2 * k + 1]
        d0[:] = 0.0
        d1[:] = 0.0
        for q in range(taps.shape[2]):
            j = (k + q + q0) % n
            s0 = x[r, 2 * j] if analysis else x[r, j]
            s1 = x[r, 2 * j + 1] if analysis else x[r, n + j]
            c00, c01, c10, c11 = taps[0, 0, q], taps[0, 1, q], taps[1, 0, q], taps[1, 1, q]
            _accumulate_rows(s0, s1, c00, c01, c10, c11, d0, d1)


@numba.njit(fastmath=True, cache=True)
def _analysis_row(x, taps, q0, b, k, coarse, details, low, high, buf0, buf1):  # pragma: no cover
    """Row k of the four bands of field b; low, high, buf0, buf1 are work buffers."""
    nh = x.shape[1] // 2
    low[:] = 0.0
    high[:] = 0.0
    for q in range(taps.shape[2]):  # along y, vectorised along x
        j = (k + q + q0) % nh
        c00, c01, c10, c11 = taps[0, 0, q], taps[0, 1, q], taps[1, 0, q], taps[1, 1, q]
        _accumulate_rows(x[b, 2 * j], x[b, 2 * j + 1], c00, c01, c10, c11, low, high)
    # along x: the y-low row gives (coarse, cV), the y-high row (cH, cD)
    _load_periodic(low, q0, True, buf0, buf1)
    _polyphase_filter(buf0, buf1, taps, coarse[b, k], details[b, 1, k])
    _load_periodic(high, q0, True, buf0, buf1)
    _polyphase_filter(buf0, buf1, taps, details[b, 0, k], details[b, 2, k])


@numba.njit(parallel=True, fastmath=True, cache=True)
def _analysis_2d_numba(x, taps, q0, coarse, details, nchunks):  # pragma: no cover - compiled
    """(B, H, W) → coarse (B, H/2, W/2) and details (B, 3, H/2, W/2) (cH, cV, cD)."""
    batch, height, width = x.shape
    total = batch * (height // 2)
    nchunks = min(total, nchunks)
    for chunk in numba.prange(nchunks):
        low = np.empty(width, dtype=x.dtype)
        high = np.empty_like(low)
        buf0 = np.empty(width // 2 + taps.shape[2] - 1, dtype=x.dtype)
        buf1 = np.empty_like(buf0)
        start, stop = _chunk(chunk, nchunks, total)
        for t in range(start, stop):
            b, k = t // (height // 2), t % (height // 2)
            _analysis_row(x, taps, q0, b, k, coarse, details, low, high, buf0, buf1)


@numba.njit(fastmath=True, cache=True)
def _synthesis_rows(
    coarse, details, taps, q0, b, p, out, z, even, odd, buf0, buf1
):  # pragma: no cover
    """Rows 2p and 2p + 1 of output field b; z, even, odd, buf0, buf1 are work buffers."""
    nh, nw = coarse.shape[1], coarse.shape[2]
    z[:] = 0.0  # z[row parity] = (x-low band | x-high band)
    for q in range(taps.shape[2]):  # along y, vectorised along x
        j = (p + q + q0) % nh
        c00, c01, c10, c11 = taps[0, 0, q], taps[0, 1, q], taps[1, 0, q], taps[1, 1, q]
        # (coarse, cH) are the (low, high) y-bands of the x-low band, (cV, cD) of the x-high one
        lo0, lo1, hi0, hi1 = z[0, :nw], z[1, :nw], z[0, nw:], z[1, nw:]
        _accumulate_rows(coarse[b, j], details[b, 0, j], c00, c01, c10, c11, lo0, lo1)
        _accumulate_rows(details[b, 1, j], details[b, 2, j], c00, c01, c10, c11, hi0, hi1)
    for rho in range(2):  # along x
        _load_periodic(z[rho], q0, False, buf0, buf1)
        _polyphase_filter(buf0, buf1, taps, even, odd)
        _store_interleaved(even, odd, out[b, 2 * p + rho])


@numba.njit(parallel=True, fastmath=True, cache=True)
def _synthesis_2d_numba(coarse, details, taps, q0, out, nchunks):  # pragma: no cover - compiled
    """Inverse of :func:`_analysis_2d_numba`: (B, h, w), (B, 3, h, w) → (B, 2h, 2w)."""
    batch, nh, nw = coarse.shape
    nchunks = min(batch * nh, nchunks)
    for chunk in numba.prange(nchunks):
        z = np.empty((2, 2 * nw), dtype=coarse.dtype)
        even = np.empty(nw, dtype=coarse.dtype)
        odd = np.empty_like(even)
        buf0 = np.empty(nw + taps.shape[2] - 1, dtype=coarse.dtype)
        buf1 = np.empty_like(buf0)
        start, stop = _chunk(chunk, nchunks, batch * nh)
        for t in range(start, stop):
            _synthesis_rows(
                coarse, details, taps, q0, t // nh, t % nh, out, z, even, odd, buf0, buf1
            )


def _nchunks() -> int:
    """Parallel chunks per call: a few per numba thread, for load balance."""
    return 4 * numba.get_num_threads()


def _numba_analysis(x: torch.Tensor, taps: np.ndarray, q0: int, ndim: int):
    """(B, N1..Nd) → coarse (B, N/2..), details (B, 2^d − 1, N/2..) in rgfield's order."""
    batch, spatial = x.shape[0], x.shape[1:]
    if ndim == 1:
        out = torch.empty_like(x)
        _filter_rows_numba(x.numpy(), taps, q0, out.numpy(), True, _nchunks())
        half = spatial[0] // 2
        return out[:, :half].contiguous(), out[:, None, half:].contiguous()
    if ndim == 2:
        coarse = x.new_empty(batch, spatial[0] // 2, spatial[1] // 2)
        details = x.new_empty(batch, 3, spatial[0] // 2, spatial[1] // 2)
        _analysis_2d_numba(x.numpy(), taps, q0, coarse.numpy(), details.numpy(), _nchunks())
        return coarse, details
    # 3D: along z, then a 2D step on each (z band, z) plane
    (nz, height, width), planes = spatial, torch.empty_like(x)
    _filter_cols_numba(
        x.reshape(batch, nz, -1).numpy(), taps, q0, planes.reshape(batch, nz, -1).numpy(), True
    )
    low, high = _numba_analysis(planes.reshape(-1, height, width), taps, q0, 2)
    bands = torch.cat([low[:, None], high], 1).reshape(
        batch, 2, nz // 2, 4, height // 2, width // 2
    )
    detail_bands = [bands[:, b[0], :, _CHANNEL_2D[b[1:]]] for b in _channel_bits(3)[1:]]
    return bands[:, 0, :, 0].contiguous(), torch.stack(detail_bands, 1)


def _numba_synthesis(coarse: torch.Tensor, details: torch.Tensor, taps, q0: int, ndim: int):
    """Inverse of :func:`_numba_analysis`."""
    batch, half = coarse.shape[0], coarse.shape[1:]
    if ndim == 1:
        c = torch.cat([coarse, details[:, 0]], 1)
        out = torch.empty_like(c)
        _filter_rows_numba(c.numpy(), taps, q0, out.numpy(), False, _nchunks())
        return out
    if ndim == 2:
        out = coarse.new_empty(batch, 2 * half[0], 2 * half[1])
        c, d = coarse.contiguous().numpy(), details.contiguous().numpy()
        _synthesis_2d_numba(c, d, taps, q0, out.numpy(), _nchunks())
        return out
    nz, h, w = half
    planes = coarse.new_empty(batch, 2, nz, 4, h, w)
    for band, bits in zip([coarse, *details.unbind(1)], _channel_bits(3), strict=True):
        planes[:, bits[0], :, _CHANNEL_2D[bits[1:]]] = band
    planes = planes.reshape(-1, 4, h, w)
    planes = _numba_synthesis(planes[:, 0], planes[:, 1:], taps, q0, 2)
    out = torch.empty_like(planes).reshape(batch, 2 * nz, -1)
    _filter_cols_numba(planes.reshape(batch, 2 * nz, -1).numpy(), taps, q0, out.numpy(), False)
    return out.reshape(batch, 2 * nz, 2 * h, 2 * w)


# --------------------------------------------------------------------------------------------
# torch path (any device): the same filter along one axis at a time, as an einsum
# --------------------------------------------------------------------------------------------


def _filter_torch(x: torch.Tensor, taps: torch.Tensor, q0: int, analysis: bool) -> torch.Tensor:
    """Filter a (R, 2n, M) tensor along axis 1; layouts as :func:`_filter_rows_numba`."""
    rows, length, width = x.shape
    n, ntaps = length // 2, taps.shape[2]
    inp = x.reshape(rows, n, 2, width).transpose(1, 2) if analysis else x.reshape(rows, 2, n, width)
    index = (torch.arange(n + ntaps - 1, device=x.device) + q0) % n
    windows = inp.index_select(2, index).unfold(2, n, 1)  # (R, 2, Q, M, n)
    out = torch.einsum("oiq,riqmk->rokm", taps, windows)  # (R, 2, n, M)
    return (out if analysis else out.transpose(1, 2)).reshape(rows, length, width)


def _band_view(y: torch.Tensor, bits: tuple[int, ...]) -> torch.Tensor:
    """Channel `bits` of an interleaved (B, 2, n1, ..., 2, nd) tensor, as a (B, n1..nd) view."""
    return y[(slice(None),) + tuple(v for b in bits for v in (b, slice(None)))]


def _torch_analysis(x: torch.Tensor, taps: torch.Tensor, q0: int, ndim: int):
    y = x
    for axis in range(ndim):  # (B, [2, n]_0..[2, n]_{axis-1}, N_axis, rest)
        sizes = list(y.shape)
        lead = 1 + 2 * axis
        y = _filter_torch(y.reshape(math.prod(sizes[:lead]), sizes[lead], -1), taps, q0, True)
        y = y.reshape(sizes[:lead] + [2, sizes[lead] // 2] + sizes[lead + 1 :])
    bits = _channel_bits(ndim)
    details = torch.stack([_band_view(y, b) for b in bits[1:]], 1)
    return _band_view(y, bits[0]).contiguous(), details


def _torch_synthesis(coarse, details, taps: torch.Tensor, q0: int, ndim: int) -> torch.Tensor:
    y = coarse.new_empty([coarse.shape[0]] + [s for n in coarse.shape[1:] for s in (2, n)])
    for bits, band in zip(_channel_bits(ndim), [coarse, *details.unbind(1)], strict=True):
        _band_view(y, bits).copy_(band)
    for axis in reversed(range(ndim)):
        sizes = list(y.shape)
        lead = 1 + 2 * axis
        src = y.reshape(math.prod(sizes[:lead]), 2 * sizes[lead + 1], -1)
        y = _filter_torch(src, taps, q0, False)
        y = y.reshape(sizes[:lead] + [2 * sizes[lead + 1]] + sizes[lead + 2 :])
    return y


# --------------------------------------------------------------------------------------------
# One step along all spatial axes, with autograd
# --------------------------------------------------------------------------------------------


def _channel_bits(ndim: int) -> list[tuple[int, ...]]:
    """Per-axis band (0 = a, 1 = d) of each channel, coarse first, then :func:`detail_labels`."""
    labels = ("a" * ndim,) + detail_labels(ndim)
    return [tuple(int(ch == "d") for ch in label) for label in labels]


_CHANNEL_2D = {(0, 0): 0, (1, 0): 1, (0, 1): 2, (1, 1): 3}  # (band y, band x) → 2D channel


def _taps(wavelet: str, dtype: torch.dtype, analysis: bool) -> tuple[np.ndarray, int]:
    a, qa, s, qs = _polyphase_taps(wavelet)
    taps, q0 = (a, qa) if analysis else (s, qs)
    return taps.astype(np.float32 if dtype == torch.float32 else np.float64), q0


def _use_numba(x: torch.Tensor, backend: str) -> bool:
    if backend == "numba" and x.device.type != "cpu":
        raise ValueError(f"backend='numba' runs on CPU tensors; got a tensor on {x.device}")
    return x.device.type == "cpu" and backend in ("auto", "numba")


def _analysis(x: torch.Tensor, wavelet: str, ndim: int, backend: str):
    """(B, N..) → coarse (B, N/2..), details (B, 2^d − 1, N/2..)."""
    taps, q0 = _taps(wavelet, x.dtype, analysis=True)
    x = x.detach().contiguous()
    if _use_numba(x, backend):
        return _numba_analysis(x, taps, q0, ndim)
    return _torch_analysis(x, torch.as_tensor(taps, device=x.device), q0, ndim)


def _synthesis(coarse: torch.Tensor, details: torch.Tensor, wavelet: str, ndim: int, backend: str):
    """Inverse of :func:`_analysis`."""
    taps, q0 = _taps(wavelet, coarse.dtype, analysis=False)
    coarse, details = coarse.detach(), details.detach()
    if _use_numba(coarse, backend):
        return _numba_synthesis(coarse, details, taps, q0, ndim)
    return _torch_synthesis(coarse, details, torch.as_tensor(taps, device=coarse.device), q0, ndim)


class _Split(torch.autograd.Function):
    """Analysis step; backward is the synthesis step (the adjoint, by orthonormality)."""

    @staticmethod
    def forward(ctx, x, wavelet, ndim, backend):  # type: ignore[override]
        ctx.args = (wavelet, ndim, backend)
        return _analysis(x, wavelet, ndim, backend)

    @staticmethod
    def backward(ctx, grad_coarse, grad_details):  # type: ignore[override]
        return _Merge.apply(grad_coarse, grad_details, *ctx.args), None, None, None


class _Merge(torch.autograd.Function):
    """Synthesis step; backward is the analysis step."""

    @staticmethod
    def forward(ctx, coarse, details, wavelet, ndim, backend):  # type: ignore[override]
        ctx.args = (wavelet, ndim, backend)
        return _synthesis(coarse, details, wavelet, ndim, backend)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return *_Split.apply(grad, *ctx.args), None, None, None


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _check_ndim(ndim: int) -> None:
    if not is_integer(ndim) or ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3; got {ndim!r}")


def _check_backend(backend: str) -> None:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}; got {backend!r}")


def _as_real(x, name: str) -> torch.Tensor:
    x = as_tensor(x)
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name}: dtype {x.dtype} is not supported; use float32 or float64")
    return x


def _as_field(x, ndim: int, divisor: int, name: str = "x") -> torch.Tensor:
    """Validate a batch of ndim-dimensional fields whose sizes must be divisible by `divisor`."""
    _check_ndim(ndim)
    x = _as_real(x, name)
    if x.numel() == 0:
        raise ValueError(f"{name} is empty; got shape {tuple(x.shape)}")
    if x.dim() < ndim:
        raise ValueError(
            f"{name} must have at least {ndim} dimensions (..., *spatial);"
            f" got shape {tuple(x.shape)}"
        )
    for axis, size in enumerate(x.shape[-ndim:]):
        if size % divisor:
            raise ValueError(
                f"{name}: spatial size {size} along axis {axis - ndim} is not divisible by"
                f" {divisor} (2**levels); crop or pad the field"
            )
    return x


def split(
    x, wavelet: str = "db4", ndim: int = 2, *, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One RG step: split fields into their coarse field and details.

    Parameters
    ----------
    x : array_like, shape (..., N_1, ..., N_ndim)
        Fields (numpy, torch or xarray); any leading batch dimensions. Each N_i must be even.
    wavelet : str
        One of :data:`WAVELETS` (``"db4"``: Daubechies with 4 vanishing moments).
    ndim : int
        Number of trailing spatial dimensions (1, 2 or 3).
    backend : {"auto", "numba", "torch"}
        ``"auto"`` uses the numba kernel on CPU and torch elsewhere.

    Returns
    -------
    coarse : torch.Tensor, shape (..., N_1/2, ..., N_ndim/2)
    details : torch.Tensor, shape (..., 2**ndim − 1, N_1/2, ..., N_ndim/2)
        Channels ordered as :func:`detail_labels` (2D: PyWavelets' cH, cV, cD).

    ``merge(*split(x))`` returns ``x`` and ``‖coarse‖² + ‖details‖² = ‖x‖²``. Differentiable.
    """
    _check_backend(backend)
    x = _as_field(x, ndim, 2)
    lead, spatial = x.shape[:-ndim], x.shape[-ndim:]
    coarse, details = _Split.apply(x.reshape(-1, *spatial), wavelet, ndim, backend)
    return coarse.reshape(*lead, *coarse.shape[1:]), details.reshape(*lead, *details.shape[1:])


def merge(coarse, details, wavelet: str = "db4", *, backend: str = "auto") -> torch.Tensor:
    """Inverse of :func:`split`: the finer field from its coarse field and details.

    Parameters
    ----------
    coarse : array_like, shape (..., n_1, ..., n_ndim)
    details : array_like, shape (..., 2**ndim − 1, n_1, ..., n_ndim)
    wavelet : str
        The wavelet used by :func:`split`. The number of spatial dimensions follows from the
        number of detail channels (1, 3 or 7), which the shapes determine uniquely.

    Returns
    -------
    torch.Tensor, shape (..., 2 n_1, ..., 2 n_ndim)
    """
    _check_backend(backend)
    coarse, details = _as_real(coarse, "coarse"), _as_real(details, "details")
    ndim = _merge_ndim(coarse.shape, details.shape)
    lead, spatial = coarse.shape[:-ndim], coarse.shape[-ndim:]
    details = details.to(coarse.dtype).reshape(-1, 2**ndim - 1, *spatial)
    y = _Merge.apply(coarse.reshape(-1, *spatial), details, wavelet, ndim, backend)
    return y.reshape(*lead, *y.shape[1:])


def _merge_ndim(coarse: torch.Size, details: torch.Size) -> int:
    """ndim such that details = (*lead, 2**ndim − 1, *spatial) and coarse = (*lead, *spatial)."""
    for d in (1, 2, 3):
        if (
            coarse.numel() > 0
            and len(coarse) >= d
            and details == (*coarse[:-d], 2**d - 1, *coarse[-d:])
        ):
            return d
    raise ValueError(
        "coarse and details do not form one RG step: expected coarse (..., *spatial) and details"
        f" (..., 2**ndim - 1, *spatial); got coarse {tuple(coarse)}, details {tuple(details)}"
    )


@dataclass
class Pyramid:
    """A field split into scales: ``x_0 ↔ (x_J, x̄_J, ..., x̄_1)``.

    Attributes
    ----------
    low : torch.Tensor, shape (..., *spatial / 2**J)
        The coarsest field x_J.
    details : list of torch.Tensor
        ``details[j - 1]`` is x̄_j, shape (..., 2**ndim − 1, *spatial / 2**j): finest first.
    wavelet : str
    ndim : int
    """

    low: torch.Tensor
    details: list[torch.Tensor]
    wavelet: str = "db4"
    ndim: int = 2

    @property
    def levels(self) -> int:
        """Number of RG steps J."""
        return len(self.details)

    def coarse(self, level: int) -> torch.Tensor:
        """The coarse field x_j at ``level`` j (0 = the original field, J = :attr:`low`)."""
        if not is_integer(level) or not 0 <= level <= self.levels:
            raise ValueError(f"level must be in 0..{self.levels}; got {level!r}")
        return reconstruct(replace(self, details=self.details[level:]))

    def normalize(self, scales: PyramidScales) -> Pyramid:
        """Divide every scale by its γ: x̄_j → x̄_j / γ_j, x_J → x_J / γ_J^low."""
        return self._rescale(scales, lambda v, g: v / g)

    def denormalize(self, scales: PyramidScales) -> Pyramid:
        """Inverse of :meth:`normalize`."""
        return self._rescale(scales, lambda v, g: v * g)

    def _rescale(self, scales: PyramidScales, op) -> Pyramid:
        if len(scales.details) != self.levels:
            raise ValueError(
                f"scales has {len(scales.details)} levels; the pyramid has {self.levels}"
            )
        low = op(self.low, scales.low.to(self.low))
        details = [op(d, g.to(d)) for d, g in zip(self.details, scales.details, strict=True)]
        return replace(self, low=low, details=details)


@dataclass
class PyramidScales:
    """Per-scale normalisation constants γ of a :class:`Pyramid`.

    ``details[j - 1]`` is a scalar, or of shape (2**ndim − 1, 1, ..., 1) for one γ per channel;
    ``low`` is a scalar. They enter a density as the constant Jacobian −Σ log γ per coefficient.
    """

    low: torch.Tensor
    details: list[torch.Tensor]


def estimate_scales(pyramid: Pyramid, per_channel: bool = False) -> PyramidScales:
    """Estimate γ from data so that every normalised scale has unit mean square.

    γ_j² = ⟨x̄_j²⟩ averaged over the batch and positions (and channels unless ``per_channel``);
    γ_low² = ⟨x_J²⟩. A root mean square rather than a standard deviation keeps the
    normalisation linear, so it commutes with :func:`merge`.
    """

    def rms(v: torch.Tensor, keep_channel: bool) -> torch.Tensor:
        if keep_channel:
            dims = [d for d in range(v.dim()) if d != v.dim() - pyramid.ndim - 1]
            return v.detach().square().mean(dim=dims).sqrt().reshape(-1, *([1] * pyramid.ndim))
        return v.detach().square().mean().sqrt()

    scales = PyramidScales(
        low=rms(pyramid.low, False), details=[rms(d, per_channel) for d in pyramid.details]
    )
    every = torch.cat([g.reshape(-1) for g in [scales.low, *scales.details]])
    # below ~100 rounding errors of the field's overall size, a "scale" is numerical noise
    coefficients = [pyramid.low, *pyramid.details]
    total = sum(c.detach().square().sum() for c in coefficients) / sum(
        c.numel() for c in coefficients
    )
    floor = 100 * torch.finfo(every.dtype).eps * total.sqrt()
    if not (torch.isfinite(every).all() and (every > floor).all()):
        raise ValueError(
            "pyramid: a scale is constant (numerically zero) or not finite; it cannot be normalised"
        )
    return scales


def max_levels(shape: Sequence[int], name: str = "x") -> int:
    """The largest J such that 2**J divides every size in ``shape`` (J RG steps are possible).

    Raises ``ValueError`` naming ``name`` when a size is odd (no step is possible).
    """
    sizes = [int(n) for n in shape]
    levels = min((n & -n).bit_length() - 1 for n in sizes) if sizes and min(sizes) > 0 else 0
    if levels == 0:
        raise ValueError(f"{name}: field size {tuple(sizes)} has an odd side; it cannot be split")
    return levels


def decompose(
    x, levels: int, wavelet: str = "db4", ndim: int = 2, *, backend: str = "auto"
) -> Pyramid:
    """Wavelet pyramid of fields: J = ``levels`` successive :func:`split` of the coarse field.

    Equal to ``pywt.wavedecn(x, wavelet, mode="periodization", level=levels)`` over the last
    ``ndim`` axes (2D: ``pywt.wavedec2``), with ``Pyramid.low`` = cA and ``Pyramid.details`` in
    reverse (finest first), each level's channels stacked in :func:`detail_labels` order.

    Parameters
    ----------
    x : array_like, shape (..., N_1, ..., N_ndim)
        Each N_i divisible by 2**levels.
    levels : int
        Number of RG steps J ≥ 1.

    Returns
    -------
    Pyramid
    """
    if not is_integer(levels) or levels < 1:
        raise ValueError(f"levels must be a positive integer; got {levels!r}")
    _check_backend(backend)
    _polyphase_taps(wavelet)  # validates the name before any work
    low = _as_field(x, ndim, 2**levels)
    details = []
    for _ in range(levels):
        low, d = split(low, wavelet, ndim, backend=backend)
        details.append(d)
    return Pyramid(low=low, details=details, wavelet=wavelet, ndim=ndim)


def reconstruct(pyramid: Pyramid, *, backend: str = "auto") -> torch.Tensor:
    """Inverse of :func:`decompose`: the finest field x_0 of a :class:`Pyramid`."""
    x = pyramid.low
    for d in reversed(pyramid.details):
        x = merge(x, d, pyramid.wavelet, backend=backend)
    return x
