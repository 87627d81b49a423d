"""Benchmark of the wavelet RG sampler against direct MCMC on φ⁴ at the critical point.

For each lattice size L, in one process:

1. Wolff ensembles at β_c (``rgfield.fields.phi4.simulate``) train a ``HierarchicalModel``;
   the fit time per scale is recorded.
2. ``rgfield.rg.mixing`` runs the chains of every scale from equilibrium starts (MALA,
   with ``--sampler block`` BlockMALA wherever blocks fit, with ``--sampler hmc`` HMC
   trajectories of the sampler's defaults) and measures τ_int (the larger of the energy's and
   the summed details') and the time per step. The RG cost per effectively independent sample
   is Σ_j 2 τ_j × (time per step of scale j) / chains, and its gradient evaluations
   Σ_j 2 τ_j g_j (g_j = 1 per MALA step, 4 per BlockMALA sweep, the leapfrog steps of an HMC
   trajectory; the coarsest 1×1 field is drawn exactly). The growth of τ_j with L at fixed j
   (fixed distance from the finest scale) is fitted as τ_j ∝ L^a.
3. The same figures for Metropolis, HMC and Wolff: the larger τ_int of |M| and E from
   ``simulate``'s pilot runs (fixed length as in bench_phi4.py; † marks a τ_int the pilot did
   not span 50 times, a low estimate), the time per step timed again in this process.

Run: ``python benchmarks/bench_rg.py [--sizes 32 64 128 256] [--train 500]
[--local-max-size 128] [--sampler mala|block|hmc] [--steps 1000] [--warmup W]``;
writes the ``rg`` (MALA), ``rg-block`` or ``rg-hmc`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
from _report import write_section
from bench_phi4 import cost_per_sample, critical_beta, pilot, seconds_per_step

from rgfield.fields.phi4 import Phi4, Phi4Config, simulate
from rgfield.rg import HierarchicalModel, mixing
from rgfield.rg.sampling import SAMPLER_DEFAULTS

LABELS = {"mala": "MALA", "block": "BlockMALA", "hmc": "HMC"}
SECTIONS = {"mala": "rg", "block": "rg-block", "hmc": "rg-hmc"}
STEPS = {
    "mala": "MALA step",
    "block": "BlockMALA sweep (MALA step below 16²)",
    "hmc": "HMC trajectory",
}


def rg_row(
    size: int, beta: float, train: int, chains: int, *, steps: int, warmup: int, sampler: str
) -> tuple[str, float, np.ndarray]:
    config = Phi4Config(Phi4(beta), size, sampler="wolff")
    data = simulate(config, train, seed=size, progress=False)["phi"]
    start = time.perf_counter()
    model = HierarchicalModel(progress=False).fit(data)
    fit_seconds = time.perf_counter() - start
    study = mixing(model, data[:chains], steps=steps, warmup=warmup, seed=size, sampler=sampler)
    tau = np.maximum(study["tau_energy"].values, study["tau_sum"].values)
    per_sample = float((2 * tau * study["seconds_per_step"].values).sum() / chains)
    gradients = float((2 * tau * study["gradients_per_step"].values).sum())
    taus = " ".join(f"{t:.1f}" for t in tau)
    fit = " ".join(f"{s:.1f}" for s in model.fit_report_["seconds"].values)
    blocks = study["block"].values
    label = LABELS[sampler]
    if blocks.any():
        label = f"BlockMALA ({blocks.max()}² blocks) on n ≥ 16"
    row = (
        f"| RG ({label}) | {size} | {taus} | {gradients:.0f} | {per_sample * 1e3:.2f}"
        f" | {fit_seconds:.0f} s (per scale, coarse to fine: {fit}) |"
    )
    return row, per_sample, tau


def tau_growth(taus: dict[int, np.ndarray]) -> list[str]:
    """Rows of τ_j against L at fixed j (finest first) and the slope a of log τ_j = a log L + b."""
    sizes = sorted(taus)
    depth = min(len(t) for t in taus.values())
    rows = []
    for j in range(1, depth + 1):
        values = [taus[size][-j] for size in sizes]
        slope = f"{np.polyfit(np.log(sizes), np.log(values), 1)[0]:+.2f}" if len(sizes) > 1 else "–"
        rows.append(f"| {j} | {' | '.join(f'{v:.1f}' for v in values)} | {slope} |")
    return rows


def mcmc_row(sampler: str, size: int, beta: float) -> tuple[str, float, bool]:
    record = pilot(beta, sampler, size)
    seconds = seconds_per_step(beta, sampler, size, record["chains"])
    tau = max(record["tau"][1:])  # |M| and E; see the table's caption
    per_sample, converged = cost_per_sample(record, seconds, (1, 2))
    mark = "" if converged else " †"
    row = f"| {sampler} | {size} | {tau:.1f}{mark} | – | {per_sample * 1e3:.2f}{mark} | – |"
    return row, per_sample, converged


def growth_exponent(points: list[tuple[int, float, bool]]) -> str:
    """Slope a of log(cost) = a log(L) + b by least squares; '†' if any cost is a bound."""
    if len(points) < 2:
        return "–"
    sizes, cost, converged = zip(*points, strict=True)
    slope = np.polyfit(np.log(sizes), np.log(cost), 1)[0]
    return f"{slope:.2f}{'' if all(converged) else ' †'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--train", type=int, default=500, help="Wolff training fields per size")
    parser.add_argument("--chains", type=int, default=100, help="RG chains in the mixing run")
    parser.add_argument("--steps", type=int, default=1000, help="RG steps per scale measured")
    parser.add_argument(
        "--warmup", type=int, default=None, help="RG warm-up steps (default: the sampler's)"
    )
    parser.add_argument(
        "--sampler",
        choices=tuple(LABELS),
        default="mala",
        help="RG sampler: MALA per scale, BlockMALA where blocks fit (section rg-block),"
        " or HMC (section rg-hmc)",
    )
    parser.add_argument(
        "--local-max-size",
        type=int,
        default=128,
        help="largest L for Metropolis and HMC (their pilots take hours to days at L = 256)",
    )
    args = parser.parse_args()
    warmup = SAMPLER_DEFAULTS[args.sampler]["warmup"] if args.warmup is None else args.warmup
    beta = critical_beta()
    chains = 2 * numba.get_num_threads()
    # warm-up: numba compilation and thread pools must not be timed
    warm = Phi4Config(Phi4(beta), 8, chains=chains, thermalization=20, spacing=1)
    simulate(warm, chains, seed=0, progress=False)
    # (MCMC pilots come from bench_phi4's cache, or run once and join it)
    rows, ratios, costs, taus = [], [], {}, {}
    for size in args.sizes:
        rg, rg_cost, taus[size] = rg_row(
            size,
            beta,
            args.train,
            args.chains,
            steps=args.steps,
            warmup=warmup,
            sampler=args.sampler,
        )
        rows.append(rg)
        costs.setdefault("RG", []).append((size, rg_cost, True))
        print(rg, flush=True)
        for sampler in ("metropolis", "hmc", "wolff"):
            if sampler != "wolff" and size > args.local_max_size:
                rows.append(f"| {sampler} | {size} | not run (--local-max-size) | – | – | – |")
                continue
            row, cost, converged = mcmc_row(sampler, size, beta)
            rows.append(row)
            costs.setdefault(sampler, []).append((size, cost, converged))
            print(row, flush=True)
            if sampler != "wolff":
                ratios.append((sampler, size, cost / rg_cost, converged))
    kind, step = LABELS[args.sampler], STEPS[args.sampler]
    lines = [
        f"### RG sampler ({kind}) against direct MCMC at β_c = {beta} (λ = 1)",
        "",
        f"{args.chains} RG chains × {args.steps} steps per scale after a warm-up of"
        f" {warmup}."
        " τ_int in steps of each sampler (RG: per scale sampled by MCMC, coarse to fine, one"
        f" step a {step}, the larger of the"
        " energy's and the summed details'; MCMC: the larger of |M|'s and E's, not counting the"
        " sign of M, which Metropolis and HMC flip only by crossing the double-well barrier, so"
        " their costs here are conservative). Cost: wall time"
        " per effectively independent configuration. RG gradient evaluations per independent"
        " sample: Σ_j 2 τ_j g_j, g_j the evaluations per step (1 per MALA step, 4 per"
        " BlockMALA sweep, the leapfrog steps of an HMC trajectory), each on a grid of"
        " that scale.",
        "",
        "| sampler | L | τ_int | gradient evaluations | ms per independent sample | fit time |",
        "|---|---:|---|---:|---:|---|",
        *rows,
        "",
        "| cost of … relative to RG | L | ratio |",
        "|---|---:|---:|",
        *[
            f"| {s} | {size} | {r:.1f}×{'' if ok else ' (lower bound †)'} |"
            for s, size, r, ok in ratios
        ],
        "",
        "Growth of the cost per independent sample with L (least-squares slope of log cost"
        " against log L over the sizes run; † includes lower bounds, so the slope is not a"
        " measured exponent):",
        "",
        "| sampler | cost ∝ L^a, a |",
        "|---|---:|",
        *[f"| {name} | {growth_exponent(points)} |" for name, points in costs.items()],
        "",
        "Per-scale mixing against L: τ_int of scale j (j = 1 the finest) in steps, and the"
        " least-squares slope a of log τ_j against log L (flat mixing: a ≈ 0):",
        "",
        f"| j | {' | '.join(f'L = {size}' for size in sorted(taus))} | a |",
        f"|---:|{'---:|' * len(taus)}---:|",
        *tau_growth(taus),
    ]
    write_section(SECTIONS[args.sampler], "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
