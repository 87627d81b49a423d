"""The model's constructor parameters, checked in one place when a fit starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real

from rgfield._validate import is_integer
from rgfield.energies import make_feature
from rgfield.rg.scales import per_scale
from rgfield.wavelets import WAVELETS

__all__ = ["REFINE_COARSE", "Settings", "check_parameters"]

REFINE_COARSE = ("data", "generated")


@dataclass(frozen=True)
class Settings:
    """Validated parameters of a fit, resolved for data of a given size.

    ``refine`` has one count per factor in :func:`~rgfield.rg.scales.coarse_to_fine` order.
    """

    levels: int
    wavelet: str
    features: dict[str, dict]
    ridges: list[float]
    heldout: float
    refine: list[int]
    refine_steps: int
    refine_coarse: str


def feature_spec(features) -> dict[str, dict]:
    """``features`` as a mapping name → options (a name or a sequence of names accepted)."""
    if isinstance(features, str):
        features = [features]
    return dict(features) if isinstance(features, Mapping) else {f: {} for f in features}


def check_parameters(params: Mapping, max_levels: int) -> Settings:
    """Check the constructor parameters of :class:`~rgfield.rg.HierarchicalModel`.

    Parameters
    ----------
    params : mapping
        ``model.get_params()``.
    max_levels : int
        The most RG steps the data's field size allows.

    Raises
    ------
    ValueError
        Naming the parameter and what was expected.
    """
    levels = params["levels"]
    if levels is not None and (not is_integer(levels) or levels < 1):
        raise ValueError(f"levels must be a positive integer or None; got {levels!r}")
    if levels is not None and levels > max_levels:
        raise ValueError(
            f"levels: the data's field size allows at most {max_levels} RG steps; got {levels}"
        )
    levels = max_levels if levels is None else int(levels)
    if params["wavelet"] not in WAVELETS:
        raise ValueError(f"wavelet must be one of {WAVELETS}; got {params['wavelet']!r}")
    spec = feature_spec(params["features"])
    if not spec:
        raise ValueError("features: at least one feature family is needed")
    for name, options in spec.items():
        make_feature(name, dict(options))  # validates names and options before any work
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
    return Settings(
        levels=levels,
        wavelet=params["wavelet"],
        features={name: dict(options) for name, options in spec.items()},
        ridges=[float(r) for r in ridges],
        heldout=float(heldout),
        refine=iterations,
        refine_steps=int(refine_steps),
        refine_coarse=refine_coarse,
    )
