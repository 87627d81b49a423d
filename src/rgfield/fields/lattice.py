"""Compiled lattice kernels of φ⁴ chains: counter-based random numbers, checkerboard
Metropolis sweeps, Wolff cluster flips, and the kernels :class:`Metropolis` and :class:`Wolff`
that run them under the sampler contract of :mod:`rgfield.mcmc` (docs/architecture.md).

The energy they sample is :class:`rgfield.fields.phi4.Phi4`'s (docs/phi4.md); the chains live
in numpy, one numba-parallel loop over chains per call, each chain with its own SplitMix64
stream so that results do not depend on how chains are scheduled on threads.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import numba
import numpy as np
import torch

from rgfield._validate import is_integer
from rgfield.io import as_tensor
from rgfield.mcmc import Info, StepSize
from rgfield.mcmc.base import check_step_size

if TYPE_CHECKING:
    from rgfield.fields.phi4 import Phi4

__all__ = [
    "LatticeState",
    "Metropolis",
    "Wolff",
    "WolffInfo",
    "metropolis_sweeps",
    "new_rng_states",
    "wolff_updates",
]


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
        from rgfield.fields.phi4 import Phi4  # here: phi4 imports this module

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
