"""Benchmark and acceptance run of the cosmic-web simulator (issue 6).

1. Wall time of a 128³ 2LPT box (Gaussian initial field, displacements, CIC deposit), stage by
   stage, against one 128³ real FFT and a numpy ``np.add.at`` CIC deposit in the same process.
2. Physics: the large-scale spectrum of evolved densities against D₁² times the spectrum of
   the same realisation's linear field (CIC window included), and the reduced skewness
   S₃ = ⟨δ³⟩/⟨δ²⟩² of top-hat-smoothed densities against tree-level perturbation theory
   (34/7 − γ exact, 4 − γ Zel'dovich, γ = −d ln σ²/d ln R); a figure of slabs of log(1 + δ).

Run: ``python benchmarks/bench_cosmic.py``; writes the ``cosmic`` section of docs/benchmarks.md
and docs/figures/cosmic_slabs.png.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _report import median_time, write_section  # noqa: E402

from rgfield.fields import cosmic  # noqa: E402

FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "cosmic_slabs.png"
SPECTRUM = cosmic.EisensteinHu()
SIZE, BOX = 128, 512.0


def numpy_cic(positions: np.ndarray, size: int) -> np.ndarray:
    """Reference deposit: the same CIC weights accumulated by ``np.add.at``."""
    x = positions.reshape(3, -1)
    base = np.floor(x)
    frac = x - base
    base = base.astype(np.int64)
    mass = np.zeros((size,) * 3)
    for corner in itertools.product((0, 1), repeat=3):
        c = np.array(corner)[:, None]
        index = tuple((base + c) % size)
        weight = np.where(c == 1, frac, 1 - frac).prod(axis=0)
        np.add.at(mass, index, weight)
    return mass


def timings() -> list[str]:
    linear = cosmic.linear_density(SPECTRUM, SIZE, BOX, seed=0)
    grid = torch.stack(
        torch.meshgrid(*[torch.arange(SIZE, dtype=torch.float64)] * 3, indexing="ij")
    )[None]
    psi1, psi2 = cosmic.lpt_displacements(linear)
    positions = grid + psi1 + cosmic.second_order_growth(0.0) * psi2
    stages = {
        "one real FFT 128³ (rfftn, float64) — reference": lambda: torch.fft.rfftn(linear[0]),
        "Gaussian linear field": lambda: cosmic.linear_density(SPECTRUM, SIZE, BOX, seed=0),
        "Zel'dovich displacement ψ₁": lambda: cosmic.lpt_displacements(linear, order=1),
        "2LPT displacements ψ₁, ψ₂": lambda: cosmic.lpt_displacements(linear, order=2),
        "CIC deposit of 128³ particles (numba, CPU default)": lambda: cosmic.cic_deposit(
            positions, (SIZE,) * 3
        ),
        "CIC deposit (torch index_add_, the GPU path)": lambda: cosmic.cic_deposit(
            positions, (SIZE,) * 3, backend="torch"
        ),
        "CIC deposit, numpy np.add.at — reference": lambda: numpy_cic(positions[0].numpy(), SIZE),
        "whole 2LPT box (field + displacements + deposit)": lambda: cosmic.evolve(
            cosmic.linear_density(SPECTRUM, SIZE, BOX, seed=0)
        ),
    }
    seconds = {name: median_time(fn, repeats=5, warmup=1) for name, fn in stages.items()}
    fft = seconds["one real FFT 128³ (rfftn, float64) — reference"]
    numpy_deposit = seconds["CIC deposit, numpy np.add.at — reference"]
    rows = [
        f"| {name} | {1e3 * s:.0f} | {s / fft:.0f} |"
        + (f" {numpy_deposit / s:.1f}× numpy |" if name.startswith("CIC deposit") else " |")
        for name, s in seconds.items()
    ]
    return [
        f"128³ particles and grid, box {BOX:g} Mpc/h, Eisenstein–Hu spectrum, float64, CPU:",
        "",
        "| stage | median ms | in units of one FFT | note |",
        "|---|---:|---:|---|",
        *rows,
    ]


def _shell_ratios(evolved: np.ndarray, linear: np.ndarray, d1: float, shells: int) -> list:
    freq = np.fft.fftfreq(SIZE)
    grid = np.meshgrid(*[freq] * 3, indexing="ij")
    window = np.prod([np.sinc(g) ** 2 for g in grid], axis=0)
    label = np.round(np.sqrt(sum(g**2 for g in grid)) * SIZE).astype(int)
    power = np.abs(np.fft.fftn(evolved)) ** 2
    reference = np.abs(np.fft.fftn(linear)) ** 2 * d1**2 * window**2
    return [power[label == s].sum() / reference[label == s].sum() for s in range(1, shells + 1)]


def growth_check() -> list[str]:
    linear = cosmic.linear_density(SPECTRUM, SIZE, BOX, seed=1)
    rows = []
    for redshift, order in itertools.product((0.0, 1.0), (1, 2)):
        evolved = cosmic.evolve(linear, redshift, order=order)[0].numpy()
        ratios = _shell_ratios(evolved, linear[0].numpy(), cosmic.growth_factor(redshift), 6)
        name = "2LPT" if order == 2 else "Zel'dovich"
        rows.append(f"| {redshift:g} | {name} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")
    k = [f"{2 * math.pi * s / BOX:.3f}" for s in range(1, 7)]
    return [
        "P_evolved(k) / (D₁² P_linear(k) W_CIC(k)²) per shell, same realisation (seed 1):",
        "",
        "| z | dynamics | " + " | ".join(f"k = {v}" for v in k) + " |",
        "|---|---|" + "---:|" * 6,
        *rows,
    ]


def skewness_check(boxes: int = 4) -> list[str]:
    freq = np.fft.fftfreq(SIZE) * SIZE * 2 * np.pi / BOX
    k = np.sqrt(sum(g**2 for g in np.meshgrid(freq, freq, freq, indexing="ij")))
    rows = []
    for radius in (10.0, 20.0):
        x = np.maximum(k * radius, 1e-12)
        window = np.where(x > 1e-3, 3 * (np.sin(x) - x * np.cos(x)) / x**3, 1.0)
        gamma = (
            -2
            * math.log(
                cosmic.sigma_tophat(SPECTRUM, radius * 1.01) / cosmic.sigma_tophat(SPECTRUM, radius)
            )
            / math.log(1.01)
        )
        s3 = {1: [], 2: []}
        for seed in range(boxes):
            linear = cosmic.linear_density(SPECTRUM, SIZE, BOX, seed=10 + seed)
            for order in (1, 2):
                density = cosmic.evolve(linear, 0.0, order=order)[0].numpy()
                smooth = np.fft.ifftn(np.fft.fftn(density) * window).real
                s3[order].append((smooth**3).mean() / (smooth**2).mean() ** 2)
        sigma = cosmic.sigma_tophat(SPECTRUM, radius)
        for order, theory in ((1, 4 - gamma), (2, 34 / 7 - gamma)):
            values = np.array(s3[order])
            error = values.std(ddof=1) / math.sqrt(boxes)
            name = "2LPT" if order == 2 else "Zel'dovich"
            rows.append(
                f"| {radius:g} | {sigma:.2f} | {name} | {values.mean():.2f} ± {error:.2f} |"
                f" {theory:.2f} |"
            )
    return [
        f"Reduced skewness S₃ of top-hat-smoothed densities at z = 0 ({boxes} boxes):",
        "",
        "| R (Mpc/h) | σ_lin(R) | dynamics | S₃ measured | tree-level theory |",
        "|---:|---:|---|---:|---:|",
        *rows,
    ]


def figure() -> None:
    linear = cosmic.linear_density(SPECTRUM, SIZE, BOX, seed=2)
    panels = {
        "Zel'dovich": cosmic.evolve(linear, 0.0, order=1),
        "2LPT": cosmic.evolve(linear, 0.0, order=2),
        "log-normal (same P_lin)": cosmic.lognormal_density(SPECTRUM, SIZE, BOX, seed=2),
    }
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    for ax, (name, delta) in zip(axes, panels.items(), strict=True):
        image = cosmic.slab_log_density(delta, 16)[0].numpy()
        ax.imshow(image, cmap="magma", vmin=-2, vmax=3, extent=(0, BOX, 0, BOX))
        ax.set(title=f"{name}: log(1+δ), 64 Mpc/h slab", xlabel="Mpc/h")
    fig.tight_layout()
    FIGURE.parent.mkdir(exist_ok=True)
    fig.savefig(FIGURE, dpi=100)


def main() -> None:
    lines = [
        *timings(),
        "",
        *growth_check(),
        "",
        *skewness_check(),
        "",
        "Figure: docs/figures/cosmic_slabs.png.",
    ]
    figure()
    write_section("cosmic", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
