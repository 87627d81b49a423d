"""The sampler's calibration: each scale's tuned step, τ_int and burn-in, measured once.

``steps="auto"`` needs, per scale, a step size tuned to the kernel's acceptance and the
chains' τ_int; without a calibration every draw measures them anew with a pilot of
:data:`~rgfield.rg.sampling.PILOT_CHAINS` chains (warm-up, then 50 τ_int), about a third of
the time of ``rgfield sample --n 500`` at L = 128 (docs/rg.md, "Sampling"). Both are
properties of the fitted model, not of a draw, so :func:`calibrate` measures them once, with
the same pilot on more chains (:data:`CALIBRATION_CHAINS`) started from the training fields'
own details (an equilibrium start where the
model fits the data), and the model keeps them (``calibration_``, stored in its file). The
same chains, restarted from the Gaussian start given their coarse fields, measure how far the
start's law is from equilibrium after each step (:mod:`rgfield.rg.burnin`). A draw of n
fields then runs every chain from its Gaussian start at the stored step for the burn-in that
n fields need, with no warm-up and no pilot.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from rgfield.rg.burnin import Observables, as_rows, bias_curves
from rgfield.rg.sampling import (
    AUTO_STEPS,
    SAMPLER_DEFAULTS,
    Calibration,
    both,
    chains_at_data,
    check_sampler,
    counting,
    finite_start,
    run_scale,
)
from rgfield.rg.scales import coarse_to_fine
from rgfield.wavelets import decompose

__all__ = ["CALIBRATION_CHAINS", "DESCRIBED_CHAINS", "calibrate", "describe"]

CALIBRATION_CHAINS = 128
"""Chains of the calibration's pilot (fewer where the data has fewer fields). The pilot of a
draw has 32; at j = 1 of φ⁴ at L = 128, 32 chains read τ_int = 1.37–1.69 trajectories (three
seeds), 128 chains 1.17 and 1.43 (two) (docs/rg.md, "A calibrated sampler"); the burn-in's
bias is read to about 1/√128 of its standard deviation (:mod:`rgfield.rg.burnin`): the
calibration runs once, so it affords the larger pilot."""


DESCRIBED_CHAINS = 500
"""The batch whose burn-in :func:`describe` states."""


def calibrate(
    model,
    data: torch.Tensor,
    generator: torch.Generator,
    sampler: str = "hmc",
    chains: int = CALIBRATION_CHAINS,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Calibration]:
    """Tune each sampled scale's step, measure its τ_int and the burn-in from its start.

    For every factor drawn by chains (not a one-variable coarsest field), the first
    ``chains`` fields of ``data`` give the chains' coarse fields and starts (their own
    details); the chains warm up (tuning h, the sampler's default warm-up) and run until
    their steps make 50 τ_int, the pilot of ``steps="auto"``
    (:func:`~rgfield.rg.sampling.run_scale`). Where the model has a Gaussian start for the
    factor (:attr:`~rgfield.rg.HierarchicalModel.starts_`), as many chains from it, given
    the same coarse fields, then run 10 τ_int at the tuned step, and the bias of their
    observables against the equilibrium chains is kept (:mod:`rgfield.rg.burnin`).

    Parameters
    ----------
    model : a fitted :class:`~rgfield.rg.HierarchicalModel`.
    data : torch.Tensor (samples, L, L), float64, on the generator's device
        Fields of the model's size (the training fields, or others of the same law).
    generator : torch.Generator
        Draws the chains' noise; its device is where they run.
    sampler : {"hmc", "mala", "block"}
    chains : int
        Chains of the pilot (the first ``chains`` fields of ``data``).
    on_step : callable, optional
        ``on_step(k)`` reports k more steps done (progress).

    Returns
    -------
    dict of scale name → Calibration; a scale whose pilot did not measure τ_int within its
    most steps (``mixed`` false, or τ_int NaN when no chain moved) is left out, so draws
    measure it with a pilot of their own, which warns.
    """
    check_sampler(sampler)
    defaults = SAMPLER_DEFAULTS[sampler]
    pyramid = decompose(data[:chains], model.levels_, model.wavelet)
    calibrations = {}
    for scale in coarse_to_fine(model.scales_):
        if not scale.conditional and pyramid.low.shape[-2:] == (1, 1):
            continue  # a one-variable coarsest field is drawn exactly
        _, _, kernel, start, onto = chains_at_data(
            model, scale, pyramid, generator.device, defaults["step_size"], sampler
        )
        equilibrium = Observables(onto)
        callback = both(equilibrium, counting(on_step))
        _, row = run_scale(kernel, start, generator, defaults["warmup"], "auto", callback, onto)
        if not (row["mixed"] and np.isfinite(row["tau"])):
            continue
        calibration = Calibration(sampler, float(row["step_size"]), float(row["tau"]))
        if scale.name in model.starts_:
            observed = _from_start(model, scale, pyramid, generator, calibration, on_step)
            bias, error = bias_curves(observed, equilibrium.values())
            if np.isfinite(bias).all() and np.isfinite(error).all():
                calibration = replace(calibration, bias=as_rows(bias), bias_error=as_rows(error))
            else:  # a chain outside the support at some step: no curve to read
                warnings.warn(
                    f"scale {scale.name}: the burn-in from the Gaussian start could not be"
                    " measured (an energy is not finite); its draws run 10 τ_int",
                    stacklevel=3,
                )
        calibrations[scale.name] = calibration
    return calibrations


def _from_start(
    model, scale, pyramid, generator: torch.Generator, calibration: Calibration, on_step
) -> np.ndarray:
    """The burn-in observables (observables, chains, T + 1) of chains from the factor's
    Gaussian start given the data's coarse fields, at the start and after each of T =
    ⌈10 τ_int⌉ steps at the calibrated step."""
    device = generator.device
    y, c, kernel, _, onto = chains_at_data(
        model, scale, pyramid, device, calibration.step_size, calibration.sampler
    )
    coordinates = model.coordinates(scale)
    coordinates = None if coordinates is None else coordinates.to(device)
    start = model.starts_[scale.name].to(device)
    y0 = finite_start(model.factor(scale).to(device), start, c, generator, len(y), coordinates)
    if coordinates is not None:
        y0 = coordinates.into(y0, c)
    observed = Observables(onto)
    observed.record(kernel.init(y0))  # the start's observables (one gradient evaluation)
    steps = max(1, math.ceil(AUTO_STEPS["multiple"] * calibration.tau))
    run_scale(kernel, y0, generator, 0, steps, both(observed, counting(on_step)))
    return observed.values()


def describe(calibration: dict[str, Calibration]) -> str:
    """One line: the calibrated sampler and each scale's step, τ_int and the burn-in of a
    batch of :data:`DESCRIBED_CHAINS` fields (or that there is none)."""
    if not calibration:
        return "sampler not calibrated (every draw measures τ_int with a pilot)"
    sampler = next(iter(calibration.values())).sampler
    scales = ", ".join(
        f"{name} {c.step_size:.3g}/{c.tau:.3g}/{c.burn_in(DESCRIBED_CHAINS)}"
        for name, c in calibration.items()
    )
    return (
        f"{sampler} calibrated (step/τ_int/steps of a {DESCRIBED_CHAINS}-field draw per"
        f" scale): {scales}"
    )
