"""Lattice φ⁴ field theory in 2D: energy, Metropolis and Wolff kernels, and ``simulate``.

Convention (docs/phi4.md): on an L×L periodic lattice,

    E(φ) = (β/2) Σ_⟨xy⟩ (φ_x − φ_y)² + Σ_x V(φ_x),    V(φ) = λ (φ² − 1)²  (default λ = 1),

each nearest-neighbour bond counted once. The on-site potential may be any polynomial
V(φ) = Σ_n c_n φⁿ; the Gaussian free field E = (β/2) Σ (φ_x − φ_y)² + (m²/2) Σ φ_x² is
``Phi4.gaussian(beta, m2)``. The probability of a configuration is ∝ exp(−E(φ)).

**Hopping parameterisation.** Lattice papers write S = Σ_x [−2κ Σ_μ ψ_x ψ_{x+μ} + ψ_x² +
λ_h (ψ_x² − 1)²] (μ over the d = 2 forward directions). Expanding both and setting φ = a ψ:

    β a² = 2κ,    (dβ − 2λ) a² = 1 − 2λ_h,    λ a⁴ = λ_h,

so s = a² solves 2λ s² + (dβ − 2λ) s − 1 = 0 (positive root), κ = β s / 2, λ_h = λ s²; and back,
s = 2λ_h / (2dκ − 1 + 2λ_h), β = 2κ / s, λ = λ_h / s². Critical couplings quoted in one
convention do not carry over to another: rgfield measures its own (docs/phi4.md). λ_h = 0 (a
massive Gaussian field) has no counterpart with this V unless 2dκ = 1.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import ClassVar

import numba
import numpy as np
import torch

from rgfield import _progress
from rgfield._progress import StepCallback
from rgfield._validate import fresh_seed, is_integer
from rgfield.fields import resolve_device
from rgfield.io import as_tensor
from rgfield.mcmc import (
    HMC,
    Info,
    Kernel,
    StepSize,
    adapt_step_size,
    advance,
    integrated_autocorrelation_time,
)
from rgfield.mcmc.base import as_numpy, check_step_size

__all__ = [
    "SAMPLERS",
    "LatticeState",
    "Metropolis",
    "Phi4",
    "Phi4Config",
    "Wolff",
    "WolffInfo",
    "fit_couplings",
    "metropolis_sweeps",
    "new_rng_states",
    "simulate",
    "wolff_updates",
]

DIMENSION = 2


@dataclass(frozen=True)
class Phi4:
    """The lattice φ⁴ energy with coupling ``beta`` and on-site polynomial potential.

    Parameters
    ----------
    beta : float
        Nearest-neighbour coupling β > 0.
    lam : float
        Quartic coupling λ of V(φ) = λ(φ² − 1)²; ignored when ``potential`` is given.
    potential : tuple of float, optional
        Coefficients (c_0, c_1, ..., c_n) of V(φ) = Σ c_k φᵏ.
    """

    beta: float
    lam: float = 1.0
    potential: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a positive number; got {self.beta!r}")
        if self.potential is None:
            if not (math.isfinite(self.lam) and self.lam > 0):
                raise ValueError(f"lam must be a positive number; got {self.lam!r}")
        else:
            coeffs = tuple(float(c) for c in self.potential)
            if not coeffs or not all(math.isfinite(c) for c in coeffs):
                raise ValueError(f"potential must be finite coefficients; got {self.potential!r}")
            while len(coeffs) > 1 and coeffs[-1] == 0:
                coeffs = coeffs[:-1]
            # exp(−E) is normalisable only if V grows at both ends: even degree, positive lead
            if len(coeffs) < 3 or len(coeffs) % 2 == 0 or coeffs[-1] <= 0:
                raise ValueError(
                    "potential must have even degree >= 2 and a positive leading coefficient"
                    f" (otherwise exp(-E) cannot be normalised); got {self.potential!r}"
                )
            object.__setattr__(self, "potential", coeffs)

    @classmethod
    def gaussian(cls, beta: float, m2: float) -> Phi4:
        """The Gaussian free field: V(φ) = (m²/2) φ²."""
        if not m2 > 0:
            raise ValueError(f"m2 must be positive for a normalisable Gaussian field; got {m2!r}")
        return cls(beta=beta, potential=(0.0, 0.0, m2 / 2))

    @cached_property
    def coefficients(self) -> np.ndarray:
        """(c_0, ..., c_n) of the on-site potential V(φ) = Σ c_k φᵏ (read-only)."""
        if self.potential is None:
            coefficients = np.array([self.lam, 0.0, -2 * self.lam, 0.0, self.lam])
        else:
            coefficients = np.array(self.potential)
        coefficients.flags.writeable = False
        return coefficients

    @cached_property
    def is_even(self) -> bool:
        """Whether V(−φ) = V(φ), the symmetry the Wolff cluster update needs."""
        return bool(np.all(self.coefficients[1::2] == 0))

    # ---------------------------------------------------------------- energy and gradient

    def energy(self, phi) -> torch.Tensor:
        """E(φ) for fields of shape (..., L, L); returns shape (...)."""
        phi = _lattice(phi)
        bonds = sum((phi - torch.roll(phi, 1, d)).square() for d in (-1, -2))
        return (0.5 * self.beta * bonds + self.on_site(phi)).sum((-1, -2))

    def grad(self, phi) -> torch.Tensor:
        """∂E/∂φ_x = β (4 φ_x − Σ_nn φ_y) + V'(φ_x) (see :meth:`logdensity_and_grad`)."""
        return -self.logdensity_and_grad(phi)[1]

    def logdensity_and_grad(self, phi) -> tuple[torch.Tensor, torch.Tensor]:
        """log p = −E(φ) and ∇ log p = −∂E/∂φ in one pass (a :data:`rgfield.mcmc.LogDensityFn`).

        With the lattice Laplacian (Δφ)_x = Σ_nn φ_y − 4 φ_x, summation by parts on the periodic
        lattice turns the bond energy into (β/2) Σ_⟨xy⟩ (φ_x − φ_y)² = −½ ⟨φ, β Δφ⟩, so

            ∇ log p = β Δφ − V'(φ),    log p = ½ ⟨φ, β Δφ⟩ − Σ_x V(φ_x),

        V(φ) = Σ_k c_k φᵏ and V'(φ) = Σ_k k c_k φ^(k−1) from the same powers of φ, elementwise
        and in place, with one reduction (the sum over sites): HMC calls this at every leapfrog
        step, and it costs about what the gradient alone did.

        Parameters
        ----------
        phi : array_like (..., L, L)

        Returns
        -------
        logdensity : torch.Tensor (...)
        grad : torch.Tensor (..., L, L)
        """
        phi = _lattice(phi)
        grad = torch.roll(phi, 1, -1)
        for shift, dim in ((-1, -1), (1, -2), (-1, -2)):
            grad.add_(torch.roll(phi, shift, dim))
        grad.add_(phi, alpha=-2 * DIMENSION).mul_(self.beta)  # β Δφ
        c = [float(ck) for ck in self.coefficients]
        site = torch.mul(phi, grad).mul_(0.5)  # log p per site, bond part ½ φ β Δφ
        if c[1]:
            site.add_(phi, alpha=-c[1])
            grad.sub_(c[1])
        lower = phi  # φ^(k−1)
        for k in range(2, len(c)):
            if c[k]:
                site.addcmul_(lower, phi, value=-c[k])
                grad.add_(lower, alpha=-k * c[k])
            if k + 1 < len(c):
                lower = lower * phi
        return _site_sum(site) - c[0] * phi.shape[-1] * phi.shape[-2], grad

    def on_site(self, phi: torch.Tensor) -> torch.Tensor:
        """V(φ) elementwise (Horner)."""
        out = torch.zeros_like(phi)
        for c in self.coefficients[::-1]:
            out = out * phi + float(c)
        return out

    # ------------------------------------------------------------------- conventions

    def to_hopping(self) -> tuple[float, float]:
        """(κ, λ_h) of the hopping parameterisation, for the default quartic potential."""
        self._require_quartic()
        d, beta, lam = DIMENSION, self.beta, self.lam
        b = d * beta - 2 * lam
        s = 1 / b if lam == 0 else (-b + math.sqrt(b * b + 8 * lam)) / (4 * lam)
        return beta * s / 2, lam * s * s

    @classmethod
    def from_hopping(cls, kappa: float, lam_h: float) -> Phi4:
        """The rgfield couplings (β, λ) of hopping couplings (κ, λ_h)."""
        denominator = 2 * DIMENSION * kappa - 1 + 2 * lam_h
        if not (kappa > 0 and lam_h > 0 and denominator > 0):
            raise ValueError(
                "hopping couplings need kappa > 0, lam_h > 0 and 4 kappa - 1 + 2 lam_h > 0;"
                f" got kappa={kappa!r}, lam_h={lam_h!r}"
            )
        s = 2 * lam_h / denominator
        return cls(beta=2 * kappa / s, lam=lam_h / s**2)

    def _require_quartic(self) -> None:
        if self.potential is not None:
            raise ValueError("the hopping map is defined for the default λ(φ² − 1)² potential")


