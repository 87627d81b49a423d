"""The statistics :func:`rgfield.compare.summary` compares, registered by name.

A statistic maps an ensemble, a torch tensor of shape (sample, *spatial), to one estimate per
field: an :class:`xarray.DataArray` whose first dim is ``sample``. The summary then takes every
statistic's ensemble mean, standard error, ratio and z-score the same way. A choice that must be
the same for every ensemble (the bins of a PDF, the number of wavelet levels) is made once from
the reference by the statistic's ``setup``, whose keyword arguments are passed to the statistic
for the reference and for every ensemble.

Adding a statistic is one decorator; nothing else needs to change::

    @register_statistic("peak_counts", title="Peak counts", setup=lambda ref: {"sigma": ...})
    def peak_counts(fields: torch.Tensor, sigma: float) -> xr.DataArray:
        ...  # dims (sample, height)

The implementations live in :mod:`rgfield.stats`; this module only chooses their arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from rgfield import stats

__all__ = ["STATISTICS", "Statistic", "register_statistic"]

PDF_BINS = 64
"""Bins of the one-point PDF across the reference's range of values."""
PDF_MARGIN = 8
"""Bins of the same width added on each side of the reference's range (generated tails)."""
WAVELET = "db4"
WAVELET_LEVELS = 4
"""Finest scales whose coefficient histograms are compared."""
WAVELET_EDGES = np.linspace(-8.0, 8.0, 65)
"""Bin edges of the coefficient histograms, in units of the reference's rms per scale/channel."""


def _spatial_1_to_3(reference: torch.Tensor) -> bool:
    return 1 <= reference.dim() - 1 <= 3


def _even_sides(reference: torch.Tensor) -> bool:
    return _spatial_1_to_3(reference) and all(n % 2 == 0 for n in reference.shape[1:])


@dataclass(frozen=True)
class Statistic:
    """A registered statistic.

    Attributes
    ----------
    name : str
        Its key in :data:`STATISTICS` (an identifier: it names a group of summary.nc).
    function : callable
        ``function(fields, **setup(reference))`` → DataArray, dims (sample, ...).
    title : str
        Heading in report.md.
    setup : callable, optional
        ``setup(reference)`` → keyword arguments fixed by the reference.
    table : bool
        Whether report.md tables every entry (small statistics) or only its largest |z|.
    applies : callable
        ``applies(reference)`` → whether the statistic is defined for such fields.
    """

    name: str
    function: Callable[..., xr.DataArray]
    title: str
    setup: Callable[[torch.Tensor], Mapping[str, Any]] | None = None
    table: bool = False
    applies: Callable[[torch.Tensor], bool] = _spatial_1_to_3

    def bind(self, reference: torch.Tensor) -> Callable[[torch.Tensor], xr.DataArray]:
        """The statistic with the reference's choices fixed: ``measure(fields) -> DataArray``,
        checked to have dim ``sample`` first with one entry per field."""
        arguments = dict(self.setup(reference)) if self.setup is not None else {}

        def measure(fields: torch.Tensor) -> xr.DataArray:
            values = self.function(fields, **arguments)
            if (
                not isinstance(values, xr.DataArray)
                or values.dims[:1] != ("sample",)
                or values.sizes["sample"] != fields.shape[0]
            ):
                raise ValueError(
                    f"statistic {self.name!r} must return a DataArray with dim 'sample' first and"
                    f" one entry per field; got {type(values).__name__}"
                    f" {getattr(values, 'dims', '')}"
                )
            return values

        return measure


STATISTICS: dict[str, Statistic] = {}
"""The registered statistics by name, in the order report.md lists them."""


