"""Score-matching fit of a :class:`~rgfield.rg.HierarchicalModel` from fields in chunks.

Every quantity a score-matching fit needs is a sum over fields: the scales γ_j² (mean squares
of the wavelet coefficients), H = Σ ∇Φ∇Φᵀ and b = Σ ΔΦ of every factor, the free energies'
normal equations, the held-out losses. So the data never need to be in memory together: each
chunk of fields is read, decomposed and summed where it lies (a Dask worker, or this process),
and only the sums, O(F²) per factor, travel. Three passes over the chunks:

1. the mean squares → γ (:func:`square_sums`);
2. with the feature families fitted to a pilot of the first training fields, H and b of the
   training and of the held-out fields, per factor (:func:`factor_sums`); the closed-form
   solve on the client gives θ;
3. with θ, the held-out losses per field and the free energies' normal equations
   (:func:`check_sums`).

With a pilot that covers the training fields, θ is the in-memory :meth:`HierarchicalModel.fit`
to rounding (the sums are added in another order). The refinement by moment matching is not
a sum: it runs one persistent chain per training field, so it needs them in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from rgfield import io
from rgfield.energies import ExponentialModel, FeatureFamily
from rgfield.energies.stationary import SpectralSums
from rgfield.rg.convexity import NO_FLOOR
from rgfield.rg.fitting import (
    NO_REFINEMENT,
    Fitted,
    assemble,
    check_losses,
    check_normalisable,
    factor_report,
)
from rgfield.rg.free_energy import accumulate_regression, free_energy_families, solve_free_energy
from rgfield.rg.parameters import Settings, check_parameters, factor_features
from rgfield.rg.scalar import maximum_likelihood_scalar
from rgfield.rg.scales import Scale, coarse_to_fine
from rgfield.rg.scorematching import accumulate, batch_size, new_families, sample_losses
from rgfield.scorematching import ScoreMatchingStatistics, fit_closed_form
from rgfield.wavelets import PyramidScales, checked_scales, decompose

__all__ = ["Chunk", "check_sums", "factor_sums", "fit_streaming", "square_sums"]

MapReduce = Callable[[Callable, Callable, str], object]
"""``map_reduce(function, combine, desc)``: ``combine`` (from None) of ``function(chunk)`` over
the chunks, ``desc`` naming the pass (:func:`rgfield.ensembles.tasks.map_reduce` bound to the
chunks and a client)."""


@dataclass(frozen=True)
class Chunk:
    """Fields ``start:stop`` of an ensemble, stored in the file ``path`` (variable ``var``)."""

    path: str
    start: int
    stop: int
    var: str | None = None

    def fields(self) -> torch.Tensor:
        from rgfield.rg.model import _fields

        x = _fields(io.load(self.path, self.var).values, self.path)
        if x.shape[0] != self.stop - self.start:
            raise ValueError(f"{self.path}: {x.shape[0]} fields; expected {self.stop - self.start}")
        return x

    def __str__(self) -> str:
        return f"fields {self.start}–{self.stop - 1} ({self.path})"


@dataclass(frozen=True)
class Sums:
    """Score-matching sums of one factor: training and held-out parts."""

    train: ScoreMatchingStatistics
    held: ScoreMatchingStatistics

    def __add__(self, other: Sums) -> Sums:
        return Sums(self.train.merged(other.train), self.held.merged(other.held))


@dataclass(frozen=True)
class Checks:
    """Pass-3 sums of one factor: Σℓ and Σℓ² of the held-out fields' losses and their count,
    and the free energy's normal equations and Σ‖t‖² (conditionals only)."""

    loss: float
    loss_square: float
    count: int
    free_train: tuple[ScoreMatchingStatistics, float] | None
    free_held: tuple[ScoreMatchingStatistics, float] | None

    def __add__(self, other: Checks) -> Checks:
        def add(a, b):
            return None if a is None else (a[0].merged(b[0]), a[1] + b[1])

        return Checks(
            self.loss + other.loss,
            self.loss_square + other.loss_square,
            self.count + other.count,
            add(self.free_train, other.free_train),
            add(self.free_held, other.free_held),
        )


@dataclass(frozen=True)
class Values:
    """(index, value) rows of the one-variable coarsest field, concatenated by ``+``."""

    rows: torch.Tensor

    def __add__(self, other: Values) -> Values:
        return Values(torch.cat([self.rows, other.rows]))

    def ordered(self) -> torch.Tensor:
        """The values in the order of the fields, shape (N, 1, 1, 1)."""
        return self.rows[self.rows[:, 0].argsort(), 1].reshape(-1, 1, 1, 1)


def _add(total, part):
    """Combine per-factor dicts (or tensors) of sums; None is the empty total."""
    if total is None:
        return part
    if isinstance(part, dict):
        return {name: total[name] + part[name] for name in part}
    return total + part