def fit_couplings(phi, grad) -> dict[str, float]:
    """Project an energy gradient onto the φ⁴ family, by least squares over sites and fields.

    Finds (β, c₂, c₄) minimising Σ ‖g − β ∇A − c₂ ∇Σφ² − c₄ ∇Σφ⁴‖², with
    A = ½ Σ_⟨xy⟩ (φ_x − φ_y)², so that ∇A = 4φ − Σ_nn φ, ∇Σφ² = 2φ and ∇Σφ⁴ = 4φ³. The energy
    E = (β/2) Σ (φ_x − φ_y)² + λ Σ (φ² − 1)² has β, c₂ = −2λ, c₄ = λ; the Gaussian free field
    has c₂ = m²/2, c₄ = 0. Used to read the couplings off a learned energy (docs/rg.md,
    energy recovery): gradients are free of the unknown additive constant.

    Parameters
    ----------
    phi : array_like (B, L, L)
        Fields at which the gradient is known (typically samples of the model).
    grad : array_like (B, L, L)
        ∇E at those fields.

    Returns
    -------
    dict with ``beta``, ``c2``, ``c4`` and ``explained``: the fraction 1 − ‖residual‖² / ‖g‖²
    of the gradient the φ⁴ family accounts for.
    """
    phi, grad = _lattice(phi).double(), _lattice(grad).double()
    if phi.shape != grad.shape:
        raise ValueError(
            f"grad must have the shape of phi {tuple(phi.shape)}; got {tuple(grad.shape)}"
        )
    neighbours = sum(torch.roll(phi, s, d) for d in (-1, -2) for s in (1, -1))
    basis = torch.stack([2 * DIMENSION * phi - neighbours, 2 * phi, 4 * phi**3], -1)
    basis, target = basis.reshape(-1, 3), grad.reshape(-1)
    coef = torch.linalg.lstsq(basis, target.unsqueeze(-1)).solution.squeeze(-1)
    residual = (target - basis @ coef).square().sum() / target.square().sum()
    beta, c2, c4 = coef.tolist()
    return {"beta": beta, "c2": c2, "c4": c4, "explained": float(1 - residual)}


