"""MCMC kernels in torch (batched over chains, any device) and autocorrelation analysis.

Kernels follow the BlackJAX habit: a state, a ``step`` that maps (state, key) to a new state and
per-chain diagnostics, and drivers that run many chains in one batch. Here:

* :class:`HMC` — Hamiltonian Monte Carlo with leapfrog trajectories and a Metropolis test per
  chain (Duane, Kennedy, Pendleton & Roweth, PLB 195, 216 (1987)).
* :class:`MALA` — the Metropolis-adjusted Langevin algorithm (unadjusted Langevin as an option),
  with :func:`adapt_step_size` for the warm-up.
* :class:`BlockMALA` — MALA with one Metropolis test per block of a coloured tiling, for
  energies that are sums of local densities: its step and mixing per sweep do not depend on the
  grid size.
* :func:`integrated_autocorrelation_time` — τ_int with Madras–Sokal automatic windowing, and
  :func:`effective_sample_size`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import ClassVar, Self

import numpy as np
import torch

__all__ = [
    "HMC",
    "MALA",
    "BlockMALA",
    "ChainState",
    "adapt_step_size",
    "Autocorrelation",
    "effective_sample_size",
    "integrated_autocorrelation_time",
]


@dataclass(frozen=True)
class ChainState:
    """Positions of a batch of chains with their energies U(x), gradients ∇U(x) and, for
    :class:`BlockMALA`, energy densities u (U = Σ_p u(p))."""

    position: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor
    density: torch.Tensor | None = None


def _select(accept: torch.Tensor, proposal: ChainState, current: ChainState) -> ChainState:
    """Per chain, the proposed state where ``accept`` is true and the current one elsewhere."""
    keep = accept.reshape((-1,) + (1,) * (current.position.dim() - 1))
    return ChainState(
        torch.where(keep, proposal.position, current.position),
        torch.where(accept, proposal.energy, current.energy),
        torch.where(keep, proposal.grad, current.grad),
    )


class _StepAdapting:
    """``adapt`` for kernels with a ``step_size``, towards the class's ``target_acceptance``."""

    target_acceptance: ClassVar[float]

    def adapt(
        self,
        state: ChainState,
        generator: torch.Generator,
        steps: int,
        target: float | None = None,
    ) -> tuple[Self, ChainState, np.ndarray]:
        """Tune ``step_size`` towards acceptance ``target`` (default: the kernel's
        ``target_acceptance``); see :func:`adapt_step_size`."""
        target = self.target_acceptance if target is None else target
        return adapt_step_size(self, state, generator, steps, target)


@dataclass
class HMC(_StepAdapting):
    """Hamiltonian Monte Carlo for p(x) ∝ exp(−U(x)), chains along the leading dimension.

    One step draws momenta p ~ N(0, 1), integrates Hamilton's equations for H = U(x) + |p|²/2
    with ``n_leapfrog`` leapfrog steps of size ``step_size`` and accepts the end point with
    probability min(1, exp(−ΔH)) chain by chain.

    Parameters
    ----------
    energy, grad : callables mapping positions (chains, ...) to U (chains,) and ∇U (chains, ...).
    step_size : float
    n_leapfrog : int
    """

    energy: Callable[[torch.Tensor], torch.Tensor]
    grad: Callable[[torch.Tensor], torch.Tensor]
    step_size: float
    n_leapfrog: int = 10
    target_acceptance: ClassVar[float] = 0.8

    def __post_init__(self) -> None:
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive; got {self.step_size!r}")
        if not isinstance(self.n_leapfrog, int) or self.n_leapfrog < 1:
            raise ValueError(f"n_leapfrog must be at least 1; got {self.n_leapfrog!r}")

    def init(self, position: torch.Tensor) -> ChainState:
        return ChainState(position, self.energy(position), self.grad(position))

    def step(
        self, state: ChainState, generator: torch.Generator
    ) -> tuple[ChainState, torch.Tensor]:
        """One HMC transition of every chain; returns the new state and the acceptance flags."""
        x, g = state.position, state.grad
        p = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        dims = tuple(range(1, x.dim()))
        kinetic = 0.5 * p.square().sum(dims)
        eps = self.step_size
        p = p - 0.5 * eps * g
        for i in range(self.n_leapfrog):
            x = x + eps * p
            g = self.grad(x)
            if i < self.n_leapfrog - 1:
                p = p - eps * g
        p = p - 0.5 * eps * g
        energy = self.energy(x)
        delta = energy + 0.5 * p.square().sum(dims) - state.energy - kinetic
        u = torch.rand(delta.shape, generator=generator, dtype=x.dtype, device=x.device)
        accept = (u < torch.exp(-delta)) & torch.isfinite(delta)
        return _select(accept, ChainState(x, energy, g), state), accept


