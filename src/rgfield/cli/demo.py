"""``rgfield demo``: fit, sample and validate a model of the shipped φ⁴ ensemble."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rgfield.cli import _options

NAME = "demo"
HELP = "fit, sample and validate a wavelet RG model of the shipped φ⁴ ensemble"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _options.add_output(
        parser,
        "output directory (default rgfield-demo)",
        kind="directory",
        required=False,
        default="rgfield-demo",
    )
    parser.add_argument("--samples", type=int, default=500, help="fields to generate (500)")
    _options.add_seed(parser, default=0)
    parser.add_argument(
        "--refine",
        type=int,
        default=10,
        help="moment-matching iterations per scale on generated coarse fields (10; 0: off)",
    )
    _options.add_progress(parser)


def run(args: argparse.Namespace) -> int:
    if args.samples < 2:
        raise ValueError(f"--samples must be at least 2; got {args.samples}")
    if args.refine < 0:
        raise ValueError(f"--refine must be non-negative; got {args.refine}")
    from rgfield import io
    from rgfield.cli.sample import print_acceptance
    from rgfield.compare import write_report
    from rgfield.rg import HierarchicalModel

    out = Path(args.out)
    start = time.perf_counter()
    data = io.load(io.example_path("phi4_L32_beta0.9244.nc"))
    print(f"1/3 fitting a wavelet RG model to {data.shape[0]} φ⁴ fields (L = 32, β = β_c)")
    if args.refine:
        print(f"    score matching, then {args.refine} moment-matching iterations per scale")
    model = HierarchicalModel(
        refine=args.refine, refine_coarse="generated", progress=not args.no_progress
    ).fit(data, seed=args.seed)
    print(f"2/3 sampling {args.samples} new fields coarse to fine (MALA per scale)")
    result = model.sample(args.samples, seed=args.seed)
    print_acceptance(result.diagnostics)
    print("3/3 comparing them with the reference ensemble")
    out.mkdir(exist_ok=True)
    model.save(out / "model.nc", overwrite=True)
    io.save(result.to_dataset(), out / "samples.nc", overwrite=True)
    report = write_report(data, result.fields, out / "report", model=model, overwrite=True)
    print(f"done in {time.perf_counter() - start:.0f} s: model, samples and report in {out}/")
    print(f"open {report}/report.md (figures in {report}/figures)")
    return 0
