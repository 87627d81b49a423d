"""The kernel contract: :class:`State`, :class:`Info`, :data:`LogDensityFn`, :class:`Kernel`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

__all__ = ["Info", "Kernel", "LogDensityFn", "State", "per_chain", "select"]

LogDensityFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""x (chains, ...) ↦ (log p(x), ∇_x log p(x)), log p up to an additive constant.

log p has shape (chains,), or (chains, *cells) for a sum of per-cell log-densities (what
:class:`~rgfield.mcmc.BlockMALA` needs; the other kernels sum it). −∞ marks a point outside
the support; such a proposal is always rejected."""


def per_chain(logdensity: torch.Tensor) -> torch.Tensor:
    """log p of each chain: per-cell log-densities (chains, *cells) summed, (chains,) kept."""
    return logdensity.flatten(1).sum(1) if logdensity.dim() > 1 else logdensity


@dataclass(frozen=True)
class State:
    """Positions of a batch of chains with their log-densities and gradients.

    Attributes
    ----------
    position : torch.Tensor, shape (chains, ...)
    logdensity : torch.Tensor, shape (chains,)
        log p(position), up to the constant of the log-density function.
    grad : torch.Tensor, shape of ``position``
        ∇ log p(position).
    density : torch.Tensor or None, shape (chains, *cells)
        Per-cell log-densities (log p = their sum) for kernels that test blocks.
    """

    position: torch.Tensor
    logdensity: torch.Tensor
    grad: torch.Tensor
    density: torch.Tensor | None = None


@dataclass(frozen=True)
class Info:
    """What one transition did, chain by chain (tensors of shape (chains,)).

    Attributes
    ----------
    acceptance_rate : min(1, α) of the Metropolis test, averaged over a chain's tests.
    accepted : fraction of a chain's Metropolis tests that were accepted (0 or 1 for one test).
    divergent : True where a proposal had a non-finite log-density (it was rejected).
    """

    acceptance_rate: torch.Tensor
    accepted: torch.Tensor
    divergent: torch.Tensor


class Kernel(Protocol):
    """What every kernel provides (see the package docstring)."""

    step_size: float
    target_acceptance: ClassVar[float]

    def init(self, position: torch.Tensor) -> State: ...

    def step(self, state: State, generator: torch.Generator) -> tuple[State, Info]: ...


def select(accept: torch.Tensor, proposal: State, current: State) -> State:
    """Per chain, the proposed state where ``accept`` is true and the current one elsewhere."""
    keep = accept.reshape((-1,) + (1,) * (current.position.dim() - 1))
    return State(
        torch.where(keep, proposal.position, current.position),
        torch.where(accept, proposal.logdensity, current.logdensity),
        torch.where(keep, proposal.grad, current.grad),
    )


def metropolis_test(
    log_ratio: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accept with probability min(1, exp(log α)); NaN and −∞ ratios are rejected.

    Returns the decisions, min(1, α) (0 where log α is NaN) and the divergence flags (log α
    not finite: a proposal of infinite or undefined energy).
    """
    u = torch.rand(
        log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=log_ratio.device
    )
    accept = torch.log(u) < log_ratio  # False for NaN
    rate = torch.nan_to_num(log_ratio.clamp(max=0.0).exp(), nan=0.0)
    return accept, rate, ~torch.isfinite(log_ratio)
