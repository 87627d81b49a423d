"""Score matching under a curvature floor: the fitted conditional is convex at the data.

Score matching fits the scores where the data lie and says nothing about the curvature of the
energy between them: with a family that is not quadratic in the details (the scalar potential,
the scattering covariance's power–modulus terms) the fitted ∇²_y U can have negative
eigenvalues at the data, and MALA chains started there run away (docs/rg_fields.md, on the
cosmic web's finest scale).

The floor is relative to the data's own spread. With S the residual covariance of the
training details given their coarse fields (the stationary Gaussian conditional of
:class:`~rgfield.energies.stationary.GaussianStart`, mode by mode) the condition is

    uᵀ S^{1/2} ∇²_y U(y_i | c_i) S^{1/2} u ≥ δ |u|²   for every u, at a training sample,

i.e. ∇²_y U ≥ δ S⁻¹: along every direction the energy is at least δ times as curved as the
data's Gaussian conditional (δ = 1 for that Gaussian itself). A direction in which the data
vary widely — the energetic modes of a coarse scale of turbulence — is allowed a flat energy,
one in which they hardly vary is not. (An absolute floor, ∇²U ≥ δ in the unit-rms variables,
capped the variance of the first and lowered the generated spectrum of 128² forced
turbulence by 10–18 % at the coarse scales: docs/rg_fields.md.) Since ∇²_y U = Σ_k θ_k ∇²_y Φ_k
is linear in θ, the condition along one direction v = S^{1/2} u is a linear constraint on θ.
:func:`fit_with_curvature_floor` adds such cuts by rounds — at the training samples whose
smallest eigenvalue of S^{1/2} ∇²U S^{1/2} is lowest, along its eigenvector — and solves the
constrained score matching (:func:`rgfield.scorematching.fit_constrained`) until the smallest
eigenvalue at every probed sample reaches 0.9 δ (Kelley's cutting planes).

The eigenvalues are the extreme Ritz values of ``LANCZOS_STEPS`` Lanczos steps
(:meth:`~rgfield.energies.ExponentialModel.lowest_curvature`): they approach λ_min from above,
so the true minimum can be a little lower than the floor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rgfield.energies import ExponentialModel, FeatureFamily
from rgfield.energies.stationary import GaussianStart, SpectralSums, per_mode
from rgfield.rg.subspace import DetailSubspace
from rgfield.scorematching import ScoreMatchingStatistics, fit_constrained

__all__ = ["NO_FLOOR", "curvature_rows", "data_metric", "fit_with_curvature_floor"]

PROBES = 256  # training samples (at most) whose curvature is probed each round
CUTS_PER_ROUND = 8  # the lowest of them give a cut each
ROUNDS = 10
LANCZOS_STEPS = 60


def curvature_rows(
    families: list[FeatureFamily], y: torch.Tensor, c: torch.Tensor | None, v: torch.Tensor
) -> torch.Tensor:
    """g_ik = v_iᵀ ∇²_y Φ_k(y_i | c_i) v_i for every feature k, shape (B, F).

    By central differences of the feature gradients along v_i (step 1e-4 of the field's
    scale): exact for features quadratic in y, O(ε²) accurate otherwise.
    """
    dims = tuple(range(1, y.dim()))
    eps = 1e-4 * (1.0 + y.abs().amax(dim=dims, keepdim=True))
    plus = torch.cat([f.gradients(y + eps * v, c) for f in families], 1)
    minus = torch.cat([f.gradients(y - eps * v, c) for f in families], 1)
    return ((plus - minus) / (2 * eps.unsqueeze(1)) * v.unsqueeze(1)).flatten(2).sum(2)


def data_metric(
    y: torch.Tensor, c: torch.Tensor | None, subspace: DetailSubspace | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """M = S^{1/2} of details ``y`` given coarse fields ``c`` (P S^{1/2} P on a ``subspace``
    P), as a map of fields (B, C, ny, nx): the metric of the relative floor.

    S(k) is the residual covariance of the linear regression of Ŷ(k) on Ĉ(k) over the samples
    (:class:`~rgfield.energies.stationary.GaussianStart`); modes without variance are 0.
    """
    root = GaussianStart.fit(SpectralSums.of(y, c)).resolved_root()
    if subspace is None:
        return lambda u: per_mode(root, u).to(u.dtype)
    return lambda u: subspace.project(per_mode(root, subspace.project(u)).to(u.dtype))


def fit_with_curvature_floor(
    families: list[FeatureFamily],
    stats: ScoreMatchingStatistics,
    ridge: float,
    theta: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor | None,
    floor: float,
    subspace: DetailSubspace | None = None,
) -> tuple[torch.Tensor, dict]:
    """θ of the score-matching loss ``stats`` with the smallest eigenvalue of the energy's
    Hessian relative to the data's Gaussian conditional, S^{1/2} ∇²_y U S^{1/2} (see the
    module docstring), at least ``floor`` at probed training samples; starts from the
    unconstrained ``theta``. ``y`` and ``c`` are the training samples. With a ``subspace``
    the details lie on, the Hessian restricted to it.

    Returns θ and a report: ``curvature_start`` and ``curvature_end`` (the smallest
    relative eigenvalue over the probes before and after), ``cuts`` (constraints added).
    """
    probes = torch.linspace(0, len(y) - 1, min(PROBES, len(y))).round().long()
    yp, cp = y[probes], None if c is None else c[probes]
    cuts, start = [], None
    metric = data_metric(y, c, subspace)
    for round_ in range(ROUNDS + 1):
        lowest, vectors = ExponentialModel(families, theta).lowest_curvature(
            yp, cp, LANCZOS_STEPS, along=metric
        )
        start = float(lowest.min()) if start is None else start
        if float(lowest.min()) >= 0.9 * floor or round_ == ROUNDS:
            break
        worst = torch.argsort(lowest)[:CUTS_PER_ROUND]
        given = None if cp is None else cp[worst]
        cuts.append(curvature_rows(families, yp[worst], given, metric(vectors[worst])))
        theta = fit_constrained(stats, ridge, torch.cat(cuts), floor)
    return theta, {
        "curvature_start": start,
        "curvature_end": float(lowest.min()),
        "cuts": float(sum(len(rows) for rows in cuts)),
    }


NO_FLOOR = {"curvature_start": float("nan"), "curvature_end": float("nan"), "cuts": float("nan")}
"""The curvature columns of a factor fitted without a floor."""
