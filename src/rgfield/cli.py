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
from pathlib import Path

import rgfield
from rgfield.fields.phi4 import SAMPLERS


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
    parser.add_argument("--model", help="fitted model (.nc): adds its learned potentials")
    parser.add_argument("--out", help="write the report (figures and tables) to this directory")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _run_compare(args: argparse.Namespace) -> int:
    from rgfield import io, stats

    reference = io.load(args.reference, args.var)
    samples = io.load(args.samples, args.var)
    ndim = reference.ndim - 1
    if args.model and not args.out:
        raise ValueError("--model adds the learned potentials to a report: give --out DIR too")
    if args.out and not args.overwrite and Path(args.out).exists():
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
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
    from rgfield.hierarchy import HierarchicalModel
    from rgfield.report import write_report

    model = HierarchicalModel.load(model_path, progress=False) if model_path else None
    path = write_report(reference, samples, out, model=model, overwrite=overwrite)
    print(f"report written to {path}/report.md (figures in {path}/figures)")


def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="training ensemble (.nc or .npy)")
    parser.add_argument("--var", help="variable to read (default: the only field)")
    parser.add_argument("--levels", type=int, help="RG steps J (default: down to 1×1)")
    parser.add_argument("--wavelet", default="db4", help="orthogonal wavelet (default db4)")
    parser.add_argument("--windows", type=int, default=20, help="sigmoid windows per scale")
    parser.add_argument("--radius", type=int, help="stencil radius of the quadratic couplings")
    parser.add_argument("--ridge", type=float, default=1e-6, help="score-matching ridge")
    parser.add_argument(
        "--refine",
        type=int,
        nargs="+",
        default=[0],
        help="moment-matching iterations: one value for every scale, or J + 1 values (finest"
        " conditional first, coarsest field last); 0: off",
    )
    parser.add_argument(
        "--refine-coarse",
        choices=("data", "generated"),
        default="data",
        help="coarse fields the refinement chains are conditioned on (default: data)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the refinement chains (0)")
    parser.add_argument("--out", required=True, help="model file to write (.nc)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_fit(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.hierarchy import HierarchicalModel

    if not args.overwrite and Path(args.out).exists():
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    data = io.load(args.data, args.var)
    model = HierarchicalModel(
        levels=args.levels,
        wavelet=args.wavelet,
        features={"potential": {"windows": args.windows}, "quadratic": {"radius": args.radius}},
        ridge=args.ridge,
        refine=args.refine[0] if len(args.refine) == 1 else args.refine,
        refine_coarse=args.refine_coarse,
        progress=not args.no_progress,
    ).fit(data, seed=args.seed)
    report = model.fit_report_
    print(
        f"fitted {model.levels} conditionals and the coarsest field on {data.shape[0]} fields of"
        f" {data.shape[1]}×{data.shape[2]}; per scale:"
    )
    print(
        report[
            [
                "grid",
                "features",
                "condition_preconditioned",
                "heldout_loss",
                "moment_gap_end",
                "seconds",
            ]
        ]
        .to_dataframe()
        .to_string(float_format=lambda v: f"{v:.3g}")
    )
    model.save(args.out, overwrite=args.overwrite)
    print(f"model written to {args.out}")
    return 0


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model file written by `rgfield fit`")
    parser.add_argument("--n", type=int, required=True, help="number of fields")
    parser.add_argument("--seed", type=int, help="random seed (default: fresh entropy)")
    parser.add_argument("--steps", type=int, default=300, help="MCMC steps per scale")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps per scale")
    parser.add_argument(
        "--sampler",
        choices=("mala", "block"),
        default="mala",
        help="MALA per scale, or block MALA (one test per block; flat mixing in L) where it fits",
    )
    parser.add_argument("--out", required=True, help="netCDF file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_sample(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.hierarchy import HierarchicalModel

    if not args.overwrite and Path(args.out).exists():
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    model = HierarchicalModel.load(args.model, progress=not args.no_progress)
    result = model.sample(
        args.n, seed=args.seed, steps=args.steps, warmup=args.warmup, sampler=args.sampler
    )
    _print_acceptance(result.diagnostics)
    io.save(result.to_dataset(), args.out, overwrite=args.overwrite)
    print(f"{args.n} fields written to {args.out}")
    return 0


def _print_acceptance(diagnostics) -> None:
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
    print("MALA acceptance per scale: " + ", ".join(cells))


def _synthesize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="target ensemble (.nc or .npy)")
    parser.add_argument("--var", help="variable to read (default: the only field)")
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
    parser.add_argument("--seed", type=int, help="random seed (default: fresh entropy)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--out", required=True, help="netCDF file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_synthesize(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.microcanonical import synthesize

    if not args.overwrite and Path(args.out).exists():
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    data = io.load(args.data, args.var)
    if data.ndim != 3:
        raise ValueError(f"--data must hold 2D fields (sample, y, x); got dims {data.dims}")
    if not 1 <= args.fields <= data.shape[0]:
        raise ValueError(f"--fields must be in 1..{data.shape[0]}; got {args.fields}")
    result = synthesize(
        data.values[: args.fields],
        statistics=tuple(args.statistics),
        n=args.n,
        J=args.J,
        L=args.L,
        reduction=args.reduction,
        steps=args.steps,
        init=args.init,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    ds = result.to_dataset()
    ds.attrs["source"] = str(args.data)
    io.save(ds, args.out, overwrite=args.overwrite)
    print(
        f"loss {result.loss[0]:.3g} → {result.final_loss:.3g} in {result.iterations} L-BFGS"
        f" iterations ({result.evaluations} evaluations); {args.n} samples written to {args.out}"
    )
    return 0


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="rgfield-demo", help="output directory (rgfield-demo)")
    parser.add_argument("--samples", type=int, default=500, help="fields to generate (500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--refine",
        type=int,
        default=10,
        help="moment-matching iterations per scale on generated coarse fields (10; 0: off)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_demo(args: argparse.Namespace) -> int:
    import time

    from rgfield import io
    from rgfield.hierarchy import HierarchicalModel
    from rgfield.report import write_report

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if args.samples < 2:
        raise ValueError(f"--samples must be at least 2; got {args.samples}")
    if args.refine < 0:
        raise ValueError(f"--refine must be non-negative; got {args.refine}")
    start = time.perf_counter()
    path = io.example_path("phi4_L32_beta0.9244.nc")
    data = io.load(path)
    print(f"1/3 fitting a wavelet RG model to {data.shape[0]} φ⁴ fields (L = 32, β = β_c)")
    if args.refine:
        print(f"    score matching, then {args.refine} moment-matching iterations per scale")
    model = HierarchicalModel(
        refine=args.refine, refine_coarse="generated", progress=not args.no_progress
    ).fit(data, seed=args.seed)
    print(f"2/3 sampling {args.samples} new fields coarse to fine (MALA per scale)")
    result = model.sample(args.samples, seed=args.seed)
    _print_acceptance(result.diagnostics)
    print("3/3 comparing them with the reference ensemble")
    out.mkdir(exist_ok=True)
    model.save(out / "model.nc", overwrite=True)
    io.save(result.to_dataset(), out / "samples.nc", overwrite=True)
    report = write_report(data, result.fields, out / "report", model=model, overwrite=True)
    print(f"done in {time.perf_counter() - start:.0f} s: model, samples and report in {out}/")
    print(f"open {report}/report.md (figures in {report}/figures)")
    return 0


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_subparsers(dest="model", metavar="model", required=True)
    phi4 = models.add_parser("phi4", help="lattice φ⁴: E = β/2 Σ(φx−φy)² + λ Σ(φ²−1)²")
    phi4.add_argument("--size", type=int, required=True, help="lattice size L")
    phi4.add_argument("--beta", type=float, required=True, help="nearest-neighbour coupling β")
    phi4.add_argument("--lam", type=float, default=1.0, help="quartic coupling λ (default 1)")
    phi4.add_argument("--samples", type=int, required=True, help="configurations to save")
    phi4.add_argument("--sampler", choices=SAMPLERS, default="wolff")
    phi4.add_argument("--chains", type=int, help="independent chains (default 4 × threads)")
    phi4.add_argument("--thermalization", type=int, help="steps before saving (default: measured)")
    phi4.add_argument("--spacing", type=int, help="steps between saves (default: ⌈2 τ_int⌉)")
    _common_simulate_arguments(phi4)
    turbulence = models.add_parser(
        "turbulence", help="2D Navier–Stokes vorticity, pseudo-spectral, forced and stationary"
    )
    turbulence.add_argument("--size", type=int, required=True, help="grid points N per side")
    turbulence.add_argument("--samples", type=int, required=True, help="snapshots to save")
    turbulence.add_argument("--viscosity", type=float, default=1e-3, help="ν (default 1e-3)")
    turbulence.add_argument("--hyperviscosity", type=float, default=0.0, help="ν_h (default 0)")
    turbulence.add_argument("--hyper-order", type=int, default=4, help="p of (−Δ)^p (default 4)")
    turbulence.add_argument("--drag", type=float, default=0.1, help="linear drag μ (default 0.1)")
    turbulence.add_argument(
        "--hypodrag", type=float, default=0.0, help="large-scale friction α(−Δ)⁻¹ (default 0)"
    )
    turbulence.add_argument(
        "--forcing", choices=("ring", "kolmogorov"), default="ring", help="(default ring)"
    )
    turbulence.add_argument("--kf", type=float, default=4.0, help="forcing wavenumber (default 4)")
    turbulence.add_argument(
        "--strength", type=float, default=1.0, help="ε of the ring, F of Kolmogorov (default 1)"
    )
    turbulence.add_argument("--flows", type=int, help="independent flows (default min(samples, 4))")
    turbulence.add_argument("--spacing", type=float, help="time between snapshots (default 2τ)")
    turbulence.add_argument("--velocity", action="store_true", help="also store u and v")
    _common_simulate_arguments(turbulence)
    cosmic = models.add_parser(
        "cosmic", help="cosmic-web density: 2LPT / Zel'dovich particles or a log-normal field"
    )
    cosmic.add_argument("--size", type=int, required=True, help="grid points N per side")
    cosmic.add_argument("--samples", type=int, required=True, help="independent boxes")
    cosmic.add_argument("--box", type=float, default=256.0, help="box side, Mpc/h (default 256)")
    cosmic.add_argument("--redshift", type=float, default=0.0, help="output redshift (default 0)")
    cosmic.add_argument(
        "--model", dest="dynamics", choices=("2lpt", "zeldovich", "lognormal"), default="2lpt"
    )
    cosmic.add_argument(
        "--product",
        choices=("slab", "density"),
        default="slab",
        help="log(1+δ) of a slab (default) or the 3D δ",
    )
    cosmic.add_argument("--thickness", type=int, help="slab thickness in cells (default N/8)")
    cosmic.add_argument("--omega-m", type=float, default=0.31, help="Ω_m (default 0.31)")
    cosmic.add_argument("--omega-b", type=float, default=0.049, help="Ω_b (default 0.049)")
    cosmic.add_argument("--hubble", type=float, default=0.68, help="h (default 0.68)")
    cosmic.add_argument("--ns", type=float, default=0.965, help="spectral index (default 0.965)")
    cosmic.add_argument("--sigma8", type=float, default=0.81, help="σ₈ (default 0.81)")
    _common_simulate_arguments(cosmic)


def _common_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, help="random seed (default: fresh entropy)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--out", required=True, help="netCDF file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_simulate(args: argparse.Namespace) -> int:
    from rgfield import io

    if not args.overwrite and Path(args.out).exists():  # fail before a long run, not after
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    simulators = {
        "phi4": _simulate_phi4,
        "turbulence": _simulate_turbulence,
        "cosmic": _simulate_cosmic,
    }
    ds = simulators[args.model](args)
    io.save(ds, args.out, overwrite=args.overwrite)
    print(f"{args.samples} {args.model} samples written to {args.out}")
    return 0


def _simulate_turbulence(args: argparse.Namespace):
    from rgfield.fields import turbulence

    flow = turbulence.Turbulence2D(
        size=args.size,
        viscosity=args.viscosity,
        hyperviscosity=args.hyperviscosity,
        hyper_order=args.hyper_order,
        drag=args.drag,
        hypodrag=args.hypodrag,
        forcing=args.forcing,
        forcing_wavenumber=args.kf,
        strength=args.strength,
    )
    ds = turbulence.simulate(
        flow,
        args.samples,
        flows=args.flows,
        seed=args.seed,
        spacing=args.spacing,
        device=args.device,
        velocity=args.velocity,
        progress=not args.no_progress,
    )
    a = ds.attrs
    print(
        f"spin-up {a['spin_up_time']:.3g} time units (stationary: {bool(a['stationary'])}),"
        f" tau_int energy {a['tau_energy']:.3g}, enstrophy {a['tau_enstrophy']:.3g};"
        f" snapshots every {a['spacing']:.3g}; {a['steps']} steps, mean dt {a['mean_dt']:.3g}"
    )
    return ds


def _simulate_cosmic(args: argparse.Namespace):
    from rgfield.fields import cosmic

    spectrum = cosmic.EisensteinHu(
        omega_m=args.omega_m,
        omega_b=args.omega_b,
        h=args.hubble,
        n_s=args.ns,
        sigma8=args.sigma8,
    )
    ds = cosmic.simulate(
        args.size,
        args.samples,
        box=args.box,
        redshift=args.redshift,
        model=args.dynamics,
        spectrum=spectrum,
        product=args.product,
        thickness=args.thickness,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    a = ds.attrs
    print(f"growth D1 = {a['growth_d1']:.4f}, D2 = {a['growth_d2']:.4f} at z = {a['redshift']:g}")
    if "floored_fraction" in a and a["floored_fraction"] > 0:
        print(f"{a['floored_fraction']:.2%} of slab pixels were empty (1+δ raised to {a['floor']})")
    return ds


def _simulate_phi4(args: argparse.Namespace):
    from rgfield.fields import phi4

    ds = phi4.simulate(
        phi4.Phi4(beta=args.beta, lam=args.lam),
        args.size,
        args.samples,
        sampler=args.sampler,
        chains=args.chains,
        seed=args.seed,
        thermalization=args.thermalization,
        spacing=args.spacing,
        device=args.device,
        progress=not args.no_progress,
    )
    a = ds.attrs
    if "tau_int_abs_m" in a:
        print(
            f"tau_int: M {a['tau_int_m']:.2f}, |M| {a['tau_int_abs_m']:.2f},"
            f" energy {a['tau_int_energy']:.2f} steps (pilot of {a['pilot_steps']} steps)"
        )
    print(
        f"thermalization {a['thermalization']} steps, spacing {a['spacing']} steps,"
        f" acceptance {a['acceptance']:.2f}; tau_int over the saved samples:"
        f" M {a['tau_int_m_saved']:.2f}, |M| {a['tau_int_abs_m_saved']:.2f}"
    )
    return ds


COMMANDS: list[Command] = [
    Command(
        "demo",
        "fit, sample and validate a wavelet RG model of the shipped φ⁴ ensemble",
        _demo_arguments,
        _run_demo,
    ),
    Command(
        "fit",
        "fit a hierarchical wavelet RG model to an ensemble of fields",
        _fit_arguments,
        _run_fit,
    ),
    Command(
        "sample",
        "generate fields from a fitted model",
        _sample_arguments,
        _run_sample,
    ),
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
    Command(
        "synthesize",
        "microcanonical synthesis: new fields with a target's scattering statistics",
        _synthesize_arguments,
        _run_synthesize,
    ),
    Command(
        "simulate",
        "simulate an ensemble of fields and write it to netCDF",
        _simulate_arguments,
        _run_simulate,
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
