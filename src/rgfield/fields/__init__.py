"""Simulators of physical fields: the training data of rgfield's models.

Every simulator is called the same way::

    ds = simulate(config, samples, *, seed=None, device="cpu", progress=True)

``config`` is a frozen dataclass of the physics and the numerical options, validated when it is
made (a ``ValueError`` names the argument); ``samples`` is the ensemble size. The result is an
:class:`xarray.Dataset` in rgfield's convention (docs/conventions.md): dims ``(sample, y, x)`` or
``(sample, z, y, x)``, attrs with the ``generator``, every parameter, the ``seed`` (a fresh one
when none is given), ``rgfield_version`` and ``created``. ``progress`` shows a bar, drawn by the
driver ``simulate``; the algorithms underneath only report their steps (:mod:`rgfield._progress`).

- ``phi4`` (:class:`phi4.Phi4Config`): lattice φ⁴ by Wolff, Metropolis or HMC chains;
- ``turbulence`` (:class:`turbulence.TurbulenceConfig`): forced 2D Navier–Stokes vorticity;
- ``decaying_turbulence`` (:class:`decaying_turbulence.DecayingConfig`): freely decaying 2D
  flows, each saved at one time;
- ``cosmic`` (:class:`cosmic.CosmicConfig`): the cosmic web by 2LPT, Zel'dovich or log-normal;
- ``gaussian`` (:class:`gaussian.GaussianConfig`): stationary Gaussian fields of a spectrum.

:data:`SIMULATORS` maps each name to its config class and ``simulate``; :func:`simulate`
dispatches on the type of the config, so callers (the command line, ensembles) need no branch
per simulator. A simulator's module is imported when it is first looked up: ``import
rgfield.fields`` loads neither torch nor numba.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from functools import partial
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    import xarray as xr

__all__ = ["SIMULATORS", "Simulator", "resolve_device", "simulate", "spectrum_attrs"]


@dataclass(frozen=True)
class Simulator:
    """A registered simulator: ``simulate(config(...), samples, *, seed, device, progress)``."""

    name: str
    config: type
    simulate: Callable[..., xr.Dataset]


_TABLE = {  # name → (module, config class)
    "phi4": ("rgfield.fields.phi4", "Phi4Config"),
    "turbulence": ("rgfield.fields.turbulence", "TurbulenceConfig"),
    "decaying_turbulence": ("rgfield.fields.decaying_turbulence", "DecayingConfig"),
    "cosmic": ("rgfield.fields.cosmic", "CosmicConfig"),
    "gaussian": ("rgfield.fields.gaussian", "GaussianConfig"),
}


class _Registry(Mapping[str, Simulator]):
    """name → :class:`Simulator`, importing a simulator's module on first look-up."""

    def __getitem__(self, name: str) -> Simulator:
        if name not in _TABLE:
            raise KeyError(f"no simulator {name!r}; registered: {sorted(_TABLE)}")
        module_name, config = _TABLE[name]
        module = import_module(module_name)
        return Simulator(name, getattr(module, config), module.simulate)

    def __iter__(self) -> Iterator[str]:
        return iter(_TABLE)

    def __len__(self) -> int:
        return len(_TABLE)


SIMULATORS: Mapping[str, Simulator] = _Registry()
"""The simulators by name (``SIMULATORS["phi4"].config``, ``.simulate``)."""


def simulate(
    config,
    samples: int,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """Run the simulator whose config ``config`` is (see the module docstring).

    Raises
    ------
    ValueError
        If ``config`` is not the config of a registered simulator.
    """
    for name, (module, _) in _TABLE.items():
        # a config's module is imported by the time the config exists: look only there
        if module in sys.modules and isinstance(config, SIMULATORS[name].config):
            return SIMULATORS[name].simulate(
                config, samples, seed=seed, device=device, progress=progress
            )
    expected = ", ".join(f"{module.rsplit('.', 1)[-1]}.{cls}" for module, cls in _TABLE.values())
    raise ValueError(f"config must be one of {expected}; got {type(config).__name__}")


def resolve_device(device: str | torch.device, argument: str = "device") -> torch.device:
    """The :class:`torch.device` of ``device``, refusing names torch does not know and devices
    this machine does not have (``"cuda"`` without CUDA, ``"cuda:3"`` with two GPUs, ``"mps"``
    off Apple silicon).

    Raises
    ------
    ValueError
        Naming ``argument``: an unknown device string, a device type other than cpu, cuda and
        mps, or an unavailable device.
    """
    import torch

    expected = "expected cpu, cuda, cuda:N or mps"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{argument}: unknown device {device!r}; {expected}") from err
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{argument}: {device!r} needs CUDA, which is not available here")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"{argument}: no device {device!r}; found {count} CUDA device(s)")
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{argument}: {device!r} (Apple GPU) is not available here")
    elif resolved.type != "cpu":
        raise ValueError(f"{argument}: unsupported device {device!r}; {expected}")
    return resolved


def spectrum_attrs(spectrum: Callable) -> dict:
    """Provenance of a power spectrum: ``spectrum`` (its class or function name) and its
    parameters as ``spectrum_<name>``: the fields of a dataclass such as
    :class:`cosmic.EisensteinHu`, or the keywords of a :func:`functools.partial`."""
    if is_dataclass(spectrum) and not isinstance(spectrum, type):
        name, parameters = type(spectrum).__name__, asdict(spectrum)
    elif isinstance(spectrum, partial):
        name, parameters = spectrum.func.__qualname__, spectrum.keywords
    else:  # a plain callable: its name is all there is to record
        name, parameters = getattr(spectrum, "__qualname__", type(spectrum).__name__), {}
    return {"spectrum": name, **{f"spectrum_{k}": v for k, v in parameters.items()}}
