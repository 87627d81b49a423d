"""The model's constructor parameters, checked in one place when a fit starts."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real

from rgfield._validate import is_integer
from rgfield.energies import make_feature
from rgfield.rg.scales import Scale, per_scale
from rgfield.wavelets import WAVELETS, max_levels

__all__ = [
    "MIN_LEVEL",
    "REFINE_AUTO",
    "REFINE_COARSE",
    "Settings",
    "auto_refine",
    "check_parameters",
    "describe_features",
    "factor_features",
    "family_options",
    "kind_defaults",
]

REFINE_COARSE = ("data", "generated")

REFINE_AUTO = {"fine": 10, "coarse": 30, "sites": 4}
"""``refine="auto"``: ``fine`` moment-matching iterations for the models whose variables (the
details, or the coarsest field) lie on more than ``sites`` × ``sites`` sites, ``coarse`` for the
others (the recipe of docs/rg.md's L = 64 acceptance)."""


MIN_LEVEL = "min_level"
"""The option of a family's entry in ``features`` that keeps it out of the finer
conditionals: with ``{"potential": {"min_level": 2}}`` the family enters the conditionals
j ≥ 2 and the coarsest factor, not j = 1 (the option is the model's, not the family's)."""


@dataclass(frozen=True)
class Settings:
    """Validated parameters of a fit, resolved for data of a given size.

    ``refine`` has one count per factor in :func:`~rgfield.rg.scales.coarse_to_fine` order.
    ``features`` may hold :data:`MIN_LEVEL` options: build a factor's families from
    :func:`factor_features`, never from ``features`` directly.
    """

    levels: int
    wavelet: str
    features: dict[str, dict]
    ridges: list[float]
    heldout: float
    refine: list[int]
    refine_steps: int
    refine_coarse: str
    min_curvature: float | None = None


GEOMETRIC = {
    "features": {"potential": {MIN_LEVEL: 2}, "quadratic": {}, "scatcov": {}},
    "min_curvature": 0.1,
}
"""Fields whose structure is geometric (filaments, vortices): the scattering-covariance family
with the quadratic couplings, fitted under a curvature floor, and the scalar potential at the
conditionals j ≥ 2 (docs/rg_fields.md, "Cosmic web 128²", "The coarse fields' skewness"). The
potential carries the skewness the coarse fields gain from scale to scale (+0.07 at x_5 to
+0.35 at x_1 in the 128² slabs), which no coupling of the details to the coarse field makes:
without it every generated x_j had skewness −0.06 … +0.06 and the fields −0.057 against
+0.218; with it +0.255, and 11 and 9 of 16 comparison checks fail against 11 and 12 (seeds 3,
4). At j = 1 it is left out: there it distorted the spectrum (|z| 12.2 at 128²)."""

SPECTRAL = {"features": ("potential", "gaussian", "quadratic"), "min_curvature": 0.1}
"""The potential and quadratic families on top of the stationary Gaussian one, under a
curvature floor. Without the floor the default fit of the shipped 128² forced turbulence is
far from convex at the training details (smallest Hessian eigenvalue −14.3 at j = 5, −7.1 at
j = 4, with 64 fields for up to 629 features per scale) and its draws run away. Without the
Gaussian family the spectrum of a simulation's dissipation range, falling by orders of
magnitude within a few modes, is beyond the local couplings, and the chains of the finest
scale are stiff. With both, on held-out flows the spectrum passes in two of three draws
(largest |z| 3.61, 3.48, 4.70 for seeds 3, 4, 5; 12, 10, 14 of 16 checks fail), the finest
step is 0.24 and a field costs 1.0–1.1 s and 2,119–2,220 gradient evaluations
(docs/rg_fields.md, 2026-12-07; measured at 128² only). Decaying turbulence at
64² is not rescued: its floor is not reached at j = 4, and its draws stop at j = 1."""

GAUSSIAN = {"features": ("gaussian", "quadratic"), "min_curvature": 0.1}
"""The stationary Gaussian and quadratic families alone: Gaussian conditionals. For decaying
turbulence (64², 64 flows of `rgfield simulate turbulence --decaying`) the draws of both
models tried with the potential family in the conditionals stopped at j = 1, where 28–29 of
64 chains had coarse fields beyond the potential's support (potential + quadratic after
462 s; potential + gaussian + quadratic under the floor, not reached at j = 4, after
270 s). This one samples, at 0.15 s and 1,425 gradient evaluations per field: against 64
held-out flows the spectrum, correlation function, coarse-field variance and bispectrum
pass, and the one-point, intermittency and geometry statistics fail (12 of 16 checks;
docs/rg_fields.md, "Decaying turbulence 64²: a default that samples")."""

KIND_DEFAULTS = {
    "rgfield.fields.cosmic.simulate": GEOMETRIC,
    "rgfield.fields.turbulence.simulate": SPECTRAL,
    "rgfield.fields.decaying_turbulence.simulate": GAUSSIAN,
}
"""Model parameters by the ``generator`` attribute of the training data, where a comparison
against held-out fields favoured them (docs/rg_fields.md); forced turbulence takes the
potential, Gaussian and quadratic families (the scattering-covariance model failed 12 checks
against 8 of potential and quadratic at 32²; with the Gaussian family at 128², 10 against
11, one draw each, with the floor's former power iteration) under the floor; decaying
turbulence the Gaussian and quadratic families, the only one of three models tried whose
draws complete there; φ⁴ and every other kind take potential and quadratic without a
floor."""


KIND_PRESETS = {
    ("rgfield.fields.phi4.simulate", "accurate"): {
        "features": ("potential", "quadratic", "stiffness")
    },
}
"""Model parameters of ``rgfield fit --preset PRESET`` by the data's ``generator``, on top of
:data:`KIND_DEFAULTS`. φ⁴'s accurate recipe adds the field-dependent stiffness: with moment
matching it brought β̂/β to 1.004–1.008 (from 1.017–1.018) at β = 0.85, 0.9244, 1.0 (L = 64) and
the pixel excess kurtosis at L = 32, β_c from z −3.02 to −1.76 against held-out fields, at
twice the fit time (docs/rg.md, "The recipe at the three β" and "`--preset accurate` with the
stiffness")."""


def kind_defaults(generator: str, preset: str = "fast") -> dict:
    """``features`` and ``min_curvature`` of ``rgfield fit --preset preset`` for data made by
    ``generator`` (the attribute rgfield's simulators write): :data:`KIND_DEFAULTS` and
    :data:`KIND_PRESETS`, else the potential and quadratic families without a curvature
    floor."""
    defaults = {"features": ("potential", "quadratic"), "min_curvature": None}
    chosen = defaults | KIND_DEFAULTS.get(generator, {}) | KIND_PRESETS.get((generator, preset), {})
    return copy.deepcopy(chosen)  # callers may edit the families' options


def describe_features(features) -> str:
    """``features`` in words: the names joined by " + ", a family with a :data:`MIN_LEVEL`
    marked "(j ≥ level)"."""
    spec = feature_spec(features)
    return " + ".join(
        name + (f" (j ≥ {options[MIN_LEVEL]})" if MIN_LEVEL in options else "")
        for name, options in spec.items()
    )


def feature_spec(features) -> dict[str, dict]:
    """``features`` as a mapping name → options (a name or a sequence of names accepted)."""
    if isinstance(features, str):
        features = [features]
    return dict(features) if isinstance(features, Mapping) else {f: {} for f in features}


def family_options(options: Mapping) -> dict:
    """A family's constructor options: its entry in ``features`` without :data:`MIN_LEVEL`."""
    return {key: value for key, value in options.items() if key != MIN_LEVEL}


def factor_features(features: dict[str, dict], scale: Scale) -> dict[str, dict]:
    """The families of one factor (name → constructor options): those of ``features``
    whose :data:`MIN_LEVEL` (1 by default) is at most the factor's level, and for the
    coarsest (unconditional) factor every family and always the scalar potential too (first,
    with its default options unless given).

    The coarsest field's one-point law, the fields' mean among it, is no part of the
    quadratic or scattering families, which are even in y: without it the cosmic web's
    log-density slabs (mean −0.37 ± 0.12 over slabs) came out with mean 0.02 ± 0.38, and
    through the coarse-field terms of the finer conditionals with 20 % too little power at
    the highest wavenumbers (docs/rg_fields.md).
    """
    chosen = {
        name: family_options(options)
        for name, options in features.items()
        if not scale.conditional or scale.level >= options.get(MIN_LEVEL, 1)
    }
    return chosen if scale.conditional else {"potential": {}, **chosen}


def auto_refine(
    size: Sequence[int],
    levels: int,
    fine: int | None = None,
    coarse: int | None = None,
    sites: int | None = None,
) -> list[int]:
    """Moment-matching iterations of ``refine="auto"`` for fields of ``size`` and ``levels``
    RG steps, finest conditional first, the coarsest field last: ``fine`` for the models whose
    variables lie on more than ``sites`` × ``sites`` sites, ``coarse`` for the others (each
    default from :data:`REFINE_AUTO`).

    The coarse models cost seconds per iteration and their moments rest on a few sites per
    field, so they get more iterations (see docs/rg.md on φ⁴ at β = 1.0).
    """
    fine = REFINE_AUTO["fine"] if fine is None else fine
    coarse = REFINE_AUTO["coarse"] if coarse is None else coarse
    sites = REFINE_AUTO["sites"] if sites is None else sites
    side = min(int(n) for n in size)
    # the details of conditional j lie on (side/2^j)², the coarsest field on (side/2^J)²
    sides = [side >> j for j in range(1, levels + 1)] + [side >> levels]
    return [fine if n > sites else coarse for n in sides]


def check_parameters(params: Mapping, size: Sequence[int]) -> Settings:
    """Check the constructor parameters of :class:`~rgfield.rg.HierarchicalModel`.

    Parameters
    ----------
    params : mapping
        ``model.get_params()``.
    size : sequence of int
        The data's field size (it bounds the RG steps and sets ``refine="auto"``).

    Raises
    ------
    ValueError
        Naming the parameter and what was expected.
    """
    most = max_levels(size, "data")
    levels = params["levels"]
    if levels is not None and (not is_integer(levels) or levels < 1):
        raise ValueError(f"levels must be a positive integer or None; got {levels!r}")
    if levels is not None and levels > most:
        raise ValueError(
            f"levels: the data's field size allows at most {most} RG steps; got {levels}"
        )
    levels = most if levels is None else int(levels)
    if params["wavelet"] not in WAVELETS:
        raise ValueError(f"wavelet must be one of {WAVELETS}; got {params['wavelet']!r}")
    spec = feature_spec(params["features"])
    if not spec:
        raise ValueError("features: at least one feature family is needed")
    for name, options in spec.items():
        level = options.get(MIN_LEVEL, 1)
        if not is_integer(level) or not 1 <= level <= levels:
            raise ValueError(
                f"features: {name}'s {MIN_LEVEL} must be an integer from 1 to the {levels}"
                f" levels; got {level!r}"
            )
        make_feature(name, family_options(options))  # validates names and options first
    if all(options.get(MIN_LEVEL, 1) > 1 for options in spec.values()):
        raise ValueError(
            f"features: every family has a {MIN_LEVEL} above 1, so the finest conditional"
            " (j = 1) would have none"
        )
    ridge, heldout = params["ridge"], params["heldout"]
    ridges = [ridge] if isinstance(ridge, Real) else list(ridge)
    if not ridges or not all(isinstance(r, Real) and r >= 0 for r in ridges):
        raise ValueError(f"ridge must be non-negative (or a sequence of such); got {ridge!r}")
    if not (isinstance(heldout, Real) and 0 <= heldout < 1):
        raise ValueError(f"heldout must be in [0, 1); got {heldout!r}")
    if len(ridges) > 1 and heldout == 0:
        raise ValueError("ridge: choosing among several values needs heldout > 0")
    refine, refine_coarse = params["refine"], params["refine_coarse"]
    if refine_coarse not in REFINE_COARSE:
        raise ValueError(f"refine_coarse must be one of {REFINE_COARSE}; got {refine_coarse!r}")
    if refine == "auto":
        refine = auto_refine(size, levels)
    iterations = per_scale(refine, levels, "refine")
    if refine_coarse == "generated" and any(iterations) and not all(iterations):
        raise ValueError(
            f"refine: refine_coarse='generated' draws each scale's coarse fields from the"
            f" refined coarser models, so either no model or every model is refined; got"
            f" {refine!r}"
        )
    refine_steps = params["refine_steps"]
    if not is_integer(refine_steps) or refine_steps < 2:
        raise ValueError(f"refine_steps must be an integer >= 2; got {refine_steps!r}")
    min_curvature = params.get("min_curvature")
    if min_curvature is not None and not (isinstance(min_curvature, Real) and min_curvature > 0):
        raise ValueError(f"min_curvature must be positive or None; got {min_curvature!r}")
    return Settings(
        levels=levels,
        wavelet=params["wavelet"],
        features={name: dict(options) for name, options in spec.items()},
        ridges=[float(r) for r in ridges],
        heldout=float(heldout),
        refine=iterations,
        refine_steps=int(refine_steps),
        refine_coarse=refine_coarse,
        min_curvature=None if min_curvature is None else float(min_curvature),
    )
