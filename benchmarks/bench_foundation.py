"""Benchmark of the foundation: wavelet pyramid and isotropic power spectrum.

Decompose + reconstruct a 64×256×256 float32 batch at 6 levels (db4): rgfield against
PyWavelets (wavedec2/waverec2, periodization) and one torch.fft.fft2/ifft2 pair, in one process.
Then the isotropic power spectrum of the same batch against a plain numpy implementation.
Run: ``python benchmarks/bench_foundation.py``; it prints the table and writes it into
docs/benchmarks.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import pywt
import torch
from _report import median_time, wall_times, write_section

from rgfield import stats, wavelets

BATCH, N, LEVELS, WAVELET = 64, 256, 6, "db4"


def numpy_power_spectrum(x: np.ndarray) -> np.ndarray:
    """Reference: full-plane |FFT|²/N averaged in integer-wavenumber shells with np.bincount."""
    n = x.shape[-1]
    power = np.abs(np.fft.fft2(x)) ** 2 / n**2
    m = np.fft.fftfreq(n, 1 / n)
    shell = np.rint(np.hypot(*np.meshgrid(m, m, indexing="ij"))).astype(int).ravel()
    count = np.bincount(shell)[1 : n // 2 + 1]
    return np.stack([np.bincount(shell, p.ravel())[1 : n // 2 + 1] / count for p in power])


def main() -> None:
    x = np.random.default_rng(0).standard_normal((BATCH, N, N)).astype(np.float32)
    xt = torch.from_numpy(x)

    def rg(backend):
        def run():
            pyramid = wavelets.decompose(xt, LEVELS, WAVELET, backend=backend)
            return wavelets.reconstruct(pyramid, backend=backend)

        return run

    def pw():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "level too high" at 6 levels of db4
            c = pywt.wavedec2(x, WAVELET, mode="periodization", level=LEVELS)
            return pywt.waverec2(c, WAVELET, mode="periodization")

    # the implementations agree before they are timed
    assert np.abs(rg("auto")().numpy() - x).max() < 1e-4
    x64 = x[:2].astype(np.float64)
    ref = pywt.wavedec2(x64, WAVELET, mode="periodization", level=LEVELS)[0]
    assert np.abs(wavelets.decompose(x64, LEVELS).low.numpy() - ref).max() < 1e-10

    t_pywt = median_time(pw, repeats=5)
    numba_times = wall_times(rg("auto"), repeats=21)
    t_numba = float(np.median(numba_times))
    t_torch = median_time(rg("torch"), repeats=5)
    t_fft = median_time(lambda: torch.fft.ifft2(torch.fft.fft2(xt)), repeats=7)
    t_dec = median_time(lambda: wavelets.decompose(xt, LEVELS, WAVELET), repeats=15)

    ps_ref = numpy_power_spectrum(x)
    ps = stats.power_spectrum(xt)
    assert np.allclose(ps.values, ps_ref, rtol=1e-4)
    t_ps = median_time(lambda: stats.power_spectrum(xt), repeats=7)
    t_ps_np = median_time(lambda: numpy_power_spectrum(x), repeats=5)

    rows = [
        ("PyWavelets wavedec2 + waverec2", t_pywt, 1.0),
        ("rgfield decompose + reconstruct (numba, CPU default)", t_numba, t_pywt / t_numba),
        ("  of which decompose", t_dec, t_pywt / t_dec),
        ("rgfield decompose + reconstruct (torch backend)", t_torch, t_pywt / t_torch),
        ("torch.fft.fft2 + ifft2 (for scale)", t_fft, t_pywt / t_fft),
    ]
    table = [
        f"### Wavelet pyramid: {BATCH}×{N}×{N} float32, {LEVELS} levels, {WAVELET}",
        "",
        "| implementation | median time (ms) | speed-up vs PyWavelets |",
        "|---|---:|---:|",
        *[f"| {name} | {t * 1e3:.1f} | {r:.1f}× |" for name, t, r in rows],
        "",
        f"Round trip over {len(numba_times)} repeats: {min(numba_times) * 1e3:.1f}–"
        f"{max(numba_times) * 1e3:.1f} ms. Target ≥ 10× PyWavelets:"
        f" {'met' if t_pywt / t_numba >= 10 else 'NOT met'} ({t_pywt / t_numba:.1f}×).",
        "",
        f"### Isotropic power spectrum: {BATCH}×{N}×{N} float32",
        "",
        "| implementation | median time (ms) | speed-up |",
        "|---|---:|---:|",
        f"| numpy (fft2 + bincount per sample) | {t_ps_np * 1e3:.1f} | 1.0× |",
        f"| rgfield.stats.power_spectrum | {t_ps * 1e3:.1f} | {t_ps_np / t_ps:.1f}× |",
    ]
    body = "\n".join(table)
    print(body)
    write_section("foundation", body)


if __name__ == "__main__":
    main()
