"""Figures for validation reports (matplotlib, no pyplot state: safe in scripts and servers).

Every function takes ensembles (sample, y, x) — numpy, torch or xarray — and returns a
:class:`matplotlib.figure.Figure`; save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure

from rgfield import stats
from rgfield.io import as_tensor
from rgfield.wavelets import decompose, detail_labels

__all__ = [
    "observables",
    "pixel_histograms",
    "potentials",
    "power_spectra",
    "scale_growth",
    "wavelet_histograms",
]

COLOURS = {"reference": "black", "samples": "tab:red"}


def power_spectra(ensembles: Mapping[str, object]) -> Figure:
    """Shell-averaged power spectra with ±2 standard-error bands, and their ratio to the first."""
    fig = Figure(figsize=(6, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    base = None
    for i, (name, fields) in enumerate(ensembles.items()):
        p = stats.power_spectrum(fields)
        mean = p.mean("sample").values
        err = p.std("sample").values / np.sqrt(p.sizes["sample"])
        k = p["k"].values
        colour = COLOURS.get(name, f"C{i}")
        top.plot(k, mean, color=colour, label=f"{name} ({p.sizes['sample']})")
        top.fill_between(k, mean - 2 * err, mean + 2 * err, color=colour, alpha=0.25, lw=0)
        if base is None:
            base = mean
        bottom.plot(k, mean / base, color=colour)
        bottom.fill_between(
            k, (mean - 2 * err) / base, (mean + 2 * err) / base, color=colour, alpha=0.25, lw=0
        )
    top.set(xscale="log", yscale="log", ylabel="P(k)", title="power spectrum (±2 s.e.)")
    top.legend()
    bottom.axhline(1, color="grey", lw=0.5)
    for bound in (0.95, 1.05):
        bottom.axhline(bound, color="grey", lw=0.5, ls=":")
    bottom.set(xscale="log", xlabel="k (radians per pixel)", ylabel="ratio to reference")
    return fig


def _histogram_axes(ax, ensembles: Mapping[str, torch.Tensor], bins: int = 60) -> None:
    values = {name: as_tensor(f).double().reshape(-1).numpy() for name, f in ensembles.items()}
    everything = np.concatenate(list(values.values()))
    edges = np.linspace(everything.min(), everything.max(), bins + 1)
    centres = (edges[1:] + edges[:-1]) / 2
    for i, (name, v) in enumerate(values.items()):
        density, _ = np.histogram(v, edges, density=True)
        ax.plot(
            centres,
            np.where(density > 0, density, np.nan),
            color=COLOURS.get(name, f"C{i}"),
            label=name,
        )
    ax.set_yscale("log")


def pixel_histograms(ensembles: Mapping[str, object]) -> Figure:
    """One-point distributions of the field values on a log scale (tails visible)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    _histogram_axes(ax, ensembles)
    ax.set(xlabel="field value", ylabel="density", title="pixel histogram")
    ax.legend()
    return fig


def wavelet_histograms(
    ensembles: Mapping[str, object], levels: int, wavelet: str = "db4"
) -> Figure:
    """Histograms of the wavelet coefficients x̄_j per scale (rows) and channel (columns)."""
    pyramids = {n: decompose(as_tensor(f).double(), levels, wavelet) for n, f in ensembles.items()}
    labels = detail_labels(2)
    fig = Figure(figsize=(9, 2.2 * levels), layout="constrained")
    axes = fig.subplots(levels, len(labels), squeeze=False)
    for j in range(levels):
        for c, label in enumerate(labels):
            ax = axes[j, c]
            _histogram_axes(ax, {n: p.details[j][:, c] for n, p in pyramids.items()}, bins=40)
            ax.set_title(f"j={j + 1}, {label}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("wavelet coefficients per scale")
    return fig


def scale_growth(ensembles: Mapping[str, object], levels: int, wavelet: str = "db4") -> Figure:
    """Growth std(x_j)/std(x_{j−1}) of the coarse field per level, with the 2D Ising 2^{7/8}."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for i, (name, fields) in enumerate(ensembles.items()):
        growth = stats.coarse_field_std(fields, levels, wavelet).attrs["growth"]
        ax.plot(
            np.arange(1, levels + 1), growth, "o-", color=COLOURS.get(name, f"C{i}"), label=name
        )
    ax.axhline(2 ** (7 / 8), color="grey", ls=":", label="2^(1−η/2), η = 1/4")
    ax.set(xlabel="level j", ylabel="std(x_j) / std(x_{j−1})", title="renormalised coarse field")
    ax.legend()
    return fig


def observables(tables: Mapping[str, xr.Dataset]) -> Figure:
    """Observables with error bars (e.g. :func:`rgfield.stats.phi4_observables`), one panel each."""
    names = list(next(iter(tables.values()))["observable"].values)
    fig = Figure(figsize=(2.6 * len(names), 3), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, obs in zip(axes, names, strict=True):
        for i, (name, table) in enumerate(tables.items()):
            row = table.sel(observable=obs)
            ax.errorbar(
                [i],
                [float(row["value"])],
                [2 * float(row["error"])],
                fmt="o",
                color=COLOURS.get(name, f"C{i}"),
                capsize=4,
            )
        ax.set_xticks(range(len(tables)), list(tables), fontsize=8)
        ax.set_xlim(-0.6, len(tables) - 0.4)
        ax.set_title(obs.replace("_", " "), fontsize=9)
    fig.suptitle("observables (±2 s.e.)")
    return fig


def potentials(model) -> Figure:
    """Learned potentials of a fitted :class:`~rgfield.hierarchy.HierarchicalModel`.

    For each conditional, the scalar potential v_j(t) of the finer field (renormalised units);
    for the coarsest field, its whole energy per site at uniform value t (for a 1×1 coarsest
    field, its exact one-variable energy). Each curve spans the model's support.
    """
    from rgfield.energies import ScalarPotential

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    models = {"low": model.low_}
    models.update({f"j={j}": m for j, m in enumerate(model.conditionals_, start=1)})
    for i, (name, m) in enumerate(models.items()):
        start = 0
        for family in m.features:
            if isinstance(family, ScalarPotential):
                lo, hi = family.support.tolist()
                t = torch.linspace(lo, hi, 200, dtype=torch.float64)
                if name == "low":
                    grid = family.support.new_ones(1, 1, *model.low_shape)
                    v = m.energy(t.reshape(-1, 1, 1, 1) * grid) / grid.numel()
                else:
                    v = family.potential(m.theta[start : start + family.n_features], t)
                ax.plot(t.numpy(), (v - v.min()).numpy(), color=f"C{i}", label=name)
            start += family.n_features
    ax.set(
        xlabel="field value (renormalised)",
        ylabel="v(t) − min v",
        title="learned potentials per scale",
    )
    ax.legend(fontsize=8)
    return fig
