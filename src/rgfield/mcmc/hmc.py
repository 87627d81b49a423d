"""Hamiltonian Monte Carlo with leapfrog trajectories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from rgfield.mcmc.base import (
    Info,
    LogDensityFn,
    State,
    StepSize,
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
    H = −log p(x) + |q|²/2 with ``n_leapfrog`` leapfrog steps of size ``step_size`` and
    accepts the end point with probability min(1, exp(−ΔH)) chain by chain (Duane, Kennedy,
    Pendleton & Roweth, PLB 195, 216 (1987)). A trajectory ending at a non-finite energy is
    rejected and flagged as divergent.

    Parameters
    ----------
    logdensity_and_grad : :data:`~rgfield.mcmc.LogDensityFn`
        Called once per leapfrog step.
    step_size : float or array_like (chains,)
        For every chain or one per chain.
    n_leapfrog : int
    """

    logdensity_and_grad: LogDensityFn
    step_size: StepSize
    n_leapfrog: int = 10
    target_acceptance: ClassVar[float] = 0.8

    def __post_init__(self) -> None:
        check_step_size(self.step_size)
        if not isinstance(self.n_leapfrog, int) or self.n_leapfrog < 1:
            raise ValueError(f"n_leapfrog must be at least 1; got {self.n_leapfrog!r}")

    def init(self, position: torch.Tensor) -> State:
        logdensity, grad = self.logdensity_and_grad(position)
        return State(position, per_chain(logdensity), grad)

    def step(self, state: State, generator: torch.Generator) -> tuple[State, Info]:
        """One HMC trajectory of every chain."""
        x, g = state.position, state.grad
        eps = step_sizes(self.step_size, x)[0]
        q = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        dims = tuple(range(1, x.dim()))
        kinetic = 0.5 * q.square().sum(dims)
        q = q + 0.5 * eps * g
        for i in range(self.n_leapfrog):
            x = x + eps * q
            logdensity, g = self.logdensity_and_grad(x)
            if i < self.n_leapfrog - 1:
                q = q + eps * g
        q = q + 0.5 * eps * g
        logdensity = per_chain(logdensity)
        delta = state.logdensity - logdensity + 0.5 * q.square().sum(dims) - kinetic  # ΔH
        accept, rate = metropolis_test(-delta, generator)
        info = Info(rate, accept.to(x.dtype), ~torch.isfinite(delta))
        return select(accept, State(x, logdensity, g), state), info
