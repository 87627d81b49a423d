"""Physical observables of an ensemble, chosen by the reference's ``generator`` attribute.

An observable set is a function ``function(fields, statistics) -> xarray.Dataset`` giving an
ensemble estimate ``value`` and its ``error`` (blocked jackknife over the samples in their
order, so correlated chains are handled) along one dim. ``statistics`` holds the per-field
statistics the summary already computed (:mod:`rgfield.compare.statistics`), so an observable
built on one (a growth from the coarse-field variance, a flatness from structure functions)
does not compute it again; a set names those it needs in ``requires``.

A set is used when its ``matches(generator, variable)`` is true for the reference's
``generator`` attr and variable name (a file from :mod:`rgfield.fields` records both). Nothing
is added for data from other generators. Registering a set is one decorator::

    @register_observables("ising", title="Ising spins", matches=contains("ising"))
    def ising(fields, statistics) -> xr.Dataset: ...

Registered here:

- ``phi4`` ("phi4" in the generator): ⟨|M|⟩, χ, U₄ and ξ₂ (:func:`rgfield.stats.phi4_observables`);
- ``phi4_scaling``: the growth √(v̄_j / v̄_{j−1}) of the coarse-field variance per RG step, with
  the 2D Ising value 2^{1−η/2} ≈ 1.834 (η = 1/4) expected at criticality;
- ``turbulence`` (vorticity of :mod:`rgfield.fields.turbulence` on [0, 2π)²): energy
  E = ½⟨|u|²⟩, enstrophy Z = ½⟨ω²⟩ and the flatness ⟨δω⁴⟩/⟨δω²⟩² of one-pixel increments;
- ``cosmic`` (:mod:`rgfield.fields.cosmic`): variance σ², skewness κ₃/σ³ and reduced skewness
  S₃ = κ₃/σ⁴ of the pooled pixel values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from rgfield import stats

__all__ = ["OBSERVABLES", "ObservableSet", "contains", "observables_for", "register_observables"]

JACKKNIFE_BLOCKS = 20
ISING_GROWTH = 2 ** (1 - 0.25 / 2)
"""2^{1−η/2} with η = 1/4: growth per RG step of the coarse field's std at 2D Ising criticality."""

Function = Callable[[torch.Tensor, Mapping[str, xr.DataArray]], xr.Dataset]


@dataclass(frozen=True)
class ObservableSet:
    """A registered set of observables.

    Attributes
    ----------
    name : str
        Its key in :data:`OBSERVABLES` (an identifier: it names a group of summary.nc).
    function : callable
        ``function(fields, statistics)`` → Dataset with ``value`` and ``error`` along one dim.
    title : str
        Heading in report.md.
    matches : callable
        ``matches(generator, variable)`` → whether the set applies to a reference made by
        ``generator`` (its attr, "" when absent) of the variable ``variable`` (None if unnamed).
    requires : tuple of str
        Statistics of :data:`rgfield.compare.statistics.STATISTICS` the function reads.
    expected : float, optional
        A theoretical value every entry is compared with (drawn as a line; said in report.md).
    expected_label : str
        What ``expected`` is.
    """

    name: str
    function: Function
    title: str
    matches: Callable[[str, str | None], bool]
    requires: tuple[str, ...] = ()
    expected: float | None = None
    expected_label: str = ""


OBSERVABLES: dict[str, ObservableSet] = {}
"""The registered observable sets by name."""


