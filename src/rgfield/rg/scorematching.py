"""Score-matching sums of a factor's feature families over data, in memory-bounded batches."""

from __future__ import annotations

import torch

from rgfield.energies import FeatureFamily, make_feature
from rgfield.scorematching import ScoreMatchingStatistics

__all__ = ["accumulate", "batch_size", "new_families"]

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
    families: list[FeatureFamily], y: torch.Tensor, c: torch.Tensor | None, batch: int
) -> ScoreMatchingStatistics:
    """Score-matching sums H = Σ ∇Φ∇Φᵀ, b = Σ ΔΦ of the concatenated families over ``y``."""
    stats = ScoreMatchingStatistics.empty(sum(f.n_features for f in families))
    for lo in range(0, y.shape[0], batch):
        yb, cb = y[lo : lo + batch], None if c is None else c[lo : lo + batch]
        grads = torch.cat([f.gradients(yb, cb) for f in families], dim=1)
        stats.update(grads, torch.cat([f.laplacians(yb, cb) for f in families], dim=1))
    return stats
