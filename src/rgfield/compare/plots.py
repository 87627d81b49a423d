"""Figures of a comparison, drawn from its :func:`~rgfield.compare.summary` (matplotlib, no
pyplot state: safe in scripts and servers).

Each function returns a :class:`matplotlib.figure.Figure`; save it with ``fig.savefig(path)``.
The reference is black and each ensemble keeps one colour (``C0``, ``C1``, ...) in every
figure, with a legend of the labels and sample counts. Bands and error bars are ±2 standard
errors. :func:`figures` draws every figure a summary has data for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, StrMethodFormatter

from rgfield.compare.comparison import held

__all__ = [
    "FIGURES",
    "coarse_field",
    "correlation_function",
    "example_fields",
    "figures",
    "minkowski",
    "observables",
    "peaks",
    "pixel_histogram",
    "potentials",
    "power_spectrum",
    "structure_functions",
    "wavelet_histograms",
]

REFERENCE_COLOUR = "black"
EXAMPLES = 4
"""Fields shown per ensemble in fields.png."""
_GRID = {"left": 0.1, "right": 0.98, "bottom": 0.08, "top": 0.9, "hspace": 0.4, "wspace": 0.35}
"""Margins of the figures with a grid of panels."""


def _colours(summary: xr.DataTree) -> dict[str, str]:
    labels = [str(label) for label in summary["ensemble"].values]
    return {"reference": REFERENCE_COLOUR, **{label: f"C{i}" for i, label in enumerate(labels)}}


def _legend(summary: xr.DataTree) -> dict[str, str]:
    counts = dict(zip(summary["ensemble"].values, summary["samples"].values, strict=True))
    return {
        "reference": f"reference ({summary.attrs['reference_samples']})",
        **{str(label): f"{label} ({n})" for label, n in counts.items()},
    }


def _curves(node: xr.Dataset) -> dict[str, tuple[xr.DataArray, xr.DataArray]]:
    """(estimate, error) of the reference, then of each ensemble."""
    out = {"reference": (node["reference"], node["reference_error"])}
    for label in node["ensemble"].values:
        out[str(label)] = (node["estimate"].sel(ensemble=label), node["error"].sel(ensemble=label))
    return out


def _band(ax: Axes, x, mean, error, colour: str, label: str | None = None, **line) -> None:
    mean, error = np.asarray(mean, dtype=float), np.asarray(error, dtype=float)
    ax.plot(x, mean, color=colour, label=label, **line)
    ax.fill_between(x, mean - 2 * error, mean + 2 * error, color=colour, alpha=0.2, lw=0)


def _log_ticks(axis) -> None:
    """Labelled ticks at 1, 2, 5 × 10^n only, written as plain numbers, on a log ``axis``
    (``ax.xaxis`` or ``ax.yaxis``): matplotlib labels every minor tick of a log axis that spans
    less than a decade, and the labels overlap."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axis.set_minor_formatter(NullFormatter())


