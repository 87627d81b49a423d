"""``rgfield simulate MODEL``: an ensemble from one of the simulators of :mod:`rgfield.fields`.

Each model is one entry of :data:`MODELS`: its options, how they make the simulator's config,
and the line printed about the result. The run itself is the same for every model: build the
config, :func:`rgfield.fields.simulate`, :func:`rgfield.io.save`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from rgfield.cli import _options

NAME = "simulate"
HELP = "simulate an ensemble of fields and write it to netCDF"

PHI4_SAMPLERS = ("wolff", "metropolis", "hmc")
"""``rgfield.fields.phi4.SAMPLERS``, written out so that ``--help`` needs no numba (a test keeps
the two equal)."""


@dataclass(frozen=True)
class Model:
    """A simulator as the command line sees it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    config: Callable[[argparse.Namespace], object]  # the simulator's config from the options
    summary: Callable[[dict], str]  # what to print about the run, from the Dataset's attrs


def _phi4_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, required=True, help="lattice size L")
    parser.add_argument("--beta", type=float, required=True, help="nearest-neighbour coupling β")
    parser.add_argument("--lam", type=float, default=1.0, help="quartic coupling λ (default 1)")
    parser.add_argument("--samples", type=int, required=True, help="configurations to save")
    parser.add_argument("--sampler", choices=PHI4_SAMPLERS, default="wolff")
    parser.add_argument("--chains", type=int, help="independent chains (default 4 × threads)")
    parser.add_argument(
        "--thermalization", type=int, help="steps before saving (default: measured)"
    )
    parser.add_argument("--spacing", type=int, help="steps between saves (default: ⌈2 τ_int⌉)")


def _phi4_config(args: argparse.Namespace):
    from rgfield.fields.phi4 import Phi4, Phi4Config

    return Phi4Config(
        Phi4(beta=args.beta, lam=args.lam),
        args.size,
        sampler=args.sampler,
        chains=args.chains,
        thermalization=args.thermalization,
        spacing=args.spacing,
    )


def _phi4_summary(a: dict) -> str:
    lines = []
    if "tau_int_abs_m" in a:
        lines.append(
            f"tau_int: M {a['tau_int_m']:.2f}, |M| {a['tau_int_abs_m']:.2f},"
            f" energy {a['tau_int_energy']:.2f} steps (pilot of {a['pilot_steps']} steps)"
        )
    if math.isnan(a["tau_int_m_saved"]):  # see fields.phi4._saved_tau
        saved = (
            "not measured (it needs 4 saved samples per chain, and the fields vary;"
            f" {a['chains']} chains: ask for at least {4 * a['chains']} samples or fewer chains)"
        )
    else:
        saved = f"M {a['tau_int_m_saved']:.2f}, |M| {a['tau_int_abs_m_saved']:.2f}"
    lines.append(
        f"thermalization {a['thermalization']} steps, spacing {a['spacing']} steps,"
        f" acceptance {a['acceptance']:.2f}; tau_int over the saved samples: {saved}"
    )
    return "\n".join(lines)


FORCED = {  # option: default, for forced flows only
    "viscosity": 1e-3,
    "drag": 0.1,
    "hypodrag": 0.0,
    "forcing": "ring",
    "kf": 4.0,
    "strength": 1.0,
    "flows": None,
    "spacing": None,
    "velocity": False,
}
DECAYING = {"duration": 40.0, "energy": 0.5, "k0": None}  # option: default, with --decaying