def _site_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ over the last two dimensions as a matrix–vector product: torch's parallel sum of a
    (8, 64, 64) batch took about 8 ms on a busy 2-core machine, this about 20 µs."""
    return x.flatten(-2) @ x.new_ones(x.shape[-2] * x.shape[-1])


def _lattice(phi) -> torch.Tensor:
    phi = as_tensor(phi)
    if phi.dim() < 2 or phi.shape[-1] != phi.shape[-2] or phi.shape[-1] < 3:
        raise ValueError(f"phi must have shape (..., L, L) with L >= 3; got {tuple(phi.shape)}")
    return phi


# --------------------------------------------------------------------------------------------
# Random numbers inside numba kernels: one SplitMix64 state per chain (Steele, Lea & Flood,
# OOPSLA 2014), so results do not depend on how chains are scheduled on threads.
# --------------------------------------------------------------------------------------------


def new_rng_states(chains: int, seed: int | None) -> np.ndarray:
    """Independent SplitMix64 states (uint64) for ``chains`` chains, derived from ``seed``."""
    return np.random.SeedSequence(seed).generate_state(chains, dtype=np.uint64)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment γ


@numba.njit(cache=True, inline="always")
def _mix(z):  # pragma: no cover - compiled
    """SplitMix64's output function: the n-th draw of a stream started at s is mix(s + n γ)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _unit(z):  # pragma: no cover - compiled
    """A uniform double in [0, 1) from the top 53 bits of a uint64."""
    return np.float64(np.int64(z >> np.uint64(11))) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, inline="always")
def _uniform(state):  # pragma: no cover - compiled
    """(u, next state): a uniform double in [0, 1) and the advanced SplitMix64 state.

    A pure function, so kernels keep each chain's state in a register."""
    state = state + _GOLDEN
    return _unit(_mix(state)), state


@numba.njit(cache=True)
def _potential(coeffs, v):  # pragma: no cover - compiled
    out = 0.0
    for k in range(coeffs.shape[0] - 1, -1, -1):
        out = out * v + coeffs[k]
    return out


def _check_chains(phi, states) -> None:
    """The numba kernels do no bounds checks: validate their arrays here."""
    if not (
        isinstance(phi, np.ndarray)
        and phi.dtype == np.float64
        and phi.ndim == 3
        and phi.shape[1] == phi.shape[2] >= 3
        and phi.flags.c_contiguous
        and phi.flags.writeable
    ):
        raise ValueError(
            "phi must be a writeable C-contiguous float64 array (chains, L, L), L >= 3"
        )
    if not (
        isinstance(states, np.ndarray)
        and states.dtype == np.uint64
        and states.shape == phi.shape[:1]
    ):
        raise ValueError(
            f"states must be a uint64 array of shape ({phi.shape[0]},) (new_rng_states)"
        )


# --------------------------------------------------------------------------------------------
# Metropolis (sites visited in checkerboard order: one colour, then the other)
# --------------------------------------------------------------------------------------------


@numba.njit(fastmath=True, cache=True)
def _metropolis_colour(a, b, colour, beta, coeffs, step, counter, scratch):  # pragma: no cover
    """Update every site of one colour; returns (accepted, advanced counter).

    ``a`` (L, L/2) holds the sites of this colour and ``b`` those of the other, packed along
    rows (see :func:`_metropolis`): site (i, jj) of ``a`` has the vertical neighbours
    b[i ± 1, jj] and the horizontal ones b[i, jj + p − 1], b[i, jj + p], p = (i + colour) mod 2.
    The sites of a row are independent given ``b``, so each stage below is a plain loop over
    them that the compiler vectorises; site jj takes draws 2jj + 1 (proposal) and 2jj + 2
    (acceptance) of the row's SplitMix64 stream, which is why no state is carried across sites.
    """
    size, half = a.shape
    row, new, delta, v_new, v_old = scratch
    accepted = 0
    for i in range(size):
        p = (i + colour) % 2
        up, down = (i - 1) % size, (i + 1) % size
        row[0], row[half + 1] = b[i, half - 1], b[i, 0]  # periodic padding
        row[1 : half + 1] = b[i]
        for jj in range(half):
            old = a[i, jj]
            nn = b[up, jj] + b[down, jj] + row[jj + p] + row[jj + p + 1]
            x = old + step * (2.0 * _unit(_mix(counter + np.uint64(2 * jj + 1) * _GOLDEN)) - 1.0)
            new[jj] = x
            # ΔE = β (φ' − φ)(2 (φ' + φ) − Σ_nn φ) + V(φ') − V(φ)
            delta[jj] = beta * (x - old) * (2.0 * (x + old) - nn)
            v_new[jj] = v_old[jj] = coeffs[-1]
        for k in range(coeffs.shape[0] - 2, -1, -1):  # Horner, site loop innermost
            ck = coeffs[k]
            for jj in range(half):
                v_new[jj] = v_new[jj] * new[jj] + ck
                v_old[jj] = v_old[jj] * a[i, jj] + ck
        for jj in range(half):
            d = max(delta[jj] + v_new[jj] - v_old[jj], 0.0)
            accept = _unit(_mix(counter + np.uint64(2 * jj + 2) * _GOLDEN)) < math.exp(-d)
            a[i, jj] = new[jj] if accept else a[i, jj]
            accepted += accept
        counter += np.uint64(2 * half) * _GOLDEN
    return accepted, counter


@numba.njit(parallel=True, fastmath=True, cache=True)
def _metropolis(phi, out, beta, coeffs, step, sweeps, states, accepted):  # pragma: no cover
    """Checkerboard sweeps of each chain of ``phi``, written to ``out`` (may be ``phi``), and the
    fraction of proposals each chain accepted, written to ``accepted``; on a packed copy:
    packed[c, i, jj] = φ[i, 2jj + p], p = (i + c) mod 2, so the sites of one colour are
    contiguous along rows."""
    chains, size, _ = phi.shape
    half = size // 2
    for ch in numba.prange(chains):
        packed = np.empty((2, size, half))
        for c in range(2):
            for i in range(size):  # element loops: a strided slice per row costs more
                p = (i + c) % 2
                for jj in range(half):
                    packed[c, i, jj] = phi[ch, i, 2 * jj + p]
        scratch = (
            np.empty(half + 2),
            np.empty(half),
            np.empty(half),
            np.empty(half),
            np.empty(half),
        )
        counter, count = states[ch], 0
        for _ in range(sweeps):
            for c in range(2):
                n, counter = _metropolis_colour(
                    packed[c], packed[1 - c], c, beta, coeffs, step[ch], counter, scratch
                )
                count += n
        for c in range(2):
            for i in range(size):
                p = (i + c) % 2
                for jj in range(half):
                    out[ch, i, 2 * jj + p] = packed[c, i, jj]
        states[ch] = counter
        accepted[ch] = count / (sweeps * size * size)


