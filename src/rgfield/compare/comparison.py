"""The numbers of a comparison, computed once: :func:`summary` → :class:`xarray.DataTree`.

Layout of the tree (and of summary.nc, one netCDF group per node):

- ``/``: coordinates ``ensemble`` (the labels), ``quantity`` (the paths of the nodes below);
  ``samples`` (fields per ensemble); ``max_abs_z`` (quantity, ensemble), the largest |z| of each
  statistic or observable set, ``rms_z`` the root mean square of its z (a distance between the
  ensembles in units of the combined standard errors: near 1 for two ensembles of one law,
  whatever the correlations between entries, since each z² has mean about 1), and ``entries``
  (quantity), how many z it has; ``z_threshold``
  (quantity, ensemble; :func:`z_threshold` of its entries with dof = min(n_ref, n) − 1) and
  ``failed`` (quantity, ensemble), true where the largest |z| exceeds it; attrs
  ``reference_samples``, ``reference_generator``, ``z_definition``, ``failure_level``,
  ``rgfield_version``.
- ``/statistics/<name>`` for every statistic of :data:`~rgfield.compare.statistics.STATISTICS`
  that applies (or those asked for): ``reference`` and ``reference_error`` (the reference's
  ensemble mean and its standard error), ``estimate`` and ``error`` (the same for each
  ensemble), ``ratio`` = estimate / reference and ``z``, with the statistic's own coordinates.
- ``/observables/<name>`` for each observable set (:mod:`rgfield.compare.observables`) chosen by
  the reference's generator: the same variables, estimates with blocked-jackknife errors.
- ``/pixels``: normalised KS statistic of all pixel values of each ensemble against the
  reference (``ks_vs_reference``), its median between two random halves of the reference over
  20 seeded halvings (``ks_reference_halves``, the level of two independent sets) and the
  fraction of those halvings at or above each ensemble's value (``ks_halves_at_or_above``, a
  p-value); ``ks_failed`` where no halving reaches it (p < 1/21).

z is defined in :func:`z_score`, the only definition in rgfield.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr

import rgfield
from rgfield import stats
from rgfield.compare.observables import OBSERVABLES, ObservableSet, observables_for
from rgfield.compare.statistics import STATISTICS, Statistic
from rgfield.io import as_tensor

__all__ = [
    "FAILURE_LEVEL",
    "KS_SPLITS",
    "Z_DEFINITION",
    "as_ensembles",
    "failures",
    "held",
    "summary",
    "z_score",
    "z_threshold",
]

KS_SPLITS = 20
"""Random halvings of the reference giving the KS statistic's null level."""
FAILURE_LEVEL = 0.01
"""Probability that a quantity of an ensemble drawn from the reference's law is flagged."""
Z_DEFINITION = (
    "z = (estimate - reference) / sqrt(reference_error^2 + error^2): the difference of the two"
    " ensemble estimates in units of their combined standard error"
)


def z_threshold(entries: int, level: float = FAILURE_LEVEL, dof: float | None = None) -> float:
    """The |z| that the largest of ``entries`` independent z exceeds with probability ``level``
    (Šidák's correction), for standard-normal z or, with ``dof``, Student-t z:

        t_m = F⁻¹(1 − (1 − (1 − level)^{1/m}) / 2),   F = Φ or the t distribution with dof.

    Standard errors estimated from n fields make z heavier-tailed than normal; with dof =
    min(n_reference, n) − 1 (as :func:`summary` uses) the level holds for small ensembles too
    (Welch's dof lies above it). For m = 1, level 0.01 and normal z it is 2.58; for m = 100,
    3.88. Correlated entries (neighbouring shells) make the test conservative (Šidák, JASA
    62, 626 (1967))."""
    from scipy.special import ndtri, stdtrit

    tail = -np.expm1(np.log1p(-level) / entries) / 2  # (1 − (1 − level)^{1/m}) / 2
    return float(-ndtri(tail) if dof is None else stdtrit(dof, 1 - tail))


def z_score(reference, reference_error, estimate, error):
    """The z-score of an ensemble's estimate against the reference's.

        z = (estimate − reference) / √(reference_error² + error²),

    the difference of the two estimates in units of the standard error of that difference
    (independent ensembles). For statistics, ``estimate`` is an ensemble mean of per-field values
    and ``error`` its standard error s/√n (s the scatter over the n fields, ddof = 1); for
    observables, an ensemble estimate and its blocked-jackknife error. If both ensembles follow
    one law, z is about standard normal for large ensembles; it grows like √n for a fixed
    difference. NaN where both errors are zero.

    Parameters
    ----------
    reference, reference_error, estimate, error : float, numpy arrays or xarray objects
        (broadcast together).
    """
    combined = np.hypot(reference_error, error)
    if isinstance(combined, xr.DataArray):
        combined = combined.where(combined > 0)
    else:
        combined = np.where(combined > 0, combined, np.nan)
    return (estimate - reference) / combined


