"""The chain runner: warm-up, then frozen steps, with the log-density trace and its τ_int."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rgfield._validate import is_integer
from rgfield.mcmc.adaptation import adapt_step_size
from rgfield.mcmc.base import Info, Kernel, MultiStep, State, as_numpy, mean_info, provides
from rgfield.mcmc.diagnostics import Autocorrelation, integrated_autocorrelation_time
from rgfield.mcmc.trace import Trace

__all__ = ["ChainRun", "advance", "run_chains"]

Callback = Callable[[State, Info, bool], None]
"""``callback(state, info, sampling)`` after every step; ``sampling`` is False in warm-up."""


@dataclass(frozen=True)
class ChainRun:
    """The end of a batch of chains run by :func:`run_chains`, with its record.

    Attributes
    ----------
    state : State
        The chains' last state.
    kernel : the kernel with its tuned (frozen) step size.
    warmup_acceptance : np.ndarray (warmup,)
        Mean accepted fraction over chains at each warm-up step.
    acceptance : np.ndarray (steps,)
        The same at each step after the warm-up.
    logdensity : np.ndarray (chains, warmup + steps)
        log p of every chain after every step, warm-up included (NaN where not finite).
    warmup : int
    seconds : float
        Wall time of the steps after the warm-up.
    """

    state: State
    kernel: Kernel
    warmup_acceptance: np.ndarray
    acceptance: np.ndarray
    logdensity: np.ndarray
    warmup: int
    seconds: float

    @property
    def steps(self) -> int:
        return len(self.acceptance)

    def autocorrelation(self) -> Autocorrelation:
        """τ_int (Madras–Sokal) of the log-density after the warm-up, chains pooled."""
        return integrated_autocorrelation_time(self.logdensity[:, self.warmup :])

    def effective_sample_size(self) -> float:
        """chains × steps / (2 τ_int) of the log-density after the warm-up."""
        return self.logdensity[:, self.warmup :].size / (2 * self.autocorrelation().tau)


def advance(
    kernel: Kernel, state: State, generator: torch.Generator, steps: int
) -> tuple[State, Info]:
    """``steps`` transitions of every chain at the kernel's frozen parameters.

    A :class:`~rgfield.mcmc.MultiStep` kernel makes them in one call, the others one ``step``
    at a time. Returns the last state and the Info of all the steps (acceptance averaged,
    ``divergent`` where any step was).
    """
    if not (is_integer(steps) and steps >= 1):
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    if provides(type(kernel), MultiStep):
        return kernel.multistep(state, generator, steps)
    infos = []
    for _ in range(steps):
        state, info = kernel.step(state, generator)
        infos.append(info)
    return state, mean_info(infos)


def run_chains(
    kernel: Kernel,
    position: torch.Tensor,
    generator: torch.Generator,
    *,
    warmup: int,
    steps: int,
    callback: Callback | None = None,
    enough: Callable[[int], bool] | None = None,
) -> ChainRun:
    """Warm a kernel up from ``position`` (tuning its step size), then run ``steps`` more.

    Parameters
    ----------
    kernel : any kernel of :mod:`rgfield.mcmc`.
    position : torch.Tensor (chains, ...)
    generator : torch.Generator
        On the device of ``position``; the same generator state gives the same chains.
    warmup, steps : int
        Steps of :func:`~rgfield.mcmc.adapt_step_size` towards the kernel's target
        acceptance, then steps at the frozen step size.
    callback : callable, optional
        ``callback(state, info, sampling)`` after every step (progress bars, observables).
    enough : callable, optional
        A stopping rule: ``enough(t)`` after the t-th step past the warm-up (and after
        ``callback``); the run ends at the first t where it is true, so ``steps`` is the most.

    Returns
    -------
    ChainRun
    """
    if not (is_integer(steps) and steps >= 0):
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    if not (is_integer(warmup) and warmup >= 0):
        raise ValueError(f"warmup must be a non-negative integer; got {warmup!r}")
    # a first buffer for the whole run, unless ``steps`` is only a cap for ``enough``
    trace, accepted = Trace(min(warmup + steps, 4096)), Trace(min(steps, 4096))

    def record(state: State, info: Info, sampling: bool) -> None:
        trace.append(state.logdensity)
        if callback is not None:
            callback(state, info, sampling)

    kernel, state, warm = adapt_step_size(
        kernel,
        kernel.init(position),
        generator,
        warmup,
        callback=lambda state, info: record(state, info, False),
    )
    _synchronize(position.device)
    start = time.perf_counter()
    for t in range(1, steps + 1):
        state, info = kernel.step(state, generator)
        accepted.append(info.accepted)  # read after the run: no device sync per step
        record(state, info, True)
        if enough is not None and enough(t):
            break
    _synchronize(position.device)
    seconds = time.perf_counter() - start
    logdensity = as_numpy(trace.values()) if len(trace) else np.empty((position.shape[0], 0))
    return ChainRun(
        state=state,
        kernel=kernel,
        warmup_acceptance=warm,
        acceptance=as_numpy(accepted.values()).mean(0) if len(accepted) else np.empty(0),
        logdensity=np.where(np.isfinite(logdensity), logdensity, np.nan),
        warmup=int(warmup),
        seconds=seconds,
    )


def _synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall times count it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
