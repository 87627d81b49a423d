"""Hamiltonian Monte Carlo with leapfrog trajectories."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from rgfield.mcmc.base import (
    Info,
    LogDensityFn,
    State,
    StepSize,
    axpy,
    check_step_size,
    metropolis_test,
    per_chain,
    select,
    step_sizes,
)

__all__ = ["HMC"]


@dataclass(frozen=True)
class HMC:
    """Hamiltonian Monte Carlo for p(x), chains along the leading dimension.

    One step draws momenta q ~ N(0, 1), integrates Hamilton's equations for
    H = −log p(x) + |q|²/2 with n leapfrog steps of size ε and accepts the end point with
    probability min(1, exp(−ΔH)) chain by chain (Duane, Kennedy, Pendleton & Roweth, PLB 195,
    216 (1987)). A trajectory ending at a non-finite energy is rejected and flagged as
    divergent.

    With ``length`` the trajectory has a duration instead of a count: n = ⌈length / ε̄⌉
    (ε̄ the mean step, at most ``max_leapfrogs``), so it follows the step the warm-up tunes.
    A trajectory of fixed duration T turns a Gaussian mode of standard deviation σ by the
    angle T/σ, and a mode near T/σ = π only changes sign; ``jitter`` J draws each chain's
    step of each trajectory uniformly from [(1 − J) ε, ε], so its duration spans
    [(1 − J) T, T] and no mode stays resonant (Neal, "MCMC using Hamiltonian dynamics",
    Handbook of MCMC (2011), §5.4.2.2).

    Parameters
    ----------
    logdensity_and_grad : :data:`~rgfield.mcmc.LogDensityFn`
        Called once per leapfrog step, on a position the next leapfrog step updates in place
        (it must return new tensors, not keep or return its argument).
    step_size : float or array_like (chains,)
        For every chain or one per chain.
    n_leapfrog : int
        Leapfrog steps per trajectory when ``length`` is None.
    length : float, optional
        Duration of a trajectory, ε n, in the units of x.
    max_leapfrogs : int
        The most leapfrog steps of a trajectory with ``length``: a stiff target that needs a
        tiny ε gets shorter trajectories instead of unbounded cost.
    jitter : float in [0, 1)
        Relative spread of the step drawn per chain and trajectory (0: none).
    """

    logdensity_and_grad: LogDensityFn
    step_size: StepSize
    n_leapfrog: int = 10
    length: float | None = None
    max_leapfrogs: int = 1000
    jitter: float = 0.0
    target_acceptance: ClassVar[float] = 0.8

    def __post_init__(self) -> None:
        check_step_size(self.step_size)
        if not isinstance(self.n_leapfrog, int) or self.n_leapfrog < 1:
            raise ValueError(f"n_leapfrog must be at least 1; got {self.n_leapfrog!r}")
        if not isinstance(self.max_leapfrogs, int) or self.max_leapfrogs < 1:
            raise ValueError(f"max_leapfrogs must be at least 1; got {self.max_leapfrogs!r}")
        if self.length is not None and not (
            isinstance(self.length, int | float) and self.length > 0
        ):
            raise ValueError(f"length must be a positive number or None; got {self.length!r}")
        if not (isinstance(self.jitter, int | float) and 0 <= self.jitter < 1):
            raise ValueError(f"jitter must be in [0, 1); got {self.jitter!r}")

    def leapfrogs(self) -> int:
        """Leapfrog steps (gradient evaluations) of one trajectory at the present step."""
        if self.length is None:
            return self.n_leapfrog
        step = self.step_size
        mean = step if isinstance(step, int | float) else float(torch.as_tensor(step).mean())
        return min(self.max_leapfrogs, max(1, math.ceil(self.length / mean)))

    def init(self, position: torch.Tensor) -> State:
        logdensity, grad = self.logdensity_and_grad(position)
        return State(position, per_chain(logdensity), grad)

    def step(self, state: State, generator: torch.Generator) -> tuple[State, Info]:
        """One HMC trajectory of every chain."""
        x, g = state.position, state.grad
        eps = step_sizes(self.step_size, x)[0]
        if self.jitter:
            shape = (x.shape[0],) + (1,) * (x.dim() - 1)
            u = torch.rand(shape, generator=generator, dtype=x.dtype, device=x.device)
            eps = eps * (1 - self.jitter * u)
        q = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        dims = tuple(range(1, x.dim()))
        kinetic = 0.5 * q.square().sum(dims)
        # in place on this trajectory's own copies: a large batch's fresh tensors per leapfrog
        # cost more than the arithmetic (pages faulted in anew; docs/benchmarks.md, "rg-hmc")
        axpy(q, 0.5 * eps, g, in_place=True)
        x = x.clone()
        n = self.leapfrogs()
        for i in range(n):
            axpy(x, eps, q, in_place=True)
            logdensity, g = self.logdensity_and_grad(x)
            if i < n - 1:
                axpy(q, eps, g, in_place=True)
        axpy(q, 0.5 * eps, g, in_place=True)
        logdensity = per_chain(logdensity)
        delta = state.logdensity - logdensity + 0.5 * q.square().sum(dims) - kinetic  # ΔH
        accept, rate = metropolis_test(-delta, generator)
        info = Info(rate, accept.to(x.dtype), ~torch.isfinite(delta))
        return select(accept, State(x, logdensity, g), state), info
