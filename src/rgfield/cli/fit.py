"""``rgfield fit``: a hierarchical wavelet RG model fitted to an ensemble."""

from __future__ import annotations

import argparse
import sys

from rgfield.cli import _options

NAME = "fit"
HELP = "fit a hierarchical wavelet RG model to an ensemble of fields"

PRESETS = {
    "fast": {"refine": 0, "refine_coarse": "data"},
    "accurate": {"refine": "auto", "refine_coarse": "generated"},
}
"""``--preset``: ``fast`` is score matching alone; ``accurate`` adds the moment-matching
refinement on generated coarse fields of docs/rg.md's acceptance runs (in Python:
``HierarchicalModel(refine="auto", refine_coarse="generated")``), and for φ⁴ data the
stiffness family (:data:`rgfield.rg.parameters.KIND_PRESETS`)."""

REPORT_COLUMNS = (
    "grid",
    "features",
    "condition_preconditioned",
    "heldout_loss",
    "moment_gap_end",
    "curvature_end",
    "seconds",
)


def feature_names(text: str) -> dict[str, dict]:
    """``--features``: comma-separated registered family names, each optionally ``@j`` for a
    family that enters the conditionals from j up only (and the coarsest field:
    ``potential@2``); returns name → {} or {"min_level": j}."""
    from rgfield.energies import FEATURES
    from rgfield.rg.parameters import MIN_LEVEL

    error = argparse.ArgumentTypeError(
        f"expected comma-separated feature families among {sorted(FEATURES)}, each once"
        f" and optionally @j (from the conditional j up, j >= 1); got {text!r}"
    )
    spec = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, at, level = item.partition("@")
        valid_level = not at or (level.isdecimal() and int(level) >= 1)
        if name not in FEATURES or name in spec or not valid_level:
            raise error
        spec[name] = {MIN_LEVEL: int(level)} if level else {}
    if not spec:
        raise error
    return spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="training ensemble (.nc or .npy)")
    _options.add_var(parser)
    parser.add_argument("--levels", type=int, help="RG steps J (default: down to 1×1)")
    parser.add_argument("--wavelet", default="db4", help="orthogonal wavelet (default db4)")
    parser.add_argument(
        "--features",
        type=feature_names,
        help="feature families of every scale, comma-separated: potential, quadratic,"
        " gaussian, stiffness, site_stiffness, scatcov; NAME@j keeps a family out of the"
        " conditionals finer than j (potential@2: not at j = 1) (default by the data's kind"
        " and --preset: potential@2,quadratic,scatcov for the cosmic web,"
        " potential,gaussian,quadratic"
        " for forced and gaussian,quadratic for decaying turbulence,"
        " potential,quadratic,stiffness for φ⁴ with --preset accurate, potential,quadratic"
        " otherwise; docs/rg.md,"
        " docs/rg_fields.md)",
    )
    parser.add_argument(
        "--windows", type=int, default=20, help="sigmoid windows per scale (default 20)"
    )
    parser.add_argument(
        "--radius",
        type=int,
        help="stencil radius of the quadratic couplings (default: min(4, n // 2) on an n×n grid)",
    )
    parser.add_argument(
        "--ridge", type=float, default=1e-6, help="score-matching ridge (default 1e-6)"
    )
    parser.add_argument(
        "--min-curvature",
        type=float,
        help="floor on the smallest Hessian eigenvalue of every conditional at the training"
        " fields (default by the data's kind: 0.1 for the cosmic web and turbulence,"
        " none otherwise; 0: none)",
    )
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="fast",
        help="'fast': score matching alone (default); 'accurate': docs/rg.md's recipe, the"
        " same followed by moment matching on generated coarse fields (--refine auto"
        " --refine-coarse generated, and the stiffness family for φ⁴ data; at L = 32 a"
        " 9 min fit against 40 s, closer φ⁴ observables and tails)",
    )
    parser.add_argument(
        "--refine",
        type=_options.count_or_auto,
        nargs="+",
        help="moment-matching iterations (overrides --preset): one value for every scale, or"
        " J + 1 values (finest conditional first, coarsest field last), or 'auto' (10 where"
        " the details lie on more than 4×4 sites, else 30); 0: off",
    )
    parser.add_argument(
        "--refine-coarse",
        choices=("data", "generated"),
        help="coarse fields the refinement chains are conditioned on (overrides --preset)",
    )
    parser.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip the sampler's calibration on the training fields (HMC step and τ_int per"
        " scale, measured once on 128 chains; without it every `rgfield sample` measures them"
        " with a pilot of its own)",
    )
    _options.add_seed(parser, default=0, help="seed of the refinement and calibration chains")
    _options.add_output(parser, "model file to write (.nc)")
    _options.add_progress(parser)
    _options.add_cluster(parser)


