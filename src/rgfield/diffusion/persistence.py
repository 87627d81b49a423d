"""Diffusion models as self-describing netCDF files: weights as variables, the rest in attrs.

Layout (``format_version`` 1): attrs ``model`` = ``rgfield.diffusion.DiffusionModel``,
``format_version``, ``rgfield_version``, ``created`` and ``specification`` (JSON: constructor
parameters, the noise process and its options, the UNet's configuration, the symmetries, the
seed, the training data's attrs and size, the training time, and the names of the denoiser's
state entries in order); variables ``state_<i>`` (one per entry of the EMA denoisers' state
dict, attr ``name``: ``members.<k>.…`` for the k-th network of the ensemble),
``whitening_amplitude`` (y, x) and ``whitening_mean``, and the training history ``loss``
(step), ``loss_by_sigma`` and ``examples_by_sigma`` (sigma). A file without ``networks`` in its
parameters (written before ensembles) holds one network under the names without the prefix.

Loading reads numbers only (no pickle), rebuilds the network from its configuration and
refuses a file of another kind, a newer format, a missing or surplus variable, or a weight of
the wrong shape, with a ValueError that says which.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime

import torch
import xarray as xr

import rgfield
from rgfield._modelfile import read_specification
from rgfield._validate import check_positive_integer
from rgfield.diffusion.augmentation import Symmetries
from rgfield.diffusion.denoisers import Ensemble, Preconditioned, UNet
from rgfield.diffusion.processes import make_process
from rgfield.diffusion.whitening import Whitening

__all__ = ["FORMAT_VERSION", "MODEL_NAME", "read", "to_dataset"]

FORMAT_VERSION = 1
MODEL_NAME = "rgfield.diffusion.DiffusionModel"
_HISTORY = ("loss", "loss_by_sigma", "examples_by_sigma")


def to_dataset(model) -> xr.Dataset:
    """A fitted :class:`~rgfield.diffusion.DiffusionModel` as a Dataset (layout above)."""
    state = model.denoiser_.state_dict()
    data = {}
    for i, (name, tensor) in enumerate(state.items()):
        values = tensor.detach().cpu().numpy()
        dims = tuple(f"state_{i}_{d}" for d in range(values.ndim))
        data[f"state_{i}"] = xr.Variable(dims, values, attrs={"name": name})
    data["whitening_amplitude"] = (("y", "x"), model.whitening_.amplitude.numpy())
    data["whitening_mean"] = ((), model.whitening_.mean)
    params = {k: v for k, v in model.get_params().items() if k not in ("progress", "device")}
    params["process"] = model.process_.name
    params["symmetries"] = model.symmetries_.to_dict()
    params["seed"] = model.seed_
    spec = {
        "parameters": params,
        "process_options": dataclasses.asdict(model.process_),
        "network": model.denoiser_.members[0].network.config,
        "size": list(model.size_),
        "data": model.data_attrs_,
        "training_seconds": model.training_seconds_,
        "state": list(state),
    }
    attrs = {
        "model": MODEL_NAME,
        "format_version": FORMAT_VERSION,
        "rgfield_version": rgfield.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "specification": json.dumps(spec),
        "parameters": model.n_parameters_,
    }
    ds = xr.Dataset(data, attrs=attrs)
    return ds.merge(model.history_[list(_HISTORY)])


def read(cls, path: str | os.PathLike, device: str = "cpu"):
    """The model of a file written by :func:`to_dataset` (see the module docstring)."""
    source = str(path)
    try:
        ds = xr.load_dataset(path, engine="netcdf4")
    except FileNotFoundError:
        raise
    except Exception as err:  # netCDF4 raises OSError, ValueError, ... for a foreign file
        raise ValueError(f"{source} is not a readable netCDF file ({err})") from err
    spec = read_specification(
        ds,
        source,
        models=(MODEL_NAME,),
        format_version=FORMAT_VERSION,
        first_version=1,
        kind="diffusion model",
        how_to_make="train one with `rgfield diffusion train` first",
    )
    try:
        names, params = list(spec["state"]), dict(spec["parameters"])
        # files written before these options existed were trained so (not today's defaults)
        params.setdefault("weighting", "edm")
        params.setdefault("lr_schedule", "constant")
        if "networks" not in params:  # one network, saved before ensembles existed
            params["networks"] = 1
            names = [f"members.0.{name}" for name in names]
        check_positive_integer(params["networks"], "networks")
        networks = [UNet(**spec["network"]) for _ in range(params["networks"])]
        process = make_process(params.pop("process"), **spec["process_options"])
        symmetries = Symmetries(**params.pop("symmetries"))
        # a Wiener skip's spectrum is a state entry: a tensor of its shape that
        # load_state_dict fills below
        wiener = params.get("skip") == "wiener"
        power = torch.ones(spec["size"], dtype=torch.float64) if wiener else None
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: an incomplete or invalid specification ({err})") from err
    expected = {f"state_{i}" for i in range(len(names))}
    expected |= {"whitening_amplitude", "whitening_mean", *_HISTORY}
    missing, surplus = expected - set(ds.data_vars), set(ds.data_vars) - expected
    if missing or surplus:
        raise ValueError(
            f"{source}: variables missing {sorted(missing)} or not part of the model"
            f" {sorted(surplus)}"
        )
    denoiser = Ensemble([Preconditioned(n, sigma_data=1.0, power=power) for n in networks])
    state = {name: torch.from_numpy(ds[f"state_{i}"].values.copy()) for i, name in enumerate(names)}
    try:
        denoiser.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{source}: the weights do not fit the network ({err})") from err
    model = cls(**params, process=process, symmetries=symmetries, device=device)
    model.process_, model.symmetries_, model.seed_ = process, symmetries, int(params["seed"])
    model.denoiser_ = denoiser.to(device).eval()
    model.whitening_ = Whitening(
        float(ds["whitening_mean"]), torch.from_numpy(ds["whitening_amplitude"].values.copy())
    )
    model.history_ = ds[list(_HISTORY)]
    model.training_seconds_ = float(spec["training_seconds"])
    model.n_parameters_ = sum(p.numel() for p in denoiser.parameters())
    model.size_ = tuple(spec["size"])
    model.data_attrs_ = dict(spec["data"])
    return model