def power_spectrum(summary: xr.DataTree) -> Figure:
    """Shell-averaged power spectra with ±2 s.e. bands, and each ensemble's ratio to the
    reference (the grey band: the reference's own ±2 s.e.; dotted: ±5 %)."""
    node = summary["statistics/power_spectrum"].to_dataset()
    colours, legend = _colours(summary), _legend(summary)
    fig = Figure(figsize=(6, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    k, reference = node["k"].values, node["reference"].values
    for label, (mean, error) in _curves(node).items():
        _band(top, k, mean, error, colours[label], legend[label])
        if label != "reference":
            _band(bottom, k, mean / reference, error / reference, colours[label])
    relative = node["reference_error"].values / reference
    bottom.fill_between(k, 1 - 2 * relative, 1 + 2 * relative, color="grey", alpha=0.3, lw=0)
    bottom.axhline(1, color="grey", lw=0.5)
    for bound in (0.95, 1.05):
        bottom.axhline(bound, color="grey", lw=0.5, ls=":")
    top.set(xscale="log", yscale="log", ylabel="P(k)", title="power spectrum (±2 s.e.)")
    top.legend(fontsize=8)
    bottom.set(xscale="log", xlabel="k (radians per pixel)", ylabel="ratio to reference")
    _log_ticks(bottom.xaxis)
    return fig


def _density_axes(ax: Axes, node: xr.Dataset, colours: dict, legend: dict | None = None) -> None:
    x = node["value"].values
    for label, (mean, error) in _curves(node).items():
        mean, error = mean.values, error.values
        shown = np.where(mean > 0, mean, np.nan)
        ax.plot(x, shown, color=colours[label], label=legend[label] if legend else None)
        low = np.clip(mean - 2 * error, shown / 10, None)  # a log axis: floor the band
        ax.fill_between(
            x, low, mean + 2 * error, where=mean > 0, color=colours[label], alpha=0.2, lw=0
        )
    ax.set_yscale("log")


def pixel_histogram(summary: xr.DataTree) -> Figure:
    """One-point densities of the field values on the reference's bins, on a log scale."""
    node = summary["statistics/pdf"].to_dataset()
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    _density_axes(ax, node, _colours(summary), _legend(summary))
    ax.set(xlabel="field value", ylabel="density", title="pixel histogram (±2 s.e.)")
    ax.legend(fontsize=8)
    return fig


def wavelet_histograms(summary: xr.DataTree) -> Figure:
    """Densities of the wavelet coefficients x̄_j per level (rows) and channel (columns), in
    units of the reference's rms at that level and channel."""
    node = summary["statistics/wavelet_histograms"].to_dataset()
    levels, channels = node["level"].values, node["channel"].values
    fig = Figure(figsize=(3 * len(channels), 2.2 * len(levels) + 0.8))
    axes = fig.subplots(len(levels), len(channels), squeeze=False, sharex=True, sharey="row")
    fig.subplots_adjust(**_GRID)  # constrained layout would double the drawing time
    colours, legend = _colours(summary), _legend(summary)
    for i, j in enumerate(levels):
        for c, channel in enumerate(channels):
            ax = axes[i, c]
            _density_axes(ax, node.sel(level=j, channel=channel), colours, legend)
            ax.set_title(f"j={j}, {channel}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("x̄ / reference rms")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("wavelet coefficients per scale")
    return fig


def structure_functions(summary: xr.DataTree) -> Figure:
    """S_p(r) of each order (averaged over the axes) against the lag, log–log."""
    node = summary["statistics/structure_functions"].to_dataset().mean("axis")
    orders = node["order"].values
    columns = min(3, len(orders))
    rows = -(-len(orders) // columns)
    fig = Figure(figsize=(3.2 * columns, 2.8 * rows + 0.6))
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True).reshape(-1)
    fig.subplots_adjust(**_GRID)
    colours, legend = _colours(summary), _legend(summary)
    lag = node["lag"].values
    for ax, p in zip(axes, orders, strict=False):
        for label, (mean, error) in _curves(node.sel(order=p)).items():
            _band(ax, lag, mean, error, colours[label], legend[label])
        ax.set(xscale="log", yscale="log", title=f"p = {p}")
        _log_ticks(ax.xaxis)
        _log_ticks(ax.yaxis)
    for ax in axes[len(orders) :]:
        ax.set_visible(False)
    for ax in axes[len(orders) - columns : len(orders)]:
        ax.set_xlabel("lag r (pixels)")
    axes[0].set_ylabel("S_p(r)")
    axes[0].legend(fontsize=7)
    fig.suptitle("structure functions ⟨|x(u + r) − x(u)|^p⟩ (mean of the axes)")
    return fig


def correlation_function(summary: xr.DataTree) -> Figure:
    """Two-point correlation function C(r) with ±2 s.e. bands."""
    node = summary["statistics/correlation_function"].to_dataset()
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    colours, legend = _colours(summary), _legend(summary)
    for label, (mean, error) in _curves(node).items():
        _band(ax, node["r"].values, mean, error, colours[label], legend[label])
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="r (pixels)", ylabel="C(r)", title="correlation function (±2 s.e.)")
    ax.legend(fontsize=8)
    return fig


def coarse_field(summary: xr.DataTree) -> Figure:
    """Standard deviation √v̄_j of the coarse field per level (log scale)."""
    node = summary["statistics/coarse_field_variance"].to_dataset()
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    colours, legend = _colours(summary), _legend(summary)
    level = node["level"].values
    for label, (mean, error) in _curves(node).items():
        std = np.sqrt(mean.values)
        two_se = std * error.values / mean.values  # 2 s.e. of √v: 2 × √v × (s.e. of v) / 2v
        ax.errorbar(level, std, two_se, fmt="o-", color=colours[label], label=legend[label])
    ax.set(yscale="log", xlabel="level j", ylabel="√v_j", title="coarse-field standard deviation")
    ax.set_xticks(level)
    ax.legend(fontsize=8)
    return fig


def minkowski(summary: xr.DataTree) -> Figure:
    """Minkowski functionals V₀, V₁, V₂ of the excursion sets against the threshold, with
    ±2 s.e. bands."""
    node = summary["statistics/minkowski"].to_dataset()
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    colours, legend = _colours(summary), _legend(summary)
    nu = node["threshold"].values
    names = {"V0": "V₀ area fraction", "V1": "V₁ boundary length / 4", "V2": "V₂ Euler char."}
    for ax, functional in zip(axes, node["functional"].values, strict=True):
        curves = _curves(node.sel(functional=functional))
        for label, (mean, error) in curves.items():
            _band(ax, nu, mean, error, colours[label], legend[label])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="threshold ν (reference σ)", title=f"{names[str(functional)]} per pixel")
    axes[0].legend(fontsize=7)
    fig.suptitle("Minkowski functionals of {x > mean + ν σ} (±2 s.e.)")
    return fig


def peaks(summary: xr.DataTree) -> Figure:
    """Number densities of local maxima and minima against their height (log scale)."""
    node = summary["statistics/peaks"].to_dataset().rename({"height": "value"})
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colours, legend = _colours(summary), _legend(summary)
    for ax, extremum in zip(axes, node["extremum"].values, strict=True):
        _density_axes(ax, node.sel(extremum=extremum), colours, legend)
        plural = {"maximum": "maxima", "minimum": "minima"}[str(extremum)]
        ax.set(xlabel="height ν (reference σ)", title=f"{plural} per pixel and unit ν")
    axes[0].legend(fontsize=7)
    fig.suptitle("peak counts (±2 s.e.)")
    return fig


def bispectrum(summary: xr.DataTree) -> Figure:
    """Reduced bispectrum Q against the triangle side k: equilateral (k, k, k) and squeezed
    (2, k, k), with ±2 s.e. bands (a Gaussian field has Q = 0)."""
    node = summary["statistics/bispectrum"].to_dataset()
    shapes = [s for s in ("equilateral", "squeezed") if s in node["shape"].values]
    fig = Figure(figsize=(4.5 * len(shapes), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(shapes), sharey=True))
    colours, legend = _colours(summary), _legend(summary)
    for ax, shape in zip(axes, shapes, strict=True):
        part = node.isel(triangle=np.flatnonzero(node["shape"].values == shape))
        for label, (mean, error) in _curves(part).items():
            _band(ax, part["k3"].values, mean, error, colours[label], legend[label], marker=".")
        ax.axhline(0, color="grey", lw=0.5)
        sides = "(k, k, k)" if shape == "equilateral" else f"({int(part['k1'][0])}, k, k)"
        ax.set(xscale="log", xlabel="k (fundamentals)", title=f"{shape} {sides}")
        _log_ticks(ax.xaxis)
    axes[0].set_ylabel("Q = B / (P₁P₂ + P₂P₃ + P₃P₁)")
    axes[0].legend(fontsize=7)
    fig.suptitle("reduced bispectrum (±2 s.e.)")
    return fig


def scattering_spectra(summary: xr.DataTree) -> Figure:
    """z of every scattering-spectra coefficient of each ensemble against the reference, one
    panel per kind (S1, S2, C01, C11), real parts dots and imaginary parts crosses; the grey
    lines are ±3."""
    node = summary["statistics/scattering_spectra"].to_dataset()
    kinds = list(dict.fromkeys(str(t) for t in node["type"].values))
    fig = Figure(figsize=(3.2 * len(kinds), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    colours, legend = _colours(summary), _legend(summary)
    for ax, kind in zip(axes, kinds, strict=True):
        part = node["z"].isel(coeff=np.flatnonzero(node["type"].values == kind))
        index = np.arange(part.sizes["coeff"])
        for label in part["ensemble"].values:
            for name, marker in (("real", "."), ("imag", "x")):
                z = part.sel(ensemble=label, part=name).values
                if np.isfinite(z).any():
                    shown = legend[str(label)] if name == "real" else None
                    ax.plot(index, z, marker, color=colours[str(label)], label=shown, ms=4)
        for level in (-3, 3):
            ax.axhline(level, color="grey", lw=0.5, ls=":")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="coefficient", title=kind, yscale="symlog", xlim=(-0.5, index.size - 0.5))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("z against the reference (linear within ±1)")
    axes[0].legend(fontsize=7)
    fig.suptitle("scattering spectra: z per coefficient (• real, × imaginary)")
    return fig


def observables(summary: xr.DataTree, name: str) -> Figure:
    """Observable set ``name`` with ±2 s.e. error bars: one panel per observable along dim
    ``observable``, else one panel against its coordinate; a dashed line at the set's
    ``expected`` value if it has one."""
    node = summary[f"observables/{name}"].to_dataset()
    colours, legend = _colours(summary), _legend(summary)
    curves = _curves(node)
    expected = node.attrs.get("expected")
    (dim,) = node["reference"].dims
    panels = list(node[dim].values) if dim == "observable" else [None]
    fig = Figure(figsize=(max(6.5, 2.6 * len(panels)), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for i, (label, (mean, error)) in enumerate(curves.items()):
            if panel is None:  # one curve against the coordinate, offset to keep bars apart
                x = node[dim].values + 0.08 * (i - (len(curves) - 1) / 2)
                y, e = mean.values, error.values
            else:
                x, y, e = [i], [float(mean.sel(observable=panel))], error.sel(observable=panel)
                e = [float(e)]
            colour = colours[label]
            ax.errorbar(x, y, 2 * np.asarray(e), fmt="o", color=colour, label=legend[label])
        if expected is not None:
            guide = node.attrs.get("expected_label", "expected")
            ax.axhline(expected, color="grey", ls="--", lw=1, label=guide)
        if panel is None:
            ax.set(xlabel=dim, xticks=node[dim].values)
            fig.legend(loc="outside lower center", ncols=2, fontsize=7)
        else:
            ax.set_xticks(range(len(curves)), list(curves), fontsize=8, rotation=30)
            ax.set_xlim(-0.6, len(curves) - 0.4)
            ax.set_title(str(panel).replace("_", " "), fontsize=9)
    fig.suptitle(f"{node.attrs.get('title', name)} (±2 s.e.)")
    return fig


def example_fields(examples, count: int = EXAMPLES) -> Figure:
    """The first ``count`` fields of each ensemble (a mapping label → fields (sample, y, x),
    the reference first), one row per ensemble, on one colour scale: the reference's 1st to
    99th percentile."""
    from rgfield.io import as_tensor

    rows = {
        label: as_tensor(fields)[:count].double().cpu().numpy()
        for label, fields in examples.items()
    }
    reference = next(iter(rows.values()))
    low, high = np.percentile(reference, [1, 99])
    columns = max(len(f) for f in rows.values())
    fig = Figure(figsize=(1.8 * columns + 0.8, 1.8 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.02, top=0.92, hspace=0.1, wspace=0.05)
    for row, (label, fields) in zip(axes, rows.items(), strict=True):
        for ax, field in zip(row, list(fields) + [None] * columns, strict=False):
            ax.set_xticks([])
            ax.set_yticks([])
            if field is None:
                ax.set_visible(False)
            else:
                ax.imshow(field, cmap="RdBu_r", vmin=low, vmax=high, interpolation="nearest")
        row[0].set_ylabel(label, fontsize=9)
    fig.suptitle("example fields (one colour scale: the reference's 1st–99th percentile)")
    return fig


def potentials(model) -> Figure:
    """Learned potentials of a fitted :class:`~rgfield.rg.HierarchicalModel`.

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


FIGURES: dict[str, tuple[str, Callable[[xr.DataTree], Figure]]] = {
    "power_spectrum": ("power_spectrum.png", power_spectrum),
    "pdf": ("pixel_histogram.png", pixel_histogram),
    "wavelet_histograms": ("wavelet_histograms.png", wavelet_histograms),
    "structure_functions": ("structure_functions.png", structure_functions),
    "correlation_function": ("correlation_function.png", correlation_function),
    "coarse_field_variance": ("coarse_field.png", coarse_field),
    "minkowski": ("minkowski.png", minkowski),
    "peaks": ("peaks.png", peaks),
    "bispectrum": ("bispectrum.png", bispectrum),
    "scattering_spectra": ("scattering_spectra.png", scattering_spectra),
}
"""Statistic name → (file name, figure function of the summary). A statistic without an entry
appears in the report's tables only."""


def figures(summary: xr.DataTree, model=None) -> dict[str, Figure]:
    """Every figure of a summary by file name: those of :data:`FIGURES` for the statistics it
    holds, one per observable set (``observables_<name>.png``) and, with a fitted ``model``,
    its learned potentials (``potentials.png``)."""
    out = {}
    for name in held(summary, "statistics"):
        if name in FIGURES:
            file, draw = FIGURES[name]
            out[file] = draw(summary)
    for name in held(summary, "observables"):
        out[f"observables_{name}.png"] = observables(summary, name)
    if model is not None:
        out["potentials.png"] = potentials(model)
    return out