def register_observables(
    name: str,
    *,
    title: str,
    matches: Callable[[str, str | None], bool],
    requires: Sequence[str] = (),
    expected: float | None = None,
    expected_label: str = "",
) -> Callable[[Function], Function]:
    """Decorator registering ``function(fields, statistics)`` as observable set ``name``.

    See :class:`ObservableSet` for the arguments. Raises ``ValueError`` for a name that is not
    an identifier or is already registered.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier; got {name!r}")
    if name in OBSERVABLES:
        raise ValueError(f"name: an observable set {name!r} is already registered")

    def decorator(function: Function) -> Function:
        OBSERVABLES[name] = ObservableSet(
            name, function, title, matches, tuple(requires), expected, expected_label
        )
        return function

    return decorator


def contains(
    word: str, variables: Sequence[str] | None = None
) -> Callable[[str, str | None], bool]:
    """A ``matches`` rule: ``word`` is in the generator, and the variable is unnamed or one of
    ``variables`` (any variable when ``variables`` is None)."""

    def matches(generator: str, variable: str | None) -> bool:
        return word in generator and (variables is None or variable in (None, *variables))

    return matches


def observables_for(reference) -> list[ObservableSet]:
    """The sets whose rule matches the reference's ``generator`` attr and variable name
    (attributes of an :class:`xarray.DataArray`; other arrays have neither and get none)."""
    generator = str(getattr(reference, "attrs", {}).get("generator", ""))
    variable = getattr(reference, "name", None)
    variable = None if variable is None else str(variable)
    return [s for s in OBSERVABLES.values() if s.matches(generator, variable)]


def _jackknifed(
    columns: np.ndarray, estimator: Callable[[np.ndarray], np.ndarray], coords: Mapping
) -> xr.Dataset:
    """Estimate and blocked-jackknife error of ``estimator(columns)`` (columns: one row per
    field, in sample order), as a Dataset along the one dim of ``coords``."""
    blocks = min(JACKKNIFE_BLOCKS, columns.shape[0])
    value, error = stats.jackknife(columns, estimator, blocks=blocks)
    (dim,) = coords
    return xr.Dataset({"value": (dim, value), "error": (dim, error)}, coords=coords)


@register_observables("phi4", title="φ⁴ lattice field", matches=contains("phi4"))
def phi4(fields: torch.Tensor, statistics: Mapping[str, xr.DataArray]) -> xr.Dataset:
    """⟨|M|⟩, χ, U₄ and ξ₂ of :func:`rgfield.stats.phi4_observables` (square lattices)."""
    table = stats.phi4_observables(fields, blocks=JACKKNIFE_BLOCKS)
    return table[["value", "error"]].drop_attrs()


@register_observables(
    "phi4_scaling",
    title="coarse-field growth √(v_j / v_{j−1}) per RG step",
    matches=contains("phi4"),
    requires=("coarse_field_variance",),
    expected=ISING_GROWTH,
    expected_label="2D Ising criticality: 2^(1−η/2) = 1.834 per step, η = 1/4",
)
def phi4_scaling(fields: torch.Tensor, statistics: Mapping[str, xr.DataArray]) -> xr.Dataset:
    """g_j = √(v̄_j / v̄_{j−1}), v̄_j the ensemble mean of the coarse-field variance at level j
    (:func:`rgfield.stats.coarse_field_variance`): the growth of the coarse field's standard
    deviation per step, dim ``step`` = j = 1..J."""
    variance = statistics["coarse_field_variance"]

    def growth(v: np.ndarray) -> np.ndarray:
        mean = v.mean(0)
        return np.sqrt(mean[1:] / mean[:-1])

    steps = variance["level"].values[1:]
    return _jackknifed(variance.values, growth, {"step": steps})


def _energy_enstrophy(omega: torch.Tensor) -> torch.Tensor:
    """Per field (E, Z), shape (sample, 2), of vorticity on the periodic box [0, 2π)², N × N:
    E = ½⟨|u|²⟩ = Σ_{k≠0} |ω̂_k|² / (2 |k|² N⁴) (u from ω by Biot–Savart, integer k) and
    Z = ½⟨ω²⟩."""
    n = omega.shape[-1]
    omega = omega.double()
    k = torch.fft.fftfreq(n, 1 / n, dtype=torch.float64, device=omega.device)
    k2 = k[:, None].square() + k[None, :].square()
    inverse = torch.where(k2 > 0, 1 / k2.clamp(min=1), 0.0)
    energy = (torch.fft.fft2(omega).abs().square() * inverse).sum((-2, -1)) / (2 * n**4)
    enstrophy = omega.square().mean((-2, -1)) / 2
    return torch.stack([energy, enstrophy], 1)


@register_observables(
    "turbulence",
    title="2D turbulence (vorticity on [0, 2π)²)",
    matches=contains("turbulence", ["vorticity"]),
    requires=("structure_functions",),
)
def turbulence(fields: torch.Tensor, statistics: Mapping[str, xr.DataArray]) -> xr.Dataset:
    """Energy E, enstrophy Z (ensemble means) and the flatness S₄(1)/S₂(1)² of one-pixel
    vorticity increments (structure functions averaged over both axes, ratio of ensemble means)."""
    if fields.dim() != 3 or fields.shape[-1] != fields.shape[-2]:
        raise ValueError(f"fields: vorticity must be square 2D fields; got {tuple(fields.shape)}")
    increments = statistics["structure_functions"].sel(lag=1, order=[2, 4]).mean("axis")
    columns = np.column_stack([_energy_enstrophy(fields).cpu().numpy(), increments.values])

    def estimate(t: np.ndarray) -> np.ndarray:
        energy, enstrophy, s2, s4 = t.mean(0)
        return np.array([energy, enstrophy, s4 / s2**2])

    return _jackknifed(columns, estimate, {"observable": ["energy", "enstrophy", "flatness"]})


@register_observables(
    "cosmic", title="cosmic web (pooled pixel values)", matches=contains("cosmic")
)
def cosmic(fields: torch.Tensor, statistics: Mapping[str, xr.DataArray]) -> xr.Dataset:
    """Variance σ² = κ₂, skewness κ₃/σ³ and reduced skewness S₃ = κ₃/σ⁴ of all pixels of the
    ensemble (cumulants of the pooled values, from the ensemble means of ⟨x⟩, ⟨x²⟩, ⟨x³⟩)."""
    x = fields.reshape(fields.shape[0], -1).double()
    columns = torch.stack([x.mean(1), x.square().mean(1), x.pow(3).mean(1)], 1).cpu().numpy()

    def estimate(t: np.ndarray) -> np.ndarray:
        m1, m2, m3 = t.mean(0)
        k2 = m2 - m1**2
        k3 = m3 - 3 * m1 * m2 + 2 * m1**3
        return np.array([k2, k3 / k2**1.5, k3 / k2**2])

    return _jackknifed(
        columns, estimate, {"observable": ["variance", "skewness", "reduced_skewness"]}
    )
