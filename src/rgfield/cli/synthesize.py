"""``rgfield synthesize``: microcanonical synthesis of fields with a target's statistics."""

from __future__ import annotations

import argparse

from rgfield.cli import _options

NAME = "synthesize"
HELP = "microcanonical synthesis: new fields with a target's scattering statistics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="target ensemble (.nc or .npy)")
    _options.add_var(parser)
    parser.add_argument("--fields", type=int, default=1, help="target fields, from the first (1)")
    parser.add_argument("--n", type=int, required=True, help="samples to synthesise")
    parser.add_argument(
        "--statistics",
        nargs="+",
        choices=("scattering", "spectrum", "moments"),
        default=["scattering", "spectrum", "moments"],
        help="families matched (default: all three)",
    )
    parser.add_argument("--J", type=int, help="wavelet scales (default log2(N) − 2)")
    parser.add_argument("--L", type=int, default=4, help="orientations (default 4)")
    parser.add_argument(
        "--reduction", choices=("isotropic", "scale", "isotropic+scale"), help="(default none)"
    )
    parser.add_argument("--steps", type=int, default=300, help="L-BFGS iterations (default 300)")
    parser.add_argument("--init", choices=("gaussian", "white"), default="gaussian")
    _options.add_seed(parser)
    _options.add_device(parser)
    _options.add_output(parser, "netCDF file to write (an ensemble directory: see below)")
    _options.add_progress(parser)
    _options.add_ensemble(parser)


def run(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.microcanonical import synthesize

    data = io.load(args.data, args.var)
    if data.ndim != 3:
        raise ValueError(f"--data must hold 2D fields (sample, y, x); got dims {data.dims}")
    if not 1 <= args.fields <= data.shape[0]:
        raise ValueError(f"--fields must be in 1..{data.shape[0]}; got {args.fields}")
    options = dict(
        statistics=tuple(args.statistics),
        J=args.J,
        L=args.L,
        reduction=args.reduction,
        steps=args.steps,
        init=args.init,
        device=args.device,
    )
    target = data.values[: args.fields]
    if _options.ensemble_mode(args):
        from rgfield.cli._ensemble import write_ensemble
        from rgfield.ensembles import Synthesis

        write_ensemble(args, Synthesis(target, options, source=str(args.data)), args.n)
        return 0
    result = synthesize(target, n=args.n, seed=args.seed, progress=not args.no_progress, **options)
    ds = result.to_dataset()
    ds.attrs["source"] = str(args.data)
    io.save(ds, args.out, overwrite=args.overwrite)
    print(
        f"loss {result.loss[0]:.3g} → {result.final_loss:.3g} in {result.iterations} L-BFGS"
        f" iterations ({result.evaluations} evaluations); {args.n} samples written to {args.out}"
    )
    return 0
