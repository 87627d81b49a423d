"""The sampler's calibration: each scale's tuned step and τ_int, measured once on the data.

``steps="auto"`` needs, per scale, a step size tuned to the kernel's acceptance and the
chains' τ_int; without a calibration every draw measures them anew with a pilot of
:data:`~rgfield.rg.sampling.PILOT_CHAINS` chains (warm-up, then 50 τ_int), about a third of
the time of ``rgfield sample --n 500`` at L = 128 (docs/rg.md, "Sampling"). Both are
properties of the fitted model, not of a draw, so :func:`calibrate` measures them once, with
the same pilot on more chains (:data:`CALIBRATION_CHAINS`) started from the training fields'
own details (an equilibrium start where the
model fits the data), and the model keeps them (``calibration_``, stored in its file); a
draw then runs every chain ``AUTO_STEPS["multiple"]`` × τ_int trajectories at the stored step
from its Gaussian start, with no warm-up and no pilot.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rgfield.rg.sampling import (
    SAMPLER_DEFAULTS,
    Calibration,
    chains_at_data,
    check_sampler,
    run_scale,
)
from rgfield.rg.scales import coarse_to_fine
from rgfield.wavelets import decompose

__all__ = ["CALIBRATION_CHAINS", "calibrate", "describe"]

CALIBRATION_CHAINS = 128
"""Chains of the calibration's pilot (fewer where the data has fewer fields). The pilot of a
draw has 32; at j = 1 of φ⁴ at L = 128, 32 chains read τ_int = 1.37–1.69 trajectories (three
seeds), 128 chains 1.17 and 1.43 (two) (docs/rg.md, "A calibrated sampler"), and every
chain's length is 10 τ_int: the calibration runs once, so it affords the larger pilot."""


def calibrate(
    model,
    data: torch.Tensor,
    generator: torch.Generator,
    sampler: str = "hmc",
    chains: int = CALIBRATION_CHAINS,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Calibration]:
    """Tune each sampled scale's step and measure its τ_int on chains started at the data.

    For every factor drawn by chains (not a one-variable coarsest field), the first
    ``chains`` fields of ``data`` give the chains' coarse
    fields and starts (their own details); the chains warm up (tuning h, the sampler's
    default warm-up) and run until their steps make 50 τ_int, the pilot of ``steps="auto"``
    (:func:`~rgfield.rg.sampling.run_scale`).

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
        _, kernel, start, onto = chains_at_data(
            model, scale, pyramid, generator.device, defaults["step_size"], sampler
        )
        callback = None if on_step is None else lambda state, info, sampling: on_step(1)
        _, row = run_scale(kernel, start, generator, defaults["warmup"], "auto", callback, onto)
        if row["mixed"] and np.isfinite(row["tau"]):
            calibrations[scale.name] = Calibration(
                sampler, float(row["step_size"]), float(row["tau"])
            )
    return calibrations


def describe(calibration: dict[str, Calibration]) -> str:
    """One line: the calibrated sampler and each scale's step and τ_int (or that there is none)."""
    if not calibration:
        return "sampler not calibrated (every draw measures τ_int with a pilot)"
    sampler = next(iter(calibration.values())).sampler
    scales = ", ".join(f"{name} {c.step_size:.3g}/{c.tau:.3g}" for name, c in calibration.items())
    return f"{sampler} calibrated (step/τ_int per scale): {scales}"
