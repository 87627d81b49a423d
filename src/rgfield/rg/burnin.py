"""The burn-in of chains from the Gaussian start, measured once and extrapolated to any batch.

A draw of n fields runs n independent chains, one field each, so what it needs is not a
multiple of τ_int but the burn-in: the steps after which the chains' law at the last step is
as near equilibrium as n fields can tell. For an observable o with per-chain standard
deviation σ_o at equilibrium, the batch mean's bias after t steps from the start, in units
of σ_o,

    r_o(t) = (E[o(y_t)] − E_eq[o]) / σ_o,

must fall below ``tolerance``/√n (:data:`BURN_IN_TOLERANCE`, half the batch mean's standard
error). The calibration measures r_o(t) on chains from the Gaussian start paired with chains
at equilibrium given the same coarse fields (the difference of the two is free of the coarse
fields' variation): :func:`bias_curves`. Where r_o(t) is resolved (more than 3 of its standard
errors) it is read; beyond, it is extrapolated by the slower of its fitted geometric decay
and ρ = (2τ − 1)/(2τ + 1), the autocorrelation per step of an AR(1) series with that
integrated autocorrelation time τ (Madras & Sokal 1988): :func:`burn_in_steps`. The steps grow
as log n. On φ⁴ at β_c, L = 128, the energy's bias at j = 1 falls by 0.58 per HMC trajectory,
slower than τ_int = 1.14's ρ = 0.39 (docs/rg.md, "The burn-in, measured").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from rgfield.mcmc import Info, State, Trace

__all__ = [
    "BURN_IN_OBSERVABLES",
    "BURN_IN_TOLERANCE",
    "Observables",
    "as_rows",
    "bias_curves",
    "burn_in_steps",
]

BURN_IN_OBSERVABLES = ("energy", "sum", "mean_square", "mean_fourth")
"""Per chain: the energy U(y | c), the summed details (the slowest, long-wavelength mode),
the mean square of the details (their power) and their mean fourth power (their tails)."""

BURN_IN_TOLERANCE = 0.5
"""The largest bias of a batch mean after the burn-in, in standard errors of that mean."""

RESOLVED = 3.0
"""A bias is read where it exceeds this many of its standard errors, else extrapolated."""


def observe(energy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The :data:`BURN_IN_OBSERVABLES` of chains with energies ``energy`` (chains,) at
    details ``y`` (chains, ...): shape (observables, chains), on their device."""
    flat = y.detach().flatten(1)
    square = flat.square()
    return torch.stack([energy.detach(), flat.sum(1), square.mean(1), square.square().mean(1)])


