"""Warm-up: tune a kernel's step size towards its own target acceptance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np
import torch

from rgfield._validate import is_integer
from rgfield.mcmc.base import Info, Kernel, State, Tunable, provides

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
    acceptance = np.empty(steps)
    for t in range(steps):
        state, info = kernel.step(state, generator)
        accepted = info.accepted.double().cpu().numpy()  # numpy: a few chains, every step
        acceptance[t] = accepted.mean()
        if callback is not None:
            callback(state, info)
        rate = accepted if per_chain else acceptance[t]
        log_eps = log_eps + (rate - target) / np.sqrt(t + 1.0)
        kernel = replace(kernel, step_size=np.exp(log_eps) if per_chain else float(np.exp(log_eps)))
        if provides(type(kernel), Tunable):
            kernel = kernel.tune(state, info)
    return kernel, state, acceptance
