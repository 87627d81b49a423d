"""``rgfield info [FILE]``: versions, threads and devices; or what a file holds."""

from __future__ import annotations

import argparse
import os
import platform
from importlib import metadata

NAME = "info"
HELP = (
    "versions of rgfield and its dependencies and the devices found; with FILE, what an"
    " ensemble or model file holds"
)

# (label, distribution): read from the installed metadata, so nothing is imported for them
PACKAGES = (
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("torch", "torch"),
    ("numba", "numba"),
    ("xarray", "xarray"),
    ("netCDF4", "netCDF4"),
    ("pywt", "PyWavelets"),
    ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"),
    ("kymatio", "kymatio"),  # test extra: the independent reference of the scattering filters
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        help="an ensemble (netCDF or .npy) or a model file to describe",
    )


def version_of(distribution: str) -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def run(args: argparse.Namespace) -> int:
    if args.file is not None:
        print(describe(args.file))
        return 0
    import numba
    import torch

    import rgfield

    rows = [("rgfield", rgfield.__version__), ("python", platform.python_version())]
    rows += [(label, version_of(distribution)) for label, distribution in PACKAGES]
    rows.append(
        (
            "cpu",
            f"{os.cpu_count()} cores; torch threads {torch.get_num_threads()},"
            f" numba threads {numba.get_num_threads()}",
        )
    )
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            rows.append((f"cuda:{i}", torch.cuda.get_device_name(i)))
    else:
        rows.append(("cuda", "no device found"))
    if torch.backends.mps.is_available():
        rows.append(("mps", "available"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def describe(path: str) -> str:
    """What a file holds: an ensemble (dims, sizes, generator and parameters, pixel mean and
    standard deviation) or a fitted model (scales, feature families, parameter counts)."""
    from pathlib import Path

    import xarray as xr

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"file: no such file {file}")
    if file.suffix != ".npy":
        try:
            with xr.open_dataset(file, engine="netcdf4") as ds:
                if "specification" in ds.attrs and "model" in ds.attrs:
                    return _describe_model(file, ds)
        except (OSError, ValueError) as err:
            raise ValueError(f"file: {file} is not a readable netCDF file ({err})") from err
    return _describe_ensemble(file)


def _describe_ensemble(file) -> str:
    import numpy as np

    from rgfield import io

    da = io.load(file)
    mean, std = float(np.mean(da.values)), float(np.std(da.values))
    lines = [
        f"{file}: ensemble of {da.sizes['sample']} fields of"
        f" {' × '.join(str(da.sizes[d]) for d in da.dims[1:])} ({da.dtype})",
        f"  variable {da.name!r}, dims {da.dims}",
        f"  pixel mean {mean:.4g}, standard deviation {std:.4g}",
    ]
    attrs = {k: v for k, v in da.attrs.items() if k not in ("Conventions",)}
    lines += [f"  {key} = {_short(value)}" for key, value in attrs.items()]
    return "\n".join(lines)


def _describe_model(file, ds) -> str:
    import json

    spec = json.loads(ds.attrs["specification"])
    size = " × ".join(str(n) for n in spec.get("size", []))
    lines = [
        f"{file}: {ds.attrs['model']} (format {ds.attrs.get('format_version', 1)}, written by"
        f" rgfield {ds.attrs.get('rgfield_version', '?')} on {ds.attrs.get('created', '?')})",
        f"  fitted on fields of {size}: {spec.get('levels')} conditionals and the coarsest field",
        f"  parameters: {json.dumps(spec.get('parameters', {}))}",
    ]
    total = 0
    for factor, families in spec.get("families", {}).items():
        theta = f"theta_{factor}"
        count = int(ds[theta].size) if theta in ds else 0
        total += count
        names = ", ".join(family["name"] for family in families)
        lines.append(f"  {factor:<7} {count:>6} θ  ({names})")
    lines.append(f"  {total} parameters in all")
    from rgfield.rg.calibration import describe
    from rgfield.rg.persistence import read_calibration

    lines.append(f"  {describe(read_calibration(ds, int(spec['levels']), str(file)))}")
    return "\n".join(lines)


def _short(value, limit: int = 70) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