def register_statistic(
    name: str,
    *,
    title: str,
    setup: Callable[[torch.Tensor], Mapping[str, Any]] | None = None,
    table: bool = False,
    applies: Callable[[torch.Tensor], bool] | None = None,
) -> Callable[[Callable[..., xr.DataArray]], Callable[..., xr.DataArray]]:
    """Decorator registering ``function(fields, **setup(reference))`` as statistic ``name``.

    See :class:`Statistic` for the arguments; ``applies`` defaults to 1 to 3 spatial dims.
    Raises ``ValueError`` for a name that is not an identifier or is already registered.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier; got {name!r}")
    if name in STATISTICS:
        raise ValueError(f"name: a statistic {name!r} is already registered")

    def decorator(function: Callable[..., xr.DataArray]) -> Callable[..., xr.DataArray]:
        STATISTICS[name] = Statistic(
            name, function, title, setup, table, applies or _spatial_1_to_3
        )
        return function

    return decorator


def _ndim(fields: torch.Tensor) -> int:
    return fields.dim() - 1


@register_statistic("power_spectrum", title="Power spectrum", table=True)
def power_spectrum(fields: torch.Tensor) -> xr.DataArray:
    """:func:`rgfield.stats.power_spectrum`, dims (sample, k)."""
    return stats.power_spectrum(fields, _ndim(fields))


@register_statistic("moments", title="One-point moments (ensemble means)", table=True)
def moments(fields: torch.Tensor) -> xr.DataArray:
    """:func:`rgfield.stats.moments`, dims (sample, moment)."""
    return stats.moments(fields, _ndim(fields))


def _pdf_setup(reference: torch.Tensor) -> dict[str, np.ndarray]:
    low, high = float(reference.min()), float(reference.max())
    if not high > low:  # constant reference: unit-wide bins around its value
        low, high = low - 0.5, high + 0.5
    high = np.nextafter(high, np.inf)  # bins are half-open [a, b): keep the maximum inside
    width = (high - low) / PDF_BINS
    margin = width * np.arange(1, PDF_MARGIN + 1)
    core = np.linspace(low, high, PDF_BINS + 1)
    return {"bins": np.concatenate([low - margin[::-1], core, high + margin])}


@register_statistic("pdf", title="One-point PDF", setup=_pdf_setup)
def pdf(fields: torch.Tensor, bins: np.ndarray) -> xr.DataArray:
    """:func:`rgfield.stats.pdf` on the bins of the reference: :data:`PDF_BINS` across its
    range and :data:`PDF_MARGIN` more on each side. Dims (sample, value)."""
    return stats.pdf(fields, bins=bins, ndim=_ndim(fields))


@register_statistic("structure_functions", title="Structure functions")
def structure_functions(fields: torch.Tensor) -> xr.DataArray:
    """:func:`rgfield.stats.structure_functions`, orders 1–6, lags 1..n/2; dims (sample,
    order, axis, lag)."""
    return stats.structure_functions(fields, ndim=_ndim(fields))


@register_statistic("correlation_function", title="Two-point correlation function")
def correlation_function(fields: torch.Tensor) -> xr.DataArray:
    """:func:`rgfield.stats.correlation_function` (each field's own mean), dims (sample, r)."""
    return stats.correlation_function(fields, _ndim(fields))


def _coarse_setup(reference: torch.Tensor) -> dict[str, Any]:
    from rgfield.wavelets import max_levels

    return {"levels": max_levels(reference.shape[1:], "reference"), "mean": float(reference.mean())}


@register_statistic(
    "coarse_field_variance",
    title="Coarse-field variance per level",
    setup=_coarse_setup,
    table=True,
    applies=_even_sides,
)
def coarse_field_variance(fields: torch.Tensor, levels: int, mean: float) -> xr.DataArray:
    """:func:`rgfield.stats.coarse_field_variance` at every level the reference allows, about
    the reference's mean pixel value; dims (sample, level)."""
    return stats.coarse_field_variance(fields, levels, WAVELET, mean=mean, ndim=_ndim(fields))


def _wavelet_levels(reference: torch.Tensor) -> int:
    """At most :data:`WAVELET_LEVELS`, each with at least 2 coefficients per channel and field
    (for fields with even sides)."""
    from rgfield.wavelets import max_levels

    sites = reference[0].numel()
    finest_two = (sites.bit_length() - 2) // _ndim(reference)  # 2^(j·ndim) ≤ sites / 2
    return min(WAVELET_LEVELS, max_levels(reference.shape[1:], "reference"), finest_two)


def _wavelet_setup(reference: torch.Tensor) -> dict[str, Any]:
    from rgfield.wavelets import decompose

    ndim = _ndim(reference)
    levels = _wavelet_levels(reference)
    pyramid = decompose(reference.double(), levels, WAVELET, ndim)
    space = [0, *range(2, ndim + 2)]
    rms = torch.stack([d.square().mean(space).sqrt() for d in pyramid.details]).cpu().numpy()
    return {"levels": levels, "scale": np.where(rms > 0, rms, 1.0)}


@register_statistic(
    "wavelet_histograms",
    title="Wavelet-coefficient histograms",
    setup=_wavelet_setup,
    applies=lambda reference: _even_sides(reference) and _wavelet_levels(reference) >= 1,
)
def wavelet_histograms(fields: torch.Tensor, levels: int, scale: np.ndarray) -> xr.DataArray:
    """Density of each field's wavelet coefficients x̄_j per level j = 1..levels and channel,
    in units of ``scale`` (the reference's rms per level and channel), on
    :data:`WAVELET_EDGES`: :func:`rgfield.stats.pdf` of x̄_j / scale_j.

    Returns
    -------
    xarray.DataArray, dims (sample, level, channel, value); coordinate ``scale`` (level, channel)
    """
    from rgfield.wavelets import decompose, detail_labels

    ndim = _ndim(fields)
    pyramid = decompose(fields.double(), levels, WAVELET, ndim)
    n = fields.shape[0]
    channels = detail_labels(ndim)
    densities = [
        [
            stats.pdf(d[:, c].reshape(n, -1) / scale[j, c], bins=WAVELET_EDGES, ndim=1)
            for c in range(len(channels))
        ]
        for j, d in enumerate(pyramid.details)
    ]
    first = densities[0][0]
    return xr.DataArray(
        np.array([[h.values for h in row] for row in densities]).transpose(2, 0, 1, 3),
        dims=("sample", "level", "channel", "value"),
        coords={
            "level": np.arange(1, levels + 1),
            "channel": list(channels),
            "value": first["value"].values,
            "scale": (("level", "channel"), scale),
        },
        name="wavelet_histograms",
        attrs={"wavelet": WAVELET, "edges": WAVELET_EDGES, "value_units": "reference rms"},
    )
