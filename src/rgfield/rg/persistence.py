"""Models as self-describing netCDF files: one variable per learned array, the spec in attrs.

Layout (``format_version`` 6; files of formats 5 (no burn-in curves), 4 (no calibration), 3
(no band), 2 (no chain starts) and 1 (written before it had a number) load too):

* attrs ``model`` (the class), ``format_version``, ``rgfield_version``, ``created`` and
  ``specification``: JSON with the constructor ``parameters``, the fitted ``levels`` and
  ``size``, and per factor (``low``, ``j1`` … ``jJ``, ``free1`` … ``freeJ``) the list of its feature
  families: registered name, scalar state, and the names of its array states;
* variables ``theta_<factor>`` (dim ``feature_<factor>``, labelled by feature), one
  ``<factor>_<i>_<name>`` per array state of family i, ``gamma`` (dim ``level``) and
  ``gamma_low``: the γ of :func:`rgfield.wavelets.estimate_scales`, and the fit reports
  ``fit_<column>`` (dim ``scale``) and ``free_fit_<column>`` (dim ``free_scale``);
* ``start_<factor>_root``, ``_offset``, ``_shape`` and ``_gain`` (conditionals only): the
  chains' Gaussian starts (:mod:`rgfield.energies.stationary`), complex values as (real,
  imaginary) on the last axis; files written before they existed load without them (chains
  then start from zero details, with a warning).
* ``band_empty`` (uint8, dims ``band_y``, ``band_x``), for a model of band-limited fields
  only: 1 on the Fourier modes without power in the training fields (:mod:`rgfield.rg.band`).
* ``calibration_step_size`` and ``calibration_tau`` (dim ``calibration_scale``, labelled by
  scale name; attr ``sampler``), for a calibrated model only (:mod:`rgfield.rg.calibration`);
  files without them load uncalibrated; with them, ``calibration_bias`` and
  ``calibration_bias_error`` (dims ``calibration_scale``, ``burn_in_observable``,
  ``burn_in_step``; NaN past a scale's steps and for a scale without them) hold the burn-in
  curves (:mod:`rgfield.rg.burnin`), absent in files calibrated before they were measured.

A family registered with :func:`rgfield.energies.register_feature` is saved and loaded through
its ``get_state`` / ``from_state`` with no change here.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import rgfield
from rgfield._modelfile import read_specification
from rgfield.energies import FEATURES, ExponentialModel
from rgfield.energies.stationary import GaussianStart
from rgfield.io import save
from rgfield.rg.band import Band
from rgfield.rg.burnin import BURN_IN_OBSERVABLES, as_rows
from rgfield.rg.sampling import SAMPLERS, Calibration
from rgfield.stats import mirrored
from rgfield.wavelets import PyramidScales

__all__ = ["FORMAT_VERSION", "from_dataset", "load", "read_calibration", "save_model", "to_dataset"]

FORMAT_VERSION = 6
_CLASS_NAMES = ("rgfield.rg.HierarchicalModel", "rgfield.hierarchy.HierarchicalModel")
_REPORTS = ("fit_", "free_fit_")
_START = "start_"
_CALIBRATION = ("calibration_step_size", "calibration_tau")
_BIAS = ("calibration_bias", "calibration_bias_error")


def _key(name: str) -> str:
    """The file's factor key of a scale name: ``"low"`` or ``"j=1"`` → ``"j1"``."""
    return name.replace("=", "")


def _factors(model) -> dict[str, ExponentialModel]:
    factors = {"low": model.low_}
    factors.update({f"j{j}": m for j, m in enumerate(model.conditionals_, start=1)})
    factors.update({f"free{j}": m for j, m in enumerate(model.free_energies_, start=1)})
    return factors


