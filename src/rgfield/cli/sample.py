"""``rgfield sample``: fields drawn from a fitted model."""

from __future__ import annotations

import argparse

from rgfield.cli import _options

NAME = "sample"
HELP = "generate fields from a fitted model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model file written by `rgfield fit`")
    parser.add_argument("--n", type=int, required=True, help="number of fields")
    _options.add_seed(parser)
    parser.add_argument(
        "--steps",
        type=_options.count_or_auto,
        default="auto",
        help="MCMC steps per scale after the warm-up, or 'auto' (default): the burn-in that"
        " --n fields need, from the model's calibration (rgfield fit makes it; no warm-up"
        " then), or else 10 τ_int measured on a pilot of 32 chains (docs/rg.md)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up steps per scale (default 50 HMC trajectories, 200 MALA steps)",
    )
    parser.add_argument(
        "--sampler",
        choices=("hmc", "mala", "block"),
        default="hmc",
        help="HMC trajectories per scale (default), MALA, or block MALA (one test per block)"
        " where the grid fits blocks and the energy is local (docs/rg.md)",
    )
    parser.add_argument(
        "--start",
        choices=("gaussian", "zero"),
        default="gaussian",
        help="where each scale's chains start: a draw of the stationary Gaussian fitted to the"
        " training details (default), or zero details",
    )
    _options.add_device(parser)
    _options.add_output(parser, "netCDF file to write (an ensemble directory: see below)")
    _options.add_progress(parser)
    _options.add_ensemble(parser)


def run(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.rg import HierarchicalModel

    model = HierarchicalModel.load(args.model, progress=not args.no_progress)
    options = dict(
        steps=args.steps,
        warmup=args.warmup,
        sampler=args.sampler,
        device=args.device,
        start=args.start,
    )
    if _options.ensemble_mode(args):
        from rgfield.cli._ensemble import write_ensemble
        from rgfield.ensembles import ModelSampling

        write_ensemble(args, ModelSampling(model, options), args.n)
        return 0
    result = model.sample(args.n, seed=args.seed, **options)
    print_acceptance(result.diagnostics)
    if result.attrs["empty_modes"]:
        print(
            f"projected onto the training fields' band: {result.attrs['empty_modes']:,} Fourier"
            " modes without power in the data (dealiased) removed from every field"
        )
    io.save(result.to_dataset(), args.out, overwrite=args.overwrite)
    print(
        f"{args.n} fields written to {args.out}: {result.attrs['seconds_per_field']:.3g} s and"
        f" {result.attrs['gradients_per_field']:,} gradient evaluations per field"
    )
    return 0


def print_acceptance(diagnostics) -> None:
    """One line: the acceptance and step size of every scale (or "exact")."""
    cells = [
        f"{s} exact" if exact else f"{s} {a:.2f} (h={h:.3g})"
        for s, a, h, exact in zip(
            diagnostics.scale.values,
            diagnostics.acceptance.values,
            diagnostics.step_size.values,
            diagnostics.exact.values,
            strict=True,
        )
    ]
    print("acceptance per scale: " + ", ".join(cells))
