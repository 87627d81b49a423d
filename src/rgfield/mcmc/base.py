"""The kernel contract: :class:`State`, :class:`Info`, :data:`LogDensityFn`, :class:`Kernel`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import torch

__all__ = [
    "CountingDensity",
    "Info",
    "Kernel",
    "LogDensityFn",
    "MultiStep",
    "State",
    "StepSize",
    "Tunable",
    "acceptance_rate",
    "as_numpy",
    "check_step_size",
    "mean_info",
    "per_chain",
    "provides",
    "select",
    "step_sizes",
]

LogDensityFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""x (chains, ...) ↦ (log p(x), ∇_x log p(x)), log p up to an additive constant.

log p has shape (chains,), or (chains, *cells) for a sum of per-cell log-densities (what
:class:`~rgfield.mcmc.BlockMALA` needs; the other kernels sum it). −∞ marks a point outside
the support; such a proposal is always rejected."""


class CountingDensity:
    """A :data:`LogDensityFn` that counts its calls: each is one gradient evaluation of every
    chain, the unit in which the samplers' costs are reported (a MALA step makes one, an HMC
    trajectory one per leapfrog step, a BlockMALA sweep four, ``init`` one)."""

    def __init__(self, logdensity_and_grad: LogDensityFn) -> None:
        self.logdensity_and_grad = logdensity_and_grad
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self.logdensity_and_grad(x)


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
    """What one transition did, chain by chain (arrays of shape (chains,)).

    The arrays are torch tensors, on the device of the chains, or numpy arrays from a kernel
    that runs in numpy (the compiled lattice kernels of :mod:`rgfield.fields.lattice`, for which
    a tensor per step would cost more than a small lattice's sweep); :func:`as_numpy` reads
    either.

    Attributes
    ----------
    acceptance_rate : min(1, α) of the Metropolis test, averaged over a chain's tests.
    accepted : fraction of a chain's Metropolis tests that were accepted (0 or 1 for one test).
    divergent : True where a proposal had a non-finite log-density (it was rejected).
    """

    acceptance_rate: torch.Tensor | np.ndarray
    accepted: torch.Tensor | np.ndarray
    divergent: torch.Tensor | np.ndarray


StepSize = float | np.ndarray | torch.Tensor
"""A step size: one number for every chain, or one per chain (a 1-D array or tensor)."""


class Kernel(Protocol):
    """What every kernel provides (see the package docstring)."""

    step_size: StepSize
    target_acceptance: ClassVar[float]

    def init(self, position: torch.Tensor) -> State: ...

    def step(self, state: State, generator: torch.Generator) -> tuple[State, Info]: ...


@runtime_checkable
class Tunable(Protocol):
    """A kernel with warm-up parameters besides its step size (such as the number of Wolff
    clusters per step): :func:`~rgfield.mcmc.adapt_step_size` replaces it by
    ``kernel.tune(state, info)`` after every warm-up step. ``tune`` changes only the kernel's
    own parameters (``dataclasses.replace(self, ...)``) and keeps its ``step_size`` object,
    which the warm-up tunes in place."""

    def tune(self, state: State, info: Info) -> Self: ...


@runtime_checkable
class MultiStep(Protocol):
    """A kernel that makes several transitions in one call (a compiled loop), with the same
    chains as as many ``step`` calls: :func:`~rgfield.mcmc.advance` uses it."""

    def multistep(
        self, state: State, generator: torch.Generator, steps: int
    ) -> tuple[State, Info]: ...


@cache
def provides(kernel_type: type, protocol: type) -> bool:
    """Whether a kernel class implements an optional protocol (:class:`MultiStep`,
    :class:`Tunable`): cached, since isinstance on a runtime protocol takes 10–20 µs."""
    return issubclass(kernel_type, protocol)


def mean_info(infos: Sequence[Info]) -> Info:
    """The Info of several transitions: acceptance averaged, divergent where any one was."""
    stack = np.stack if isinstance(infos[0].accepted, np.ndarray) else torch.stack
    return Info(
        stack([i.acceptance_rate for i in infos]).mean(0),
        stack([i.accepted for i in infos]).mean(0),
        stack([i.divergent for i in infos]).any(0),
    )


def as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """An array of an :class:`Info` as float64 numpy on the CPU (numpy arrays as they are)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return values.astype(np.float64, copy=False)


def check_step_size(step_size: StepSize) -> None:
    """Raise a ValueError unless ``step_size`` is a positive number or a 1-D array of them.

    Cheap enough to run at every step of a warm-up (each tuned kernel is a new one): numbers
    and numpy arrays are checked without torch."""
    if isinstance(step_size, torch.Tensor):
        h = step_size.detach().double().cpu().numpy()
    else:
        h = np.asarray(step_size, dtype=np.float64)
    if h.ndim > 1 or h.size == 0 or not (np.isfinite(h) & (h > 0)).all():
        raise ValueError(
            f"step_size must be a positive number or one per chain (1-D); got {step_size!r}"
        )


def step_sizes(
    step_size: StepSize, position: torch.Tensor
) -> tuple[float | torch.Tensor, float | torch.Tensor, float | torch.Tensor]:
    """The step size h for arithmetic with a batch of chains: (h, √(2h), h per chain).

    A number stays a float (so a scalar step gives the same bits as plain float arithmetic);
    one step per chain becomes tensors on the device of ``position``, shaped (chains, 1, …, 1)
    for the first two, to broadcast against positions, and (chains,) for the third, to
    broadcast against per-chain sums.
    """
    if isinstance(step_size, int | float):
        return step_size, math.sqrt(2 * step_size), step_size
    h = torch.as_tensor(step_size, dtype=position.dtype, device=position.device)
    if h.dim() == 0:
        h = float(step_size)
        return h, math.sqrt(2 * h), h
    if h.shape != position.shape[:1]:
        raise ValueError(
            f"step_size: expected a number or one per chain, shape ({position.shape[0]},);"
            f" got shape {tuple(h.shape)}"
        )
    expanded = h.reshape((-1,) + (1,) * (position.dim() - 1))
    return expanded, (2 * expanded).sqrt(), h


def axpy(
    y: torch.Tensor, a: float | torch.Tensor, x: torch.Tensor, in_place: bool = False
) -> torch.Tensor:
    """y + a x in one pass: ``a`` a number or a step per chain from :func:`step_sizes`;
    written into ``y`` with ``in_place``."""
    if isinstance(a, torch.Tensor):
        return y.addcmul_(a, x) if in_place else torch.addcmul(y, a, x)
    return y.add_(x, alpha=a) if in_place else torch.add(y, x, alpha=a)


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept with probability min(1, exp(log α)); NaN and −∞ ratios are rejected.

    Returns the decisions, u < min(1, α) with u ~ U[0, 1), and min(1, α) (0 where log α is
    NaN).
    """
    u = torch.rand(
        log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=log_ratio.device
    )
    rate = acceptance_rate(log_ratio)
    return u < rate, rate


def acceptance_rate(log_ratio: torch.Tensor) -> torch.Tensor:
    """min(1, α) = exp(min(log α, 0)), and 0 where log α is NaN."""
    return torch.nan_to_num(log_ratio.clamp(max=0.0).exp(), nan=0.0)
