"""The mixing study: how fast each conditional's chains decorrelate from equilibrium starts."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from rgfield._validate import is_integer
from rgfield.fields import resolve_device
from rgfield.mcmc import BlockMALA, Info, State, Trace
from rgfield.rg.fitting import report_dataset
from rgfield.rg.sampling import (
    SAMPLER_DEFAULTS,
    STUCK_ACCEPTANCE,
    chains_at_data,
    check_sampler,
    gradients_per_step,
    run_scale,
    tau_or_nan,
    warn_stuck,
)
from rgfield.rg.scales import coarse_to_fine
from rgfield.wavelets import decompose

__all__ = ["mixing"]


_STUCK_CONSEQUENCE = "its τ_int is undefined (NaN where no chain moved)"


def mixing(
    model,
    data,
    steps: int = 1000,
    warmup: int | None = None,
    seed: int = 0,
    step_size: float | None = None,
    sampler: str = "mala",
    device: str | torch.device = "cpu",
) -> xr.Dataset:
    """Per-scale mixing of a fitted model's MCMC chains, measured from equilibrium starts.

    For each conditional, chains start from the data's details given the data's coarse fields
    (an equilibrium start when the model fits), adapt their step for ``warmup`` steps, then run
    ``steps``; τ_int (Madras–Sokal) is measured on the energy and on the sum of the details
    (the slowest, long-wavelength mode) of each chain.

    Parameters
    ----------
    model : a fitted :class:`~rgfield.rg.HierarchicalModel`.
    data : array_like (samples, L, L)
        Fields of the model's size; one chain per field.
    steps, warmup, seed, step_size :
        Chain length after and during the warm-up, the generator's seed, the initial step
        (warm-up and step default to the sampler's,
        :data:`~rgfield.rg.sampling.SAMPLER_DEFAULTS`: 200 MALA steps, 50 HMC trajectories).
    sampler : {"mala", "block", "hmc"}
        As in :meth:`~rgfield.rg.HierarchicalModel.sample`.
    device : str or torch.device
        Where the chains run, as in :meth:`~rgfield.rg.HierarchicalModel.sample`.

    Returns
    -------
    xarray.Dataset, dim ``scale``: ``tau_energy``, ``tau_sum`` (NaN where no chain moved, with a
    warning naming the scale whose chains barely moved), ``step_size``, ``acceptance``,
    ``variance_ratio`` (mean square of the details at the end over that of the data: 1 when the
    conditional reproduces the data's fluctuations given the data's coarse fields),
    ``seconds_per_step`` (for the whole batch), ``variables`` (per chain), ``gradients_per_step``
    (1 for MALA, 4 for a BlockMALA sweep, an HMC trajectory's leapfrog steps at the tuned
    step), ``block`` (its side, 0 for MALA).
    """
    model.check_fitted()
    check_sampler(sampler)
    defaults = SAMPLER_DEFAULTS[sampler]
    warmup = defaults["warmup"] if warmup is None else warmup
    step_size = defaults["step_size"] if step_size is None else step_size
    if not (is_integer(steps) and steps >= 10 and is_integer(warmup) and warmup >= 0):
        raise ValueError(
            f"steps (>= 10) and warmup (>= 0) must be integers; got {steps!r}, {warmup!r}"
        )
    if not is_integer(seed):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    device = resolve_device(device)
    x = model.check_fields(data, "data").to(device)
    pyramid = decompose(x, model.levels_, model.wavelet)
    generator = torch.Generator(device).manual_seed(int(seed))
    rows = []
    for scale in coarse_to_fine(model.scales_)[1:]:
        y, _, kernel, start, onto = chains_at_data(
            model, scale, pyramid, device, step_size, sampler
        )
        details = onto or (lambda w: w)
        totals = Trace(steps)

        def observe(
            state: State, info: Info, sampling: bool, totals=totals, details=details
        ) -> None:
            if sampling:
                totals.append(details(state.position).sum((1, 2, 3)))

        run, row = run_scale(kernel, start, generator, warmup, steps, observe)
        if row["acceptance"] < STUCK_ACCEPTANCE:
            warn_stuck(
                scale.name,
                row["acceptance"],
                float(np.median(row["step_size"])),
                _STUCK_CONSEQUENCE,
            )
        rows.append(
            {
                "scale": scale.name,
                "tau_energy": tau_or_nan(run.logdensity[:, run.warmup :]),
                "tau_sum": tau_or_nan(totals.values()),
                "step_size": row["step_size"],
                "acceptance": row["acceptance"],
                "variance_ratio": float(
                    details(run.state.position).square().mean() / y.square().mean()
                ),
                "seconds_per_step": row["seconds"] / steps,
                "variables": y[0].numel(),
                "gradients_per_step": gradients_per_step(run.kernel),
                "block": kernel.block if isinstance(kernel, BlockMALA) else 0,
            }
        )
    return report_dataset(rows)
