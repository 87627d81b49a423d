"""``rgfield info``: versions of rgfield and its dependencies, threads and devices."""

from __future__ import annotations

import argparse
import os
import platform
from importlib import metadata

NAME = "info"
HELP = "versions of rgfield and its dependencies, and the devices found"

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
    del parser  # no options


def version_of(distribution: str) -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def run(args: argparse.Namespace) -> int:
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