def metropolis_sweeps(
    model: Phi4,
    phi: np.ndarray,
    sweeps: int,
    step: np.ndarray,
    states: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Run ``sweeps`` checkerboard Metropolis sweeps on each chain, in place or into ``out``.

    Each site proposes φ' = φ + δ_c u, u uniform in [−1, 1), accepted with probability
    min(1, exp(−ΔE)); δ_c is chain c's step. A sweep updates all sites of one checkerboard
    colour, then all of the other: with nearest-neighbour couplings the sites of one colour are
    independent given the other, so each half-sweep is exact and vectorises (L must be even).

    Parameters
    ----------
    phi : float64 array (chains, L, L), L even, updated in place unless ``out`` is given.
    step : float64 array (chains,)
    states : uint64 array (chains,) of :func:`new_rng_states`, advanced in place.
    out : float64 array like ``phi``, optional
        Where the swept fields go (``phi`` is then left as it is): no copy of the chains
        for a caller that keeps the old ones.

    Returns
    -------
    Acceptance rate of each chain over these sweeps.
    """
    _check_chains(phi if out is None else out, states)
    if out is not None and not (
        isinstance(phi, np.ndarray) and phi.dtype == np.float64 and phi.shape == out.shape
    ):
        raise ValueError(
            f"phi and out must be float64 arrays of one shape; got {np.shape(phi)}, {out.shape}"
        )
    if not (
        isinstance(step, np.ndarray) and step.dtype == np.float64 and step.shape == phi.shape[:1]
    ):
        raise ValueError(f"step must be a float64 array of shape ({phi.shape[0]},)")
    if not is_integer(sweeps) or sweeps < 1:
        raise ValueError(f"sweeps must be a positive integer; got {sweeps!r}")
    if phi.shape[-1] % 2:
        raise ValueError(
            f"phi must have an even size L for the checkerboard; got L = {phi.shape[-1]}"
        )
    return _sweeps_unchecked(model, phi, phi if out is None else out, sweeps, step, states)


def _sweeps_unchecked(model, phi, out, sweeps, step, states) -> np.ndarray:
    """:func:`metropolis_sweeps` without its checks, for the kernels below, which check their
    state's arrays once per call (the checks are a few per cent of a 32² sweep)."""
    accepted = np.empty(phi.shape[0])
    _metropolis(phi, out, model.beta, model.coefficients, step, sweeps, states, accepted)
    return accepted


# --------------------------------------------------------------------------------------------
# Wolff cluster updates of the embedded Ising spins (Brower & Tamayo, PRL 62, 1087 (1989))
# --------------------------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True)
def _wolff(phi, beta, clusters, states, flipped):  # pragma: no cover
    chains, size, _ = phi.shape
    sites = size * size
    for c in numba.prange(chains):
        stack = np.empty(sites, dtype=np.int64)
        members = np.empty(sites, dtype=np.int64)
        in_cluster = np.zeros(sites, dtype=np.bool_)
        state = states[c]
        total = 0
        for _ in range(clusters):
            u, state = _uniform(state)
            seed = min(int(u * sites), sites - 1)
            in_cluster[seed] = True
            stack[0] = seed
            top = 1
            size_now = 0
            while top > 0:
                top -= 1
                site = stack[top]
                i, j = site // size, site % size
                value = phi[c, i, j]
                members[size_now] = site
                size_now += 1
                for k in range(4):
                    if k == 0:
                        ni, nj = (i + 1) % size, j
                    elif k == 1:
                        ni, nj = (i - 1) % size, j
                    elif k == 2:
                        ni, nj = i, (j + 1) % size
                    else:
                        ni, nj = i, (j - 1) % size
                    other = ni * size + nj
                    product = value * phi[c, ni, nj]
                    # bond active with p = 1 − exp(−2β φ_x φ_y) between same-sign neighbours
                    if not in_cluster[other] and product > 0.0:
                        u, state = _uniform(state)
                        if u < 1.0 - math.exp(-2.0 * beta * product):
                            in_cluster[other] = True
                            stack[top] = other
                            top += 1
                phi[c, i, j] = -value  # flipped once visited; its bonds were tested above
            for m in range(size_now):  # unmark this cluster for the next one
                in_cluster[members[m]] = False
            total += size_now
        states[c] = state
        flipped[c] = total


def wolff_updates(
    model: Phi4, phi: np.ndarray, states: np.ndarray, clusters: int = 1
) -> np.ndarray:
    """Grow and flip ``clusters`` Wolff clusters of sign(φ) on each chain, in place.

    The Ising embedding s_x = sign φ_x at fixed |φ_x| has couplings J_xy = β|φ_x φ_y|; a cluster
    grows from a random site over same-sign neighbours with bond probability
    p = 1 − exp(−2β φ_x φ_y) and all its φ change sign. Exact for an even potential V. The number
    of clusters is fixed in advance: stopping once enough sites have flipped would make it
    depend on the state and bias the stationary distribution.

    Returns
    -------
    Number of sites flipped on each chain.
    """
    if not model.is_even:
        raise ValueError("the Wolff update needs an even potential V(φ) = V(−φ)")
    _check_chains(phi, states)
    if not is_integer(clusters) or clusters < 1:
        raise ValueError(f"clusters must be a positive integer; got {clusters!r}")
    flipped = np.zeros(phi.shape[0], dtype=np.int64)
    _wolff(phi, model.beta, int(clusters), states, flipped)
    return flipped


@numba.njit(parallel=True, fastmath=True, cache=True)
def _magnetisation_and_energy(phi, beta, coeffs, out):  # pragma: no cover - compiled
    """out[0, c] = M = Σ_x φ_x / L², out[1, c] = E / L² of chain c (one pass over the lattice);
    the numba twin of ``Phi4.energy`` for the chains that live in numpy."""
    chains, size, _ = phi.shape
    for c in numba.prange(chains):
        m = e = 0.0
        for i in range(size):
            down = i + 1 if i + 1 < size else 0
            for j in range(size):
                x = phi[c, i, j]
                right = phi[c, i, j + 1 if j + 1 < size else 0]
                e += 0.5 * beta * ((x - right) ** 2 + (x - phi[c, down, j]) ** 2)
                e += _potential(coeffs, x)
                m += x
        out[0, c], out[1, c] = m / size**2, e / size**2


# --------------------------------------------------------------------------------------------
# The numba updates as kernels of the sampler contract (rgfield.mcmc, docs/architecture.md)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LatticeState:
    """Chains of the numba kernels :class:`Metropolis` and :class:`Wolff`.

    These kernels work on numpy arrays; the state reads like a :class:`rgfield.mcmc.State`
    (``position`` and ``logdensity`` as torch tensors, made when first read; ``grad`` and
    ``density`` are None: these kernels use no gradient) and also carries each chain's
    random-number state.

    Attributes
    ----------
    fields : np.ndarray (chains, L, L)
        float64, C-contiguous; never modified in place (a step writes a new array).
    model : Phi4
    rng : np.ndarray (chains,) uint64, or None
        SplitMix64 states (see :func:`new_rng_states`), carried from step to step, so that a
        chain's random numbers do not depend on how chains are scheduled on threads. None
        after ``init``: the first step draws them from its generator.
    """

    fields: np.ndarray
    model: Phi4
    rng: np.ndarray | None = None
    grad: ClassVar[None] = None
    density: ClassVar[None] = None

    @cached_property
    def position(self) -> torch.Tensor:
        """``fields`` as a torch tensor (a view, not a copy)."""
        return torch.from_numpy(self.fields)

    @cached_property
    def logdensity(self) -> torch.Tensor:
        """log p = −E(φ) of every chain, shape (chains,) (a pass over the lattice, made when
        first read: the kernels never need it)."""
        out = np.empty((2, self.fields.shape[0]))
        _magnetisation_and_energy(self.fields, self.model.beta, self.model.coefficients, out)
        return torch.from_numpy(-out[1] * self.fields[0].size)


@dataclass(frozen=True, eq=False)
class _Sweeping(ABC):
    """What the kernels :class:`Metropolis` and :class:`Wolff` share: the model, the step size δ
    of their Metropolis sweeps, tuned towards acceptance 0.5, and steps that write new arrays
    (the old state stays as it is). Both are :class:`~rgfield.mcmc.MultiStep` kernels; their
    Info holds numpy arrays."""

    model: Phi4
    step_size: StepSize
    target_acceptance: ClassVar[float] = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.model, Phi4):
            raise ValueError(f"model must be a Phi4; got {type(self.model).__name__}")
        check_step_size(self.step_size)

    def init(self, position) -> LatticeState:
        """Chains at ``position`` (chains, L, L), L even ≥ 4, as float64 on the CPU (the steps
        never write into it)."""
        position = as_tensor(position).to("cpu", torch.float64).contiguous()
        size = position.shape[-1]
        if position.dim() != 3 or position.shape[-2] != size or size < 4 or size % 2:
            raise ValueError(
                "position: expected shape (chains, L, L) with L even >= 4 (checkerboard);"
                f" got {tuple(position.shape)}"
            )
        return LatticeState(position.numpy(), self.model)

    def step(self, state: LatticeState, generator: torch.Generator) -> tuple[LatticeState, Info]:
        """One step of every chain (on copies: ``state`` is left as it is)."""
        return self.multistep(state, generator, 1)

    def multistep(
        self, state: LatticeState, generator: torch.Generator, steps: int
    ) -> tuple[LatticeState, Info]:
        """``steps`` steps in one call: the same chains as ``steps`` calls of :meth:`step`
        (each chain's random numbers are counter-based); ``Info`` holds the mean over them."""
        rng = self._rng(state, generator)
        _check_chains(state.fields, rng)  # the compiled loops do no bounds checks
        fields = np.empty_like(state.fields)
        info = self._update(state.fields, fields, rng, steps)
        return LatticeState(fields, self.model, rng), info

    @staticmethod
    def _rng(state: LatticeState, generator: torch.Generator) -> np.ndarray:
        """A copy of the chains' random states; those of fresh chains drawn from ``generator``."""
        if state.rng is not None:
            return state.rng.copy()
        draws = torch.randint(
            -(2**63),
            2**63 - 1,
            state.fields.shape[:1],
            generator=generator,
            device=generator.device,
        )
        return draws.cpu().numpy().view(np.uint64)

    @abstractmethod
    def _update(self, start: np.ndarray, fields: np.ndarray, rng: np.ndarray, steps: int) -> Info:
        """``steps`` steps of the chains from ``start``, written into ``fields``."""

    def _sweep(
        self, start: np.ndarray, fields: np.ndarray, rng: np.ndarray, sweeps: int
    ) -> np.ndarray:
        """``sweeps`` sweeps of the chains from ``start`` (``fields`` itself for in place),
        written into ``fields``; the fraction of proposals accepted."""
        step = np.asarray(self.step_size, dtype=np.float64)
        if step.ndim == 0:
            step = np.full(fields.shape[0], step)
        elif step.shape != fields.shape[:1]:
            raise ValueError(
                f"step_size: expected a number or one per chain, shape ({fields.shape[0]},);"
                f" got shape {step.shape}"
            )
        return _sweeps_unchecked(self.model, start, fields, sweeps, step, rng)


