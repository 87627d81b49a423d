"""Warm-up: tune a kernel's step size towards its own target acceptance."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np
import torch

from rgfield._validate import is_integer
from rgfield.mcmc.base import Info, Kernel, State, Tunable, as_numpy, provides

__all__ = ["adapt_step_size"]

K = TypeVar("K", bound=Kernel)


def adapt_step_size(
    kernel: K,
    state: State,
    generator: torch.Generator,
    steps: int,
    target: float | None = None,
    callback: Callable[[State, Info], None] | None = None,
) -> tuple[K, State, np.ndarray]:
    """Tune ``kernel.step_size`` towards a mean acceptance ``target`` over warm-up steps.

    Stochastic approximation on the log step, log ε ← log ε + (a_t − target) / √(t + 1),
    with a_t the fraction of Metropolis tests accepted at step t (Robbins–Monro; Andrieu &
    Thoms, Stat. Comput. 18, 343 (2008)). A scalar step size follows the mean over chains; a
    step size with one entry per chain (a 1-D array or tensor) is tuned chain by chain. A
    :class:`~rgfield.mcmc.Tunable` kernel also tunes its own warm-up parameters:
    ``kernel.tune(state, info)`` after every step.

    Parameters
    ----------
    kernel : a kernel with ``step_size`` and ``target_acceptance`` (see :mod:`rgfield.mcmc`).
    state : State
        Where the chains start.
    generator : torch.Generator
    steps : int
        Warm-up steps (0 returns the kernel unchanged).
    target : float, optional
        Acceptance sought; default the kernel's ``target_acceptance``.
    callback : callable, optional
        ``callback(state, info)`` after every step (for traces and progress bars).

    Returns
    -------
    kernel
        A copy with the tuned step size (and parameters), to be used frozen afterwards.
    state
        The last state.
    acceptance : np.ndarray (steps,)
        Mean accepted fraction over chains at each warm-up step.
    """
    target = kernel.target_acceptance if target is None else target
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1); got {target!r}")
    if not (is_integer(steps) and steps >= 0):
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    per_chain = np.ndim(kernel.step_size) > 0
    log_eps = np.log(np.asarray(kernel.step_size, dtype=np.float64))
    if per_chain:
        # The warm-up kernel holds ``eps``, tuned in place: a new kernel at every step would
        # cost more than a sweep of a small lattice (docs/benchmarks.md, "ab").
        eps = np.exp(log_eps)
        kernel = replace(kernel, step_size=eps)
    # per step only the mean is kept: small arrays kept across steps would pin the C heap
    # under the steps' large temporaries (see rgfield.mcmc.trace)
    acceptance = np.empty(steps)
    for t in range(steps):
        state, info = kernel.step(state, generator)
        accepted = as_numpy(info.accepted)  # numpy: a few chains, every step
        rate = accepted.sum() / accepted.size  # = mean(), without its Python layer
        acceptance[t] = rate
        if callback is not None:
            callback(state, info)
        if per_chain:
            log_eps += (accepted - target) / math.sqrt(t + 1.0)
            np.exp(log_eps, out=eps)
        else:
            log_eps = log_eps + (rate - target) / math.sqrt(t + 1.0)
            kernel = replace(kernel, step_size=float(np.exp(log_eps)))
        if provides(type(kernel), Tunable):
            kernel = kernel.tune(state, info)
    if per_chain:
        kernel = replace(kernel, step_size=eps.copy())
    return kernel, state, acceptance
