"""Writing a command's samples as an ensemble directory (``--workers``, ``--scheduler``,
``--chunk``; :func:`rgfield.cli._options.add_ensemble`)."""

from __future__ import annotations

import argparse

__all__ = ["write_ensemble"]


def write_ensemble(args: argparse.Namespace, job, samples: int) -> None:
    """:func:`rgfield.ensembles.generate` of ``job`` into ``--out`` on the cluster the options
    name (or in this process), printing the dashboard's address and what was written."""
    from rgfield import ensembles

    with ensembles.cluster(args.scheduler, args.workers) as client:
        if client is not None:
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
        ds = ensembles.generate(
            job,
            samples,
            args.out,
            seed=args.seed,
            block=args.block or ensembles.DEFAULT_BLOCK,
            chunk=args.chunk,
            client=client,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    print(
        f"{samples} samples (seed {ds.attrs['seed']}, blocks of {ds.attrs['block']}) in"
        f" {-(-samples // ds.attrs['chunk'])} chunk files under {args.out}"
        " (read with rgfield.io.load or rgfield.ensembles.open_ensemble)"
    )