@dataclass(frozen=True, eq=False)
class Metropolis(_Sweeping):
    """Checkerboard Metropolis sweeps of φ⁴ chains: one step is one sweep of every chain.

    Site by site φ' = φ + δ u, u uniform in [−1, 1), accepted with probability
    min(1, exp(−ΔE)) (Metropolis et al., J. Chem. Phys. 21, 1087 (1953)); see
    :func:`metropolis_sweeps` for the order and the parallelism (numba, over chains, on the
    CPU). ``Info.accepted`` is the fraction of a chain's site proposals accepted, which is also
    its ``acceptance_rate`` (an unbiased estimate of the mean min(1, α), which the compiled
    sweep does not return). :func:`~rgfield.mcmc.adapt_step_size` tunes δ towards acceptance
    0.5, chain by chain when δ has one entry per chain. ``multistep`` makes many sweeps in one
    call of the compiled loop, without a parallel region per sweep.

    Parameters
    ----------
    model : Phi4
    step_size : float or array_like (chains,)
        δ, for every chain or one per chain.
    """

    def _update(self, start: np.ndarray, fields: np.ndarray, rng: np.ndarray, steps: int) -> Info:
        accepted = self._sweep(start, fields, rng, steps)
        return Info(accepted, accepted, np.zeros(fields.shape[0], dtype=bool))


