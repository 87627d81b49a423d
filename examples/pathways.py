"""Every generative pathway of rgfield judged against held-out simulations, from Python.

By default the shipped 32² turbulence ensembles (96 training and 96 held-out vorticity
snapshots from independent flows) go to :func:`rgfield.pathways.compare_pathways`, as in
``rgfield demo``; with ``--simulate`` a kind is simulated first (:func:`rgfield.pathways.run`,
as ``rgfield pathways``). The script prints the cost table, then per quantity the largest |z|
and the rms z (a distance, about 1 for two ensembles of one law) of every pathway, and writes
the report, the cost table and the ensembles to ``--out``.

Run: ``python examples/pathways.py [--simulate --kind cosmic --size 32] [--samples 96]
[--out pathways-example]`` (about 1 minute with the shipped ensembles on 2 cores).
"""

from __future__ import annotations

import argparse

from rgfield import io
from rgfield.pathways import KINDS, compare_pathways, cost_table, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", action="store_true", help="simulate instead of shipped")
    parser.add_argument("--kind", choices=sorted(KINDS), default="turbulence")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=96, help="fields per pathway")
    parser.add_argument("--out", default="pathways-example")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.simulate:
        result = run(
            args.kind, args.size, samples=args.samples, out=args.out, overwrite=args.overwrite
        )
    else:
        train = io.load(io.example_path("turbulence_L32_train.nc"))
        held_out = io.load(io.example_path("turbulence_L32_heldout.nc"))
        result = compare_pathways(
            train, held_out, args.samples, out=args.out, overwrite=args.overwrite
        )
    print(cost_table(result.costs, result.summary))
    table = result.summary.to_dataset()[["max_abs_z", "rms_z"]].reset_coords(drop=True)
    table = table.to_dataframe()
    print(table.unstack("ensemble").round(2).to_string())


if __name__ == "__main__":
    main()