def _turbulence_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, required=True, help="grid points N per side")
    parser.add_argument("--samples", type=int, required=True, help="snapshots to save")
    parser.add_argument(
        "--hyperviscosity",
        type=float,
        help="ν_h (default 0 forced, 1e-12 (128/N)^8 decaying)",
    )
    parser.add_argument("--hyper-order", type=int, default=4, help="p of (−Δ)^p (default 4)")
    forced = parser.add_argument_group("forced, stationary flows (the default)")
    forced.add_argument("--viscosity", type=float, help="ν (default 1e-3)")
    forced.add_argument("--drag", type=float, help="linear drag μ (default 0.1)")
    forced.add_argument("--hypodrag", type=float, help="large-scale friction α(−Δ)⁻¹ (default 0)")
    forced.add_argument("--forcing", choices=("ring", "kolmogorov"), help="(default ring)")
    forced.add_argument("--kf", type=float, help="forcing wavenumber (default 4)")
    forced.add_argument("--strength", type=float, help="ε of the ring, F of Kolmogorov (default 1)")
    forced.add_argument("--flows", type=int, help="independent flows (default min(samples, 4))")
    forced.add_argument("--spacing", type=float, help="time between snapshots (default 2τ)")
    # default None, not False: _refuse tells an explicit --velocity from its absence
    forced.add_argument("--velocity", action="store_true", default=None, help="also store u and v")
    decaying = parser.add_argument_group(
        "freely decaying flows (McWilliams 1984): one independent flow per sample"
    )
    decaying.add_argument(
        "--decaying", action="store_true", help="no forcing or drag, from random vortices"
    )
    decaying.add_argument("--duration", type=float, help="time of the snapshot (default 40)")
    decaying.add_argument("--energy", type=float, help="initial kinetic energy (default 0.5)")
    decaying.add_argument(
        "--k0", type=float, help="centre of the initial vorticity band (default N/10.7)"
    )


def _given(args: argparse.Namespace, options: dict) -> dict:
    """The options of ``options`` set on the command line (not None)."""
    return {name: getattr(args, name) for name in options if getattr(args, name) is not None}


def _refuse(args: argparse.Namespace, options: dict, kind: str) -> None:
    given = [f"--{name}" for name in _given(args, options)]
    if given:
        raise ValueError(f"{', '.join(given)}: not an option of {kind} flows")


def _turbulence_config(args: argparse.Namespace):
    """A forced flow's TurbulenceConfig, or with ``--decaying`` a DecayingConfig."""
    from rgfield.fields.turbulence import Turbulence2D, TurbulenceConfig

    if args.decaying:
        from rgfield.fields.decaying_turbulence import DecayingConfig, decaying_flow

        _refuse(args, FORCED, "decaying")
        flow = decaying_flow(args.size)
        changes = {"hyper_order": args.hyper_order}
        if args.hyperviscosity is not None:
            changes["hyperviscosity"] = args.hyperviscosity
        if args.k0 is not None:
            changes["forcing_wavenumber"] = args.k0
        options = {**DECAYING, **_given(args, DECAYING)}
        return DecayingConfig(
            replace(flow, **changes), duration=options["duration"], energy=options["energy"]
        )
    _refuse(args, DECAYING, "forced")
    options = {**FORCED, **_given(args, FORCED)}
    flow = Turbulence2D(
        size=args.size,
        viscosity=options["viscosity"],
        hyperviscosity=args.hyperviscosity or 0.0,
        hyper_order=args.hyper_order,
        drag=options["drag"],
        hypodrag=options["hypodrag"],
        forcing=options["forcing"],
        forcing_wavenumber=options["kf"],
        strength=options["strength"],
    )
    return TurbulenceConfig(
        flow, flows=options["flows"], spacing=options["spacing"], velocity=options["velocity"]
    )


def _turbulence_summary(a: dict) -> str:
    if "spin_up_time" not in a:  # a decaying ensemble: one flow per sample
        return f"each flow integrated to t = {a['duration']:g}; {a['steps']} steps in all"
    return (
        f"spin-up {a['spin_up_time']:.3g} time units (stationary: {bool(a['stationary'])}),"
        f" tau_int energy {a['tau_energy']:.3g}, enstrophy {a['tau_enstrophy']:.3g};"
        f" snapshots every {a['spacing']:.3g}; {a['steps']} steps, mean dt {a['mean_dt']:.3g}"
    )