@dataclass(frozen=True)
class WolffInfo(Info):
    """:class:`~rgfield.mcmc.Info` of a :class:`Wolff` step, with the sites its clusters flipped
    on each chain (``flipped``, shape (chains,); the mean per step over several steps)."""

    flipped: np.ndarray


@dataclass(frozen=True, eq=False)
class Wolff(_Sweeping):
    """A Metropolis sweep (as in :class:`Metropolis`), then ``clusters`` Wolff cluster flips of
    every chain.

    The clusters (see :func:`wolff_updates`; exact for an even potential) flip the sign of
    whole domains, which local updates do only by crossing the double-well barrier; the sweep
    changes |φ|, which the clusters never do, so together they are ergodic. In the warm-up
    (:func:`~rgfield.mcmc.adapt_step_size`) the sweep's δ is tuned towards acceptance 0.5 and
    the number of clusters by :meth:`tune`, so that a step flips about L² sites; both are
    frozen afterwards, since a number of clusters that depended on the chains' state would bias
    the stationary distribution.

    Parameters
    ----------
    model : Phi4
        With an even potential V(φ) = V(−φ).
    step_size : float or array_like (chains,)
    clusters : int
    cluster_size : float
        The warm-up's running estimate of the mean cluster size (0: none yet).
    """

    clusters: int = 1
    cluster_size: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model.is_even:
            raise ValueError("model: the Wolff update needs an even potential V(φ) = V(−φ)")
        if not (is_integer(self.clusters) and self.clusters >= 1):
            raise ValueError(f"clusters must be a positive integer; got {self.clusters!r}")

    def _update(
        self, start: np.ndarray, fields: np.ndarray, rng: np.ndarray, steps: int
    ) -> WolffInfo:
        accepted = np.zeros(fields.shape[0])
        flipped = np.zeros(fields.shape[0])
        for _ in range(steps):
            accepted += self._sweep(start, fields, rng, 1)
            flipped += wolff_updates(self.model, fields, rng, self.clusters)
            start = fields
        accepted /= steps
        return WolffInfo(accepted, accepted, np.zeros(fields.shape[0], bool), flipped / steps)

    def tune(self, state: LatticeState, info: WolffInfo) -> Wolff:
        """Warm-up of the cluster count: the mean cluster size s_t = ⟨flipped⟩ / clusters of the
        last step enters a running mean s̄ ← s̄ + (s_t − s̄) / 10 (about the last 10 steps:
        near β_c one step's s_t, over a few dozen heavy-tailed clusters, is too noisy, and
        the first steps from white noise are not yet typical), and clusters ← round(L² / s̄),
        within 1 … L²."""
        sites = state.fields[0].size
        size = max(1.0, float(info.flipped.mean()) / self.clusters)
        mean = (
            size if self.cluster_size == 0 else self.cluster_size + (size - self.cluster_size) / 10
        )
        clusters = max(1, min(sites, round(sites / mean)))
        return replace(self, clusters=clusters, cluster_size=mean)


# --------------------------------------------------------------------------------------------
# Chains and the simulation driver
# --------------------------------------------------------------------------------------------

_KERNELS: dict[str, Callable[[Phi4, int], Kernel]] = {
    "wolff": lambda model, chains: Wolff(model, np.ones(chains)),
    "metropolis": lambda model, chains: Metropolis(model, np.ones(chains)),
    "hmc": lambda model, chains: HMC(model.logdensity_and_grad, step_size=0.1, n_leapfrog=10),
}
"""The kernel of each sampler, with its step sizes before the warm-up, for ``chains`` chains."""

SAMPLERS = tuple(_KERNELS)


