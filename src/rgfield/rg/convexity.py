"""Score matching under a curvature floor: the fitted conditional is convex at the data.

Score matching fits the scores where the data lie and says nothing about the curvature of the
energy between them: with a family that is not quadratic in the details (the scalar potential,
the scattering covariance's power–modulus terms) the fitted ∇²_y U can have negative
eigenvalues at the data, and MALA chains started there run away (docs/rg_fields.md, on the
cosmic web's finest scale). Since ∇²_y U = Σ_k θ_k ∇²_y Φ_k is linear in θ, the condition

    vᵀ ∇²_y U(y_i | c_i) v ≥ δ   for a direction v at a training sample (y_i, c_i)

is a linear constraint on θ. :func:`fit_with_curvature_floor` adds such cuts by rounds — at
the probes (:func:`probe_samples`: training samples, and the same with their coarse fields'
contrast amplified) whose smallest Hessian eigenvalue is lowest, along its eigenvector — and
solves the constrained score matching (:func:`rgfield.scorematching.fit_constrained`) until
the smallest eigenvalue at every probed sample reaches 0.9 δ (Kelley's cutting planes).

The eigenvalues are the smallest Ritz values of ``LANCZOS_STEPS`` Lanczos steps
(:meth:`~rgfield.energies.ExponentialModel.lowest_curvature`; until 2026-12-07 as many power
iterations, which at j = 1 of 128² cosmic-web slabs reported +0.021 where the true λ_min was
−0.105 and let 5 of 32 held-out draws run away). Ritz values approach λ_min from above, so
the true minimum can be lower than the floor; on 16² cosmic-web slabs with δ = 0.1 the dense
minimum over the training fields is 0.096 and 0.093 at them with their contrast amplified
(the reported minimum; power iteration: 0.059 at the training fields), and 0.130 at the
held-out fields (tests/rg/test_convexity.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rgfield.energies import ExponentialModel, FeatureFamily
from rgfield.rg.subspace import DetailSubspace
from rgfield.scorematching import ScoreMatchingStatistics, fit_constrained

__all__ = [
    "NO_FLOOR",
    "curvature_rows",
    "fit_with_curvature_floor",
    "lowest_at_probes",
    "probe_samples",
]

PROBES = 256  # training samples (at most) whose curvature is probed each round
CUTS_PER_ROUND = 8  # the lowest of them give a cut each
ROUNDS = 10
LANCZOS_STEPS = 60
PROBE_CHUNK = 64  # probes per Lanczos run: its basis holds LANCZOS_STEPS fields per probe
CONTRAST = 1.5  # coarse fields' contrast amplified for the second half of the probes


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


def probe_samples(
    y: torch.Tensor, c: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The samples the floor is held at: up to ``PROBES`` training samples (y_i, c_i), evenly
    spaced, and the same details given their coarse fields' contrast amplified,
    (y_i, c̄_i + CONTRAST (c_i − c̄_i)) with c̄_i the field's mean.

    Generated coarse fields reach beyond the training ones (on 128² cosmic-web slabs the
    deepest voids of x_1 / γ_1 at −24 to −27 against −15 to −19: docs/rg_fields.md), and a
    floor held only at the data left the finest conditional non-convex there. For energies
    whose Hessian is affine in the amplitude of c (the quadratic couplings, the scattering
    covariance's power–modulus terms up to the smoothing ε), λ_min is concave along the
    segment from c_i to its amplified copy, so the floor at both ends holds between them.
    """
    probes = torch.linspace(0, len(y) - 1, min(PROBES, len(y))).round().long()
    yp = y[probes]
    if c is None:
        return yp, None
    cp = c[probes]
    mean = cp.mean(dim=tuple(range(1, cp.dim())), keepdim=True)
    return torch.cat([yp, yp]), torch.cat([cp, mean + CONTRAST * (cp - mean)])


def lowest_at_probes(
    model: ExponentialModel,
    y: torch.Tensor,
    c: torch.Tensor | None,
    along: Callable[[torch.Tensor], torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """λ_min of ∇²_y U and its eigenvector at each probe, ``PROBE_CHUNK`` probes at a time
    (Lanczos keeps ``LANCZOS_STEPS`` fields per probe); +inf where the Hessian products are
    not finite (a step of ε off a probe beyond a potential's support): no cut there."""
    lowest, vectors = [], []
    for lo in range(0, len(y), PROBE_CHUNK):
        given = None if c is None else c[lo : lo + PROBE_CHUNK]
        value, vector = model.lowest_curvature(
            y[lo : lo + PROBE_CHUNK], given, LANCZOS_STEPS, along=along
        )
        lowest.append(torch.where(value.isfinite(), value, torch.inf))
        vectors.append(vector)
    return torch.cat(lowest), torch.cat(vectors)


def _reported(value: float) -> float:
    """A curvature for the report: NaN where no probe had a finite one."""
    return value if value < float("inf") else float("nan")


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
    """θ of the score-matching loss ``stats`` with the smallest Hessian eigenvalue of the
    energy at least ``floor`` at the samples of :func:`probe_samples` where the energy is
    finite (training samples, and for a conditional the same with its coarse fields'
    contrast amplified); starts from the unconstrained
    ``theta``. With a ``subspace`` the details lie on, the Hessian restricted to it.

    Probes whose Hessian products are not finite (a step of ε off a potential's support) get
    no cut. Returns θ and a report: ``curvature_start`` and ``curvature_end`` (the smallest
    eigenvalue over the probes with a finite one before and after, NaN if none had),
    ``cuts`` (constraints added). Every chunk of probes starts its Lanczos steps from the
    same seed.
    """
    yp, cp = probe_samples(y, c)
    if cp is not None:  # contrasts the energy is not defined at (beyond a potential's support)
        finite = torch.isfinite(ExponentialModel(families, theta).energy(yp, cp))
        yp, cp = yp[finite], cp[finite]
    cuts, start = [], None
    along = None if subspace is None else subspace.project
    for round_ in range(ROUNDS + 1):
        lowest, vectors = lowest_at_probes(ExponentialModel(families, theta), yp, cp, along)
        start = float(lowest.min()) if start is None else start
        if float(lowest.min()) >= 0.9 * floor or round_ == ROUNDS:
            break
        worst = torch.argsort(lowest)[:CUTS_PER_ROUND]
        worst = worst[lowest[worst].isfinite()]  # no cut where the curvature is unknown
        given = None if cp is None else cp[worst]
        cuts.append(curvature_rows(families, yp[worst], given, vectors[worst]))
        theta = fit_constrained(stats, ridge, torch.cat(cuts), floor)
    return theta, {
        "curvature_start": _reported(start),
        "curvature_end": _reported(float(lowest.min())),
        "cuts": float(sum(len(rows) for rows in cuts)),
    }


NO_FLOOR = {"curvature_start": float("nan"), "curvature_end": float("nan"), "cuts": float("nan")}
"""The curvature columns of a factor fitted without a floor."""
