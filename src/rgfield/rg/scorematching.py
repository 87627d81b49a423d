"""Score-matching sums of a factor's feature families over data, in memory-bounded batches."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rgfield.energies import ExponentialModel, FeatureFamily, make_feature
from rgfield.rg.subspace import DetailSubspace, LaplaciansAlong
from rgfield.scorematching import ScoreMatchingStatistics

__all__ = ["PROBES", "accumulate", "batch_size", "new_families", "sample_losses"]

PROBES = 4
"""Hutchinson probes per sample of the Laplacians along a subspace (see :func:`accumulate`)."""

_GRADIENT_BYTES = 2**28  # memory for one mini-batch of feature gradients


def new_families(
    features: dict[str, dict], y: torch.Tensor, c: torch.Tensor | None, wavelet: str
) -> list[FeatureFamily]:
    """The feature families of ``features`` (name → options), fitted (knots, stencils) to data."""
    return [make_feature(name, options).fit(y, c, wavelet) for name, options in features.items()]


def batch_size(families: list[FeatureFamily], y: torch.Tensor) -> int:
    """Samples per mini-batch of feature gradients within the ``_GRADIENT_BYTES`` budget."""
    n_features = sum(f.n_features for f in families)
    return max(1, min(256, _GRADIENT_BYTES // (8 * n_features * y[0].numel())))


def accumulate(
    families: list[FeatureFamily],
    y: torch.Tensor,
    c: torch.Tensor | None,
    batch: int,
    subspace: DetailSubspace | None = None,
    generator: torch.Generator | None = None,
) -> ScoreMatchingStatistics:
    """Score-matching sums H = Σ ∇Φ∇Φᵀ, b = Σ ΔΦ of the concatenated families over ``y``.

    For details on a ``subspace`` with projection P (band-limited fields) the sums of the
    score matching along it, H = Σ (P∇Φ)(P∇Φ)ᵀ and b = Σ tr(P ∇²Φ): the Hyvärinen loss of
    the density restricted to the subspace, in its coordinates (losses per variable are per
    free variable: divided by the subspace's dimension D, not 3n²). The traces are exact for
    families of stationary Hessians and Hutchinson estimates with :data:`PROBES` probes per
    sample drawn from ``generator`` otherwise (:class:`~rgfield.rg.subspace.LaplaciansAlong`).
    """
    stats = ScoreMatchingStatistics.empty(sum(f.n_features for f in families))
    project, laplacians = _along(families, subspace, generator)
    dimension = _dimension(y, subspace)
    for lo in range(0, y.shape[0], batch):
        yb, cb = y[lo : lo + batch], None if c is None else c[lo : lo + batch]
        grads = torch.cat([f.gradients(yb, cb) for f in families], dim=1)
        stats.update(project(grads), laplacians(yb, cb), dimension)
    return stats


def sample_losses(
    model: ExponentialModel,
    y: torch.Tensor,
    c: torch.Tensor | None,
    batch: int,
    subspace: DetailSubspace | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The score-matching loss of each sample per variable, ℓ_i = (½|∇_y U(y_i)|² − Δ_y U(y_i))
    / d (d the details per sample, or D along a ``subspace``), whose mean is
    :meth:`~rgfield.scorematching.ScoreMatchingStatistics.loss` of the same samples; shape
    (B,). Along a ``subspace`` as in :func:`accumulate`."""
    losses = []
    project, laplacians = _along(model.features, subspace, generator)
    for lo in range(0, y.shape[0], batch):
        yb, cb = y[lo : lo + batch], None if c is None else c[lo : lo + batch]
        grad = project(model.energy_and_grad(yb, cb)[1])
        square = grad.square().flatten(1).sum(1)
        losses.append(0.5 * square - laplacians(yb, cb) @ model.theta)
    return torch.cat(losses) / _dimension(y, subspace)


def _dimension(y: torch.Tensor, subspace: DetailSubspace | None) -> int:
    """The free variables per sample: all of ``y[0]``, or the subspace's dimension D."""
    return math.prod(y.shape[1:]) if subspace is None else subspace.dimension


def _along(
    families: list[FeatureFamily], subspace: DetailSubspace | None, generator
) -> tuple[Callable, Callable]:
    """The map applied to gradients and the Laplacians (y, c) ↦ (B, F) of score matching: the
    identity and the families' own, or P and tr(P ∇²Φ) along a ``subspace``."""
    if subspace is None:
        return (lambda g: g), lambda y, c: torch.cat([f.laplacians(y, c) for f in families], 1)
    return subspace.project, LaplaciansAlong(families, subspace, generator, PROBES)