def _split(chunk: Chunk, n_train: int) -> tuple[slice, slice]:
    """The chunk's training rows and held-out rows (the held-out fields are the last ones)."""
    cut = min(max(n_train - chunk.start, 0), chunk.stop - chunk.start)
    return slice(0, cut), slice(cut, None)


def square_sums(chunk: Chunk, settings: Settings) -> torch.Tensor:
    """Pass 1: Σ x_J², Σ x̄_j² (j = 1..J) and Σ of every coefficient², float64 (J + 2,)."""
    pyramid = decompose(chunk.fields(), settings.levels, settings.wavelet)
    parts = [pyramid.low, *pyramid.details]
    squares = [p.square().sum() for p in parts]
    return torch.stack([*squares, sum(squares)])


def factor_sums(
    chunk: Chunk,
    settings: Settings,
    n_train: int,
    scales: PyramidScales,
    families: dict[str, list[FeatureFamily]],
) -> dict[str, Sums | Values]:
    """Pass 2: per factor, H and b of the chunk's training and held-out fields and the
    spectral sums of its training fields (``"<name> spectrum"``, for the chains' Gaussian
    starts); for a one-variable coarsest field its values instead (``"low values"``:
    (index, value) rows)."""
    pyramid = decompose(chunk.fields(), settings.levels, settings.wavelet)
    train, held = _split(chunk, n_train)
    sums = {}
    for scale in coarse_to_fine(scales):
        y, c = scale.variables(pyramid)
        batch = batch_size(families[scale.name], y)
        sums[scale.name] = Sums(
            *(
                accumulate(families[scale.name], y[part], None if c is None else c[part], batch)
                for part in (train, held)
            )
        )
        if y.shape[1:] == (1, 1, 1):
            index = torch.arange(chunk.start, chunk.stop, dtype=torch.float64)
            sums["low values"] = Values(torch.stack([index, y.reshape(-1)], dim=1))
        else:
            sums[f"{scale.name} spectrum"] = SpectralSums.of(
                y[train], None if c is None else c[train]
            )
    return sums


def check_sums(
    chunk: Chunk,
    settings: Settings,
    n_train: int,
    scales: PyramidScales,
    models: dict[str, ExponentialModel],
    free_families: dict[str, list[FeatureFamily]],
) -> dict[str, Checks]:
    """Pass 3: per factor, the held-out losses' sums and the free energy's normal equations."""
    pyramid = decompose(chunk.fields(), settings.levels, settings.wavelet)
    train, held = _split(chunk, n_train)
    checks = {}
    for scale in coarse_to_fine(scales):
        y, c = scale.variables(pyramid)
        model = models[scale.name]
        batch = batch_size(model.features, y)
        losses = torch.zeros(0, dtype=torch.float64)
        if y[held].shape[0]:
            losses = sample_losses(model, y[held], None if c is None else c[held], batch)
        free = None, None
        if scale.conditional:
            families = free_families[scale.name]
            step = batch_size(families, c.unsqueeze(1))
            free = tuple(
                accumulate_regression(model, families, y[part], c[part], step)
                for part in (train, held)
            )
        checks[scale.name] = Checks(
            float(losses.sum()), float(losses.square().sum()), len(losses), *free
        )
    return checks