def _cosmic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, required=True, help="grid points N per side")
    parser.add_argument("--samples", type=int, required=True, help="independent boxes")
    parser.add_argument("--box", type=float, default=256.0, help="box side, Mpc/h (default 256)")
    parser.add_argument("--redshift", type=float, default=0.0, help="output redshift (default 0)")
    parser.add_argument(
        "--model", dest="dynamics", choices=("2lpt", "zeldovich", "lognormal"), default="2lpt"
    )
    parser.add_argument(
        "--product",
        choices=("slab", "density"),
        default="slab",
        help="log(1+δ) of a slab (default) or the 3D δ",
    )
    parser.add_argument("--thickness", type=int, help="slab thickness in cells (default N/8)")
    parser.add_argument("--omega-m", type=float, default=0.31, help="Ω_m (default 0.31)")
    parser.add_argument("--omega-b", type=float, default=0.049, help="Ω_b (default 0.049)")
    parser.add_argument("--hubble", type=float, default=0.68, help="h (default 0.68)")
    parser.add_argument("--ns", type=float, default=0.965, help="spectral index (default 0.965)")
    parser.add_argument("--sigma8", type=float, default=0.81, help="σ₈ (default 0.81)")


def _cosmic_config(args: argparse.Namespace):
    from rgfield.fields.cosmic import CosmicConfig, EisensteinHu

    spectrum = EisensteinHu(
        omega_m=args.omega_m, omega_b=args.omega_b, h=args.hubble, n_s=args.ns, sigma8=args.sigma8
    )
    return CosmicConfig(
        size=args.size,
        box=args.box,
        redshift=args.redshift,
        model=args.dynamics,
        spectrum=spectrum,
        product=args.product,
        thickness=args.thickness,
    )


def _cosmic_summary(a: dict) -> str:
    line = f"growth D1 = {a['growth_d1']:.4f}, D2 = {a['growth_d2']:.4f} at z = {a['redshift']:g}"
    if a.get("floored_fraction", 0) > 0:
        line += (
            f"\n{a['floored_fraction']:.2%} of slab pixels were empty (1+δ raised to {a['floor']})"
        )
    return line


MODELS = {
    "phi4": Model(
        "lattice φ⁴: E = β/2 Σ(φx−φy)² + λ Σ(φ²−1)²",
        _phi4_arguments,
        _phi4_config,
        _phi4_summary,
    ),
    "turbulence": Model(
        "2D Navier–Stokes vorticity, pseudo-spectral: forced and stationary, or --decaying",
        _turbulence_arguments,
        _turbulence_config,
        _turbulence_summary,
    ),
    "cosmic": Model(
        "cosmic-web density: 2LPT / Zel'dovich particles or a log-normal field",
        _cosmic_arguments,
        _cosmic_config,
        _cosmic_summary,
    ),
}
"""The models of ``rgfield simulate``, by the name of their simulator in rgfield.fields."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_subparsers(dest="model", metavar="model", required=True)
    for name, model in MODELS.items():
        sub = models.add_parser(name, help=model.help, description=model.help)
        model.add_arguments(sub)
        _options.add_seed(sub)
        _options.add_device(sub)
        _options.add_output(sub, "netCDF file to write (an ensemble directory: see below)")
        _options.add_progress(sub)
        _options.add_ensemble(sub)


def run(args: argparse.Namespace) -> int:
    from rgfield import fields, io

    model = MODELS[args.model]
    config = model.config(args)
    if _options.ensemble_mode(args):
        from rgfield.cli._ensemble import write_ensemble
        from rgfield.ensembles import Simulation

        write_ensemble(args, Simulation(config, args.device), args.samples)
        return 0
    ds = fields.simulate(
        config, args.samples, seed=args.seed, device=args.device, progress=not args.no_progress
    )
    print(model.summary(ds.attrs))
    io.save(ds, args.out, overwrite=args.overwrite)
    print(f"{args.samples} {args.model} samples written to {args.out}")
    return 0
