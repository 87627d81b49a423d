"""``rgfield compare``: ensembles' statistics against a reference ensemble.

``rgfield compare REF.nc A.nc B.nc --labels a b [--train TRAIN.nc] [--out DIR]`` prints the
largest |z| of every statistic and observable set per ensemble (:func:`rgfield.compare.summary`)
and, with ``--out``, writes the report (:func:`rgfield.compare.save_report`) from the same
numbers. With ``--train``, the fields the generators were fitted to, each field's distance to
its nearest training field is compared too (memorisation).
``--reference REF.nc --samples A.nc`` is the older spelling of ``REF.nc A.nc``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rgfield.cli import _options

NAME = "compare"
HELP = "compare ensembles' statistics with a reference ensemble"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="the reference ensemble (ideally held-out fields), then the ensembles to judge"
        " (netCDF, .zarr, .npy or .npz)",
    )
    parser.add_argument("--reference", help="reference ensemble (instead of the first FILE)")
    parser.add_argument(
        "--samples", nargs="+", help="ensembles to judge (with --reference, instead of FILEs)"
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        help="one label per ensemble (default: the file names, or 'samples' with --samples)",
    )
    parser.add_argument(
        "--train",
        help="the training ensemble of the generators: adds the distance to the nearest"
        " training field (memorisation)",
    )
    _options.add_var(parser, "variable to read from every file")
    parser.add_argument("--model", help="fitted model (.nc): adds its learned potentials")
    _options.add_output(
        parser,
        "write the report (figures and tables) to this directory",
        kind="directory",
        required=False,
    )


def inputs(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The reference's path and the ensembles' paths by label, from the command line.

    Raises ``ValueError`` naming the option: a mix of FILEs and ``--reference/--samples``, no
    ensemble, a number of ``--labels`` that is not the number of ensembles, repeated labels.
    """
    if args.reference is not None or args.samples is not None:
        if args.files or args.reference is None or args.samples is None:
            raise ValueError(
                "--reference and --samples go together and replace the FILEs: give"
                " REF A [B ...] or --reference REF --samples A [B ...]"
            )
        reference, paths = args.reference, list(args.samples)
        default = ["samples"] if len(paths) == 1 else [Path(p).stem for p in paths]
    else:
        if len(args.files) < 2:
            raise ValueError(
                f"FILE: give the reference and at least one ensemble; got {len(args.files)} file(s)"
            )
        reference, paths = args.files[0], args.files[1:]
        default = [Path(p).stem for p in paths]
    labels = default if args.labels is None else list(args.labels)
    if len(labels) != len(paths):
        raise ValueError(f"--labels: {len(labels)} label(s) for {len(paths)} ensemble(s)")
    if len(set(labels)) != len(labels):
        given = "--labels" if args.labels is not None else "file names (give --labels)"
        raise ValueError(f"{given}: labels must differ; got {labels}")
    return reference, dict(zip(labels, paths, strict=True))


def run(args: argparse.Namespace) -> int:
    reference_path, paths = inputs(args)
    if args.model and not args.out:
        raise ValueError("--model adds the learned potentials to a report: give --out DIR too")
    from rgfield import io
    from rgfield.compare import save_report, summary

    model = None
    if args.model:
        from rgfield.rg import HierarchicalModel

        model = HierarchicalModel.load(args.model, progress=False)
    reference = io.load(reference_path, args.var)
    ensembles = {label: io.load(path, args.var) for label, path in paths.items()}
    train = io.load(args.train, args.var) if args.train else None
    result = summary(reference, ensembles, train=train)
    print_table(result)
    if args.out:
        path = save_report(result, args.out, model=model, overwrite=args.overwrite)
        print(f"report written to {path}/report.md (figures in {path}/figures)")
    return 0


def print_table(result) -> None:
    """The largest |z| of each statistic and observable set per ensemble, and the pixel KS."""
    labels = [str(label) for label in result["ensemble"].values]
    sizes = ", ".join(
        f"{int(n)} {label}" for label, n in zip(labels, result["samples"].values, strict=True)
    )
    print(
        f"{sizes} against {result.attrs['reference_samples']} reference fields:"
        " largest |z|, z = (estimate − reference) / combined standard error"
    )
    quantities = [str(q) for q in result["quantity"].values]
    first = max(len(q) for q in quantities)
    widths = [max(8, len(label)) for label in labels]
    columns = list(zip(labels, widths, strict=True))
    print("  " + " " * first + "".join(f"  {label:>{w}}" for label, w in columns))
    for q in quantities:
        row = result["max_abs_z"].sel(quantity=q).values
        marks = ["✗" if f else " " for f in result["failed"].sel(quantity=q).values]
        cells = zip(row, marks, widths, strict=True)
        print(f"  {q:<{first}}" + "".join(f"  {v:>{w}.2f}{m}" for v, m, w in cells))
    ks = result["pixels"].to_dataset()
    values = ", ".join(
        f"{label} {v:.2f}" for label, v in zip(labels, ks.ks_vs_reference.values, strict=True)
    )
    print(
        f"pixel KS against the reference: {values}; between halves of the reference"
        f" {float(ks.ks_reference_halves):.2f} (median of {ks.attrs['splits']} halvings)"
    )
    failing = (result["failed"].sum("quantity") + ks.ks_failed).values
    verdicts = ", ".join(
        f"{label} {'FAIL (' + str(int(n)) + ')' if n else 'pass'}"
        for label, n in zip(labels, failing, strict=True)
    )
    print(
        f"verdict: {verdicts} (✗: largest |z| above the level an ensemble of the reference's"
        f" law exceeds with probability {result.attrs['failure_level']:g}; report.md lists them)"
    )