def fit_streaming(
    params: Mapping,
    chunks: Sequence[Chunk],
    map_reduce: MapReduce,
    pilot: int,
) -> tuple[Fitted, tuple[int, int]]:
    """The three passes over ``chunks`` (the fields in order, N in all) and the solves.

    Parameters
    ----------
    params : mapping
        The model's parameters (``HierarchicalModel.get_params()``); ``refine`` must be 0.
    chunks : sequence of Chunk
    map_reduce : MapReduce
        Runs a pass (here, or on a Dask cluster).
    pilot : int
        Training fields (the first ones) that the feature families are fitted to (the
        potential's knots are quantiles of the data: not a sum).

    Returns
    -------
    Fitted
        Its reports' ``seconds`` are the wall time since the fit began, at each factor's row.
    tuple of int
        The fields' size.
    """
    from rgfield.rg.model import _refuse_discrete

    start = time.perf_counter()
    total = chunks[-1].stop
    pilot_fields = _pilot(chunks, min(pilot, total))  # read once: the size, then the pilot
    size = tuple(pilot_fields.shape[-2:])
    settings = check_parameters(params, size)
    if settings.min_curvature is not None:
        raise ValueError(
            "min_curvature: a fit from chunks is score matching only; the curvature floor"
            " probes training fields, in memory (fit in memory, or min_curvature=None)"
        )
    if any(settings.refine):
        raise ValueError(
            "refine: a fit from chunks is score matching only; the moment-matching refinement"
            " runs one chain per training field, in memory (fit in memory, or refine=0)"
        )
    n_train = total - int(round(settings.heldout * total))
    if n_train < 2:
        raise ValueError("data: too few samples left for training after the held-out split")
    pilot_fields = pilot_fields[:n_train]  # training fields only
    _refuse_discrete(pilot_fields)
    squares = map_reduce(partial(square_sums, settings=settings), _add, "scales (pass 1/3)")
    scales = _scales(squares, total, pilot_fields.shape[-2:], settings.levels)
    pyramid = decompose(pilot_fields, settings.levels, settings.wavelet)
    families, free_families, grids = {}, {}, {}
    for scale in coarse_to_fine(scales):
        y, c = scale.variables(pyramid)
        features = factor_features(settings.features, scale)
        families[scale.name] = new_families(features, y, c, settings.wavelet)
        if scale.conditional:
            free_families[scale.name] = free_energy_families(features, c, settings.wavelet)
        grids[scale.name] = y.shape[-1]
    sums = map_reduce(
        partial(factor_sums, settings=settings, n_train=n_train, scales=scales, families=families),
        _add,
        "score-matching sums (pass 2/3)",
    )
    models, fits = {}, {}
    for scale in coarse_to_fine(scales):
        models[scale.name], fits[scale.name] = _solve(scale, families, sums, settings)
        check_normalisable(scale.name, models[scale.name], fits[scale.name][0])
    checks = map_reduce(
        partial(
            check_sums,
            settings=settings,
            n_train=n_train,
            scales=scales,
            models=models,
            free_families=free_families,
        ),
        _add,
        "held-out losses, free energies (pass 3/3)",
    )
    rows, free_models, free_rows = [], [], []
    for scale in coarse_to_fine(scales):
        name, check = scale.name, checks[scale.name]
        method, fit, train_loss, heldout_loss = fits[name]
        se = float("nan")
        if check.count > 1:
            mean = check.loss / check.count
            variance = (check.loss_square - check.count * mean**2) / (check.count - 1)
            se = float(np.sqrt(max(variance, 0.0) / check.count))
        losses = (train_loss, heldout_loss, se)
        extra = {**NO_REFINEMENT, **NO_FLOOR}
        report = factor_report(method, families[name], fit, losses, extra, start)
        check_losses(name, report, held_out=total > n_train)
        rows.append({"scale": name, "grid": grids[name], **report})
        if scale.conditional:
            free, report = solve_free_energy(
                free_families[name], check.free_train, check.free_held, settings.ridges, start
            )
            free_models.append(free)
            free_rows.append({"scale": name, "grid": grids[name], **report})
    spectra = {name: sums[f"{name} spectrum"] for name in models if f"{name} spectrum" in sums}
    fitted = assemble(scales, models, free_models, rows, free_rows, spectra)
    return fitted, size


def _scales(squares: torch.Tensor, total: int, shape: Sequence[int], levels: int) -> PyramidScales:
    """γ from the pass-1 sums over ``total`` fields of ``shape``: root mean squares of x_J and
    of every x̄_j."""
    ny, nx = shape
    low = (squares[0] / (total * (ny >> levels) * (nx >> levels))).sqrt()
    details = [
        (squares[j] / (total * 3 * (ny >> j) * (nx >> j))).sqrt() for j in range(1, levels + 1)
    ]
    try:
        return checked_scales(PyramidScales(low, details), squares[-1] / (total * ny * nx))
    except ValueError as err:
        raise ValueError(
            "data: a scale has no fluctuations; the fields cannot be modelled"
        ) from err


def _pilot(chunks: Sequence[Chunk], n: int) -> torch.Tensor:
    """The first ``n`` fields, read chunk by chunk."""
    parts, count = [], 0
    for chunk in chunks:
        parts.append(chunk.fields()[: n - count])
        count += parts[-1].shape[0]
        if count == n:
            break
    return torch.cat(parts)


def _solve(
    scale: Scale, families: dict, sums: dict, settings: Settings
) -> tuple[ExponentialModel, tuple]:
    """θ of one factor from its sums: the closed-form score-matching solve, or for a
    one-variable coarsest field maximum likelihood on all its values (as in memory)."""
    part = sums[scale.name]
    fit = fit_closed_form(part.train, part.held, settings.ridges)
    theta, method = fit.theta, "score matching"
    train_loss, heldout_loss = fit.train_loss, fit.heldout_loss
    if "low values" in sums and not scale.conditional:
        theta = maximum_likelihood_scalar(families[scale.name], sums["low values"].ordered())
        method = "maximum likelihood"
        train_loss = part.train.loss(theta)
        heldout_loss = part.held.loss(theta) if part.held.count else float("nan")
    model = ExponentialModel(families[scale.name], theta)
    return model, (method, fit, train_loss, heldout_loss)
