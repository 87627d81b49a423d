"""One-variable models (the 1×1 coarsest field): quadrature, maximum likelihood, exact draws.

A model of one variable t, p(t) ∝ exp(−θᵀΦ(t)), is normalised by quadrature on a grid over its
potential's support, so it is fitted by exact maximum likelihood and drawn by inverting its CDF.
Score matching cannot weigh separated modes (the score vanishes between them); this can.
"""

from __future__ import annotations

import warnings

import torch

from rgfield.energies import ExponentialModel, FeatureFamily

__all__ = ["maximum_likelihood_scalar", "sample_scalar"]


def _scalar_grid(features: list[FeatureFamily]) -> torch.Tensor:
    """Quadrature grid of a one-variable model: its potential's support (else ±12), 2¹⁴ cells."""
    support = [f.support for f in features if getattr(f, "support", None) is not None]
    lo, hi = support[0].tolist() if support else (-12.0, 12.0)
    return torch.linspace(lo, hi, 2**14 + 1, dtype=torch.float64)


def _grid_weights(energy: torch.Tensor) -> torch.Tensor:
    """Normalised trapezoidal weights of exp(−U) on a uniform grid (zero where U = ∞)."""
    w = torch.exp(-(energy - energy[torch.isfinite(energy)].min()))
    w[0], w[-1] = w[0] / 2, w[-1] / 2
    if not (torch.isfinite(w).all() and w.sum() > 0):
        raise ValueError("the coarsest model is not normalisable on its support")
    return w / w.sum()


def maximum_likelihood_scalar(
    features: list[FeatureFamily], y: torch.Tensor, iterations: int = 100
) -> torch.Tensor:
    """Maximum-likelihood θ of p(t) ∝ exp(−θᵀΦ(t)) on a bounded interval, by damped Newton.

    ℓ(θ) = −θᵀ Φ̄ − log Z(θ) is concave with ∇ℓ = E_θ[Φ] − Φ̄ and ∇²ℓ = −Cov_θ[Φ] (Φ̄ the data
    mean); Z, E_θ and Cov_θ by quadrature on :func:`_scalar_grid`. Starts from θ = 0, the
    uniform density on the support, and stops when the moments match to 1e-10 (in units of
    each feature's spread on the grid) or the line search stalls (rounding), warning if they
    are then off by more than 1e-6. Not from the score-matching θ: with two separated modes
    (the coarsest field in the ordered phase) that θ can put one mode's mass below the grid's
    resolution, where the covariance vanishes and the Newton steps stalled with that mode
    empty (every generated field of one sign at β = 1.0, L = 64).
    """
    t = _scalar_grid(features).reshape(-1, 1, 1, 1)
    phi = torch.cat([f.values(t, None) for f in features], dim=1)
    data = torch.cat([f.values(y, None) for f in features], dim=1).mean(0)
    scale = phi.std(0).clamp_min(1e-12)
    phi, data = phi / scale, data / scale  # well-scaled coordinates θ' = θ · scale

    def objective(p: torch.Tensor) -> torch.Tensor:
        u = phi @ p
        log_z = torch.logsumexp(-u, 0)  # the uniform grid's constant cell size cancels
        return -(p @ data) - log_z

    p = phi.new_zeros(phi.shape[1])
    for _ in range(iterations):
        w = _grid_weights(phi @ p)
        mean = w @ phi
        grad = mean - data
        if grad.abs().max() < 1e-10:
            break
        centred = phi - mean
        cov = centred.T @ (w[:, None] * centred) + 1e-12 * torch.eye(len(p), dtype=p.dtype)
        step = torch.linalg.solve(cov, grad)
        current, factor = objective(p), 1.0
        while objective(p + factor * step) < current - 1e-14 and factor > 1e-6:
            factor /= 2
        if factor <= 1e-6:  # no ascent along the Newton direction
            break
        p = p + factor * step
    if grad.abs().max() > 1e-6:
        warnings.warn(
            f"maximum likelihood of the coarsest model: moments matched only to "
            f"{grad.abs().max():.1e} (relative to each feature's spread)",
            RuntimeWarning,
            stacklevel=3,
        )
    return p / scale


def sample_scalar(model: ExponentialModel, n: int, generator: torch.Generator) -> torch.Tensor:
    """Exact draws of a one-variable model p(t) ∝ exp(−U(t)) by inverting its CDF on a grid.

    The density is integrated on :func:`_scalar_grid` by the trapezoidal rule and the CDF
    inverted by linear interpolation. Returns shape (n, 1, 1, 1), on the generator's device.
    """
    t = _scalar_grid(model.features).to(model.theta.device)
    density = _grid_weights(model.energy(t.reshape(-1, 1, 1, 1)))
    density[0], density[-1] = density[0] * 2, density[-1] * 2  # back to point values
    cdf = torch.cat([density.new_zeros(1), torch.cumsum((density[1:] + density[:-1]) / 2, 0)])
    t, cdf = t.to(generator.device), cdf.to(generator.device)
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device) * cdf[-1]
    i = torch.searchsorted(cdf, u).clamp(1, len(t) - 1)
    weight = (u - cdf[i - 1]) / (cdf[i] - cdf[i - 1]).clamp_min(torch.finfo(cdf.dtype).tiny)
    return (t[i - 1] + weight * (t[i] - t[i - 1])).reshape(n, 1, 1, 1)