def to_dataset(model) -> xr.Dataset:
    """A fitted model as a Dataset (see the module docstring for the layout)."""
    data, families = {}, {}
    for key, factor in _factors(model).items():
        labels = [label for f in factor.features for label in f.labels]
        data[f"theta_{key}"] = xr.DataArray(
            factor.theta.numpy(), dims=f"feature_{key}", coords={f"feature_{key}": labels}
        )
        families[key] = []
        for i, family in enumerate(factor.features):
            scalars, arrays = {}, []
            for name, value in family.get_state().items():
                if isinstance(value, np.ndarray):
                    var = f"{key}_{i}_{name}"
                    data[var] = (tuple(f"{var}_{d}" for d in range(value.ndim)), value)
                    arrays.append(name)
                else:
                    scalars[name] = value
            families[key].append({"name": family.name, "state": scalars, "arrays": arrays})
    for name, start in model.starts_.items():
        for part, value in start.get_state().items():
            var = f"{_START}{_key(name)}_{part}"
            data[var] = (tuple(f"{var}_{d}" for d in range(value.ndim)), value)
    if model.band_ is not None:
        empty = model.band_.empty.cpu().numpy().astype(np.uint8)
        data["band_empty"] = (("band_y", "band_x"), empty)
    data.update(_calibration_variables(model.calibration_))
    scales = model.scales_
    data["gamma"] = ("level", torch.stack([g.reshape(()) for g in scales.details]).numpy())
    data["gamma_low"] = ((), float(scales.low))
    for name in model.fit_report_.data_vars:
        data[f"fit_{name}"] = model.fit_report_[name]
    free_report = model.free_energy_report_.rename(scale="free_scale")
    for name in free_report.data_vars:
        data[f"free_fit_{name}"] = free_report[name]
    params = {k: v for k, v in model.get_params().items() if k != "progress"}
    params["features"] = model.feature_spec()
    spec = {
        "parameters": params,
        "levels": model.levels_,
        "size": list(model.size_),
        "families": families,
    }
    attrs = {
        "model": _CLASS_NAMES[0],
        "format_version": FORMAT_VERSION,
        "rgfield_version": rgfield.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "specification": json.dumps(spec),
    }
    levels = np.arange(1, model.levels_ + 1)
    return xr.Dataset(data, coords={"level": levels}, attrs=attrs)


