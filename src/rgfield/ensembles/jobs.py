"""What an ensemble is made of: a *job* draws ``n`` samples from one seed.

A job is a small picklable object with two methods::

    job.run(n, seed)  -> xarray.Dataset   # n samples (dim ``sample``), rgfield's attrs
    job.describe()    -> dict              # JSON-able: what the job is, for the manifest

:func:`rgfield.ensembles.generate` calls ``run`` once per block of samples with the block's own
seed, on whichever worker gets the block; ``describe`` lets a rerun check that it resumes the
same ensemble. ``run`` must depend on nothing but ``n`` and ``seed``.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["DiffusionSampling", "Job", "ModelSampling", "Simulation", "Synthesis", "fingerprint"]


class Job(Protocol):
    """``run(n, seed)`` draws n samples from one seed; ``describe()`` says what it draws."""

    def run(self, n: int, seed: int) -> xr.Dataset: ...

    def describe(self) -> dict: ...


def fingerprint(*arrays: Any) -> str:
    """SHA-256 of the bytes, dtypes and shapes of ``arrays`` (numpy, torch or xarray), first
    16 hex digits: identifies a fitted model or a target without storing it."""
    digest = hashlib.sha256()
    for array in arrays:
        values = np.ascontiguousarray(
            array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
        )
        digest.update(f"{values.dtype}{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()[:16]


def _plain(value: Any) -> Any:
    """``value`` as JSON that is the same in every process: dataclasses as dicts, tuples as
    lists, functions by module and name (a partial with its arguments), anything else by repr."""
    if is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **{k: _plain(v) for k, v in asdict(value).items()}}
    if isinstance(value, partial):
        return {"function": _plain(value.func), **_plain({"args": value.args, **value.keywords})}
    if callable(value):
        name = getattr(value, "__qualname__", type(value).__qualname__)
        return f"{getattr(value, '__module__', '')}.{name}"
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


@dataclass(frozen=True)
class Simulation:
    """Samples of a simulator of :mod:`rgfield.fields`: ``simulate(config, n, seed=seed)``.

    Parameters
    ----------
    config :
        The simulator's config (``Phi4Config``, ``TurbulenceConfig``, ...).
    device : str
        Where each block is simulated.
    """

    config: Any
    device: str = "cpu"

    def run(self, n: int, seed: int) -> xr.Dataset:
        from rgfield import fields

        return fields.simulate(self.config, n, seed=seed, device=self.device, progress=False)

    def describe(self) -> dict:
        return {"job": "simulation", "config": _plain(self.config), "device": self.device}


@dataclass(frozen=True)
class ModelSampling:
    """Fields drawn from a fitted :class:`~rgfield.rg.HierarchicalModel`:
    ``model.sample(n, seed=seed, **options)``, the n fields of a block as n batched chains.

    Parameters
    ----------
    model : HierarchicalModel
        Fitted.
    options : dict
        Keywords of :meth:`~rgfield.rg.HierarchicalModel.sample` other than ``n`` and ``seed``
        (``steps``, ``warmup``, ``sampler``, ``device``, ...).
    """

    model: Any
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model.check_fitted()
        forbidden = {"n", "seed"} & set(self.options)
        if forbidden:
            raise ValueError(f"options: {sorted(forbidden)} are set per block by generate")

    def run(self, n: int, seed: int) -> xr.Dataset:
        quiet = copy.copy(self.model).set_params(progress=False)  # the driver shows the bar
        return quiet.sample(n, seed=seed, **self.options).to_dataset()

    def describe(self) -> dict:
        state = self.model.to_dataset()
        model = fingerprint(*(state[name] for name in sorted(state.data_vars)))
        return {"job": "rg sampling", "model": model, "options": _plain(self.options)}


@dataclass(frozen=True)
class DiffusionSampling:
    """Fields drawn from a trained :class:`~rgfield.diffusion.DiffusionModel`:
    ``model.sample(n, seed=seed, **options)`` for the n fields of a block.

    Parameters
    ----------
    model : DiffusionModel
        Trained (or loaded).
    options : dict
        Keywords of :meth:`~rgfield.diffusion.DiffusionModel.sample` other than ``n``, ``seed``
        and ``progress`` (``sampler``, ``steps``, ``batch``, ``churn``, ...).
    """

    model: Any
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model.check_fitted()
        forbidden = {"n", "seed", "progress"} & set(self.options)
        if forbidden:
            raise ValueError(f"options: {sorted(forbidden)} are set per block by generate")

    def run(self, n: int, seed: int) -> xr.Dataset:
        return self.model.sample(n, seed=seed, progress=False, **self.options)

    def describe(self) -> dict:
        from rgfield.diffusion.persistence import to_dataset

        state = to_dataset(self.model).drop_attrs()
        model = fingerprint(*(state[name] for name in sorted(state.data_vars)))
        # the churn as resolved, so a rerun under another default is another job
        from rgfield.diffusion.model import DEFAULT_SAMPLER, default_churn

        sampler = self.options.get("sampler", DEFAULT_SAMPLER)
        options = {"churn": default_churn(sampler), **self.options}
        return {"job": "diffusion sampling", "model": model, "options": _plain(options)}


@dataclass(frozen=True)
class Synthesis:
    """Fields of microcanonical scattering synthesis
    (:func:`rgfield.microcanonical.synthesize`) matching the statistics of ``target``.

    Parameters
    ----------
    target : array_like, shape (M, N) or (k, M, N)
        The fields whose statistics are matched.
    options : dict
        Keywords of :func:`~rgfield.microcanonical.synthesize` other than ``n``, ``seed`` and
        ``progress``.
    source : str, optional
        Where the target came from (a file name), recorded in the attrs as ``source``.
    """

    target: Any
    options: dict = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        forbidden = {"n", "seed", "progress"} & set(self.options)
        if forbidden:
            raise ValueError(f"options: {sorted(forbidden)} are set per block by generate")

    def run(self, n: int, seed: int) -> xr.Dataset:
        from rgfield.microcanonical import synthesize

        result = synthesize(self.target, n=n, seed=seed, progress=False, **self.options)
        ds = result.to_dataset()
        if self.source is not None:
            ds.attrs["source"] = self.source
        return ds

    def describe(self) -> dict:
        return {
            "job": "microcanonical synthesis",
            "target": fingerprint(self.target),
            "options": _plain(self.options),
        }