def run(args: argparse.Namespace) -> int:
    from rgfield import io
    from rgfield.rg.calibration import describe

    data = None
    if args.workers is not None or args.scheduler is not None:
        model = build_model(args, _ensemble_generator(args.data), streamed=True)
        shape = _fit_on_cluster(model, args)
    else:
        data = io.load(args.data, args.var)
        model = build_model(args, str(data.attrs.get("generator", "")))
        model.fit(data, seed=args.seed)
        shape = data.shape
    print(
        f"fitted {model.levels_} conditionals and the coarsest field on {shape[0]} fields"
        f" of {shape[1]}×{shape[2]}; per scale:"
    )
    columns = [c for c in REPORT_COLUMNS if not model.fit_report_[c].isnull().all()]
    table = model.fit_report_[columns].to_dataframe()  # (moment_gap_end: only when refined)
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    if not args.no_calibrate:
        print("calibrating the sampler (HMC) on the training fields ...", flush=True)
        model.calibrate(_first_fields(args) if data is None else data, seed=args.seed)
    print(describe(model.calibration_))
    model.save(args.out, overwrite=args.overwrite)
    print(f"model written to {args.out}")
    return 0


def build_model(args: argparse.Namespace, generator: str = "", streamed: bool = False):
    """The unfitted model of the command line: ``--preset``'s recipe, then the options that
    override it; without ``--features`` or ``--min-curvature``, those of the data's ``generator``
    (:func:`rgfield.rg.kind_defaults`). A fit from chunks (``streamed``) is score matching
    only, so a curvature floor that only the data's kind asked for is left out, with a note."""
    from rgfield.rg import HierarchicalModel, kind_defaults
    from rgfield.rg.parameters import feature_spec

    recipe = dict(PRESETS[args.preset])
    if args.refine is not None:
        recipe["refine"] = args.refine[0] if len(args.refine) == 1 else args.refine
    if args.refine_coarse is not None:
        recipe["refine_coarse"] = args.refine_coarse
    options = {"potential": {"windows": args.windows}, "quadratic": {"radius": args.radius}}
    defaults = kind_defaults(generator, args.preset)
    chosen = feature_spec(args.features or defaults["features"])
    floor = defaults["min_curvature"] if args.min_curvature is None else args.min_curvature
    if streamed and args.min_curvature is None and floor:
        print(
            f"rgfield: note: a fit from chunks is score matching only: the curvature floor"
            f" {floor} of this kind of data is left out (fit in memory, without --workers or"
            " --scheduler, to apply it)",
            file=sys.stderr,
        )
        floor = None
    return HierarchicalModel(
        levels=args.levels,
        wavelet=args.wavelet,
        features={name: options.get(name, {}) | extra for name, extra in chosen.items()},
        ridge=args.ridge,
        min_curvature=floor or None,
        progress=not args.no_progress,
        **recipe,
    )


def _first_fields(args: argparse.Namespace):
    """The first chunks of the ensemble directory ``--data``, up to the calibration's chains."""
    from pathlib import Path

    import xarray as xr

    from rgfield import io
    from rgfield.ensembles import store
    from rgfield.rg.calibration import CALIBRATION_CHAINS

    chunks, count = [], 0
    while (
        count < CALIBRATION_CHAINS
        and (path := store.chunk_path(Path(args.data), len(chunks))).is_file()
    ):
        chunks.append(io.load(path, args.var))
        count += chunks[-1].shape[0]
    return xr.concat(chunks, "sample")


def _ensemble_generator(path: str) -> str:
    """The ``generator`` attribute of an ensemble directory's first chunk ("" if unknown)."""
    from pathlib import Path

    from rgfield import io
    from rgfield.ensembles import store

    first = store.chunk_path(Path(path), 0)
    return str(io.load(first).attrs.get("generator", "")) if first.is_file() else ""


def _fit_on_cluster(model, args: argparse.Namespace) -> tuple[int, int, int]:
    """Score matching from the ensemble directory ``--data``, chunk by chunk, on the cluster
    (:func:`rgfield.ensembles.fit`); the ensemble's shape."""
    from pathlib import Path

    from rgfield import ensembles
    from rgfield.ensembles import store

    if not (Path(args.data) / store.MANIFEST).is_file():
        raise ValueError(
            f"--data: {args.data} is not an ensemble directory; --workers and --scheduler fit"
            " chunk by chunk from one (rgfield simulate ... --chunk N writes it)"
        )
    with ensembles.cluster(args.scheduler, args.workers) as client:
        print(f"Dask dashboard: {client.dashboard_link}", flush=True)
        ensembles.fit(model, args.data, var=args.var, client=client, progress=model.progress)
    samples = store.complete_plan(Path(args.data)).samples
    return (samples, *model.size_)
