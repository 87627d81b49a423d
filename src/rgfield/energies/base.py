"""The feature-family interface and the exponential model θᵀΦ built from families.

A conditional model of one RG scale is p̄(y | c) ∝ exp(−θᵀΦ(y, c)), with ``y`` the variables
that are sampled (the normalised details x̄_j, shape (B, 3, n, n) in 2D; at the coarsest scale
the coarse field itself, shape (B, 1, n, n)) and ``c`` the conditioning coarse field x_j
(shape (B, n, n); ``None`` at the coarsest scale). Gradients and Laplacians are taken with
respect to ``y`` only: the conditioning field is held fixed (docs/architecture.md,
"Feature families").

Extension point
---------------
A new family of features (the scattering-covariance family of a later issue, for instance)
subclasses :class:`FeatureFamily`, implements :meth:`~FeatureFamily.fit`,
:meth:`~FeatureFamily.values`, :meth:`~FeatureFamily.gradients`,
:meth:`~FeatureFamily.laplacians`, :meth:`~FeatureFamily.get_state` and
:meth:`~FeatureFamily.from_state`, and is made available by name with :func:`register_feature`.
Score matching, sampling, saving and loading then work unchanged. :meth:`~FeatureFamily.bind`
has a generic implementation; override it when U = θᵀΦ and ∇U have a cheaper direct form.

A family whose energy is a sum of local terms may also implement
:meth:`~FeatureFamily.bind_density` (U as a sum of per-cell densities) and
:attr:`~FeatureFamily.reach` (how far a cell's density and gradient reach): the block sampler
(:class:`~rgfield.mcmc.BlockMALA`) then applies to models made of such families only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import torch

__all__ = [
    "FEATURES",
    "DensityFn",
    "EnergyFn",
    "GivenEnergyFn",
    "ExponentialModel",
    "FeatureFamily",
    "register_feature",
]

EnergyFn = Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]
"""(y, c) ↦ (U (B,), ∇_y U (B, *y.shape[1:])) for a fixed θ."""

GivenEnergyFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""y ↦ (U, ∇_y U) for a fixed θ and a fixed conditioning field."""

DensityFn = Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]
"""(y, c) ↦ (u (B, n, n), ∇_y U) for a fixed θ, with U = Σ_p u(p) over the cells p of y's grid."""


