"""The Metropolis-adjusted Langevin algorithm (and its unadjusted variant)."""

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

__all__ = ["MALA"]


@dataclass(frozen=True)
class MALA:
    """Metropolis-adjusted Langevin algorithm for p(x), chains along the leading dimension.

    Proposal x' = x + h ∇log p(x) + √(2h) ξ, ξ ~ N(0, 1), accepted chain by chain with
    probability min(1, α),

        log α = log p(x') − log p(x) − [‖x − x' − h∇log p(x')‖² − ‖x' − x − h∇log p(x)‖²] / 4h

    (Roberts & Tweedie, Bernoulli 2, 341 (1996)). Its optimal acceptance in high dimension is
    0.574 (Roberts & Rosenthal, JRSS B 60, 255 (1998)). With ``adjusted=False`` every finite
    proposal is kept (the unadjusted Langevin algorithm, biased by O(h)). A proposal outside
    the support (log p = −∞) or with a NaN log-density is always rejected.

    Parameters
    ----------
    logdensity_and_grad : :data:`~rgfield.mcmc.LogDensityFn`
    step_size : float or array_like (chains,)
        h, for every chain or one per chain.
    adjusted : bool
    """

    logdensity_and_grad: LogDensityFn
    step_size: StepSize
    adjusted: bool = True
    target_acceptance: ClassVar[float] = 0.574

    def __post_init__(self) -> None:
        check_step_size(self.step_size)

    def init(self, position: torch.Tensor) -> State:
        logdensity, grad = self.logdensity_and_grad(position)
        return State(position, per_chain(logdensity), grad)

    def step(self, state: State, generator: torch.Generator) -> tuple[State, Info]:
        """One MALA transition of every chain."""
        x, g = state.position, state.grad
        h, root, h_chain = step_sizes(self.step_size, x)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        proposal = axpy(axpy(x, h, g), root, noise)
        logdensity, grad = self.logdensity_and_grad(proposal)
        logdensity = per_chain(logdensity)
        finite = torch.isfinite(logdensity)
        if self.adjusted:
            dims = tuple(range(1, x.dim()))
            # the forward term ‖x' − x − h∇log p(x)‖² / 4h is ‖√(2h) ξ‖² / 4h = ‖ξ‖² / 2
            forward = torch.linalg.vector_norm(noise, dim=dims).square() / 2
            reverse = axpy(x - proposal, -h, grad)
            backward = torch.linalg.vector_norm(reverse, dim=dims).square() / (4 * h_chain)
            log_ratio = logdensity - state.logdensity + forward - backward
            # a non-finite proposal (also log p = +∞) is rejected, with acceptance rate 0
            log_ratio = torch.where(finite, log_ratio, -math.inf)
            accept, rate = metropolis_test(log_ratio, generator)
        else:
            accept, rate = finite, finite.to(x.dtype)
        info = Info(rate, accept.to(x.dtype), ~finite)
        return select(accept, State(proposal, logdensity, grad), state), info
