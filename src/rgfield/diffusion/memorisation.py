"""The generalisation test of Kadkhodaie et al. (ICLR 2024, "Generalization in diffusion models
arises from geometry-adaptive harmonic representations"), for ensembles of periodic fields.

For each training-set size N, two models of the same architecture, options and seed are trained
on two disjoint sets of N fields, and sampled from the same initial noise with a deterministic
sampler. Then per generated pair (x_A, x_B):

* ``agreement``: the correlation coefficient of x_A and x_B over the pixels. Two models that
  generalise learn the same density, so they map the same noise to nearly the same field;
* ``nearest_a``, ``nearest_b``: each sample's distance to its nearest training field over all
  periodic shifts, relative to an unrelated field (:func:`rgfield.stats.nearest_distance`):
  near 0 for a copy of a training field, near the held-out fields' value (``nearest_heldout``,
  the same distance for fields the model never saw) when the sample is new.

Memorisation at small N shows as ``nearest`` ≈ 0 and low agreement (each model returns its own
training fields); generalisation at large N as ``nearest`` ≈ ``nearest_heldout`` and agreement
near 1.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from rgfield import io
from rgfield._progress import progress as progress_bar
from rgfield.stats import nearest_distance

__all__ = ["crossover", "generalisation"]


def _correlation(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Pearson correlation of each pair of fields over their pixels."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).numpy()


def generalisation(
    data,
    sizes,
    *,
    model_options: dict | None = None,
    samples: int = 16,
    heldout: int = 64,
    sampler: str = "heun",
    sampler_steps: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """Run the two-model test for each N of ``sizes`` (see the module docstring).

    Parameters
    ----------
    data : array (sample, y, x), DataArray or path
        Fields: the first ``2 max(sizes)`` are split into the two training sets (set A fields
        0 … N − 1, set B fields max(sizes) … max(sizes) + N − 1), the last ``heldout`` give
        the held-out yardstick; they must not overlap.
    sizes : sequence of int
    model_options : dict, optional
        Options of :class:`~rgfield.diffusion.DiffusionModel` (``steps``, ``width``, ...).
    samples : int
        Fields drawn from each model.
    sampler, sampler_steps : the deterministic sampler (``heun``, ``ddim``, ``euler``) and
        its noise levels.
    seed : int
        Seed of both models' training, and of the initial noise (the same for both).

    Returns
    -------
    xarray.Dataset
        Dims (size, sample): ``agreement``, ``nearest_a``, ``nearest_b``; dims (size, heldout):
        ``nearest_heldout``; attrs with the options.
    """
    from rgfield.diffusion.model import DiffusionModel

    model_options = dict(model_options or {})

    if sampler not in ("heun", "ddim", "euler"):
        raise ValueError(f"sampler must be deterministic (heun, ddim, euler); got {sampler!r}")
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"sizes must be positive integers; got {sizes}")
    fields = io.as_tensor(io.load(data) if isinstance(data, str) else data, torch.float32)
    largest = sizes[-1]
    if 2 * largest + heldout > len(fields):
        raise ValueError(
            f"data: {len(fields)} fields; two training sets of {largest} and {heldout} held-out"
            f" fields need {2 * largest + heldout}"
        )
    held = fields[-heldout:]
    results = {k: [] for k in ("agreement", "nearest_a", "nearest_b", "nearest_heldout")}
    seconds = []
    with progress_bar("training-set sizes", total=len(sizes), enabled=progress) as on_step:
        for n in sizes:
            sets = fields[:n], fields[largest : largest + n]
            draws = []
            for training in sets:
                model = DiffusionModel(seed=seed, progress=False, **model_options)
                model.fit(training)
                seconds.append(model.training_seconds_)
                draws.append(
                    torch.as_tensor(
                        model.sample(
                            samples,
                            sampler=sampler,
                            steps=sampler_steps,
                            churn=0.0,
                            seed=seed,
                            progress=False,
                        )["field"].values
                    )
                )
            results["agreement"].append(_correlation(*draws))
            results["nearest_a"].append(nearest_distance(draws[0], sets[0]).values)
            results["nearest_b"].append(nearest_distance(draws[1], sets[1]).values)
            results["nearest_heldout"].append(nearest_distance(held, sets[0]).values)
            on_step()
    ds = xr.Dataset(
        {
            name: (("size", "heldout" if name == "nearest_heldout" else "sample"), np.stack(v))
            for name, v in results.items()
        },
        coords={"size": sizes},
    )
    ds.attrs.update(
        sampler=sampler,
        sampler_steps=sampler_steps,
        seed=seed,
        samples=samples,
        training_seconds=float(np.sum(seconds)),
        **{f"model_{k}": str(v) for k, v in model_options.items()},
    )
    return ds


def crossover(result: xr.Dataset, agreement: float = 0.9) -> int | None:
    """The smallest N from which on the median agreement is at least ``agreement`` and the
    median nearest-training distance of both models is at least 90 % of the held-out fields'
    (None if no N qualifies)."""
    median = result.median("sample")
    yardstick = result["nearest_heldout"].median("heldout")
    good = (
        (median["agreement"] >= agreement)
        & (median["nearest_a"] >= 0.9 * yardstick)
        & (median["nearest_b"] >= 0.9 * yardstick)
    ).values
    for i in range(len(good)):
        if good[i:].all():
            return int(result["size"].values[i])
    return None