class FeatureFamily(ABC):
    """A block of features Φ_k(y, c), k = 1..F, with their y-gradients and y-Laplacians."""

    name: ClassVar[str]
    stationary_hessian: ClassVar[bool] = False
    """True when ∇²_y Φ_k is the same at every (y, c) and commutes with the grid's shifts (an
    energy quadratic in y with stationary couplings)."""

    @abstractmethod
    def fit(self, y: torch.Tensor, c: torch.Tensor | None, wavelet: str = "db4") -> FeatureFamily:
        """Set data-dependent choices (knots, shifts) from training data; returns ``self``.

        ``wavelet`` is the wavelet that relates ``y`` and ``c`` to the finer field.
        """

    @property
    @abstractmethod
    def labels(self) -> list[str]:
        """One short label per feature (coordinates of θ in reports and files)."""

    @property
    def n_features(self) -> int:
        return len(self.labels)

    @abstractmethod
    def values(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Φ(y, c), shape (B, F)."""

    @abstractmethod
    def gradients(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """∇_y Φ_k, shape (B, F, *y.shape[1:])."""

    @abstractmethod
    def laplacians(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Δ_y Φ_k = Σ_i ∂²Φ_k/∂y_i², shape (B, F)."""

    @property
    def reach(self) -> int | None:
        """Reach of the energy density and gradient in cells of y's grid, or None if not local.

        A local family guarantees that u(p) and ∇_y U at cell p depend on y only through the
        cells within Chebyshev distance ``reach`` of p (periodically); c is held fixed.
        """
        return None

    def bind_density(self, theta: torch.Tensor) -> DensityFn | None:
        """Per-cell energy density u and ∇U for fixed θ, or None for a family that is not local."""
        return None

    @property
    def bounded(self) -> bool:
        """True when the family's energy is +∞ outside a bounded set of y (for every c), so that
        any model containing it is normalisable."""
        return False

    def curvature(self, theta: torch.Tensor) -> float | None:
        """The smallest eigenvalue of ∇²_y θᵀΦ when it is the same at every (y, c) (an energy
        quadratic in y), else None."""
        return None

    def bind(self, theta: torch.Tensor) -> EnergyFn:
        """U = θᵀΦ and ∇U for fixed θ (shape (F,)).

        The sum of :meth:`bind_density` when the family has one, else the generic form through
        all F gradients.
        """
        density = self.bind_density(theta)
        if density is not None:
            return _summed(density)

        def energy_and_grad(y: torch.Tensor, c: torch.Tensor | None):
            t = theta.to(y)
            return self.values(y, c) @ t, torch.einsum("bf...,f->b...", self.gradients(y, c), t)

        return energy_and_grad

    def bind_given(self, theta: torch.Tensor) -> Callable[[torch.Tensor | None], GivenEnergyFn]:
        """For fixed θ, c ↦ (y ↦ (U, ∇U)): the energy with a fixed coarse field ``c``.

        A chain is conditioned on one ``c`` for all its steps; a family whose terms in ``c``
        cost much may override this to compute them once per ``c`` (the default calls
        :meth:`bind`'s function with ``c`` at every evaluation).
        """
        energy = self.bind(theta)
        return lambda c: _given(energy, c)

    @abstractmethod
    def get_state(self) -> dict:
        """Everything :meth:`from_state` needs: numpy arrays and JSON-able scalars."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict) -> FeatureFamily:
        """Rebuild a fitted family from :meth:`get_state`."""


def _summed(density: DensityFn) -> EnergyFn:
    """The energy function U = Σ_p u(p) of a density function."""

    def energy_and_grad(y: torch.Tensor, c: torch.Tensor | None):
        u, grad = density(y, c)
        return u.sum((-2, -1)), grad

    return energy_and_grad


def _chunked(
    evaluate: Callable[[slice, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(value, ∇_y U) of ``y`` from ``evaluate(rows, y[rows])``, in chunks of about
    ``_CPU_CHUNK`` variables on the CPU (see :meth:`ExponentialModel.energy_and_grad`)."""
    size = max(1, _CPU_CHUNK // max(1, y[0].numel())) if y.device.type == "cpu" else len(y)
    parts = [evaluate(slice(i, i + size), y[i : i + size]) for i in range(0, len(y), size)]
    if len(parts) == 1:
        return parts[0]
    return torch.cat([v for v, _ in parts]), torch.cat([g for _, g in parts])


def _total(
    functions: list[Callable[..., tuple[torch.Tensor, torch.Tensor]]], *args: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ of the functions' (value, ∇_y U) at the same arguments."""
    value, grad = functions[0](*args)
    for fn in functions[1:]:
        v, g = fn(*args)
        value, grad = value + v, grad + g
    return value, grad


def _rows(c: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    """The conditioning fields of a chunk of the batch (None without a coarse field)."""
    return None if c is None else c[rows]


def _overrides_given(family: FeatureFamily) -> bool:
    """Whether a family computes its energy given c its own way (its terms in c once per c)."""
    return type(family).bind_given is not FeatureFamily.bind_given


def _given(energy: EnergyFn, c: torch.Tensor | None) -> GivenEnergyFn:
    """``energy`` with its coarse field fixed."""
    return lambda y: energy(y, c)


def sampled_names(channels: int) -> list[str]:
    """Labels of the sampled channels: h, v, d for the three detail channels, else y0, y1, …"""
    return ["h", "v", "d"] if channels == 3 else [f"y{i}" for i in range(channels)]


FEATURES: dict[str, type[FeatureFamily]] = {}
"""Feature families by name (``"potential"``, ``"quadratic"``, and any registered later)."""


def register_feature(cls: type[FeatureFamily]) -> type[FeatureFamily]:
    """Make a :class:`FeatureFamily` subclass available by its ``name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, FeatureFamily)):
        raise TypeError(f"register_feature expects a FeatureFamily subclass; got {cls!r}")
    FEATURES[cls.name] = cls
    return cls


def make_feature(name: str, options: dict | None = None) -> FeatureFamily:
    """A new (unfitted) family from its registered name and constructor options."""
    if name not in FEATURES:
        raise ValueError(f"features: unknown feature family {name!r}; known: {sorted(FEATURES)}")
    return FEATURES[name](**(options or {}))


_CPU_CHUNK = 2**19  # variables per chunk of a batch in ExponentialModel.energy_and_grad


@dataclass(frozen=True)
class ExponentialModel:
    """U(y | c) = θᵀΦ(y, c) over a list of fitted feature families.

    Attributes
    ----------
    features : list of FeatureFamily
    theta : torch.Tensor, shape (Σ F,)
        Concatenated parameters, in the order of ``features``.
    """

    features: list[FeatureFamily]
    theta: torch.Tensor

    def __post_init__(self) -> None:
        total = sum(f.n_features for f in self.features)
        if self.theta.shape != (total,):
            raise ValueError(f"theta must have shape ({total},); got {tuple(self.theta.shape)}")
        thetas = self.thetas
        densities = [f.bind_density(t) for f, t in zip(self.features, thetas, strict=True)]
        bound = [
            f.bind(t) if d is None else _summed(d)
            for f, t, d in zip(self.features, thetas, densities, strict=True)
        ]
        binders = [  # a family's own bind_given where it has one, else its bound energy
            f.bind_given(t) if _overrides_given(f) else partial(_given, energy)
            for f, t, energy in zip(self.features, thetas, bound, strict=True)
        ]
        # θ is bound once: the model is immutable
        object.__setattr__(self, "_bound", bound)
        object.__setattr__(self, "_binders", binders)
        object.__setattr__(self, "_densities", densities)

    @property
    def thetas(self) -> list[torch.Tensor]:
        """θ split into the families' parameters, in the order of ``features``."""
        bounds = np.cumsum([0] + [f.n_features for f in self.features])
        return [self.theta[bounds[i] : bounds[i + 1]] for i in range(len(self.features))]

    def curvature(self) -> float | None:
        """A lower bound on the eigenvalues of ∇²_y U when every family's Hessian is constant:
        the sum of their smallest eigenvalues (Weyl's inequality); else None."""
        floors = [f.curvature(t) for f, t in zip(self.features, self.thetas, strict=True)]
        return None if any(v is None for v in floors) else float(sum(floors))

    def normalisable(self) -> bool | None:
        """Whether Z(c) = ∫ exp(−U(y | c)) dy is finite for every c, where this can be decided.

        True when a family bounds the support of y (:attr:`FeatureFamily.bounded`) or the
        energy is quadratic in y with positive curvature (a Gaussian); False when it is one
        quadratic family whose curvature is not positive (along the eigenvector of the
        smallest eigenvalue exp(−U) does not decay); None otherwise.
        """
        if any(f.bounded for f in self.features):
            return True
        floor = self.curvature()
        if floor is None:
            return None
        return True if floor > 0 else (False if len(self.features) == 1 else None)

    def to(self, device: str | torch.device) -> ExponentialModel:
        """The same model with θ on ``device``: its bound energy then runs there.

        The fitted families are shared; each binds θ on θ's device (tables, kernels), so a
        sampler on that device makes no host round trip per evaluation.
        """
        theta = self.theta.to(device)
        return self if theta is self.theta else ExponentialModel(self.features, theta)

    @property
    def reach(self) -> int | None:
        """Reach of the energy density and gradient (cells), None unless every family is local."""
        reaches = [f.reach for f in self.features]
        if any(d is None for d in self._densities) or any(r is None for r in reaches):
            return None
        return max(reaches)

    def energy_and_grad(
        self, y: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """U(y | c), shape (B,), and ∇_y U, shape of ``y``; U = +∞ outside the model's support.

        On the CPU a large batch is evaluated in chunks of about ``_CPU_CHUNK`` variables, so
        that the families' temporaries stay well below glibc's 32 MB threshold for memory
        handed back to the system at every free (and page-faulted in again at the next
        allocation). Measured for the finest φ⁴ conditional: 100 fields of 256², 0.27 s
        against 0.73–0.89 s unchunked; 1000 fields of 128², 1.0 s against 2.45 s; 1000 of 64²
        and 100 of 128², 1.2× faster. The results are identical.
        """
        return _chunked(lambda rows, part: _total(self._bound, part, _rows(c, rows)), y)

    def given(self, c: torch.Tensor | None) -> GivenEnergyFn:
        """y ↦ (U(y | c), ∇_y U) for this fixed ``c`` (one chain's conditioning field), the
        same values as :meth:`energy_and_grad`; each family binds ``c`` once per chunk of
        the batch (:meth:`FeatureFamily.bind_given`), at its first evaluation."""
        bound: dict[tuple[int, int], list[GivenEnergyFn]] = {}

        def evaluate(rows: slice, part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            key = (rows.start, rows.stop)
            if key not in bound:
                bound[key] = [binder(_rows(c, rows)) for binder in self._binders]
            return _total(bound[key], part)

        def energy_and_grad(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if c is not None and len(y) != len(c):
                raise ValueError(
                    f"y: expected {len(c)} samples, one per coarse field; got {len(y)}"
                )
            return _chunked(evaluate, y)

        return energy_and_grad

    def density_and_grad(
        self, y: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy density u (B, n, n) with U = Σ_p u(p), and ∇_y U; chunked as the energy.

        Raises
        ------
        ValueError
            When a family is not local (has no density).
        """
        missing = [f.name for f, d in zip(self.features, self._densities, strict=True) if d is None]
        if missing:
            raise ValueError(f"features: {missing} have no local energy density")
        return _chunked(lambda rows, part: _total(self._densities, part, _rows(c, rows)), y)

    def energy(self, y: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.energy_and_grad(y, c)[0]

    def gradient(self, y: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.energy_and_grad(y, c)[1]

    def hessian_extremes(
        self,
        y: torch.Tensor,
        c: torch.Tensor | None = None,
        steps: int = 100,
        seed: int = 0,
        along: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Smallest and largest eigenvalue of ∇²_y U at each ``y`` (shape (B,) each).

        The extreme Ritz values of ``steps`` Lanczos steps (:meth:`_lanczos`) with Hessian
        products Hv = [∇U(y + εv) − ∇U(y − εv)] / 2ε (exact for quadratic energies, accurate
        to O(ε²) otherwise). A diagnostic of conditioning: MALA's mixing time grows like
        λ_max / λ_min for a convex energy. With ``along`` (an orthogonal projection P) the
        eigenvalues of P H P on the range of P: the curvature of U restricted to a subspace.
        """
        lowest, _, highest = self._lanczos(y, c, steps, seed, along)
        return lowest, highest

    def lowest_curvature(
        self,
        y: torch.Tensor,
        c: torch.Tensor | None = None,
        steps: int = 100,
        seed: int = 0,
        along: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The smallest eigenvalue of ∇²_y U at each ``y`` (B,) and its unit eigenvector (the
        shape of ``y``, on the range of ``along`` when given), by the Lanczos steps of
        :meth:`hessian_extremes`."""
        lowest, vector, _ = self._lanczos(y, c, steps, seed, along)
        return lowest, vector

    def _lanczos(
        self,
        y: torch.Tensor,
        c: torch.Tensor | None,
        steps: int,
        seed: int,
        along: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """λ_min, its Ritz vector and λ_max of H = ∇²_y U (P H P with ``along`` = P), per
        batch element, from at most ``steps`` Lanczos steps with full reorthogonalisation.

        The Krylov basis q_1 … q_k of H and a random start gives the tridiagonal
        T = QᵀHQ, whose extreme eigenvalues approach H's from inside; to a given accuracy
        Lanczos needs about the square root of the steps power iteration needs. (At j = 1 of
        128² cosmic-web slabs, 60 power iterations put λ_min at +0.021 where 600 found
        −0.105: docs/rg_fields.md.) Each new direction is projected back onto P's range after
        its reorthogonalisation: the rounding the basis carries off the range would otherwise
        grow by |α|/β per step. When a start's Krylov space closes early (β below 1e-10 of the
        largest |α|), a fresh random direction orthogonal to it continues it: T is then
        block-diagonal, and its eigenvalues remain eigenvalues of H's restrictions. When no
        direction is left (the basis spans P's range, or every variable), the steps stop.
        NaN for a batch element whose Hessian products were not finite.
        """
        apply = (lambda v: v) if along is None else along
        dims = tuple(range(1, y.dim()))
        shape = (-1, *([1] * (y.dim() - 1)))
        eps = 1e-4 * (1.0 + y.abs().amax(dim=dims, keepdim=True))
        gen = torch.Generator(device=y.device).manual_seed(seed)

        def norm(v: torch.Tensor) -> torch.Tensor:
            return v.square().sum(dims).sqrt()

        def random() -> torch.Tensor:
            return apply(torch.randn(y.shape, generator=gen, dtype=y.dtype, device=y.device))

        def orthogonal(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
            for _ in range(2):  # twice is enough (Kahan–Parlett)
                overlaps = torch.einsum("kb...,b...->kb", basis, w)
                w = w - torch.einsum("kb,kb...->b...", overlaps, basis)
            return apply(w)

        steps = max(1, min(steps, y[0].numel()))
        basis = y.new_empty((steps, *y.shape))
        start = random()
        q = start / norm(start).clamp_min(1e-300).view(shape)
        alphas, betas, largest = [], [], y.new_zeros(len(y))
        for k in range(steps):
            basis[k] = q
            hv = (self.gradient(y + eps * q, c) - self.gradient(y - eps * q, c)) / (2 * eps)
            w = apply(hv)
            alphas.append((q * w).sum(dims))
            largest = torch.maximum(largest, torch.maximum(alphas[-1].abs(), norm(w)))
            if k + 1 == steps:
                break
            w = orthogonal(w, basis[: k + 1])
            beta = norm(w)
            closed = beta <= 1e-10 * largest.clamp_min(1e-300)
            if bool(closed.any()):
                seed_direction = random()
                fresh = orthogonal(seed_direction, basis[: k + 1])
                size = norm(fresh)
                if bool((size[closed] <= 1e-8 * norm(seed_direction)[closed]).any()):
                    break  # no direction left
                w = torch.where(
                    closed.view(shape),
                    fresh / size.clamp_min(1e-300).view(shape),
                    w / beta.clamp_min(1e-300).view(shape),
                )
                beta = torch.where(closed, torch.zeros_like(beta), beta)
            else:
                w = w / beta.view(shape)
            betas.append(beta)
            q = w
        k = len(alphas)  # and k − 1 betas, however the steps ended
        tridiagonal = torch.diag_embed(torch.stack(alphas, 1))
        if k > 1:
            off = torch.stack(betas, 1)
            tridiagonal = tridiagonal + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
        broken = ~tridiagonal.isfinite().flatten(1).all(1)  # a Hessian product not finite
        values, vectors = torch.linalg.eigh(torch.where(broken[:, None, None], 0.0, tridiagonal))
        values = torch.where(broken[:, None], torch.nan, values)
        ritz = torch.einsum("bk,kb...->b...", vectors[:, :, 0], basis[:k])
        ritz = torch.where(
            broken.view(shape), torch.nan, ritz / norm(ritz).clamp_min(1e-300).view(shape)
        )
        return values[:, 0], ritz, values[:, -1]
