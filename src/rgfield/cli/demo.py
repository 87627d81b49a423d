"""``rgfield demo``: fit, sample and validate a model of the shipped φ⁴ ensemble, then every
generative pathway on the shipped 2D-turbulence ensembles."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rgfield.cli import _options

NAME = "demo"
HELP = (
    "fit, sample and validate a wavelet RG model of the shipped φ⁴ ensemble, and compare the"
    " generative pathways on shipped 2D turbulence"
)


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
    parser.add_argument(
        "--pathway-samples",
        type=int,
        default=96,
        help="fields per pathway on the turbulence ensembles (96; 0: skip that part)",
    )
    _options.add_progress(parser)


def run(args: argparse.Namespace) -> int:
    if args.samples < 2:
        raise ValueError(f"--samples must be at least 2; got {args.samples}")
    if args.refine < 0:
        raise ValueError(f"--refine must be non-negative; got {args.refine}")
    if args.pathway_samples < 0 or args.pathway_samples == 1:
        raise ValueError(f"--pathway-samples must be 0 or at least 2; got {args.pathway_samples}")
    from rgfield import io
    from rgfield.cli.sample import print_acceptance
    from rgfield.compare import write_report
    from rgfield.rg import HierarchicalModel

    out = Path(args.out)
    start = time.perf_counter()
    data = io.load(io.example_path("phi4_L32_beta0.9244.nc"))
    steps = 4 if args.pathway_samples else 3
    print(f"1/{steps} fitting a wavelet RG model to {data.shape[0]} φ⁴ fields (L = 32, β = β_c)")
    if args.refine:
        print(f"    score matching, then {args.refine} moment-matching iterations per scale")
    model = HierarchicalModel(
        refine=args.refine, refine_coarse="generated", progress=not args.no_progress
    ).fit(data, seed=args.seed)
    print(f"2/{steps} sampling {args.samples} new fields coarse to fine (HMC per scale)")
    result = model.sample(args.samples, seed=args.seed)
    print_acceptance(result.diagnostics)
    print(f"3/{steps} comparing them with the reference ensemble")
    out.mkdir(exist_ok=True)
    model.save(out / "model.nc", overwrite=True)
    io.save(result.to_dataset(), out / "samples.nc", overwrite=True)
    report = write_report(data, result.fields, out / "report", model=model, overwrite=True)
    if args.pathway_samples:
        _turbulence_pathways(args, out / "pathways")
    print(f"done in {time.perf_counter() - start:.0f} s: model, samples and report in {out}/")
    print(f"open {report}/report.md (figures in {report}/figures)")
    if args.pathway_samples:
        print(f"pathways on turbulence: {out}/pathways/pathways.md and report/report.md")
    return 0


def _turbulence_pathways(args: argparse.Namespace, out: Path) -> None:
    """Step 4: every pathway fitted to the shipped turbulence training fields, judged against
    the shipped held-out ones (:func:`rgfield.pathways.compare_pathways`)."""
    from rgfield import io
    from rgfield.pathways import compare_pathways, cost_table

    train = io.load(io.example_path("turbulence_L32_train.nc"))
    held_out = io.load(io.example_path("turbulence_L32_heldout.nc"))
    print(
        f"4/4 generative pathways on forced 2D turbulence (vorticity, 32²): fitted to"
        f" {train.shape[0]} training fields, {args.pathway_samples} fields each, judged against"
        f" {held_out.shape[0]} held-out ones (the diffusion pathway, which trains a network for"
        " minutes, runs with `rgfield pathways --kind turbulence --size 32`)"
    )
    result = compare_pathways(
        train,
        held_out,
        args.pathway_samples,
        pathways=["rg", "microcanonical"],
        seed=args.seed,
        out=out,
        overwrite=True,
        progress=not args.no_progress,
        log=lambda line: print(f"    {line}"),
    )
    print(cost_table(result.costs, result.summary).split("\n\n")[0])
