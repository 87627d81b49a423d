"""Figures of the diffusion pathway (matplotlib, no pyplot state): each returns a Figure."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

__all__ = ["plot_generalisation", "plot_loss_by_sigma"]


def _quartiles(values: xr.DataArray, dim: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = values.quantile([0.25, 0.5, 0.75], dim=dim).values
    return q[0], q[1], q[2]


def plot_generalisation(result: xr.Dataset) -> Figure:
    """The memorisation study of :func:`~rgfield.diffusion.memorisation.generalisation`:
    against N, the agreement of the two models (left) and the distance of their samples to the
    nearest training field beside the held-out fields' (right); medians with quartile bands."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    n = result["size"].values
    curves = (
        (left, "agreement", "sample", "models A and B", "C0"),
        (right, "nearest_a", "sample", "samples of A", "C0"),
        (right, "nearest_b", "sample", "samples of B", "C1"),
        (right, "nearest_heldout", "heldout", "held-out fields", "0.4"),
    )
    for ax, name, dim, label, colour in curves:
        low, median, high = _quartiles(result[name], dim)
        ax.plot(n, median, "o-", color=colour, label=label)
        ax.fill_between(n, low, high, color=colour, alpha=0.2, linewidth=0)
    left.set(
        xscale="log",
        xlabel="training fields N",
        ylabel="correlation of x_A and x_B",
        ylim=(min(0, float(result["agreement"].min())), 1.02),
    )
    right.set(
        xscale="log", xlabel="training fields N", ylabel="distance to the nearest training field"
    )
    left.set_title("do the two models agree?")
    right.set_title("copies (0) or new fields?")
    right.legend(fontsize=8)
    left.legend(fontsize=8)
    return fig


def plot_loss_by_sigma(history: xr.Dataset, reference: xr.DataArray | None = None) -> Figure:
    """The training loss per σ bin (``history_`` of a fitted model), and a reference curve
    (such as the Wiener filter's loss) if given."""
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(history["sigma"], history["loss_by_sigma"], "o-", label="training (last half)")
    if reference is not None:
        ax.plot(reference["sigma"], reference, "k--", label=reference.name or "reference")
    ax.set(xscale="log", xlabel="σ (whitened units)", ylabel="weighted denoising loss λ(σ) MSE")
    ax.legend(fontsize=8)
    return fig
