"""Fitting an RG model to an ensemble directory without loading it: sums per chunk."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rgfield.ensembles import store
from rgfield.ensembles.tasks import map_reduce

if TYPE_CHECKING:
    from distributed import Client

    from rgfield.rg import HierarchicalModel

__all__ = ["DEFAULT_PILOT", "fit"]

DEFAULT_PILOT = 1024
"""Training fields the feature families (the potential's knots) are fitted to by default: the
only fields the client holds, 8 L² bytes each (0.5 GiB at L = 256). (In memory too, the
potential takes its quantiles from a subsample of at most 2²² values of a scale:
:meth:`~rgfield.energies.potential.ScalarPotential.fit`.)"""


def fit(
    model: HierarchicalModel,
    directory: str | os.PathLike,
    *,
    var: str | None = None,
    client: Client | None = None,
    pilot: int = DEFAULT_PILOT,
    retries: int = 2,
    progress: bool = True,
) -> HierarchicalModel:
    """Fit ``model`` by score matching to the ensemble in ``directory``
    (:func:`~rgfield.ensembles.generate`), chunk by chunk (:mod:`rgfield.rg.streaming`).

    Each chunk is read, decomposed and summed by the worker that gets it (or here), three
    passes in all; the client holds the sums, O(F²) per factor, never the fields. The held-out
    fields are the last ``model.heldout`` fraction, as in :meth:`~rgfield.rg.HierarchicalModel.fit`,
    and θ is that of the in-memory fit to rounding when ``pilot`` covers the training fields.

    Parameters
    ----------
    model : HierarchicalModel
        Unfitted (its parameters are used), with ``refine=0``.
    directory : path
        A complete ensemble directory.
    var : str, optional
        The variable to model (default: the only field).
    client : distributed.Client, optional
        Run the passes on this Dask cluster (the workers must see ``directory``).
    pilot : int
        The first ``pilot`` training fields fix the feature families (the potential's knots
        are quantiles of the data, not a sum); the client reads them, and no other field.
    retries : int
        Times a failed task is retried before the fit stops with an error naming the chunk.
    progress : bool
        A bar over the chunks of each pass.

    Returns
    -------
    HierarchicalModel
        ``model``, fitted.
    """
    from rgfield.rg.streaming import Chunk, fit_streaming

    if not isinstance(pilot, int) or pilot < 2:
        raise ValueError(f"pilot must be an integer ≥ 2; got {pilot!r}")
    directory = Path(directory).absolute()  # the workers may run elsewhere
    plan = store.complete_plan(directory)
    chunks = [
        Chunk(
            str(store.chunk_path(directory, i)), start, min(start + plan.chunk, plan.samples), var
        )
        for i, start in enumerate(range(0, plan.samples, plan.chunk))
    ]
    run = partial(map_reduce, items=chunks, client=client, retries=retries, progress=progress)
    fitted, size = fit_streaming(
        model.get_params(),
        chunks,
        lambda function, combine, desc: run(function, combine=combine, desc=desc),
        pilot,
    )
    return model.learn(fitted, size)