class _Chains:
    """A batch of chains of one kernel; ``advance`` runs steps, ``adapt`` is the warm-up.

    One step is: a Metropolis sweep with one step size per chain (metropolis); a Metropolis
    sweep and a fixed number of Wolff clusters, set in the warm-up to flip about L² sites on
    average (wolff); one HMC trajectory (hmc). Fields start as white noise; picklable, so a long
    run can be checkpointed.
    """

    def __init__(self, model: Phi4, sampler: str, size: int, chains: int, seed, device) -> None:
        rng = np.random.default_rng(seed)
        phi = rng.standard_normal((chains, size, size))
        self.sampler = sampler
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(int(rng.integers(2**63)))
        self.kernel = _KERNELS[sampler](model, chains)
        self.state = self.kernel.init(torch.as_tensor(phi, device=self.device))
        self.steps_run = 0
        self.seconds = 0.0  # wall time spent in advance() and adapt()
        self.accepted = 0.0  # Σ over steps of the chains' mean accepted fraction
        self.accepted_steps = 0

    @property
    def chains(self) -> int:
        return self.state.position.shape[0]

    def advance(self, steps: int) -> None:
        if steps <= 0:
            return
        start = time.perf_counter()
        self.state, info = advance(self.kernel, self.state, self.generator, steps)
        self.seconds += time.perf_counter() - start
        accepted = as_numpy(info.accepted)
        self._count(steps * accepted.sum() / accepted.size, steps)  # mean() has a Python layer

    def adapt(self, steps: int) -> None:
        """Tune the kernel over ``steps`` steps (:func:`rgfield.mcmc.adapt_step_size`: its step
        sizes towards its target acceptance, 0.5 for Metropolis sweeps and 0.8 for HMC, and
        the Wolff cluster count), then freeze it."""
        start = time.perf_counter()
        self.kernel, self.state, acceptance = adapt_step_size(
            self.kernel, self.state, self.generator, steps
        )
        self.seconds += time.perf_counter() - start
        self._count(acceptance.sum(), steps)

    def _count(self, accepted: float, steps: int) -> None:
        """Book ``steps`` steps whose mean accepted fractions sum to ``accepted``."""
        self.steps_run += steps
        self.accepted += accepted
        self.accepted_steps += steps

    def record(
        self, series: np.ndarray, start: int, stop: int, on_step: StepCallback | None = None
    ) -> None:
        """Advance one step at a time, storing ``observables()`` in rows start … stop − 1;
        ``on_step()`` after each step."""
        for i in range(start, stop):
            self.advance(1)
            series[i] = self.observables()
            if on_step is not None:
                on_step()

    def __getstate__(self) -> dict:
        """Picklable state (a long run can be checkpointed): the torch generator as its state."""
        return self.__dict__ | {"generator": self.generator.get_state()}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.generator = torch.Generator(self.device)
        self.generator.set_state(state["generator"])

    def mean_acceptance(self) -> float:
        """Mean accepted fraction since the last ``reset_acceptance``."""
        return float(self.accepted / max(self.accepted_steps, 1))

    def reset_acceptance(self) -> None:
        self.accepted = 0.0
        self.accepted_steps = 0

    def kernel_attrs(self) -> dict:
        """The kernel's tuned parameters, named ``<sampler>_<parameter>`` (for the attrs)."""
        values = {f.name: getattr(self.kernel, f.name) for f in dataclasses.fields(self.kernel)}
        return {
            f"{self.sampler}_{name}": value
            for name, value in values.items()
            if isinstance(value, int | float | np.ndarray)
        }

    @property
    def fields(self) -> np.ndarray:
        """Current configurations (chains, L, L) as float64 numpy."""
        return self.state.position.double().cpu().numpy()

    def observables(self) -> np.ndarray:
        """(M, |M|, E/V) of every chain now, shape (3, chains); E = −log p of the state."""
        fields = self.fields  # numpy's mean: no thread pool to wake between numba sweeps
        m = fields.mean((-1, -2))
        energy = -as_numpy(self.state.logdensity) / fields[0].size
        return np.stack([m, np.abs(m), energy])


@dataclass(frozen=True)
class Phi4Config:
    """How :func:`simulate` draws φ⁴ configurations: the energy, the lattice and the chains.

    Parameters
    ----------
    model : Phi4
        The energy E(φ).
    size : int
        Lattice size L (≥ 4; even for the Metropolis and Wolff samplers).
    sampler : {"wolff", "metropolis", "hmc"}
        See :class:`_Chains` for what one step is.
    chains : int, optional
        Independent chains run as a batch (default: 4 × numba threads, at most ``samples``).
    thermalization, spacing : int, optional
        Steps before the first saved sample (at least the burn-in it includes) and between saved
        samples; measured when omitted.
    min_pilot_steps : int
        Length of the pilot's first stage. The pilot can only see modes slower than its own
        length by chance (a chain must tunnel once), so near a critical point a short first
        stage may stop on a low τ_int; set this to ≳ 50 × the slowest τ_int expected. With
        ``min_pilot_steps = max_pilot_steps`` the pilot has a fixed length.
    max_pilot_steps : int
        Bound on the pilot run; if it ends before spanning 50 τ_int a warning says so, the
        attrs record ``pilot_converged = 0`` and the τ_int found are lower estimates.
    """

    model: Phi4
    size: int
    sampler: str = "wolff"
    chains: int | None = None
    thermalization: int | None = None
    spacing: int | None = None
    min_pilot_steps: int = 500
    max_pilot_steps: int = 2**20

    def __post_init__(self) -> None:
        if not isinstance(self.model, Phi4):
            raise ValueError(f"model must be a Phi4; got {type(self.model).__name__}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}; got {self.sampler!r}")
        if not is_integer(self.size) or self.size < 4:
            raise ValueError(f"size must be an integer >= 4; got {self.size!r}")
        if self.sampler != "hmc" and self.size % 2:
            raise ValueError(
                f"size must be even for the checkerboard sweeps of {self.sampler!r};"
                f" got {self.size}"
            )
        if self.sampler == "wolff" and not self.model.is_even:
            raise ValueError("sampler='wolff' needs an even potential V(φ) = V(−φ)")
        if self.chains is not None and not (is_integer(self.chains) and self.chains >= 1):
            raise ValueError(f"chains must be a positive integer; got {self.chains!r}")
        steps = self.thermalization
        if steps is not None and (not is_integer(steps) or steps < 0):
            raise ValueError(f"thermalization must be a non-negative integer; got {steps!r}")
        if self.spacing is not None and (not is_integer(self.spacing) or self.spacing < 1):
            raise ValueError(f"spacing must be a positive integer; got {self.spacing!r}")
        cap = self.max_pilot_steps
        if not is_integer(cap) or cap < 4:
            raise ValueError(f"max_pilot_steps must be an integer >= 4; got {cap!r}")
        if not is_integer(self.min_pilot_steps) or not 4 <= self.min_pilot_steps <= cap:
            raise ValueError(
                "min_pilot_steps must be an integer in 4..max_pilot_steps;"
                f" got {self.min_pilot_steps!r}"
            )


