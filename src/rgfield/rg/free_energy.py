"""Free energies F_j(x_j) = log Z_j(x_j) of the conditionals, by regression on gradients."""

from __future__ import annotations

import time

import torch

from rgfield.energies import ExponentialModel, FeatureFamily
from rgfield.rg.scorematching import batch_size, new_families
from rgfield.scorematching import ScoreMatchingStatistics, fit_closed_form

__all__ = [
    "accumulate_regression",
    "fit_free_energy",
    "free_energy_families",
    "solve_free_energy",
]


def fit_free_energy(
    conditional: ExponentialModel,
    y: torch.Tensor,
    c: torch.Tensor,
    n_train: int,
    features: dict[str, dict],
    wavelet: str,
    ridges: list[float],
) -> tuple[ExponentialModel, dict]:
    """Free energy F_j(x_j) = log Z_j(x_j) of a conditional, by regression on gradients.

    Z_j(c) = ∫ exp(−Ū_j(y | c)) dy, so ∇_c F_j = −E[∇_c Ū_j(y | c) | c], and the
    conditional mean is the least-squares predictor: F = ψᵀΨ(c), over the model's feature
    families on c alone, minimises E‖∇Ψᵀψ + ∇_c Ū_j‖² = ψᵀHψ − 2bᵀψ + const with
    H = E[∇Ψ∇Ψᵀ] and b = −E[∇Ψ · ∇_c Ū_j] — the score-matching normal equations with
    b in place of E[ΔΦ] (Marchand et al., PRX 13, 041038 (2023), Sec. V). The expectation
    is over the data's details given their coarse field.

    Reported ``train_residual`` / ``heldout_residual``: E‖∇F − t‖² / E‖t‖² with
    t = −∇_c Ū_j, both for ψ fitted on the training part. Its floor is not 0 but
    E[Var(t | c)] / E‖t‖²: t varies with the details at fixed c, and no F can follow that.
    """
    start = time.perf_counter()
    families = free_energy_families(features, c[:n_train], wavelet)
    batch = batch_size(families, c.unsqueeze(1))
    train, held = (
        accumulate_regression(conditional, families, y[part], c[part], batch)
        for part in (slice(0, n_train), slice(n_train, None))
    )
    return solve_free_energy(families, train, held, ridges, start)


def free_energy_families(
    features: dict[str, dict], c: torch.Tensor, wavelet: str
) -> list[FeatureFamily]:
    """The feature families of F_j: the conditional's families on the coarse field alone,
    fitted to the training coarse fields ``c`` (B, n, n)."""
    return new_families(features, c.unsqueeze(1), None, wavelet)


def solve_free_energy(
    families: list[FeatureFamily],
    train: tuple[ScoreMatchingStatistics, float],
    held: tuple[ScoreMatchingStatistics, float],
    ridges: list[float],
    start: float,
) -> tuple[ExponentialModel, dict]:
    """F_j from the normal equations and Σ‖t‖² of the training and held-out parts
    (:func:`accumulate_regression`), and its report; ``start``: when the fit began
    (``time.perf_counter``)."""
    (train, train_norm), (held, held_norm) = train, held
    fit = fit_closed_form(train, held, ridges)

    def residual(stats: ScoreMatchingStatistics, loss: float, norm_sum: float) -> float:
        # E‖∇Ψᵀψ − t‖² = 2 × (loss per variable) × variables + E‖t‖²
        norm = norm_sum / max(stats.count, 1)
        if not (stats.count and norm > 0):
            return float("nan")
        return (2 * loss * stats.dimension + norm) / norm

    report = {
        "features": sum(f.n_features for f in families),
        "ridge": fit.ridge,
        "condition": fit.condition,
        "condition_preconditioned": fit.condition_preconditioned,
        "train_residual": residual(train, fit.train_loss, train_norm),
        "heldout_residual": residual(held, fit.heldout_loss, held_norm),
        "seconds": time.perf_counter() - start,
    }
    return ExponentialModel(families, fit.theta), report


def accumulate_regression(
    conditional: ExponentialModel,
    families: list[FeatureFamily],
    y: torch.Tensor,
    c: torch.Tensor,
    batch: int,
) -> tuple[ScoreMatchingStatistics, float]:
    """Normal equations of the free-energy regression (see :func:`fit_free_energy`) and Σ‖t‖²
    over the samples (sums, so that parts of the data add up).

    The target t = −∇_c Ū(y | c) is one backward pass of the conditional's energy per batch.
    """
    stats = ScoreMatchingStatistics.empty(sum(f.n_features for f in families))
    norm = 0.0
    for lo in range(0, y.shape[0], batch):
        yb, cb = y[lo : lo + batch], c[lo : lo + batch].detach().requires_grad_()
        (target,) = torch.autograd.grad(-conditional.energy(yb, cb).sum(), cb)
        field = cb.detach().unsqueeze(1)
        grads = torch.cat([f.gradients(field, None) for f in families], dim=1)
        stats.update(grads, torch.einsum("bf...,b...->bf", grads, target.unsqueeze(1)))
        norm += float(target.square().sum())
    return stats, norm
