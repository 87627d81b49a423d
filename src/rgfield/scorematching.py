"""Score matching for exponential models U = θᵀΦ: streaming closed form and an SGD path.

For p_θ ∝ exp(−θᵀΦ) the Hyvärinen loss (Hyvärinen, JMLR 6, 695 (2005))

    ℓ(θ) = E[½ ‖∇U‖² − ΔU] = ½ θᵀ H θ − bᵀ θ,   H = E[∇Φ ∇Φᵀ],  b = E[ΔΦ],

is quadratic in θ, with gradients taken with respect to the sampled variables only; it needs no
partition function. Its minimiser θ = H⁻¹ b is computed after diagonal preconditioning
(H̃ = D H D with D = diag(H)^{-1/2}) and an optional ridge on H̃, since H is badly conditioned
(10⁷–10⁸ observed for wavelet-RG features).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch

__all__ = [
    "ScoreMatchingFit",
    "ScoreMatchingStatistics",
    "fit_closed_form",
    "fit_constrained",
    "fit_sgd",
]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
"""Mini-batches of (gradients (B, F, *dims), Laplacians (B, F)) of the features."""


@dataclass
class ScoreMatchingStatistics:
    """Running sums of ∇Φ∇Φᵀ and ΔΦ over samples (float64), for the closed-form solve.

    Memory is O(F²) whatever the number of samples. ``dimension`` is the number of free
    sampled variables per sample (the dimension of the subspace the gradients were projected
    on, if any), used to report losses per variable.
    """

    gram: torch.Tensor
    laplacian: torch.Tensor
    count: int = 0
    dimension: int = 0

    @classmethod
    def empty(cls, n_features: int) -> ScoreMatchingStatistics:
        return cls(
            torch.zeros(n_features, n_features, dtype=torch.float64),
            torch.zeros(n_features, dtype=torch.float64),
        )

    def update(
        self, gradients: torch.Tensor, laplacians: torch.Tensor, dimension: int | None = None
    ) -> None:
        """Add a mini-batch: ``gradients`` (B, F, *dims), ``laplacians`` (B, F); ``dimension``
        the number of free variables among the gradients' (all of them by default; fewer for
        gradients projected on a subspace)."""
        g = gradients.reshape(*gradients.shape[:2], -1).double().cpu()
        self.gram += torch.einsum("bfi,bgi->fg", g, g)
        self.laplacian += laplacians.double().sum(0).cpu()
        self.count += g.shape[0]
        self.dimension = g.shape[-1] if dimension is None else int(dimension)

    @property
    def H(self) -> torch.Tensor:  # noqa: N802 - the name in every paper
        return self.gram / self.count

    @property
    def b(self) -> torch.Tensor:
        return self.laplacian / self.count

    def merged(self, other: ScoreMatchingStatistics) -> ScoreMatchingStatistics:
        """Statistics of both sample sets together."""
        if other.gram.shape != self.gram.shape or 0 < other.dimension != self.dimension > 0:
            raise ValueError("other: statistics of different features or variables")
        return ScoreMatchingStatistics(
            self.gram + other.gram,
            self.laplacian + other.laplacian,
            self.count + other.count,
            self.dimension or other.dimension,
        )

    def loss(self, theta: torch.Tensor) -> float:
        """Score-matching loss ½θᵀHθ − bᵀθ per sample and per variable."""
        theta = theta.double().cpu()
        return float(0.5 * theta @ self.H @ theta - self.b @ theta) / self.dimension


@dataclass(frozen=True)
class ScoreMatchingFit:
    """Result of a score-matching fit.

    Attributes
    ----------
    theta : torch.Tensor (F,), float64
    ridge : float
        The ridge used (the chosen one when several were tried).
    condition : float
        κ(H) = λ_max/λ_min before preconditioning.
    condition_preconditioned : float
        κ(D H D) with D = diag(H)^{-1/2}, ridge included.
    train_loss, heldout_loss : float
        Score-matching loss per variable on the training and held-out samples (NaN if none held
        out). For a unit Gaussian it is −½; a held-out loss well above the training loss signals
        over-fitting.
    """

    theta: torch.Tensor
    ridge: float
    condition: float
    condition_preconditioned: float
    train_loss: float
    heldout_loss: float


def _condition(matrix: torch.Tensor) -> float:
    eig = torch.linalg.eigvalsh(matrix)
    return float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf")


def _solve(stats: ScoreMatchingStatistics, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """θ = D (D H D + ρ 1)⁻¹ D b and the regularised preconditioned matrix D H D + ρ 1."""
    h, b = stats.H, stats.b
    diag = torch.diagonal(h)
    if not (diag > 0).all():
        dead = torch.nonzero(diag <= 0).flatten().tolist()
        raise ValueError(f"features {dead} have zero gradient on all the data; drop them")
    d = diag.rsqrt()
    preconditioned = d[:, None] * h * d[None, :] + ridge * torch.eye(len(b), dtype=h.dtype)
    return d * torch.linalg.solve(preconditioned, d * b), preconditioned


def fit_closed_form(
    train: ScoreMatchingStatistics,
    heldout: ScoreMatchingStatistics | None = None,
    ridge: float | Sequence[float] = 0.0,
) -> ScoreMatchingFit:
    """θ = D (D H D + ρ 1)⁻¹ D b with D = diag(H)^{-1/2} and ridge ρ (relative to unit diagonal).

    Parameters
    ----------
    train : statistics of the training samples.
    heldout : statistics of held-out samples, optional.
    ridge : float or sequence of floats
        With several values (and held-out samples), the one with the lowest held-out loss is
        chosen.

    The losses reported are those of the fit on the training samples alone; the θ returned is
    solved again, with the chosen ridge, on training and held-out samples together.

    Raises ``ValueError`` if the statistics are empty or if H has a zero diagonal entry (a
    feature whose gradient vanishes on all the data cannot be fitted).
    """
    if train.count == 0:
        raise ValueError("train: no samples were accumulated")
    ridges = [ridge] if isinstance(ridge, Real) else list(ridge)
    if not ridges or not all(r >= 0 for r in ridges):
        raise ValueError(f"ridge must be non-negative (or a list of such); got {ridge!r}")
    has_heldout = heldout is not None and heldout.count > 0
    if len(ridges) > 1 and not has_heldout:
        raise ValueError("ridge: choosing among several values needs held-out samples")
    fits = [_solve(train, r)[0] for r in ridges]
    losses = [heldout.loss(t) if has_heldout else float("nan") for t in fits]
    best = int(np.nanargmin(losses)) if has_heldout else 0
    theta, chosen = fits[best], float(ridges[best])
    final = train.merged(heldout) if has_heldout else train
    final_theta, preconditioned = _solve(final, chosen)
    return ScoreMatchingFit(
        theta=final_theta,
        ridge=chosen,
        condition=_condition(final.H),
        condition_preconditioned=_condition(preconditioned),
        train_loss=train.loss(theta),
        heldout_loss=losses[best],
    )


def fit_constrained(
    stats: ScoreMatchingStatistics, ridge: float, cuts: torch.Tensor, floor: float
) -> torch.Tensor:
    """θ minimising the score-matching loss under linear constraints ``cuts @ θ ≥ floor``.

    The problem min ½θᵀH_ρθ − bᵀθ s.t. Aθ ≥ δ, with the ridge of :func:`fit_closed_form`
    (H_ρ = H + ρ diag H), is solved through its dual, a bound-constrained quadratic programme
    in one multiplier per constraint:

        λ* = argmin_{λ ≥ 0} ½ λᵀ A H_ρ⁻¹ Aᵀ λ + λᵀ (A H_ρ⁻¹ b − δ),   θ = H_ρ⁻¹ (b + Aᵀ λ*)

    (L-BFGS-B on λ; strong duality holds since H_ρ is positive definite). Without an active
    constraint θ is the closed-form solution.

    Parameters
    ----------
    stats : the score-matching sums.
    ridge : float
        ρ, relative to the diagonal of H.
    cuts : torch.Tensor, shape (m, F)
        Rows a_i of A.
    floor : float
        δ, the same for every row.
    """
    from scipy.optimize import minimize

    if cuts.ndim != 2 or cuts.shape[1] != len(stats.b):
        raise ValueError(f"cuts must have shape (m, {len(stats.b)}); got {tuple(cuts.shape)}")
    h = stats.H + ridge * torch.diag(torch.diagonal(stats.H))
    a = cuts.to(h)
    unconstrained = torch.linalg.solve(h, stats.b)
    h_inv_at = torch.linalg.solve(h, a.T)
    m, q = (a @ h_inv_at).numpy(), (a @ unconstrained).numpy() - floor
    dual = minimize(
        lambda lam: (0.5 * lam @ m @ lam + lam @ q, m @ lam + q),
        np.zeros(len(q)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * len(q),
        options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-12},
    )
    return unconstrained + h_inv_at @ torch.as_tensor(dual.x, dtype=h.dtype)


def fit_sgd(
    batches: Callable[[], Batches],
    n_features: int,
    epochs: int = 20,
    lr: float = 1e-2,
    ridge: float = 0.0,
    theta0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Minimise the score-matching loss by Adam over mini-batches, for large feature sets.

    Each step uses the unbiased mini-batch loss ½‖Gᵀθ‖² − Lᵀθ (averaged over the batch), whose
    gradient G Gᵀθ − L needs no autograd; the parameters are scaled by the diagonal of H
    estimated on the first batch (the same preconditioning as :func:`fit_closed_form`).

    Parameters
    ----------
    batches : callable returning an iterable of (gradients (B, F, ...), Laplacians (B, F))
        Called once per epoch.
    n_features : int
    epochs, lr : Adam's number of passes and learning rate (for the preconditioned parameters).
    ridge : float
        Adds ½ ρ ‖θ̃‖² in the preconditioned parameters θ̃ = θ / D.
    theta0 : optional starting point.

    Returns
    -------
    torch.Tensor (F,), float64
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive integer; got {epochs!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}")
    if theta0 is not None and tuple(theta0.shape) != (n_features,):
        raise ValueError(f"theta0 must have shape ({n_features},); got {tuple(theta0.shape)}")
    param = scale = optimiser = None
    for _ in range(epochs):
        for gradients, laplacians in batches():
            g = gradients.reshape(*gradients.shape[:2], -1).double().cpu()
            lap = laplacians.double().cpu()
            if param is None:
                diag = torch.einsum("bfi,bfi->f", g, g) / g.shape[0]
                scale = torch.where(diag > 0, diag, torch.ones_like(diag)).rsqrt()
                start = torch.zeros(n_features, dtype=torch.float64) if theta0 is None else theta0
                param = (start.double().cpu() / scale).clone().requires_grad_()
                optimiser = torch.optim.Adam([param], lr=lr)
            theta = param.detach() * scale
            score = torch.einsum("bfi,f->bi", g, theta)
            grad_theta = torch.einsum("bfi,bi->f", g, score) / g.shape[0] - lap.mean(0)
            param.grad = grad_theta * scale + ridge * param.detach()
            optimiser.step()
    if param is None:
        raise ValueError("batches: produced no data")
    return (param.detach() * scale).clone()