def simulate(
    config: Phi4Config,
    samples: int,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
):
    """Draw decorrelated φ⁴ configurations with one of rgfield's MCMC samplers.

    A burn-in of up to 200 steps tunes the samplers (then frozen). A pilot run then records M,
    |M| and E/V at every step and grows until it spans at least 50 τ_int of each (Madras–Sokal
    windowing, each chain's series taken about its own mean, chains pooled). Unless given,
    thermalisation is burn-in + pilot and the spacing between saved configurations is
    ⌈2 τ_int⌉ steps of the slowest of the three, so saved samples are effectively independent —
    except for the sign of M in the ordered phase: tunnelling between the two ordered states
    is invisible about each chain's mean and can be far slower for the local samplers (Wolff
    flips it freely). ``tau_int_m_saved`` reports what remains; since V is even, flipping
    samples' signs at random is exact when it matters.

    Parameters
    ----------
    config : Phi4Config
        The energy, the lattice size, the sampler and its chains.
    samples : int
        Number of configurations to return, drawn evenly from the chains.
    seed : int, optional
        Default: a fresh random seed; the seed used is recorded in attrs, so any run can be
        repeated exactly.
    device : str
        torch device of the HMC chains (the numba samplers run on CPU).
    progress : bool
        Show progress bars of the pilot and of the sampling.

    Returns
    -------
    xarray.Dataset
        ``phi`` (sample, y, x) float32 with a ``chain`` coordinate (samples are chain-major),
        attrs with the parameters, the pilot's τ_int (in steps) of M, |M| and E, the steps of
        thermalisation actually run, the spacing, the mean acceptance while sampling, the wall
        time of one step of all chains (``seconds_per_step``), and τ_int of M and |M| over the
        saved samples (≈ 0.5 when they are independent).
    """
    from rgfield.io import to_dataset

    if not isinstance(config, Phi4Config):
        raise ValueError(f"config must be a Phi4Config; got {type(config).__name__}")
    if not is_integer(samples) or samples < 1:
        raise ValueError(f"samples must be a positive integer; got {samples!r}")
    model, size, sampler = config.model, int(config.size), config.sampler
    thermalization, spacing = config.thermalization, config.spacing
    chains = min(samples, 4 * numba.get_num_threads()) if config.chains is None else config.chains
    if chains > samples:
        raise ValueError(f"chains must be at most samples = {samples}; got {chains}")
    device = resolve_device(device)
    seed = fresh_seed() if seed is None else int(seed)

    state = _Chains(model, sampler, int(size), int(chains), seed, device)
    state.adapt(_BURN_IN if thermalization is None else min(_BURN_IN, thermalization))
    attrs: dict = {}
    if spacing is None or thermalization is None:
        start, cap = config.min_pilot_steps, config.max_pilot_steps
        with _progress.progress(
            "pilot (measuring tau_int)", min(start, cap), enabled=progress
        ) as on_step:
            tau, pilot = _pilot(state, integrated_autocorrelation_time, start, cap, on_step)
        attrs.update(
            tau_int_m=tau[0],
            tau_int_abs_m=tau[1],
            tau_int_energy=tau[2],
            pilot_steps=pilot,
            pilot_converged=int(pilot >= 50 * max(tau)),
            seconds_per_step=state.seconds / state.steps_run,
        )
        spacing = max(1, math.ceil(2 * max(tau))) if spacing is None else spacing
    if thermalization is not None:
        state.advance(thermalization - state.steps_run)
    thermalized = state.steps_run

    per_chain = -(-samples // chains)
    saved = np.empty((per_chain, chains, size, size), dtype=np.float32)
    state.reset_acceptance()
    with _progress.progress(f"phi4 {sampler} L={size}", per_chain, enabled=progress) as on_step:
        for i in range(per_chain):
            state.advance(spacing)
            saved[i] = state.fields
            on_step()
    fields = saved.transpose(1, 0, 2, 3).reshape(-1, size, size)[:samples]
    chain_of = np.repeat(np.arange(chains), per_chain)[:samples]
    m = saved.astype(np.float64).mean((2, 3)).T  # (chains, per chain)
    attrs.update(
        generator="rgfield.fields.phi4.simulate",
        beta=model.beta,
        lam=model.lam if model.potential is None else np.nan,
        potential=model.coefficients,
        size=size,
        sampler=sampler,
        seed=seed,
        chains=chains,
        min_pilot_steps=config.min_pilot_steps,
        max_pilot_steps=config.max_pilot_steps,
        thermalization=thermalized,
        spacing=spacing,
        acceptance=state.mean_acceptance(),
        tau_int_m_saved=_saved_tau(integrated_autocorrelation_time, m),
        tau_int_abs_m_saved=_saved_tau(integrated_autocorrelation_time, np.abs(m)),
    )
    attrs.update(state.kernel_attrs())
    ds = to_dataset(fields, "phi", attrs)
    return ds.assign_coords(chain=("sample", chain_of))


_BURN_IN = 200


def _saved_tau(tau_of, series: np.ndarray) -> float:
    """τ_int over the saved samples (NaN when too few or constant)."""
    if series.shape[1] < 4 or np.all(series.std(axis=1) == 0):
        return float("nan")
    return tau_of(series).tau


def _pilot(
    state: _Chains, tau_of, start: int, cap: int, on_step: StepCallback
) -> tuple[tuple[float, ...], int]:
    """Run until the M, |M| and E/V series span ≥ 50 τ_int; return their τ_int and the steps.

    ``on_step()`` after each step, and ``on_step(0, total)`` when the run is extended."""
    target = min(start, cap)
    # one preallocated record, grown by doubling: a small long-lived array per step would sit
    # above each step's large temporaries and fragment the heap (0.5 MB per step at L = 128)
    recorded = np.empty((target, 3, state.chains))
    steps = 0
    while True:
        state.record(recorded, steps, target, on_step)
        steps = target
        taus = tuple(tau_of(recorded[:steps, k].T).tau for k in range(3))
        if steps >= 50 * max(taus):
            return taus, steps
        if steps >= cap:
            warnings.warn(
                f"pilot stopped at {cap} steps before spanning 50 tau_int"
                f" (tau_int ≈ {max(taus):.0f}); the spacing may be too short",
                stacklevel=3,
            )
            return taus, steps
        target = min(cap, max(2 * target, math.ceil(60 * max(taus))))
        grown = np.empty((target, *recorded.shape[1:]))
        grown[:steps] = recorded[:steps]
        recorded = grown
        on_step(0, target)
