"""The ``rgfield`` command line.

Each subcommand is a pair of functions registered in :data:`COMMANDS`: one adds its arguments to
an :mod:`argparse` parser, one runs it and returns the exit status. Errors a user can fix (bad
arguments, unreadable or existing files) print one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rgfield


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _version_of(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception as err:  # a broken optional import is reported, not raised
        return f"unavailable ({type(err).__name__}: {err})"


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _run_info(args: argparse.Namespace) -> int:
    import numba
    import torch

    rows = [("rgfield", rgfield.__version__), ("python", platform.python_version())]
    for module in ("numpy", "scipy", "torch", "numba", "xarray", "netCDF4", "pywt", "kymatio"):
        rows.append((module, _version_of(module)))
    rows.append(
        (
            "cpu",
            f"{os.cpu_count()} cores; torch threads {torch.get_num_threads()},"
            f" numba threads {numba.get_num_threads()}",
        )
    )
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            rows.append((f"cuda:{i}", torch.cuda.get_device_name(i)))
    else:
        rows.append(("cuda", "no device found"))
    if torch.backends.mps.is_available():
        rows.append(("mps", "available"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", required=True, help="reference ensemble (.nc or .npy)")
    parser.add_argument("--samples", required=True, help="ensemble to judge (.nc or .npy)")
    parser.add_argument("--var", help="variable to read from both files (default: the only field)")
    parser.add_argument("--out", help="write the full table of z-scores to this netCDF file")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _run_compare(args: argparse.Namespace) -> int:
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
        io.save(table, args.out, overwrite=args.overwrite)
        print(f"table written to {args.out}")
    return 0


COMMANDS: list[Command] = [
    Command(
        "info",
        "versions of rgfield and its dependencies, and the devices found",
        _info_arguments,
        _run_info,
    ),
    Command(
        "compare",
        "compare an ensemble's statistics with a reference ensemble",
        _compare_arguments,
        _run_compare,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rgfield",
        description="Multiscale statistical physics: wavelet RG models of physical fields.",
    )
    parser.add_argument("--version", action="version", version=f"rgfield {rgfield.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for command in COMMANDS:
        command.add_arguments(
            sub.add_parser(command.name, help=command.help, description=command.help)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rgfield`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    run = next(c.run for c in COMMANDS if c.name == args.command)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            return run(args)
    except (ValueError, OSError) as err:  # OSError: missing, existing or unwritable files
        print(f"rgfield {args.command}: error: {err}", file=sys.stderr)
        return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"rgfield: note: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