@dataclass
class MALA(_StepAdapting):
    """Metropolis-adjusted Langevin algorithm for p(x) ∝ exp(−U(x)), chains along dim 0.

    Proposal x' = x − h ∇U(x) + √(2h) ξ, ξ ~ N(0, 1), accepted chain by chain with probability
    min(1, exp(−U(x') + U(x) − [‖x − x' + h∇U(x')‖² − ‖x' − x + h∇U(x)‖²] / 4h))
    (Roberts & Tweedie, Bernoulli 2, 341 (1996)). Its optimal acceptance in high dimension is
    0.574 (Roberts & Rosenthal, JRSS B 60, 255 (1998)). With ``adjusted=False`` every proposal
    is kept (the unadjusted Langevin algorithm, biased by O(h)). A proposal of infinite energy
    (outside the model's support) is always rejected.

    Parameters
    ----------
    energy_and_grad : callable mapping positions (chains, ...) to (U (chains,), ∇U (chains, ...)).
    step_size : float
        h.
    adjusted : bool
    """

    energy_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    step_size: float
    adjusted: bool = True
    target_acceptance: ClassVar[float] = 0.574

    def __post_init__(self) -> None:
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive; got {self.step_size!r}")

    def init(self, position: torch.Tensor) -> ChainState:
        return ChainState(position, *self.energy_and_grad(position))

    def step(
        self, state: ChainState, generator: torch.Generator
    ) -> tuple[ChainState, torch.Tensor]:
        """One MALA transition of every chain; returns the new state and the acceptance flags."""
        x, g, h = state.position, state.grad, self.step_size
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        proposal = x - h * g + np.sqrt(2 * h) * noise
        energy, grad = self.energy_and_grad(proposal)
        accept = torch.isfinite(energy)
        if self.adjusted:
            dims = tuple(range(1, x.dim()))
            forward = (proposal - x + h * g).square().sum(dims)
            backward = (x - proposal + h * grad).square().sum(dims)
            log_ratio = state.energy - energy + (forward - backward) / (4 * h)
            u = torch.rand(energy.shape, generator=generator, dtype=x.dtype, device=x.device)
            accept &= torch.log(u) < log_ratio
        return _select(accept, ChainState(proposal, energy, grad), state), accept


