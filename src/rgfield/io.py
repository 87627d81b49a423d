"""Ensembles of fields as xarray objects and netCDF files; conversion at the package's edge.

Convention (docs/conventions.md): an ensemble is an :class:`xarray.Dataset` with dims
``(sample, y, x)`` (``(sample, z, y, x)`` in 3D), one data variable per field, and attrs naming the
``generator``, every parameter, the ``seed``, the ``rgfield_version`` and the ``created`` time.
Files are netCDF4, compressed, written atomically, never overwritten unless asked.
"""

from __future__ import annotations

import os
import uuid
import warnings
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import rgfield

__all__ = ["FIELD_DIMS", "as_tensor", "check_finite", "example_path", "load", "save", "to_dataset"]

FIELD_DIMS = {2: ("sample", "y", "x"), 3: ("sample", "z", "y", "x")}
"""Dimension names of an ensemble of 2D or 3D fields."""

_INT64 = np.iinfo(np.int64)


def as_tensor(x, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """A torch tensor view (no copy where possible) of a numpy array, tensor or DataArray.

    Floating arrays keep their precision; integer and boolean arrays become the default float
    dtype (float32 unless changed). ``dtype`` and ``device`` convert explicitly.
    """
    if isinstance(x, xr.DataArray):
        x = x.values
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray | np.generic | list | tuple | float | int):
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"expected a real numeric array; got dtype {arr.dtype}")
        if not arr.dtype.isnative:  # e.g. big-endian data from a file
            arr = arr.astype(arr.dtype.newbyteorder("="))
        t = torch.from_numpy(np.require(arr, requirements="C"))
    else:
        raise ValueError(
            f"expected a numpy array, torch tensor or xarray DataArray; got {type(x).__name__}"
        )
    if dtype is None and not (t.is_floating_point() or t.is_complex()):
        dtype = torch.get_default_dtype()
    return t.to(dtype=dtype, device=device)


def check_finite(values, name: str) -> None:
    """Raise a ValueError if ``values`` (an array, tensor or DataArray) holds NaN or ±Inf.

    The message names ``name`` and counts the bad values; reading, writing, the wavelet
    pyramid and the statistics all refuse such data with it, so a user learns at once where
    they came in instead of meeting NaN spectra later."""
    x = as_tensor(values)
    if torch.isfinite(x.sum()):  # one fast reduction: NaN and ±Inf make the sum non-finite
        return
    bad = x.numel() - int(torch.isfinite(x).sum())  # (or a finite sum overflowed)
    if bad:
        raise ValueError(f"{name} contains {bad} NaN or Inf values")


def _check_attrs(attrs: Mapping) -> dict:
    """netCDF-storable attrs: str, int, float, bool (stored as 0/1) or 1D numeric sequences."""
    clean = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"attrs: keys must be non-empty strings without '/'; got {key!r}")
        if isinstance(value, bool | np.bool_):
            value = int(value)
        elif isinstance(value, int | np.integer):
            if not _INT64.min <= value <= _INT64.max:
                raise ValueError(f"attrs[{key!r}]: integer {value} does not fit in 64 bits")
            value = int(value)
        elif isinstance(value, float | np.floating):
            value = float(value)
        elif isinstance(value, list | tuple | np.ndarray):
            arr = np.asarray(value)
            if arr.ndim != 1 or arr.dtype.kind not in "iuf":
                raise ValueError(
                    f"attrs[{key!r}]: sequences must be 1D and numeric to be stored in netCDF;"
                    f" got {value!r}"
                )
            value = arr.astype(np.float64) if arr.dtype.kind == "f" else arr.astype(np.int64)
        elif not isinstance(value, str):
            raise ValueError(
                f"attrs[{key!r}]: netCDF stores str, int, float, bool or 1D numeric arrays;"
                f" got {type(value).__name__} (flatten dicts into separate keys)"
            )
        clean[key] = value
    return clean


