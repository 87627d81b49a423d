"""Benchmark of the φ⁴ samplers: throughput, and autocorrelation at the critical point.

1. Metropolis site updates per second per core (numba, parallel over chains) against a
   vectorised numpy checkerboard Metropolis in the same process; HMC trajectories per second.
2. At the measured β_c (data/phi4_binder.nc, λ = 1): τ_int of |M| and of the energy for the
   Metropolis, HMC and Wolff samplers at L = 16 … 128 (from a fixed-length pilot of the chains
   rgfield.fields.phi4.simulate runs, resumable when long), the dynamic exponent z of
   τ_int ∝ L^z, and the wall time per effectively independent sample,
   2 τ_int × (time per step) / chains, with the time per step timed again in each run.

Run: ``python benchmarks/bench_phi4.py [--sizes 16 32 64 128] [--local-sizes 16 32 64 128]``;
writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import time
from pathlib import Path

import numba
import numpy as np
import torch
import xarray as xr
from _report import machine, median_time, write_section

from rgfield.fields.lattice import metropolis_sweeps, new_rng_states
from rgfield.fields.phi4 import _BURN_IN, Phi4, Phi4Config, _Chains, simulate
from rgfield.mcmc import HMC, integrated_autocorrelation_time

ROOT = Path(__file__).resolve().parent.parent


def numpy_metropolis(model: Phi4, phi: np.ndarray, sweeps: int, step: float, rng) -> None:
    """Reference: checkerboard Metropolis vectorised over the sites of one colour."""
    size = phi.shape[-1]
    colour = (np.add.outer(np.arange(size), np.arange(size)) % 2).astype(bool)
    coeffs = model.coefficients
    for _ in range(sweeps):
        for mask in (~colour, colour):
            nn = sum(np.roll(phi, s, a) for a in (-1, -2) for s in (1, -1))
            new = phi + step * (2 * rng.random(phi.shape) - 1)
            dv = np.polyval(coeffs[::-1], new) - np.polyval(coeffs[::-1], phi)
            delta = model.beta * (new - phi) * (2 * (new + phi) - nn) + dv
            accept = mask & (rng.random(phi.shape) < np.exp(-np.maximum(delta, 0)))
            phi[accept] = new[accept]


def metropolis_rate(model: Phi4, phi: np.ndarray, threads: int, sweeps: int = 100) -> float:
    """Median numba Metropolis site updates per second per thread, on ``threads`` threads."""
    states, step = new_rng_states(len(phi), 0), np.full(len(phi), 1.0)
    default = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        seconds = median_time(lambda: metropolis_sweeps(model, phi, sweeps, step, states))
    finally:
        numba.set_num_threads(default)
    return sweeps * phi.size / seconds / threads


def throughput() -> list[str]:
    cores = numba.get_num_threads()
    model, size, chains = Phi4(0.9), 64, 2 * cores
    phi = np.random.default_rng(0).standard_normal((chains, size, size))
    rates = {threads: metropolis_rate(model, phi, threads) for threads in (1, cores)}
    ref_sweeps, rng = 5, np.random.default_rng(1)
    ref_seconds = median_time(lambda: numpy_metropolis(model, phi.copy(), ref_sweeps, 1.0, rng))
    ref_rate = ref_sweeps * phi.size / ref_seconds

    hmc_chains, trajectories = 8, 10
    kernel = HMC(model.logdensity_and_grad, step_size=0.1, n_leapfrog=10)
    generator = torch.Generator().manual_seed(0)
    state = kernel.init(torch.from_numpy(phi[:1].repeat(hmc_chains, 0)))

    def trajectories_run() -> None:
        nonlocal state
        for _ in range(trajectories):
            state, _ = kernel.step(state, generator)

    hmc_rate = trajectories * hmc_chains / median_time(trajectories_run)
    return [
        f"### Throughput (L = {size}, β = 0.9, CPU, {cores} cores)",
        "",
        "Median of 7 timed runs after 2 warm-up runs; rates per core are per thread in use.",
        "",
        "| sampler | rate | vs numpy reference |",
        "|---|---:|---:|",
        *[
            f"| Metropolis, numba ({chains} chains, {threads} thread{'s' * (threads > 1)})"
            f" | {rate:.2e} site updates/s per core | {rate / ref_rate:.0f}× |"
            for threads, rate in rates.items()
        ],
        f"| Metropolis, vectorised numpy checkerboard (1 core) | {ref_rate:.2e} site"
        " updates/s per core | 1× |",
        f"| HMC, torch ({hmc_chains} chains, 10 leapfrog steps) | {hmc_rate:.1f} trajectories/s"
        f" ({hmc_rate * 10 * size * size:.2e} site-gradients/s) | – |",
        "",
        "Target ≥ 5×10⁷ Metropolis site updates/s per core: "
        + ", ".join(
            f"{'met' if rate >= 5e7 else 'NOT met'} on {threads} core{'s' * (threads > 1)}"
            f" ({rate:.1e})"
            for threads, rate in rates.items()
        )
        + ".",
    ]


def critical_beta() -> float:
    with xr.open_dataset(ROOT / "data" / "phi4_binder.nc") as table:
        return float(table.crossing_beta.values[-1])


# Pilot lengths (steps), fixed: local samplers decorrelate M over ~10³–10⁵ steps at β_c, and a
# pilot that may stop early can stop before its first tunnelling event on a low τ_int. Where a
# run does not span 50 τ_int the estimate is reported as a lower one.
PILOT_STEPS = {"metropolis": 2**20, "hmc": 2**17, "wolff": 2**13}
CHAINS = 4
# HMC at L = 128 has τ_int(|M|) ≈ 1.7×10⁴ trajectories: 2 chains of 2²⁰ spanned their own
# estimate only 48 times; 2 chains of 2²¹ (≈ 3.8 hours here) span it 122 times.
LONGER = {("hmc", 128): (2, 2**21)}
# A pilot at L = 128 takes 10 minutes to hours: each (sampler, L, β) is measured once and kept
# here, so a new size adds a row and a changed length re-measures that row (--fresh measures
# everything again).
CACHE = ROOT / "benchmarks" / "results" / "phi4_pilots.json"
CHECKPOINT_SECONDS = 600.0


def pilot(beta: float, sampler: str, size: int, fresh: bool = False) -> dict:
    """One fixed-length pilot of the chains ``simulate`` runs (same seed, burn-in and tuning),
    cached: chains, steps, τ_int of (M, |M|, E) and the seconds per step of all chains.

    A long pilot is resumable: every CHECKPOINT_SECONDS of running, the chains and the series
    recorded so far are pickled next to the cache with the pilot's key, and a later run with
    the same key goes on from there.
    """
    key = f"{sampler} L={size} beta={beta:.10g}"
    chains, steps = LONGER.get((sampler, size), (CHAINS, PILOT_STEPS[sampler]))
    kept = read_cache().get(key, {})
    if not fresh and (kept.get("chains"), kept.get("steps")) == (chains, steps):
        return kept
    checkpoint = CACHE.with_name(f"phi4_pilot_{sampler}_L{size}_beta{beta:.10g}.pkl")
    resumed = resume(checkpoint, key, (chains, steps)) if not fresh else None
    if resumed is not None:
        state, done, head = resumed
        recorded = np.empty((steps, 3, chains))
        recorded[:done] = head
    else:
        state = _Chains(Phi4(beta), sampler, size, chains, seed=size, device="cpu")
        state.adapt(_BURN_IN)
        recorded, done = np.empty((steps, 3, chains)), 0
    saved = time.perf_counter()
    while done < steps:
        stop = min(steps, done + 2**12)
        state.record(recorded, done, stop)
        done = stop
        if done < steps and time.perf_counter() - saved > CHECKPOINT_SECONDS:
            content = pickle.dumps((key, (chains, steps), state, done, recorded[:done]))
            atomic_write(checkpoint, content)
            saved = time.perf_counter()
            print(f"  {key}: {done} / {steps} steps, checkpointed", flush=True)
    record = {
        "chains": chains,
        "steps": steps,
        "tau": [integrated_autocorrelation_time(recorded[:, k].T).tau for k in range(3)],
        "seconds_per_step": state.seconds / state.steps_run,
        "measured": f"{datetime.date.today()} on {machine()}"
        + (" (resumed from a checkpoint)" if resumed is not None else ""),
    }
    cache = read_cache()  # re-read: another run may have added rows meanwhile
    cache[key] = record
    atomic_write(CACHE, json.dumps(cache, indent=1, sort_keys=True).encode())
    checkpoint.unlink(missing_ok=True)
    return record


def read_cache() -> dict:
    return json.loads(CACHE.read_text()) if CACHE.exists() else {}


def resume(checkpoint: Path, key: str, length: tuple[int, int]) -> tuple | None:
    """(chains state, steps done, series so far) from a checkpoint of this pilot, or None."""
    if not checkpoint.exists():
        return None
    try:
        saved_key, saved_length, state, done, head = pickle.loads(checkpoint.read_bytes())
    except Exception as err:  # written by another version of the code: start afresh
        print(f"  ignoring unreadable checkpoint {checkpoint.name}: {err}", flush=True)
        return None
    if (saved_key, saved_length) != (key, length):
        print(f"  ignoring checkpoint {checkpoint.name} of another pilot", flush=True)
        return None
    print(f"  {key}: resuming at {done} / {length[1]} steps", flush=True)
    return state, done, head


def atomic_write(path: Path, content: bytes) -> None:
    """Write through a synced temporary file, so no interruption leaves a truncated file."""
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(".tmp")
    with open(partial, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    partial.replace(path)


def spanned(record: dict) -> list[bool]:
    """Whether the pilot spanned 50 τ_int of each observable."""
    return [record["steps"] >= 50 * t for t in record["tau"]]


def seconds_per_step(beta: float, sampler: str, size: int, chains: int) -> float:
    """Wall time of one step of all chains, timed now over ≥ 2 s after the burn-in.

    A pilot's own timing can be from another day or machine; costs compared in one table
    (here and in bench_rg.py) are timed in the same process.
    """
    state = _Chains(Phi4(beta), sampler, size, chains, seed=size, device="cpu")
    state.adapt(_BURN_IN)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < 2.0:
        state.advance(1)  # one step at a time, as the pilot records
        steps += 1
    return (time.perf_counter() - start) / steps


def cost_per_sample(
    record: dict, seconds: float, observables: tuple[int, ...]
) -> tuple[float, bool]:
    """Wall time per effectively independent sample, 2 max_k τ_k × (time per step) / chains,
    over the observables k (0: M, 1: |M|, 2: E), and whether the pilot spanned all those τ_k."""
    tau = max(record["tau"][k] for k in observables)
    converged = all(spanned(record)[k] for k in observables)
    return 2 * tau * seconds / record["chains"], converged


def cost_cell(record: dict, seconds: float, observables: tuple[int, ...]) -> str:
    cost, converged = cost_per_sample(record, seconds, observables)
    return f"{cost * 1e3:.2f}{'' if converged else ' †'}"


def dynamic_exponent(taus: list, k: int) -> str:
    """z of τ_int ∝ L^z for observable k, from the sizes whose pilot spanned 50 τ_int."""
    points = [(size, tau[k]) for size, tau, converged in taus if converged[k]]
    if len(points) < 2:
        return "n/a"
    size, tau = np.log(np.array(points)).T
    return f"{np.polyfit(size, tau, 1)[0]:.2f} ({len(points)} sizes)"


def autocorrelation(sizes: dict[str, list[int]], fresh: bool) -> list[str]:
    beta = critical_beta()
    rows, fits = [], {}
    for sampler, sampler_sizes in sizes.items():
        # warm-up: first calls in a process (numba dispatch, thread pool) must not be timed
        simulate(
            Phi4Config(Phi4(beta), 8, sampler, chains=CHAINS, thermalization=20, spacing=1),
            CHAINS,
            seed=0,
            progress=False,
        )
        taus = []
        for size in sampler_sizes:
            record = pilot(beta, sampler, size, fresh)
            seconds = seconds_per_step(beta, sampler, size, record["chains"])
            converged = spanned(record)
            cells = [
                f"{t:.1f}" + ("" if ok else " †")
                for t, ok in zip(record["tau"], converged, strict=True)
            ]
            taus.append((size, record["tau"], converged))
            rows.append(
                f"| {sampler} | {size} | {' | '.join(cells)} | {record['chains']} ×"
                f" {record['steps']} | {seconds * 1e3:.3f} | {cost_cell(record, seconds, (1, 2))}"
                f" | {cost_cell(record, seconds, (0, 1, 2))} |"
            )
            print(rows[-1], flush=True)
        fits[sampler] = [dynamic_exponent(taus, k) for k in range(3)]
    lines = [
        f"### Autocorrelation at β_c = {beta:.4f} (λ = 1)",
        "",
        "τ_int in sampler steps (Metropolis: one sweep; HMC: one trajectory of 10 leapfrog steps"
        " with the step tuned to acceptance 0.8; Wolff: one Metropolis sweep plus clusters"
        " flipping ≈ L² sites), from a fixed-length pilot (chains × steps per chain) of the"
        " chains `simulate` runs, after its burn-in (chains pooled, Madras–Sokal windowing;"
        " long pilots are checkpointed and resumed). † marks a τ_int the pilot did"
        " not span 50 times: an unreliable, usually low estimate (and so a low cost). Pilots are"
        f" cached in {CACHE.relative_to(ROOT)} with the date and machine of each; the time per"
        " step (of all chains) is timed again in this run, after the burn-in. Cost = wall time"
        " per effectively independent configuration, 2 max(τ_int) × (time per step) / chains,"
        " with the maximum over |M| and E (the observables the issue names) or over M too (whose"
        " sign Metropolis and HMC flip only by crossing the double-well barrier).",
        "",
        "| sampler | L | τ_int(M) | τ_int(\\|M\\|) | τ_int(E) | pilot (chains × steps)"
        " | ms per step | ms per independent sample: \\|M\\|, E | …: M, \\|M\\|, E |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Dynamic exponents from straight-line fits of log τ_int against log L, over the sizes"
        " whose τ_int is reliable (no †):",
        "",
        "| sampler | z from τ_int(M) | z from τ_int(\\|M\\|) | z from τ_int(E) |",
        "|---|---:|---:|---:|",
        *[f"| {s} | {z[0]} | {z[1]} | {z[2]} |" for s, z in fits.items()],
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[16, 32, 64, 128],
        help="lattice sizes for the Wolff sampler",
    )
    parser.add_argument(
        "--local-sizes",
        type=int,
        nargs="+",
        default=[16, 32, 64, 128],
        help="lattice sizes for Metropolis and HMC (τ_int ∝ L² makes L = 128"
        " cost 10–20 minutes each)",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the cached pilot runs")
    args = parser.parse_args()
    sizes = {"metropolis": args.local_sizes, "hmc": args.local_sizes, "wolff": args.sizes}
    body = "\n".join(throughput() + [""] + autocorrelation(sizes, args.fresh))
    print(body)
    write_section("phi4", body)


if __name__ == "__main__":
    main()
