"""What every model file shares: its specification attr, checked before anything is read."""

from __future__ import annotations

import json
from collections.abc import Collection

import xarray as xr

import rgfield

__all__ = ["read_specification"]


def read_specification(
    ds: xr.Dataset,
    source: str,
    *,
    models: Collection[str],
    format_version: int,
    first_version: int,
    kind: str,
    how_to_make: str,
) -> dict:
    """The JSON ``specification`` of a model file whose ``model`` attr is one of ``models``,
    or a ValueError saying what the file is instead: an ensemble of fields (then
    ``how_to_make`` says how to make a ``kind``), a file of another kind, a format newer than
    ``format_version`` (``first_version`` is that of a file without the attr) or broken JSON."""
    if "specification" not in ds.attrs or ds.attrs.get("model") not in models:
        if "sample" in ds.dims:
            raise ValueError(
                f"{source} is an ensemble of fields (dims {tuple(ds.dims)}), not a {kind};"
                f" {how_to_make}"
            )
        raise ValueError(f"{source} is not a {kind} written by rgfield (no model specification)")
    version = int(ds.attrs.get("format_version", first_version))
    if version > format_version:
        raise ValueError(
            f"{source} has {kind} format {version}; this rgfield ({rgfield.__version__}) reads"
            f" up to {format_version}: upgrade rgfield"
        )
    try:
        return json.loads(ds.attrs["specification"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: the model specification is not valid JSON ({err})") from err
