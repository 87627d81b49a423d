"""Benchmark of the sampler kernels of rgfield.mcmc and the φ⁴ kernels: time per step.

1. MALA and BlockMALA on a small RG-like conditional: 16 chains of 3 detail channels on a
   32 × 32 grid, float32, log p a sum of per-cell terms −½ y (Ay) − 0.1 y⁴ with
   Ay = y + 0.2 Σ_nn y (the nearest-neighbour quadratic and quartic potential families).
2. φ⁴ at β = 0.9, L = 64, 8 chains: HMC trajectories (10 leapfrog steps on
   ``Phi4.logdensity_and_grad``), Metropolis sweeps and Wolff steps (a sweep and 16 clusters)
   through ``kernel.step``, against the compiled sweep called directly for as many sweeps (the
   cost of the contract: a new array per step, the Info, one call per step).

Median of 7 timed runs of 20 steps after 2 warm-up runs, on the CPU. Run:
``python benchmarks/bench_mcmc.py [--no-write]``; writes docs/benchmarks.md (section mcmc).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _report import median_time, write_section

from rgfield.fields.lattice import Metropolis, Wolff, metropolis_sweeps
from rgfield.fields.phi4 import Phi4
from rgfield.mcmc import HMC, MALA, BlockMALA, Kernel

STEPS = 20


def rg_like(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell log-densities (chains, n, n) and ∇ log p of the RG-like conditional."""
    ay = y + 0.2 * sum(torch.roll(y, s, d) for s in (1, -1) for d in (-2, -1))
    return -(0.5 * y * ay + 0.1 * y**4).sum(1), -(ay + 0.4 * y**3)


def rg_like_total(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    density, grad = rg_like(y)
    return density.sum((-2, -1)), grad


def seconds_per_step(kernel: Kernel, position: torch.Tensor) -> float:
    generator = torch.Generator().manual_seed(0)
    state = kernel.init(position)

    def run() -> None:
        nonlocal state
        for _ in range(STEPS):
            state, _ = kernel.step(state, generator)

    return median_time(run) / STEPS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    y = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rows = [
        ("MALA, RG-like conditional (16 × 3 × 32², float32)", MALA(rg_like_total, 0.05), y),
        ("BlockMALA, same, 4 × 4 blocks", BlockMALA(rg_like, 0.05, block=4), y),
    ]
    model, size, chains = Phi4(0.9), 64, 8
    phi = torch.from_numpy(np.random.default_rng(0).standard_normal((chains, size, size)))
    rows += [
        (
            f"HMC, φ⁴ L = {size} ({chains} chains, 10 leapfrog steps)",
            HMC(model.logdensity_and_grad, step_size=0.1, n_leapfrog=10),
            phi,
        ),
        (f"φ⁴ Metropolis sweep, L = {size} ({chains} chains)", Metropolis(model, 1.0), phi),
        (
            f"φ⁴ Wolff step (sweep + 16 clusters), L = {size}",
            Wolff(model, 1.0, clusters=16),
            phi,
        ),
    ]
    lines = [
        "| kernel | ms per step | steps/s |",
        "|---|---:|---:|",
    ]
    for label, kernel, position in rows:
        seconds = seconds_per_step(kernel, position)
        lines.append(f"| {label} | {seconds * 1e3:.3f} | {1 / seconds:.1f} |")
        print(lines[-1], flush=True)

    fields = phi.numpy().copy()
    states = np.random.default_rng(2).integers(2**63, size=chains, dtype=np.uint64)
    direct = (
        median_time(lambda: metropolis_sweeps(model, fields, STEPS, np.ones(chains), states))
        / STEPS
    )
    contract = seconds_per_step(Metropolis(model, 1.0), phi)
    body = "\n".join(
        [
            "Median of 7 timed runs of 20 steps after 2 warm-up runs (CPU).",
            "",
            *lines,
            "",
            f"The compiled Metropolis sweep called directly for 20 sweeps at once: "
            f"{direct * 1e3:.3f} ms per sweep ({fields.size / direct:.2e} site updates/s);"
            f" through `Metropolis.step`, one call per sweep: {contract / direct:.2f}× that.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("mcmc", body)


if __name__ == "__main__":
    main()