@dataclass
class BlockMALA(_StepAdapting):
    """MALA with one Metropolis test per block: Metropolis-within-Gibbs over a coloured tiling.

    For p(y) ∝ exp(−U(y)), U = Σ_p u(p) a sum of energy densities over the cells p of an n × n
    grid (the last two dimensions of a position (chains, C, n, n)). The grid is tiled by b × b
    blocks in four colours (the parities of the block row and column). A step sweeps the
    colours; for one colour every block B proposes at once

        y'_B = y_B − h ∇_B U(y) + √(2h) ξ_B,   ξ ~ N(0, 1),

    and each block is accepted on its own with probability min(1, exp(−ΔU_B − [‖y_B − y'_B +
    h ∇_B U(y')‖² − ‖√(2h) ξ_B‖²] / 4h)), ΔU_B = Σ_{p ∈ R_B} [u(y')(p) − u(y)(p)] over the
    2b × 2b cells R_B centred on B. When the density and gradient at a cell depend on y only
    within ``reach`` ≤ b/2 cells, blocks of one colour (b cells apart) do not interact: ΔU_B
    and ∇U(y') on R_B are those of moving B alone, and each block update is an exact MALA step
    for p(y_B | rest), so every sweep leaves p invariant. The blocks have a fixed size, so the
    step h for a target acceptance and the mixing per sweep do not depend on n, whereas one
    test per chain (:class:`MALA`) needs h ∝ n^(−2/3) (Roberts & Rosenthal, JRSS B 60, 255
    (1998)).

    A sweep costs four evaluations of ``density_and_grad`` (one per colour): after each colour
    the state is assembled region by region from the proposal's and the current values.

    Parameters
    ----------
    density_and_grad : callable mapping positions (chains, C, n, n) to (u (chains, n, n),
        ∇U (chains, C, n, n)).
    step_size : float
        h.
    block : int
        Block side b, even, at least twice the energy's reach; n must be a multiple of 2b.
    """

    density_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    step_size: float
    block: int
    target_acceptance: ClassVar[float] = 0.574

    def __post_init__(self) -> None:
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive; got {self.step_size!r}")
        block = self.block
        if not (isinstance(block, int | np.integer) and block >= 2 and block % 2 == 0):
            raise ValueError(f"block must be an even integer >= 2; got {self.block!r}")

    def init(self, position: torch.Tensor) -> ChainState:
        if position.dim() != 4 or any(n % (2 * self.block) for n in position.shape[-2:]):
            raise ValueError(
                f"position: expected shape (chains, C, n, n) with n a multiple of 2 × block ="
                f" {2 * self.block}; got {tuple(position.shape)}"
            )
        density, grad = self.density_and_grad(position)
        return ChainState(position, density.sum((-2, -1)), grad, density)

    def step(
        self, state: ChainState, generator: torch.Generator
    ) -> tuple[ChainState, torch.Tensor]:
        """One sweep over the four colours; returns the new state and, per chain, the fraction
        of block proposals accepted."""
        accepted = []
        for colour in ((0, 0), (0, 1), (1, 0), (1, 1)):
            state, fraction = self._colour_step(state, colour, generator)
            accepted.append(fraction)
        return state, torch.stack(accepted).mean(0)

    def _colour_step(
        self, state: ChainState, colour: tuple[int, int], generator: torch.Generator
    ) -> tuple[ChainState, torch.Tensor]:
        x, g, u, h, b = state.position, state.grad, state.density, self.step_size, self.block
        shift = (b // 2 - colour[0] * b, b // 2 - colour[1] * b)  # puts R_B on a 2b × 2b tile
        ny, nx = x.shape[-2:]
        mask = _colour_mask(ny, nx, b, colour, x.device)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        proposal = torch.where(mask, x - h * g + np.sqrt(2 * h) * noise, x)
        u_new, g_new = self.density_and_grad(proposal)
        proposal_terms = (x - proposal + h * g_new).square() / (4 * h) - noise.square() / 2
        cost = (u_new - u) + torch.where(mask, proposal_terms, 0.0).sum(1)  # −log α per cell
        rolled = torch.roll(cost, shift, (-2, -1))
        log_alpha = -rolled.reshape(-1, ny // (2 * b), 2 * b, nx // (2 * b), 2 * b).sum((2, 4))
        uniform = torch.rand(log_alpha.shape, generator=generator, dtype=x.dtype, device=x.device)
        accept = torch.log(uniform) < log_alpha  # NaN (∞ − ∞) and +∞ energies: rejected
        region = accept.repeat_interleave(2 * b, -2).repeat_interleave(2 * b, -1)
        region = torch.roll(region, (-shift[0], -shift[1]), (-2, -1))
        density = torch.where(region, u_new, u)
        new = ChainState(
            torch.where(region[:, None], proposal, x),
            density.sum((-2, -1)),
            torch.where(region[:, None], g_new, g),
            density,
        )
        return new, accept.flatten(1).double().mean(1)


@cache
def _colour_mask(
    ny: int, nx: int, block: int, colour: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """True on the blocks of one colour of the ny × nx grid (see :class:`BlockMALA`)."""
    b = block
    tile = torch.zeros(2 * b, 2 * b, dtype=torch.bool, device=device)
    tile[colour[0] * b : colour[0] * b + b, colour[1] * b : colour[1] * b + b] = True
    return tile.repeat(ny // (2 * b), nx // (2 * b))


def adapt_step_size(
    kernel,
    state: ChainState,
    generator: torch.Generator,
    steps: int,
    target: float = 0.574,
    callback: Callable[[ChainState], None] | None = None,
):
    """Tune a kernel's ``step_size`` towards a mean acceptance ``target`` over warm-up steps.

    Stochastic approximation on the log step: log ε ← log ε + (acceptance − target) / √(t + 1)
    (Robbins–Monro; Andrieu & Thoms, Stat. Comput. 18, 343 (2008)). ``callback(state)`` is
    called after every step (for traces and progress bars).

    Returns
    -------
    kernel
        A copy with the tuned step size, to be used frozen afterwards.
    state
        The last state.
    acceptance : np.ndarray (steps,)
        Mean acceptance over chains at each warm-up step.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1); got {target!r}")
    if not (isinstance(steps, int | np.integer) and steps >= 0):
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    log_eps = np.log(kernel.step_size)
    acceptance = np.empty(steps)
    for t in range(steps):
        state, accept = kernel.step(state, generator)
        acceptance[t] = accept.double().mean().item()
        if callback is not None:
            callback(state)
        log_eps += (acceptance[t] - target) / np.sqrt(t + 1.0)
        kernel = replace(kernel, step_size=float(np.exp(log_eps)))
    return kernel, state, acceptance


# --------------------------------------------------------------------------------------------
# Autocorrelation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Autocorrelation:
    """τ_int of a series with its statistical error, window and normalised autocorrelation."""

    tau: float
    error: float
    window: int
    rho: np.ndarray


def _autocorrelation(series: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation ρ(t) of (chains, time) series, averaged over chains (FFT)."""
    x = series - series.mean(axis=1, keepdims=True)
    n = x.shape[1]
    f = np.fft.rfft(x, n=2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n] / np.arange(n, 0, -1)
    acov = acov.mean(axis=0)
    if acov[0] <= 0:
        raise ValueError("series is constant: its autocorrelation time is undefined")
    return acov / acov[0]


def integrated_autocorrelation_time(series, c: float = 6.0) -> Autocorrelation:
    """Integrated autocorrelation time with Madras–Sokal automatic windowing.

    τ_int(W) = ½ + Σ_{t=1..W} ρ(t); the window W is the smallest with W ≥ c τ_int(W)
    (Madras & Sokal, J. Stat. Phys. 50, 109 (1988)). Its error is
    δτ ≈ τ √(2(2W + 1)/N) with N the total number of samples. With this convention
    N / (2 τ_int) samples are effectively independent; for an AR(1) series x_t = a x_{t−1} + ξ_t
    τ_int = (1 + a) / (2 (1 − a)).

    Parameters
    ----------
    series : array_like, shape (time,) or (chains, time)
        Chains are assumed independent and equally long; ρ is averaged over them.
    c : float
        Window factor (5–10; 6 by default).
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < 4:
        raise ValueError(
            f"series must have shape (time,) or (chains, time) with time >= 4; got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("series contains NaN or Inf")
    rho = _autocorrelation(x)
    taus = 0.5 + np.cumsum(rho[1:])
    windows = np.arange(1, rho.size)
    ok = windows >= c * taus
    window = int(windows[np.argmax(ok)]) if ok.any() else int(windows[-1])
    tau = float(max(taus[window - 1], 0.5))
    error = tau * np.sqrt(2 * (2 * window + 1) / x.size)
    return Autocorrelation(tau=tau, error=float(error), window=window, rho=rho[: window + 1])


def effective_sample_size(series, c: float = 6.0) -> float:
    """N / (2 τ_int): the number of effectively independent samples in (chains, time) series."""
    x = np.asarray(series, dtype=np.float64)
    return float(x.size / (2 * integrated_autocorrelation_time(x, c).tau))