def as_ensembles(reference, ensembles) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Check and convert the inputs of :func:`summary`: the reference and each ensemble as
    float64 tensors (sample, *spatial) of one field shape, at least 2 samples each, finite.

    ``ensembles`` is a mapping label → fields, or one ensemble (labelled ``"samples"``).
    Raises ``ValueError`` naming the argument.
    """
    if isinstance(ensembles, xr.Dataset):
        raise ValueError(
            "ensembles: give one ensemble (a DataArray or array) or a mapping label → fields,"
            " not a Dataset"
        )
    named = dict(ensembles) if isinstance(ensembles, Mapping) else {"samples": ensembles}
    if not named:
        raise ValueError("ensembles: give at least one ensemble")
    ref = _fields(reference, "reference")
    if not 1 <= ref.dim() - 1 <= 3:
        raise ValueError(
            "reference must be an ensemble (sample, *spatial) with 1 to 3 spatial dimensions;"
            f" got shape {tuple(ref.shape)}"
        )
    out = {}
    for label, fields in named.items():
        if not isinstance(label, str) or not label or label == "reference":
            raise ValueError(
                f"ensembles: labels must be non-empty strings other than 'reference'; got {label!r}"
            )
        x = _fields(fields, f"ensembles[{label!r}]")
        if x.shape[1:] != ref.shape[1:] or x.dim() != ref.dim():
            raise ValueError(
                f"ensembles[{label!r}]: fields of shape {tuple(x.shape[1:])} (ensemble"
                f" {tuple(x.shape)}); the reference's are {tuple(ref.shape[1:])}"
            )
        out[label] = x
    return ref, out


def _fields(fields, name: str) -> torch.Tensor:
    x = as_tensor(fields)
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(
            f"{name}: needs an ensemble (sample, *spatial) of at least 2 samples for a standard"
            f" error; got shape {tuple(x.shape)}"
        )
    x = x.double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or Inf")
    return x


def _names(chosen, registry: Mapping, kind: str) -> list[str]:
    names = [chosen] if isinstance(chosen, str) else list(chosen)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"{kind}: unknown {unknown}; registered: {sorted(registry)}")
    return names


def summary(
    reference,
    ensembles,
    *,
    statistics: str | Sequence[str] | None = None,
    observables: str | Sequence[str] | None = None,
    train=None,
) -> xr.DataTree:
    """Compare ensembles with a reference: every statistic and observable, computed once.

    Parameters
    ----------
    reference : array_like, shape (sample, *spatial)
        numpy, torch or an :class:`xarray.DataArray` (whose ``generator`` attr and name choose
        the observables), e.g. from :func:`rgfield.io.load`.
    ensembles : mapping label → array_like, or one array_like (labelled ``"samples"``)
        Ensembles of the reference's field shape, at least 2 samples each.
    statistics : str or sequence of str, optional
        Names in :data:`~rgfield.compare.statistics.STATISTICS`; by default every one that
        applies to the reference's fields.
    observables : str or sequence of str, optional
        Names in :data:`~rgfield.compare.observables.OBSERVABLES`; by default those matching
        the reference's generator (:func:`~rgfield.compare.observables.observables_for`);
        ``()`` for none.
    train : array_like, shape (sample, *spatial), optional
        The fields the generators were fitted to: adds the statistic ``memorisation``, each
        field's distance to its nearest training field (:func:`rgfield.stats.nearest_distance`,
        translations included), which for a reference of held-out fields is the yardstick of a
        generator that does not copy.

    Returns
    -------
    xarray.DataTree
        Described in :mod:`rgfield.compare.comparison`; z as in :func:`z_score`.

    Raises
    ------
    ValueError
        Inputs that are not ensembles of one field shape with 2 or more finite samples (see
        :func:`as_ensembles`), unknown names or a statistic that does not apply.
    """
    ref, named = as_ensembles(reference, ensembles)
    if statistics is None:
        wanted = [s for s in STATISTICS.values() if s.applies(ref)]
    else:
        wanted = [STATISTICS[n] for n in _names(statistics, STATISTICS, "statistics")]
    if observables is None:
        sets = observables_for(reference)
    else:
        sets = [OBSERVABLES[n] for n in _names(observables, OBSERVABLES, "observables")]
    for s in sets:
        missing = [n for n in s.requires if n not in STATISTICS]
        if missing:
            raise ValueError(f"observables: {s.name!r} requires unregistered statistics {missing}")
        wanted += [STATISTICS[n] for n in s.requires if STATISTICS[n] not in wanted]
    for s in wanted:
        if not s.applies(ref):
            raise ValueError(
                f"statistics: {s.name!r} does not apply to fields of shape {tuple(ref.shape[1:])}"
            )
    if train is not None:
        wanted.append(_memorisation(ref, train))
    everything = {"reference": ref, **named}
    per_field = {label: {} for label in everything}
    nodes = {}
    for statistic in wanted:
        measure = statistic.bind(ref)
        for label, fields in everything.items():
            per_field[label][statistic.name] = measure(fields)
        nodes[f"statistics/{statistic.name}"] = _statistic_node(
            statistic, {label: values[statistic.name] for label, values in per_field.items()}
        )
    for s in sets:
        estimates = {label: s.function(x, per_field[label]) for label, x in everything.items()}
        nodes[f"observables/{s.name}"] = _observable_node(s, estimates)
    nodes["pixels"] = _pixel_ks(ref, named)
    return xr.DataTree.from_dict({"/": _root(reference, ref, named, nodes), **nodes})


def _memorisation(reference: torch.Tensor, train) -> Statistic:
    """The statistic ``memorisation``: distance to the nearest of the ``train`` fields."""
    fields = _fields(train, "train")
    if fields.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"train: fields of shape {tuple(fields.shape[1:])}; the reference's are"
            f" {tuple(reference.shape[1:])}"
        )
    ndim = reference.dim() - 1
    return Statistic(
        "memorisation",
        lambda x: stats.nearest_distance(x, fields, ndim=ndim),
        title="Distance to the nearest training field (memorisation)",
        table=True,
    )


def failures(summary: xr.DataTree) -> dict[str, list[str]]:
    """Per ensemble label, the checks it fails: the quantities whose largest |z| exceeds their
    level (``failed``), then ``"pixels (KS)"`` when its KS statistic is above every halving of
    the reference. There are ``summary.sizes["quantity"] + 1`` checks in all."""
    failed = summary["failed"]
    ks_failed = summary["pixels"].to_dataset()["ks_failed"]
    out = {}
    for label in summary["ensemble"].values:
        names = [
            str(q) for q in failed["quantity"].values if failed.sel(quantity=q, ensemble=label)
        ]
        if bool(ks_failed.sel(ensemble=label)):
            names.append("pixels (KS)")
        out[str(label)] = names
    return out


def held(summary: xr.DataTree, group: str) -> list[str]:
    """Names of the statistics (``group="statistics"``) or observable sets
    (``"observables"``) a summary holds, in its order; none if it has no such group."""
    if group not in ("statistics", "observables"):
        raise ValueError(f"group must be 'statistics' or 'observables'; got {group!r}")
    return list(summary[group].children) if group in summary.children else []


def _compared(estimates: Mapping[str, xr.Dataset], attrs: Mapping) -> xr.Dataset:
    """``reference`` … ``z`` from the (estimate, error) Datasets of the reference and ensembles."""
    ref = estimates["reference"]
    labels = [label for label in estimates if label != "reference"]
    gen = xr.concat([estimates[label] for label in labels], dim="ensemble", coords="minimal")
    gen = gen.assign_coords(ensemble=labels)
    estimate, error = gen["estimate"], gen["error"]
    return xr.Dataset(
        {
            "reference": ref["estimate"],
            "reference_error": ref["error"],
            "estimate": estimate,
            "error": error,
            "ratio": estimate / ref["estimate"].where(ref["estimate"] != 0),
            "z": z_score(ref["estimate"], ref["error"], estimate, error),
        },
        attrs=dict(attrs),
    )


def _statistic_node(statistic: Statistic, values: Mapping[str, xr.DataArray]) -> xr.Dataset:
    def mean_and_error(v: xr.DataArray) -> xr.Dataset:
        n = v.sizes["sample"]
        return xr.Dataset(
            {"estimate": v.mean("sample"), "error": v.std("sample", ddof=1) / np.sqrt(n)}
        )

    attrs = {
        **values["reference"].attrs,
        "title": statistic.title,
        "errors": "standard error of the ensemble mean",
        "table": int(statistic.table),
    }
    return _compared({label: mean_and_error(v) for label, v in values.items()}, attrs)


def _observable_node(observables: ObservableSet, estimates: Mapping[str, xr.Dataset]) -> xr.Dataset:
    for label, estimate in estimates.items():
        if not (
            isinstance(estimate, xr.Dataset)
            and {"value", "error"} <= set(estimate.data_vars)
            and estimate["value"].dims == estimates["reference"]["value"].dims
        ):
            raise ValueError(
                f"observables {observables.name!r} must return a Dataset with 'value' and"
                f" 'error' of the same dims for every ensemble; got {estimate!r} for {label!r}"
            )
    attrs = {"title": observables.title, "errors": "blocked jackknife"}
    if observables.expected is not None:
        attrs.update(expected=observables.expected, expected_label=observables.expected_label)
    return _compared({k: e.rename(value="estimate") for k, e in estimates.items()}, attrs)


def _pixel_ks(reference: torch.Tensor, ensembles: Mapping[str, torch.Tensor]) -> xr.Dataset:
    """KS statistic of each ensemble's pixels against the reference's, beside its null spread.

    The null level is that of two independent sets: the statistic between the two halves of
    the reference, for :data:`KS_SPLITS` random (seeded) divisions of its fields. One division
    alone is a poor yardstick: on φ⁴ at L = 64 the statistic of 40 divisions of one ensemble
    ranged over a factor 3–10.
    """
    order = np.random.default_rng(0)
    half = reference.shape[0] // 2
    null = []
    for _ in range(KS_SPLITS):
        p = torch.as_tensor(order.permutation(reference.shape[0]))
        null.append(stats.ks_statistic(reference[p[:half]], reference[p[half:]]))
    null = np.array(null)
    observed = np.array([stats.ks_statistic(x, reference) for x in ensembles.values()])
    at_or_above = (null[None, :] >= observed[:, None]).mean(1)
    return xr.Dataset(
        {
            "ks_vs_reference": ("ensemble", observed),
            "ks_reference_halves": float(np.median(null)),
            "ks_halves_at_or_above": ("ensemble", at_or_above),
            "ks_failed": ("ensemble", at_or_above == 0),
        },
        coords={"ensemble": list(ensembles)},
        attrs={
            "title": "Pixel distribution",
            "definition": "normalised two-sample KS statistic D sqrt(nm/(n+m)) of all pixels",
            "splits": KS_SPLITS,
        },
    )


def _root(
    reference, ref: torch.Tensor, ensembles: Mapping[str, torch.Tensor], nodes: Mapping
) -> xr.Dataset:
    quantities = [path for path in nodes if path != "pixels"]
    largest, rms = [], []
    for path in quantities:
        z = abs(nodes[path]["z"]).transpose("ensemble", ...).values.reshape(len(ensembles), -1)
        largest.append(np.fmax.reduce(z, axis=1))  # NaN entries (no error) are skipped
        finite = np.isfinite(z)
        squares = np.where(finite, z, 0.0) ** 2
        rms.append(np.sqrt(squares.sum(1) / np.maximum(finite.sum(1), 1)))
    largest = np.array(largest).reshape(-1, len(ensembles))
    rms = np.where(np.isfinite(largest), np.array(rms).reshape(-1, len(ensembles)), np.nan)
    entries = np.array([nodes[p]["reference"].size for p in quantities])
    dof = [min(ref.shape[0], x.shape[0]) - 1 for x in ensembles.values()]
    thresholds = np.array([[z_threshold(m, dof=d) for d in dof] for m in entries])
    return xr.Dataset(
        {
            "max_abs_z": (("quantity", "ensemble"), largest),
            "rms_z": (("quantity", "ensemble"), rms),
            "entries": ("quantity", entries),
            "z_threshold": (("quantity", "ensemble"), thresholds),
            "failed": (("quantity", "ensemble"), largest > thresholds),  # NaN: False
        },
        coords={
            "quantity": quantities,
            "ensemble": list(ensembles),
            "samples": ("ensemble", [x.shape[0] for x in ensembles.values()]),
        },
        attrs={
            "reference_samples": ref.shape[0],
            "reference_generator": str(getattr(reference, "attrs", {}).get("generator", "")),
            "z_definition": Z_DEFINITION,
            "failure_level": FAILURE_LEVEL,
            "rgfield_version": rgfield.__version__,
        },
    )
