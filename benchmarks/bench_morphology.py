"""Benchmark of the morphology statistics and of a whole N-ensemble comparison.

1. Minkowski functionals of 256 fields of 256² at 32 thresholds: rgfield (one pass over each
   field for all thresholds, numba) against scikit-image called per field and threshold
   (``perimeter_crofton(directions=4)``, ``euler_number`` with connectivity 1 and 2, and the
   area), on a subset of the fields scaled to 256, in the same process.
2. Peak counts of the same fields.
3. The whole comparison, ``summary`` and ``save_report``, of 4 ensembles (a reference and three
   others) × 256 Gaussian fields of 128², and each registered statistic's share (its time on
   one ensemble).

Run: ``python benchmarks/bench_morphology.py``; it prints the table and writes it into
docs/benchmarks.md (section morphology).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch
from _report import median_time, write_section
from skimage.measure import euler_number, perimeter_crofton

from rgfield import compare, morphology
from rgfield.fields.gaussian import gaussian_field

FIELDS, N, THRESHOLDS, SKIMAGE_FIELDS = 256, 256, 32, 8


def gaussian_fields(samples: int, size: int, ell: float, seed: int) -> np.ndarray:
    """Periodic Gaussian fields of spectrum ∝ exp(−k²ℓ²)."""
    return gaussian_field(
        lambda ky, kx: torch.exp(-(ky**2 + kx**2) * ell**2),
        (size, size),
        samples,
        seed=seed,
        dtype=torch.float64,
    ).numpy()


def skimage_functionals(fields: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """V₀, the Crofton perimeter and χ (mean of connectivities 1 and 2), per field and level."""
    out = np.empty((len(fields), 3, len(levels)))
    for s, field in enumerate(fields):
        for t, level in enumerate(levels):
            image = field > level
            out[s, 0, t] = image.sum()
            out[s, 1, t] = perimeter_crofton(image, directions=4)
            out[s, 2, t] = (euler_number(image, 1) + euler_number(image, 2)) / 2
    return out


def main() -> None:
    x = gaussian_fields(FIELDS, N, 4.0, seed=0)
    nu = np.linspace(-3, 3, THRESHOLDS)
    rows = []

    ours = median_time(lambda: morphology.minkowski_functionals(x, nu), repeats=3, warmup=1)
    subset = x[:SKIMAGE_FIELDS]
    levels = x.mean() + x.std() * nu
    start = time.perf_counter()
    skimage_functionals(subset, levels)
    reference = (time.perf_counter() - start) * FIELDS / SKIMAGE_FIELDS
    rows.append(
        f"| Minkowski V₀, V₁, V₂, {FIELDS} × {N}², {THRESHOLDS} thresholds | {ours:.2f} s"
        f" | {reference:.1f} s (from {SKIMAGE_FIELDS} fields) | {reference / ours:.0f}× |"
    )
    peaks = median_time(lambda: morphology.peak_counts(x), repeats=3, warmup=1)
    rows.append(f"| peak counts (maxima and minima), {FIELDS} × {N}² | {peaks:.2f} s | | |")

    ensembles = {
        f"ell={ell}": gaussian_fields(FIELDS, 128, ell, seed=i + 1)
        for i, ell in enumerate((3.0, 3.0, 3.3))
    }
    ref = gaussian_fields(FIELDS, 128, 3.0, seed=0)
    start = time.perf_counter()
    summary = compare.summary(ref, ensembles)
    summarised = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        compare.save_report(summary, f"{out}/report")
        reported = time.perf_counter() - start
    rows.append(
        f"| comparison of 4 ensembles × {FIELDS} × 128²: summary (every statistic) |"
        f" {summarised:.1f} s | | |"
    )
    rows.append(f"| same: report.md, summary.nc and figures | {reported:.1f} s | | |")
    fields = torch.from_numpy(ref)
    for name, statistic in compare.STATISTICS.items():
        start = time.perf_counter()
        statistic.bind(fields)(fields)
        rows.append(
            f"| — of which {name}, one ensemble | {time.perf_counter() - start:.2f} s | | |"
        )

    table = "\n".join(
        [
            "| workload | rgfield | scikit-image per field | speed-up |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    write_section("morphology", table)


if __name__ == "__main__":
    main()