class Observables:
    """A chain-runner callback that records the :data:`BURN_IN_OBSERVABLES` of every step
    after the warm-up; ``details`` maps positions to details when the chains move in other
    coordinates."""

    def __init__(self, details: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.details = details
        self.traces = [Trace(64) for _ in BURN_IN_OBSERVABLES]

    def record(self, state: State) -> None:
        """Record the observables of ``state``."""
        position = state.position if self.details is None else self.details(state.position)
        for trace, value in zip(self.traces, observe(-state.logdensity, position), strict=True):
            trace.append(value)

    def __call__(self, state: State, info: Info, sampling: bool) -> None:
        if sampling:
            self.record(state)

    def values(self) -> np.ndarray:
        """The recorded series, shape (observables, chains, steps)."""
        return np.stack([trace.values().cpu().numpy() for trace in self.traces])


def bias_curves(start: np.ndarray, equilibrium: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r_o(t) and its standard error from paired chains, in units of σ_o.

    Parameters
    ----------
    start : array (observables, chains, T + 1)
        The observables of chains from the start, at the start (t = 0) and after each step.
    equilibrium : array (observables, chains, S)
        The same observables of chains at equilibrium given the same coarse fields (chain i
        of both has the same one), over S steps.

    Returns
    -------
    bias, error : arrays (observables, T + 1)
        r_o(t) = mean_i [o_i(t) − ō_i] / σ_o, with ō_i chain i's mean at equilibrium and σ_o
        the standard deviation of the equilibrium values over chains and steps (a batch of n
        independent fields has standard error σ_o/√n), and the standard error of that mean
        over the chains.
    """
    paired = start - equilibrium.mean(-1, keepdims=True)
    sigma = equilibrium.std(axis=(1, 2))[:, None]
    sigma = np.where(sigma > 0, sigma, np.inf)  # a constant observable has no bias to read
    chains = start.shape[1]
    if chains < 2:
        raise ValueError(f"start: the bias needs two chains at least; got {chains}")
    error = paired.std(axis=1, ddof=1) / math.sqrt(chains)
    return paired.mean(1) / sigma, error / sigma


def burn_in_steps(
    bias: np.ndarray,
    error: np.ndarray,
    tau: float,
    n: int,
    tolerance: float = BURN_IN_TOLERANCE,
) -> int:
    """Steps from the start after which every observable's bias is ≤ ε = ``tolerance``/√n.

    Per observable, its bias is read where it is resolved (|r| > 3 standard errors) at t = 0
    and at t = 1, 2, … up to its first unresolved step (:func:`_leading_run`). Where a read
    step has |r| ≤ ε, the burn-in is the step after the last read one above ε. Otherwise the
    bias is extrapolated from the last read step t* as |r(t*)| ρ^(t − t*) (from t* = 0 with the
    bound of 3 standard errors where no step is read), and the burn-in is the first t where
    that is ≤ ε. ρ is common to all observables (the slowest modes set it): the larger of
    (2τ − 1)/(2τ + 1), an AR(1) series' autocorrelation per step at that τ_int, and the
    geometric rate fitted to the energy's read steps t ≥ 1 (least squares on log |r| where
    three or more are read). The energy's is fitted: its paired bias is the best measured (at
    j = 1 of φ⁴ at L = 128, 128 chains read it down to a few hundredths of its standard
    deviation), where the details' powers, whose bias starts larger, are noisier; there its
    rate, 0.58 per HMC trajectory, is slower than τ_int's (0.39 at τ_int = 1.14). The result
    is the largest burn-in over the observables, at least one step.

    Parameters
    ----------
    bias, error : arrays (observables, T + 1)
        From :func:`bias_curves`, the energy first (:data:`BURN_IN_OBSERVABLES`).
    tau : float
        τ_int of the chains, in steps.
    n : int
        Chains of the draw.
    tolerance : float
        The bias allowed, in standard errors of an n-field batch mean.
    """
    if not (np.isfinite(bias).all() and np.isfinite(error).all()):
        raise ValueError("bias, error: the burn-in curves must be finite")
    target = tolerance / math.sqrt(n)
    rho = max((2 * tau - 1) / (2 * tau + 1) if tau > 0.5 else 0.0, _energy_rate(bias, error))
    steps = 1
    for r, e in zip(np.abs(bias), error, strict=True):
        read = _leading_run(r, e)
        if r[0] > RESOLVED * e[0]:
            read = np.concatenate([[0], read])
        if read.size and r[read[-1]] <= target:  # measured below the tolerance
            steps = max(steps, int(read[r[read] > target].max(initial=-1)) + 1)
            continue
        last, amplitude = (int(read[-1]), float(r[read[-1]])) if read.size else (0, RESOLVED * e[0])
        if amplitude <= target:  # below the tolerance where the reading stops
            steps = max(steps, last)
        elif rho >= 1.0:  # no decay read: at least the measured span again
            steps = max(steps, last + len(r))
        elif rho <= 0.0:  # independent steps: one removes the bias
            steps = max(steps, last + 1)
        else:
            steps = max(steps, last + math.ceil(math.log(amplitude / target) / -math.log(rho)))
    return steps


def _leading_run(r: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The steps 1, 2, … k before the first whose |r| is not resolved (more than
    :data:`RESOLVED` standard errors): where the bias is read. Later steps are not: once the
    bias is lost in the noise, a step that rises above it again is the noise of consecutive,
    correlated steps (the chains' late excursions), not the start's bias."""
    resolved = np.isfinite(r[1:]) & np.isfinite(e[1:]) & (r[1:] > RESOLVED * e[1:])
    k = int(np.argmin(resolved)) if not resolved.all() else resolved.size
    return np.arange(1, k + 1)


def _energy_rate(bias: np.ndarray, error: np.ndarray) -> float:
    """exp of the least-squares slope of log |r| of the energy over its leading run of
    resolved steps (0 with fewer than three)."""
    r = np.abs(bias[0])
    steps = _leading_run(r, error[0])
    if steps.size < 3:
        return 0.0
    return float(np.exp(np.polyfit(steps, np.log(r[steps]), 1)[0]))


def as_rows(curves: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """Curves (observables, steps) as tuples of floats, as a Calibration keeps them (empty
    without steps)."""
    return tuple(tuple(float(v) for v in row) for row in curves) if curves.shape[-1] else ()
