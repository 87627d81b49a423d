"""``rgfield compare``: an ensemble's statistics against a reference ensemble."""

from __future__ import annotations

import argparse

from rgfield.cli import _options

NAME = "compare"
HELP = "compare an ensemble's statistics with a reference ensemble"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", required=True, help="reference ensemble (.nc or .npy)")
    parser.add_argument("--samples", required=True, help="ensemble to judge (.nc or .npy)")
    _options.add_var(parser, "variable to read from both files")
    parser.add_argument("--model", help="fitted model (.nc): adds its learned potentials")
    _options.add_output(
        parser,
        "write the report (figures and tables) to this directory",
        kind="directory",
        required=False,
    )


def run(args: argparse.Namespace) -> int:
    if args.model and not args.out:
        raise ValueError("--model adds the learned potentials to a report: give --out DIR too")
    from rgfield import io, stats

    reference = io.load(args.reference, args.var)
    samples = io.load(args.samples, args.var)
    ndim = reference.ndim - 1
    table = stats.compare(reference, samples, ndim=ndim)
    print(
        f"{table.attrs['n_other']} samples against {table.attrs['n_reference']} reference"
        " fields: largest |mean difference| / reference scatter"
    )
    for name, value in zip(table.statistic.values, table.max_abs_z.values, strict=True):
        print(f"  {name:<22} {value:8.3f}")
    if args.out:
        _write_report(reference, samples, args.out, args.model, args.overwrite)
    return 0


def _write_report(reference, samples, out, model_path, overwrite: bool) -> None:
    from rgfield.report import write_report
    from rgfield.rg import HierarchicalModel

    model = HierarchicalModel.load(model_path, progress=False) if model_path else None
    path = write_report(reference, samples, out, model=model, overwrite=overwrite)
    print(f"report written to {path}/report.md (figures in {path}/figures)")