def save_model(model, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a fitted model to netCDF (atomically; never overwrites unless asked)."""
    return save(to_dataset(model), path, overwrite=overwrite)


def _specification(ds: xr.Dataset, source: str) -> dict:
    """The model specification of a file, or a ValueError saying what the file is instead."""
    spec = read_specification(
        ds,
        source,
        models=_CLASS_NAMES,
        format_version=FORMAT_VERSION,
        first_version=1,
        kind="model",
        how_to_make="fit one with `rgfield fit --data` first",
    )
    if "free1" not in spec.get("families", {}):
        raise ValueError(
            f"{source} holds a model without free energies (written by an rgfield before they"
            " existed); fit it again"
        )
    return spec


def _array_names(ds: xr.Dataset, prefix: str, entry: dict) -> list[str]:
    """Array states of one family: listed in the spec (format 2) or found by prefix (format 1)."""
    if "arrays" in entry:
        return list(entry["arrays"])
    return [v[len(prefix) :] for v in ds.data_vars if v.startswith(prefix)]


def from_dataset(ds: xr.Dataset, cls, source: str = "dataset", progress: bool = True):
    """Rebuild a fitted model from :func:`to_dataset`'s layout; checks every variable.

    Raises
    ------
    ValueError
        For a file that is not a model, a newer format, an unregistered feature family, a
        missing variable or a variable that is no part of the model.
    """
    spec = _specification(ds, source)
    levels = int(spec["levels"])
    expected = {"gamma", "gamma_low", "band_empty", *_CALIBRATION, *_BIAS}
    factors = {}
    for key, entries in spec["families"].items():
        families = []
        for i, entry in enumerate(entries):
            if entry["name"] not in FEATURES:
                raise ValueError(
                    f"{source}: feature family {entry['name']!r} is not registered (known:"
                    f" {sorted(FEATURES)}); import the module that registers it first"
                )
            prefix = f"{key}_{i}_"
            names = _array_names(ds, prefix, entry)
            expected.update(prefix + name for name in names)
            _require(ds, [prefix + name for name in names], source)
            state = dict(entry["state"])
            state.update({name: ds[prefix + name].values for name in names})
            families.append(FEATURES[entry["name"]].from_state(state))
        expected.add(f"theta_{key}")
        _require(ds, [f"theta_{key}"], source)
        factors[key] = ExponentialModel(families, torch.as_tensor(ds[f"theta_{key}"].values))
    _require(ds, ["gamma", "gamma_low"], source)
    foreign = [
        v for v in ds.data_vars if v not in expected and not v.startswith((*_REPORTS, _START))
    ]
    if foreign:
        raise ValueError(f"{source}: variables {foreign} are no part of an rgfield model")
    keys = [f"j{j}" for j in range(1, levels + 1)] + [f"free{j}" for j in range(1, levels + 1)]
    missing = [k for k in ["low", *keys] if k not in factors]
    if missing or ds["gamma"].size != levels:
        raise ValueError(f"{source}: the model of {levels} levels lacks factors {missing}")
    params = spec.get("parameters", spec)  # format 1 kept them beside the fitted levels
    names = cls().get_params()
    model = cls(**{k: params[k] for k in names if k in params}).set_params(progress=progress)
    gamma = torch.as_tensor(ds["gamma"].values)
    model.levels_, model.size_ = levels, tuple(spec["size"])
    model.scales_ = PyramidScales(
        low=torch.as_tensor(float(ds["gamma_low"].values), dtype=torch.float64),
        details=list(gamma),
    )
    model.low_ = factors["low"]
    model.conditionals_ = [factors[f"j{j}"] for j in range(1, levels + 1)]
    model.free_energies_ = [factors[f"free{j}"] for j in range(1, levels + 1)]
    model.fit_report_ = xr.Dataset({v[4:]: ds[v] for v in ds.data_vars if v.startswith("fit_")})
    free = {v[9:]: ds[v] for v in ds.data_vars if v.startswith("free_fit_")}
    model.free_energy_report_ = xr.Dataset(free).rename(free_scale="scale")
    model.starts_ = _starts(ds, levels, source)
    model.band_ = _band(ds, model.size_, source)
    model.calibration_ = read_calibration(ds, levels, source)
    return model


def _calibration_variables(calibration: dict[str, Calibration]) -> dict[str, xr.DataArray]:
    """The file's variables of a model's calibration (none for an uncalibrated model)."""
    if not calibration:
        return {}
    coords = {"calibration_scale": list(calibration)}
    attrs = {"sampler": next(iter(calibration.values())).sampler}
    variables = {
        var: xr.DataArray(
            [getattr(c, field) for c in calibration.values()],
            dims="calibration_scale",
            coords=coords,
            attrs=attrs,
        )
        for var, field in zip(_CALIBRATION, ("step_size", "tau"), strict=True)
    }
    steps = max(len(c.bias[0]) if c.bias else 0 for c in calibration.values())
    if steps:
        for var, field in zip(_BIAS, ("bias", "bias_error"), strict=True):
            table = np.full((len(calibration), len(BURN_IN_OBSERVABLES), steps), np.nan)
            for k, c in enumerate(calibration.values()):
                curves = np.array(getattr(c, field), dtype=float)
                if curves.size:
                    table[k, :, : curves.shape[1]] = curves
            variables[var] = xr.DataArray(
                table,
                dims=("calibration_scale", "burn_in_observable", "burn_in_step"),
                coords={**coords, "burn_in_observable": list(BURN_IN_OBSERVABLES)},
            )
    return variables


def read_calibration(ds: xr.Dataset, levels: int, source: str) -> dict[str, Calibration]:
    """The calibration stored in a file, by scale name (empty in files without one)."""
    present = [v for v in _CALIBRATION if v in ds.data_vars]
    if not present:
        if any(v in ds.data_vars for v in _BIAS):
            raise ValueError(f"{source}: burn-in curves without a calibration ({_CALIBRATION})")
        return {}
    if len(present) < len(_CALIBRATION):
        raise ValueError(
            f"{source}: the calibration lacks {sorted(set(_CALIBRATION) - set(present))}"
        )
    step, tau = (ds[v] for v in _CALIBRATION)
    sampler = step.attrs.get("sampler")
    names = {"low", *(f"j={j}" for j in range(1, levels + 1))}
    scales = [str(s) for s in step["calibration_scale"].values]
    values = np.concatenate([step.values, tau.values])
    if sampler not in SAMPLERS:
        raise ValueError(
            f"{source}: the calibration's sampler must be one of {SAMPLERS}; got {sampler!r}"
        )
    if not set(scales) <= names:
        raise ValueError(
            f"{source}: the calibration names scales {sorted(set(scales) - names)} that the model"
            f" of {levels} levels lacks"
        )
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"{source}: the calibration's steps and τ_int must be positive and finite")
    curves = _bias_curves(ds, len(scales), source)
    return {
        name: Calibration(sampler, float(h), float(t), *curves[k])
        for k, (name, h, t) in enumerate(zip(scales, step.values, tau.values, strict=True))
    }


def _bias_curves(ds: xr.Dataset, scales: int, source: str) -> list[tuple[tuple, tuple]]:
    """Per calibrated scale, its burn-in curves (bias, bias_error) as tuples of rows, the
    NaN padding dropped (empty where the file has none)."""
    present = [v for v in _BIAS if v in ds.data_vars]
    if not present:
        return [((), ())] * scales
    if len(present) < len(_BIAS):
        raise ValueError(f"{source}: the calibration lacks {sorted(set(_BIAS) - set(present))}")
    dims = ("calibration_scale", "burn_in_observable", "burn_in_step")
    if any(set(ds[v].dims) != set(dims) for v in _BIAS):
        raise ValueError(f"{source}: the calibration's burn-in curves must have dims {dims}")
    observables = [str(o) for o in ds["burn_in_observable"].values]
    if observables != list(BURN_IN_OBSERVABLES):
        raise ValueError(
            f"{source}: the calibration's burn-in curves must be of {list(BURN_IN_OBSERVABLES)};"
            f" got {observables}"
        )
    bias, error = (ds[v].transpose(*dims).values for v in _BIAS)
    curves = []
    for b, e in zip(bias, error, strict=True):
        steps = int(np.isfinite(b[0]).sum())
        b, e = b[:, :steps], e[:, :steps]
        if not (np.isfinite(b).all() and np.isfinite(e).all() and (e >= 0).all()):
            raise ValueError(
                f"{source}: the calibration's burn-in curves must be finite (errors ≥ 0) up to"
                " each scale's steps"
            )
        curves.append((as_rows(b), as_rows(e)))
    return curves


def _band(ds: xr.Dataset, size: tuple[int, ...], source: str) -> Band | None:
    """The band stored in a file (None for full-band fields and older files)."""
    if "band_empty" not in ds.data_vars:
        return None
    empty = ds["band_empty"].values
    if empty.shape != tuple(size) or not np.isin(empty, (0, 1)).all():
        raise ValueError(f"{source}: band_empty must be 0s and 1s of shape {tuple(size)}")
    empty = torch.as_tensor(empty == 1)
    if not torch.equal(empty, mirrored(empty)):
        raise ValueError(f"{source}: band_empty is not symmetric under k → −k")
    return Band(empty=empty)


def _starts(ds: xr.Dataset, levels: int, source: str) -> dict[str, GaussianStart]:
    """The Gaussian starts stored in a file, by scale name (none in older files)."""
    starts, known = {}, set()
    for name in ["low", *(f"j={j}" for j in range(1, levels + 1))]:
        prefix = f"{_START}{_key(name)}_"
        parts = {v[len(prefix) :]: ds[v].values for v in ds.data_vars if v.startswith(prefix)}
        if parts:
            needed = {"root", "offset", "shape"} | ({"gain"} if name != "low" else set())
            if set(parts) != needed:
                raise ValueError(
                    f"{source}: the start of factor {name} has arrays {sorted(parts)};"
                    f" expected {sorted(needed)}"
                )
            try:
                starts[name] = GaussianStart.from_state(parts)
            except ValueError as err:
                raise ValueError(f"{source}: the start of factor {name}: {err}") from err
            known.update(prefix + part for part in parts)
    stray = [v for v in ds.data_vars if v.startswith(_START) and v not in known]
    if stray:
        raise ValueError(f"{source}: variables {stray} are no part of an rgfield model")
    return starts


def _require(ds: xr.Dataset, names: list[str], source: str) -> None:
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise ValueError(f"{source}: the model file lacks variables {missing}")


def load(cls, path: str | os.PathLike, progress: bool = True):
    """Read a model written by :func:`save_model`; it samples exactly as the saved model did."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: {path} is not a file")
    try:
        ds = xr.load_dataset(path, engine="netcdf4")
    except (OSError, ValueError) as err:
        raise ValueError(f"path: {path} is not a netCDF file ({err})") from err
    return from_dataset(ds, cls, f"path: {path}", progress)
