"""``rgfield pathways``: simulate a kind of field, fit every generative pathway, judge each
against held-out simulations (:func:`rgfield.pathways.run`)."""

from __future__ import annotations

import argparse

from rgfield.cli import _options

NAME = "pathways"
HELP = "fit every generative pathway to simulated fields and compare them on held-out ones"

KIND_CHOICES = (
    "phi4",
    "turbulence",
    "decaying",
    "cosmic",
)  # rgfield.pathways.KINDS, without importing it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KIND_CHOICES, default="turbulence", help="(turbulence)")
    parser.add_argument("--size", type=int, default=32, help="fields of SIZE² pixels (32)")
    parser.add_argument("--train", type=int, default=96, help="training fields (96)")
    parser.add_argument("--held-out", type=int, default=96, help="held-out fields (96)")
    parser.add_argument("--samples", type=int, default=96, help="fields per pathway (96)")
    parser.add_argument(
        "--pathways", nargs="+", help="pathways to run (default: every one that exists)"
    )
    _options.add_seed(parser, default=0)
    _options.add_output(
        parser,
        "output directory: report/ and pathways.md (default rgfield-pathways)",
        kind="directory",
        required=False,
        default="rgfield-pathways",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped run in OUT: finished pathways are read back, a fitted RG"
        " model is not fitted again",
    )
    _options.add_progress(parser)


def run(args: argparse.Namespace) -> int:
    from rgfield.pathways import cost_table
    from rgfield.pathways import run as run_pathways

    result = run_pathways(
        args.kind,
        args.size,
        args.train,
        args.held_out,
        args.samples,
        pathways=args.pathways,
        seed=args.seed,
        out=args.out,
        overwrite=args.overwrite,
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(cost_table(result.costs, result.summary))
    return 0
