"""Benchmark and acceptance run of the 2D turbulence simulator (issue 6).

1. Wall time of one IF-RK4 step at N = 128 and 256 for 1 and 4 flows in a batch.
2. One ``simulate`` run at 256² with ring forcing at k_f = 4 (the acceptance setting of
   docs/turbulence.md): wall time of spin-up and per stationary snapshot, the energy budget
   (mean dissipation over the stationary part against the injection ε) and the log–log slope
   of the mean energy spectrum over the enstrophy-cascade range; a figure of E(k) and the
   fluxes in docs/figures/turbulence_spectrum.png.

Run: ``python benchmarks/bench_turbulence.py``; writes the ``turbulence`` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _report import median_time, write_section  # noqa: E402

from rgfield.fields.turbulence import (  # noqa: E402
    Turbulence2D,
    TurbulenceConfig,
    energy_spectrum,
    fluxes,
    initial_vorticity,
    simulate,
)

FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "turbulence_spectrum.png"
FLOW = Turbulence2D(
    size=256,
    viscosity=0.0,
    hyperviscosity=3e-15,
    hyper_order=4,
    drag=0.0,
    hypodrag=0.5,
    forcing="ring",
    forcing_wavenumber=4,
    strength=0.1,
)
SLOPE_RANGES = [(8, 30), (10, 40), (12, 50)]


def step_times() -> list[str]:
    rows = []
    for size in (128, 256):
        flow = Turbulence2D(size=size, forcing_wavenumber=4)
        for flows in (1, 4):
            generator = torch.Generator().manual_seed(0)
            w_hat = initial_vorticity(flow, flows, generator)
            seconds = median_time(
                lambda f=flow, w=w_hat, g=generator: f.step(w, 1e-3, g), repeats=20
            )
            rows.append(
                f"| {size}² | {flows} | {1e3 * seconds:.1f} | {1e3 * seconds / flows:.1f} |"
            )
    return rows


def acceptance() -> list[str]:
    start = time.perf_counter()
    ds = simulate(TurbulenceConfig(FLOW, flows=2, block_time=5.0), 8, seed=0, progress=False)
    wall = time.perf_counter() - start
    a = ds.attrs
    stationary = ds.time > a["spin_up_time"]
    dissipation = ds["dissipation"].where(stationary, drop=True).values
    spectra = energy_spectrum(FLOW, ds["vorticity"].values)
    energy = spectra.sel(quantity="energy").mean("sample")
    k = energy.k.values
    slopes = []
    for lo, hi in SLOPE_RANGES:
        m = (k >= lo) & (k <= hi)
        slopes.append(np.polyfit(np.log(k[m]), np.log(energy.values[m]), 1)[0])
    flux = fluxes(FLOW, ds["vorticity"].values).mean("sample")
    figure(k, energy.values, flux)
    snapshot_steps = a["spacing"] / a["mean_dt"]
    per_step = wall / a["steps"]
    return [
        f"Flow: {FLOW.size}², ν = {FLOW.viscosity}, ν_h = {FLOW.hyperviscosity} (p ="
        f" {FLOW.hyper_order}), μ = {FLOW.drag}, α = {FLOW.hypodrag} (−Δ)⁻¹,"
        f" ring forcing at k_f = {FLOW.forcing_wavenumber},"
        f" ε = {FLOW.strength}; 2 flows, 8 snapshots, spin-up blocks of 5 time units, seed 0.",
        "",
        "| quantity | value |",
        "|---|---:|",
        f"| spin-up (stationary: {bool(a['stationary'])}) | {a['spin_up_time']:.0f} time units |",
        f"| τ_int energy / enstrophy | {a['tau_energy']:.2f} / {a['tau_enstrophy']:.2f} |",
        f"| snapshot spacing 2τ | {a['spacing']:.2f} time units ({snapshot_steps:.0f} steps) |",
        f"| steps in all, mean dt | {a['steps']} , {a['mean_dt']:.2e} |",
        f"| wall time in all (2 flows) | {wall:.0f} s |",
        f"| wall time per step (2 flows, incl. diagnostics) | {1e3 * per_step:.1f} ms |",
        "| wall time per stationary snapshot (2 flows in a batch, after spin-up) |"
        f" {snapshot_steps * per_step / a['flows']:.1f} s |",
        "| mean dissipation / injection ε (stationary part) |"
        f" {dissipation.mean() / FLOW.strength:.3f} |",
        *[
            f"| slope of E(k), k ∈ [{lo}, {hi}] | {s:.2f} |"
            for (lo, hi), s in zip(SLOPE_RANGES, slopes, strict=True)
        ],
    ]


def figure(k: np.ndarray, energy: np.ndarray, flux) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.loglog(k, energy, label="E(k), mean of 8 snapshots")
    ref = (k >= 8) & (k <= 50)
    left.loglog(k[ref], energy[ref][0] * (k[ref] / k[ref][0]) ** -3.0, "k--", label="k⁻³")
    left.set(xlabel="k", ylabel="E(k)", title="energy spectrum")
    left.legend()
    right.semilogx(k, flux.sel(quantity="energy") / FLOW.strength, label="Π_E / ε")
    eta = FLOW.strength * FLOW.forcing_wavenumber**2
    right.semilogx(k, flux.sel(quantity="enstrophy") / eta, label="Π_Z / (ε k_f²)")
    right.axhline(0, color="grey", lw=0.5)
    right.set(xlabel="k", title="spectral fluxes (advection)")
    right.legend()
    fig.tight_layout()
    FIGURE.parent.mkdir(exist_ok=True)
    fig.savefig(FIGURE, dpi=110)


def main() -> None:
    lines = [
        "IF-RK4 step (4 nonlinear evaluations, 2/3 dealiasing), float64, CPU:",
        "",
        "| grid | flows | ms per step | ms per flow-step |",
        "|---|---:|---:|---:|",
        *step_times(),
        "",
        *acceptance(),
        "",
        "Figure: docs/figures/turbulence_spectrum.png.",
    ]
    write_section("turbulence", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
