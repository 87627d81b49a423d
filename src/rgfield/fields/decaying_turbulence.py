"""Freely decaying 2D turbulence: independent flows, each from random band-limited vorticity,
integrated without forcing or drag to one time (McWilliams, J. Fluid Mech. 146, 21 (1984)).

The energy is (nearly) conserved while the enstrophy cascades to the grid scale and is removed
there by hyperviscosity; like-signed vorticity merges into coherent vortices that hold most
of the enstrophy, so the vorticity becomes sparse and far from Gaussian, unlike the nearly
Gaussian vorticity of the forced flows of :mod:`rgfield.fields.turbulence`. Every snapshot is
its own flow, so the ensemble has no correlation between samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

import numpy as np
import torch
import xarray as xr

from rgfield import _progress
from rgfield._validate import fresh_seed, is_integer
from rgfield.fields import resolve_device
from rgfield.fields.turbulence import Turbulence2D, initial_vorticity, integrate
from rgfield.io import to_dataset

__all__ = ["DecayingConfig", "decaying_flow", "simulate"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def decaying_flow(size: int) -> Turbulence2D:
    """The default decaying flow on an N = ``size`` grid: no viscosity, forcing or drag,
    hyperviscosity ν_h (−Δ)⁴ with ν_h = 1e-12 (128/N)⁸ (the same damping at the grid scale for
    every N), and initial vorticity in a band around k₀ = N/10.7 (12 at N = 128, below the
    dealiasing cut N/3)."""
    return Turbulence2D(
        size=size,
        viscosity=0.0,
        hyperviscosity=1e-12 * (128 / size) ** 8,
        drag=0.0,
        forcing="none",
        forcing_wavenumber=round(size * 12 / 128, 2),
        strength=0.0,
    )


@dataclass(frozen=True)
class DecayingConfig:
    """How :func:`simulate` draws snapshots of freely decaying flows.

    Parameters
    ----------
    flow : Turbulence2D
        Without forcing (``forcing="none"``); ``forcing_wavenumber`` is the centre k₀ of the
        initial vorticity's band (:func:`~rgfield.fields.turbulence.initial_vorticity`).
    duration : float
        Time at which each flow is saved (40: about 100 initial eddy turnovers for energy ½).
    energy : float
        Initial kinetic energy ½⟨|u|²⟩ of every flow.
    batch : int
        Flows integrated together.
    cfl, dt_max : float
        Time step dt = min(dt_max, cfl Δx / max|u|).
    dtype : {"float64", "float32"}
        Precision of the integration (the snapshots are stored as float32).
    """

    flow: Turbulence2D
    duration: float = 40.0
    energy: float = 0.5
    batch: int = 32
    cfl: float = 0.5
    dt_max: float = 0.05
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if not isinstance(self.flow, Turbulence2D):
            raise ValueError(f"flow must be a Turbulence2D; got {type(self.flow).__name__}")
        if self.flow.forcing != "none":
            raise ValueError(f"flow: a decaying flow has forcing 'none'; got {self.flow.forcing!r}")
        for name in ("duration", "energy", "cfl", "dt_max"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number; got {value!r}")
        if not is_integer(self.batch) or self.batch < 1:
            raise ValueError(f"batch must be a positive integer; got {self.batch!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}; got {self.dtype!r}")


def simulate(
    config: DecayingConfig,
    samples: int,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """``samples`` independent decaying flows, each saved at ``config.duration``.

    Flows are drawn ``config.batch`` at a time from one generator seeded with ``seed``, so the
    same seed and batch give the same fields.

    Parameters
    ----------
    config : DecayingConfig
    samples : int
        Flows, one snapshot each.
    seed : int, optional
        Default: fresh entropy; recorded in attrs.
    device : str
        Where to integrate.
    progress : bool
        A bar over the flows.

    Returns
    -------
    xarray.Dataset
        ``vorticity`` (sample, y, x) float32, and per sample its ``energy`` and ``enstrophy``
        at the start and the end (dims ``sample``, ``time`` = [0, duration]); attrs with every
        parameter, the seed and the number of steps.
    """
    if not isinstance(config, DecayingConfig):
        raise ValueError(f"config must be a DecayingConfig; got {type(config).__name__}")
    if not is_integer(samples) or samples < 1:
        raise ValueError(f"samples must be a positive integer; got {samples!r}")
    device = resolve_device(device)
    seed = fresh_seed() if seed is None else int(seed)
    generator = torch.Generator().manual_seed(seed)
    flow, dtype = config.flow, _DTYPES[config.dtype]
    fields, energy, enstrophy, steps = [], [], [], 0
    with _progress.progress("decaying flows", samples, enabled=progress) as on_flows:
        for start in range(0, samples, config.batch):
            n = min(config.batch, samples - start)
            w_hat = initial_vorticity(flow, n, generator, config.energy, dtype).to(device)
            before = (flow.energy(w_hat), flow.enstrophy(w_hat))
            w_hat, taken = integrate(
                flow, w_hat, config.duration, cfl=config.cfl, dt_max=config.dt_max
            )
            energy.append(torch.stack([before[0], flow.energy(w_hat)], 1))
            enstrophy.append(torch.stack([before[1], flow.enstrophy(w_hat)], 1))
            fields.append(torch.fft.irfft2(w_hat, s=(flow.size, flow.size)).float())
            steps += taken
            on_flows(n)
    attrs = {
        "generator": "rgfield.fields.decaying_turbulence.simulate",
        **{f.name: getattr(flow, f.name) for f in dataclass_fields(flow) if f.init},
        **{f.name: getattr(config, f.name) for f in dataclass_fields(config) if f.name != "flow"},
        "seed": seed,
        "steps": steps,
    }
    ds = to_dataset(torch.cat(fields), name="vorticity", attrs=attrs)
    budget = {"energy": energy, "enstrophy": enstrophy}
    return ds.assign(
        {k: (("sample", "time"), torch.cat(v).double().cpu().numpy()) for k, v in budget.items()}
    ).assign_coords(time=[0.0, float(config.duration)])