def to_dataset(fields, name: str = "field", attrs: Mapping | None = None) -> xr.Dataset:
    """An ensemble Dataset in rgfield's convention.

    Parameters
    ----------
    fields : array_like, shape (sample, y, x) or (sample, z, y, x); a single (y, x) field is
        given a sample dimension of length 1. numpy, torch (moved to CPU) or xarray.
    name : str
        Name of the data variable.
    attrs : mapping, optional
        Provenance: ``generator``, every parameter, ``seed``. ``rgfield_version`` and ``created``
        (UTC, ISO 8601) are added unless given. Values must be storable in netCDF.

    Returns
    -------
    xarray.Dataset
    """
    values = as_tensor(fields).detach().cpu().numpy()
    if values.ndim == 2:
        values = values[None]
    if values.ndim not in (3, 4):
        raise ValueError(
            f"fields must have shape (sample, y, x) or (sample, z, y, x); got {values.shape}"
        )
    if not name or not isinstance(name, str):
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    meta = {
        "generator": "user",
        "rgfield_version": rgfield.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    meta.update(_check_attrs(attrs or {}))
    dims = FIELD_DIMS[values.ndim - 1]
    return xr.Dataset({name: (dims, values)}, attrs=meta)


def save(ds: xr.Dataset | xr.DataArray, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write an ensemble to netCDF4 (zlib-compressed), atomically.

    The data go to a temporary file in the target directory which is renamed onto ``path`` only
    once complete, so an interrupted write never leaves a partial file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    if isinstance(ds, xr.DataArray):  # e.g. from load(): its attrs are the ensemble's
        attrs = ds.attrs
        ds = ds.drop_attrs(deep=False).to_dataset(name=ds.name or "field")
        ds.attrs = attrs
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"ds must be an xarray Dataset or DataArray; got {type(ds).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path: {path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    if not path.parent.is_dir():
        raise ValueError(f"path: directory {path.parent} does not exist")
    ds = ds.copy()
    ds.attrs = _check_attrs(ds.attrs)
    for name in ds.variables:
        ds[name].attrs = _check_attrs(ds[name].attrs)
        if ds[name].dtype.kind == "f" and ds[name].dtype.itemsize < 4:
            raise ValueError(f"ds[{name!r}]: {ds[name].dtype} is not storable; use float32")
        if ds[name].dims in FIELD_DIMS.values():  # what load would refuse to read back
            check_finite(ds[name], f"{path}: variable {name!r}")
    encoding = {
        v: {"zlib": True, "complevel": 4} for v in ds.data_vars if ds[v].dtype.kind in "iuf"
    }
    # a unique name beside the target, created by the writer with the usual permissions
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path appeared meanwhile: never a silent overwrite
    except FileExistsError as err:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load(path: str | os.PathLike, var: str | None = None) -> xr.DataArray:
    """Read an ensemble of fields from netCDF or zarr (any producer, e.g. xarray) or a numpy
    ``.npy``/``.npz`` file.

    Parameters
    ----------
    path : path to a netCDF file, a zarr store (a ``.zarr`` directory), an ensemble directory
        of :func:`rgfield.ensembles.generate`, or a ``.npy`` / ``.npz`` file holding
        (sample, y, x), (sample, z, y, x) or single (y, x) arrays.
    var : str, optional
        The variable (netCDF, zarr) or array name (.npz) to read. By default the only one with
        2 to 4 dimensions (for netCDF and zarr, one already in rgfield's dims is preferred).

    Returns
    -------
    xarray.DataArray
        Dims ``(sample, y, x)`` or ``(sample, z, y, x)``, loaded in memory, attrs = the file's
        global attrs updated with the variable's. When the file used other dimension names they
        are renamed positionally (a warning says so) and recorded in attrs ``source_dims``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Not a readable file of these formats, a missing or ambiguous variable, unusable
        dimensions, or NaN/Inf.
    """
    path = Path(path)
    if path.suffix == ".zarr" and path.is_dir():
        da = _read_dataset(path, var, engine="zarr")
    elif (path / "ensemble.json").is_file():
        da = _read_ensemble(path, var)
    elif path.is_dir():
        raise ValueError(f"path: {path} is a directory; a zarr store's name ends in .zarr")
    elif not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    elif path.suffix in (".npy", ".npz"):
        da = _read_numpy(path, var)
    else:
        da = _read_dataset(path, var, engine="netcdf4")
    return _as_ensemble(da, path)


def _read_numpy(path: Path, var: str | None) -> xr.DataArray:
    """The array of a .npy file, or the named (or only) array of 2 to 4 dims of a .npz file."""
    try:
        with open(path, "rb") as handle:  # closed also when numpy fails half-way
            content = np.load(handle, allow_pickle=False)
            if isinstance(content, np.ndarray):
                arrays = {var or "field": content}
            else:
                with content:
                    arrays = {n: content[n] for n in content.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"path: {path} is not a readable {path.suffix} file ({err})") from err
    if var is not None and var not in arrays:
        raise ValueError(f"var: {path} has no array {var!r}; it has {sorted(arrays)}")
    # one array is the field, whatever its shape (checked below); of several, the one field
    fields = (
        list(arrays) if len(arrays) == 1 else [n for n, a in arrays.items() if 2 <= a.ndim <= 4]
    )
    if var is None and len(fields) != 1:
        raise ValueError(
            f"var: {path} holds {'no' if not fields else 'several'} arrays with 2 to 4"
            f" dimensions ({sorted(fields)} among {sorted(arrays)}); pass var="
        )
    name = var or fields[0]
    values = arrays[name]
    dims = {2: FIELD_DIMS[2][1:], 3: FIELD_DIMS[2], 4: FIELD_DIMS[3]}.get(values.ndim)
    if dims is None:
        raise ValueError(
            f"{path}: array {name!r} has shape {values.shape}; expected (sample, y, x),"
            " (sample, z, y, x) or a single (y, x) field"
        )
    return xr.DataArray(values, dims=dims, name=name)


def _read_dataset(path: Path, var: str | None, engine: str) -> xr.DataArray:
    """The chosen variable of a netCDF file or zarr store, in memory, with the global attrs."""
    kind = "zarr store" if engine == "zarr" else "netCDF file"
    # metadata read array by array: stores with and without consolidated metadata alike
    options = {"consolidated": False} if engine == "zarr" else {}
    try:
        ds = xr.open_dataset(path, engine=engine, **options)
    except (OSError, ValueError) as err:
        raise ValueError(f"path: {path} is not a readable {kind} ({err})") from err
    with ds:
        if "specification" in ds.attrs and "model" in ds.attrs:  # see rgfield.rg.persistence
            raise ValueError(
                f"path: {path} is a model file ({ds.attrs['model']}), not an ensemble of"
                " fields; sample from it with `rgfield sample --model` (rgfield.rg.load)"
            )
        return _loaded_variable(ds, var, path)


def _read_ensemble(path: Path, var: str | None) -> xr.DataArray:
    """The chosen variable of an ensemble directory (rgfield.ensembles), in memory."""
    from rgfield.ensembles import open_ensemble

    with open_ensemble(path) as ds:
        return _loaded_variable(ds, var, path)


def _loaded_variable(ds: xr.Dataset, var: str | None, path: Path) -> xr.DataArray:
    """The chosen variable loaded in memory, its attrs updating the Dataset's."""
    da = _pick_variable(ds, var, path).load()
    da.attrs = {**ds.attrs, **da.attrs}
    return da


def _pick_variable(ds: xr.Dataset, var: str | None, path: Path) -> xr.DataArray:
    if var is not None:
        if var not in ds.data_vars:
            raise ValueError(f"var: {path} has no variable {var!r}; it has {sorted(ds.data_vars)}")
        return ds[var]
    candidates = [v for v in ds.data_vars if 2 <= ds[v].ndim <= 4]
    conventional = [v for v in candidates if ds[v].dims in FIELD_DIMS.values()]
    chosen = conventional if len(conventional) == 1 else candidates
    if len(chosen) != 1:
        raise ValueError(
            f"var: {path} holds {'no' if not chosen else 'several'} field variables with 2 to 4"
            f" dimensions ({sorted(chosen)} among {sorted(ds.data_vars)}); pass var="
        )
    return ds[chosen[0]]


def _as_ensemble(da: xr.DataArray, path: Path) -> xr.DataArray:
    if da.ndim == 2:
        da = da.expand_dims("sample")
    if da.ndim not in (3, 4):
        raise ValueError(
            f"{path}: variable {da.name!r} has dims {da.dims}; expected (sample, y, x),"
            " (sample, z, y, x) or a single (y, x) field"
        )
    if da.dtype.kind not in "biuf":
        raise ValueError(f"{path}: variable {da.name!r} has non-numeric dtype {da.dtype}")
    target = FIELD_DIMS[da.ndim - 1]
    if set(da.dims) == set(target):  # rgfield's names in another order: go by name
        da = da.transpose(*target)
    if da.dims != target:
        source = tuple(str(d) for d in da.dims)
        temporary = [f"_rgfield_dim{i}" for i in range(da.ndim)]
        da = da.rename(dict(zip(source, temporary, strict=True)))
        da = da.rename(dict(zip(temporary, target, strict=True)))
        da.attrs["source_dims"] = " ".join(source)
        warnings.warn(
            f"load: took variable {da.name!r} of {path.name} with dims {source} as {target}",
            stacklevel=3,
        )
    check_finite(da, f"{path}: variable {da.name!r}")
    return da


def example_path(name: str = "phi4_L32_beta0.9244.nc") -> Path:
    """Path of a reference ensemble shipped with rgfield (see data/README.md).

    ``"phi4_L32_beta0.9244.nc"``: 500 decorrelated 32×32 φ⁴ configurations at the measured
    critical coupling β = 0.9244, λ = 1. ``"turbulence_L32_train.nc"`` and
    ``"turbulence_L32_heldout.nc"``: 96 vorticity snapshots of 32² forced 2D turbulence each,
    from independent flows.
    """
    from importlib.resources import files

    folder = files("rgfield") / "data"
    available = sorted(p.name for p in folder.iterdir() if p.name.endswith(".nc"))
    if name not in available:
        raise ValueError(f"name: no shipped ensemble {name!r}; available: {available}")
    return Path(str(folder / name))
