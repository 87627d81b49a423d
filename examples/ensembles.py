"""An ensemble made, fitted and sampled on a Dask cluster, chunk by chunk, from Python.

1. ``ensembles.generate``: φ⁴ fields at β_c by Wolff chains, as seeded blocks of 16 fields on
   ``--workers`` local worker processes, written as one netCDF file per chunk;
2. the same call again: the ensemble is complete, so nothing is recomputed (after Ctrl-C or a
   crash it would compute only the missing chunks);
3. ``ensembles.fit``: the RG model by score matching from the chunks (the workers sum, the
   client solves), the same θ as an in-memory fit to rounding;
4. ``ensembles.generate`` of ``ModelSampling``: new fields from the model, on the workers;
5. the magnetisation's moments of both ensembles, read lazily with ``open_ensemble``.

Run: ``python examples/ensembles.py [--workers 2] [--samples 512] [--out ensembles-example]``
(about a minute on 2 cores). docs/scaling.md says how to run the same on a SLURM cluster.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rgfield import ensembles
from rgfield.fields.phi4 import Phi4, Phi4Config
from rgfield.rg import HierarchicalModel

BETA_C = 0.9244  # λ = 1 (docs/phi4.md)


def magnetisation(ds) -> str:
    """⟨|M|⟩ and ⟨M²⟩ per site, M the mean of each field, computed chunk by chunk (dask)."""
    m = ds[next(iter(ds.data_vars))].mean(("y", "x"))
    return f"<|M|> = {float(abs(m).mean()):.4f}, <M^2> = {float((m**2).mean()):.5f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("ensembles-example"))
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    simulation = ensembles.Simulation(Phi4Config(Phi4(beta=BETA_C), args.size))
    with ensembles.cluster(workers=args.workers) as client:
        print(f"Dask dashboard: {client.dashboard_link}")
        start = time.perf_counter()
        data = ensembles.generate(
            simulation, args.samples, args.out / "wolff", seed=1, client=client
        )
        print(f"{args.samples} Wolff fields in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        ensembles.generate(simulation, args.samples, args.out / "wolff", seed=1, client=client)
        print(f"the same call again: {time.perf_counter() - start:.1f} s (complete: nothing to do)")
        start = time.perf_counter()
        model = ensembles.fit(HierarchicalModel(), args.out / "wolff", client=client)
        print(f"fitted from the chunks in {time.perf_counter() - start:.1f} s:")
        print(model.fit_report_[["grid", "features", "heldout_loss"]].to_dataframe())
        sampling = ensembles.ModelSampling(model, {"steps": 30, "warmup": 50})
        start = time.perf_counter()
        drawn = ensembles.generate(sampling, args.samples, args.out / "rg", seed=2, client=client)
        print(f"{args.samples} RG fields in {time.perf_counter() - start:.1f} s")
    print("Wolff:", magnetisation(data))
    print("RG:   ", magnetisation(drawn))
    seeds = drawn["block_seed"].values
    print(f"{np.unique(seeds).size} seeded blocks; block 0 again: sampling.run(16, {seeds[0]})")


if __name__ == "__main__":
    main()
