"""Benchmark of the scattering-covariance feature family against the potential and quadratic ones.

1. Per conditional (the finest, j = 1, whose details are the largest), 64 fields of 128² and
   256²: the features Φ, the exact Laplacians ΔΦ, the score-matching sums H = Σ∇Φ∇Φᵀ and
   b = ΣΔΦ in the fit's memory-bounded mini-batches (``rgfield.rg.scorematching``), and U, ∇U
   for a fixed θ and fixed coarse fields as a chain evaluates them
   (``ExponentialModel.given``: one step of 64 chains), for each family alone; wall time
   (median of 3 after a warm-up call, or the one call where it takes over 2 s) and the peak
   of the process's resident memory above its level before the call (Linux
   ``/proc/self/clear_refs``). Timings do not depend on the fields' values, so the fields
   are Gaussian with a power-law spectrum; the ratio is to the potential + quadratic
   families, the model ``rgfield fit`` uses for φ⁴ and turbulence.
2. Whole models on cosmic-web slabs (2LPT, log-density, ``CosmicConfig(size, box=2·size)``),
   ``rgfield fit``'s cosmic default until 2026-12-07 (quadratic + scatcov, curvature floor
   0.1) and the potential + quadratic model: fit time per scale, then ``rgfield.rg.mixing`` from the
   training fields' own details (equilibrium starts): per-scale τ_int (the larger of the
   energy's and the summed details') and the cost per effectively independent field,
   Σ_j 2 τ_j × (seconds per step of scale j) / chains, as in bench_rg.py. τ_j is set beside
   the sizes at fixed j (distance from the finest scale).

Run: ``python benchmarks/bench_scatcov.py [--sizes 128 256] [--model-sizes 32 64 128]
[--train 128] [--steps 400]``; writes the ``scatcov`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _report import wall_times, write_section

from rgfield.energies import ExponentialModel, FeatureFamily
from rgfield.fields import cosmic
from rgfield.fields.gaussian import gaussian_field
from rgfield.rg import HierarchicalModel, mixing
from rgfield.rg.scorematching import accumulate, batch_size, new_families
from rgfield.wavelets import decompose

BATCH = 64
FAMILIES = {
    "potential": {"potential": {}},
    "quadratic": {"quadratic": {}},
    "scatcov (default)": {"scatcov": {}},
    "scatcov (within, modulus)": {"scatcov": {"within": True, "cross": "modulus"}},
}
MODELS = {
    "quadratic + scatcov, floor 0.1 (cosmic default)": {
        "features": ("quadratic", "scatcov"),
        "min_curvature": 0.1,
    },
    "potential + quadratic": {"features": ("potential", "quadratic")},
}
CLEAR_REFS = Path("/proc/self/clear_refs")


def resident_mb(key: str) -> float:
    """``VmRSS`` or ``VmHWM`` (the peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def peak_growth_mb(fn: Callable[[], object]) -> float | None:
    """The peak resident memory during ``fn()`` above the level before it (None where the
    kernel does not let a process reset its peak)."""
    gc.collect()
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return None
    before = resident_mb("VmRSS")
    fn()
    return resident_mb("VmHWM") - before


def timed_ms(fn: Callable[[], object]) -> float:
    """Wall time of ``fn()`` in ms: the median of 3 after a warm-up call, or the first call
    alone when it takes more than 2 s."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    return 1e3 * (first if first > 2 else statistics.median(wall_times(fn, 3, 0)))


def finest_conditional(size: int, power: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, c) of the j = 1 conditional of 64 Gaussian fields of size² with spectrum
    (k² + m²)^(−power), m = 2π / size (1.5: a k⁻³ spectrum; 1: a free field's), y normalised."""
    fields = gaussian_field(
        lambda ky, kx: (ky**2 + kx**2 + (2 * np.pi / size) ** 2) ** -power,
        (size, size),
        BATCH,
        seed=size,
        dtype=torch.float64,
    )
    pyramid = decompose(fields, 1, "db4")
    y = pyramid.details[0]
    return y / y.std(), pyramid.coarse(1)


def family_row(name: str, family: FeatureFamily, y: torch.Tensor, c: torch.Tensor) -> dict:
    """Times (ms) and peak memory (MB) of one family's kernels on the batch (y, c)."""
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(family.n_features, generator=generator, dtype=torch.float64) * 1e-2
    step = ExponentialModel([family], theta).given(c)  # what a chain evaluates
    batch = batch_size([family], y)
    kernels = {
        "values": lambda: family.values(y, c),
        "laplacians": lambda: family.laplacians(y, c),
        "sums": lambda: accumulate([family], y, c, batch),
        "energy": lambda: step(y),
    }
    row = {"name": name, "parameters": family.n_features, "batch": batch}
    for key, fn in kernels.items():
        row[key] = timed_ms(fn)
        row[key + "_mb"] = peak_growth_mb(fn)
    return row


def table_row(*cells: object) -> str:
    """One markdown table row."""
    return "| " + " | ".join(map(str, cells)) + " |"


def kernel_table(sizes: list[int]) -> list[str]:
    kernels = ("values", "laplacians", "sums", "energy")
    lines = [
        f"Per conditional j = 1, {BATCH} fields (details 3 × (L/2)²): ms (median of 3, or one"
        " call over 2 s) and the peak resident memory above the level before the call (MB; 0"
        " where the call fits in memory the allocator already held);"
        " ratio: to potential + quadratic. Score-matching sums in mini-batches within the fit's"
        " memory budget (fields per batch in brackets). The step: a chain's evaluation after"
        " its first, which makes the coarse maps' share once (not timed).",
        "",
        table_row(
            "L",
            "family",
            "parameters",
            "Φ",
            "ΔΦ",
            "H, b sums",
            "U, ∇U (one step)",
            "memory Φ / ΔΦ / sums / step",
        ),
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        y, c = finest_conditional(size)
        rows = []
        for name, spec in FAMILIES.items():
            (family,) = new_families(spec, y, c, "db4")
            row = family_row(name, family, y, c)
            rows.append(row)
            memory = " / ".join(
                "–" if row[k + "_mb"] is None else f"{max(row[k + '_mb'], 0):.0f}" for k in kernels
            )
            times = [f"{row[k]:.0f}" for k in kernels]
            times[2] += f" ({row['batch']})"
            lines.append(table_row(size, name, row["parameters"], *times, memory))
            print(lines[-1], flush=True)
        for row in rows[2:]:
            ratios = [f"{row[k] / (rows[0][k] + rows[1][k]):.1f}×" for k in kernels]
            lines.append(
                table_row(size, f"{row['name']} ÷ (potential + quadratic)", "–", *ratios, "")
            )
            print(lines[-1], flush=True)
    return lines


def slabs(size: int, samples: int, seed: int) -> torch.Tensor:
    """Log-density slabs of independent 2LPT boxes (box side 2·size Mpc/h)."""
    config = cosmic.CosmicConfig(size, box=2.0 * size)
    data = cosmic.simulate(config, samples, seed=seed, progress=False)
    return torch.as_tensor(data["log_density"].values)


def model_rows(sizes: list[int], train: int, steps: int) -> tuple[list[str], dict]:
    lines = [
        f"Cosmic-web slabs, {train} training slabs per size; τ_int per scale (finest first),"
        " cost per effectively independent field Σ_j 2 τ_j t_j / chains (t_j: seconds per MALA"
        f" step of the {train} chains at scale j); fit seconds per scale, finest first.",
        "",
        table_row(
            "model",
            "L",
            "parameters (j = 1)",
            "τ_int per scale",
            "ms per independent field",
            "fit s per scale",
        ),
        "|---|---:|---:|---|---:|---|",
    ]
    taus: dict[str, dict[int, np.ndarray]] = {name: {} for name in MODELS}
    for size in sizes:
        data = slabs(size, train, seed=size)
        for name, params in MODELS.items():
            model = HierarchicalModel(**params, progress=False).fit(data)
            fit = model.fit_report_["seconds"].values[1:][::-1]
            study = mixing(model, data, steps=steps, seed=size)
            tau = np.maximum(study["tau_energy"].values, study["tau_sum"].values)[::-1]
            seconds = study["seconds_per_step"].values[::-1]
            per_field = float((2 * tau * seconds).sum() / len(data))
            taus[name][size] = tau
            parameters = int(model.fit_report_["features"].values[-1])
            lines.append(
                f"| {name} | {size} | {parameters} | {' '.join(f'{t:.1f}' for t in tau)} |"
                f" {per_field * 1e3:.1f} | {' '.join(f'{s:.0f}' for s in fit)} |"
            )
            print(lines[-1], flush=True)
    return lines, taus


def growth_table(taus: dict[str, dict[int, np.ndarray]]) -> list[str]:
    """τ_j against L at fixed j, and the slope a of log τ_j = a log L + b."""
    lines = [
        "",
        "| model | j | τ_int at L = "
        + " / ".join(map(str, sorted(next(iter(taus.values())))))
        + " | slope a |",
        "|---|---:|---|---:|",
    ]
    for name, by_size in taus.items():
        sizes = sorted(by_size)
        depth = min(len(t) for t in by_size.values())
        for j in range(depth):
            values = [by_size[s][j] for s in sizes]
            slope = np.polyfit(np.log(sizes), np.log(values), 1)[0] if len(sizes) > 1 else np.nan
            lines.append(
                f"| {name} | {j + 1} | {' / '.join(f'{v:.1f}' for v in values)} | {slope:+.2f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--model-sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--train", type=int, default=128)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    start = time.perf_counter()
    lines = kernel_table(args.sizes)
    model_lines, taus = model_rows(args.model_sizes, args.train, args.steps)
    lines += ["", *model_lines, *growth_table(taus)]
    lines += ["", f"Whole run: {time.perf_counter() - start:.0f} s."]
    write_section("scatcov", "\n".join(lines))


if __name__ == "__main__":
    main()
