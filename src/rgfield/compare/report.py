"""Validation reports: a :func:`~rgfield.compare.summary` written as ``report.md``,
``summary.nc`` and ``figures/*.png`` into one directory, atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from rgfield.compare import plots
from rgfield.compare.comparison import failures, held
from rgfield.compare.comparison import summary as summarise

__all__ = ["REPORT_FILES", "check_report_path", "markdown", "save_report", "write_report"]

REPORT_FILES = frozenset({"report.md", "summary.nc", "figures"})
"""What a report directory holds; only such a directory is ever replaced."""


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _number(v: float, spec: str) -> str:
    return "–" if not np.isfinite(v) else format(v, spec)


def _coordinate(v: np.ndarray) -> str:
    v = v.item()
    return format(v, ".4g") if isinstance(v, float) else str(v)


def _table(node: xr.Dataset, thresholds: xr.DataArray) -> list[str]:
    """One row per entry: the reference, then each ensemble with its ratio and z; a z beyond
    its ``thresholds`` (per ensemble: the summary's ``z_threshold`` of this node) is bold and
    marked ✗."""
    labels = [str(label) for label in node["ensemble"].values]
    dims = node["reference"].dims
    suffix = (lambda label: f" ({label})") if len(labels) > 1 else (lambda label: "")
    header = [", ".join(dims) or "value", "reference"]
    for label in labels:
        header += [label, f"ratio{suffix(label)}", f"z{suffix(label)}"]
    lines = [_row(header), _row(["---", *["---:"] * (len(header) - 1)])]
    for index in np.ndindex(node["reference"].shape):
        entry = node.isel(dict(zip(dims, index, strict=True)))
        cells = [", ".join(_coordinate(entry[d].values) for d in dims) or "–"]
        cells.append(_pm(entry["reference"], entry["reference_error"]))
        for label in labels:
            e = entry.sel(ensemble=label)
            cells += [
                _pm(e["estimate"], e["error"]),
                _number(float(e["ratio"]), ".3f"),
                _flagged(float(e["z"]), float(thresholds.sel(ensemble=label)), "+.2f"),
            ]
        lines.append(_row(cells))
    return lines


def _flagged(z: float, threshold: float, spec: str) -> str:
    """A z (or |z|) as text, bold with ✗ beyond ``threshold``."""
    text = _number(z, spec)
    return f"**{text} ✗**" if abs(z) > threshold else text


def _pm(value: xr.DataArray, error: xr.DataArray) -> str:
    return f"{_number(float(value), '.4g')} ± {_number(float(error), '.2g')}"


def markdown(summary: xr.DataTree, figures: Sequence[str] = ()) -> str:
    """report.md of a summary: the largest |z| of every statistic and observable set, the
    pixel KS statistic, full tables of the small statistics and of the observables, and links
    to ``figures/<name>`` for each name in ``figures``."""
    labels = [str(label) for label in summary["ensemble"].values]
    counts = ", ".join(
        f"{label} ({int(n)} fields)"
        for label, n in zip(labels, summary["samples"].values, strict=True)
    )
    generator = summary.attrs.get("reference_generator") or "unknown generator"
    lines = [
        "# Validation report",
        "",
        f"{counts} against {summary.attrs['reference_samples']} reference fields"
        f" ({generator}). Errors are one standard error: of the ensemble mean for statistics,"
        " blocked jackknife for observables. z = (estimate − reference) / √(error_ref² +"
        " error²), the difference in units of the combined standard error; for one law it is"
        " about standard normal, so the largest of m entries is typically √(2 ln m).",
        "",
        *_verdict(summary, labels),
        "",
        "## Largest |z|",
        "",
        "Each cell: the largest |z| / the level t_m above which it fails; in brackets the rms"
        " of all its z, a distance that is about 1 between two ensembles of one law.",
        "",
        _row(["quantity", "entries", *labels]),
        _row(["---", *["---:"] * (len(labels) + 1)]),
    ]
    for quantity in summary["quantity"].values:
        row = summary.to_dataset()[["max_abs_z", "z_threshold", "rms_z"]].sel(quantity=quantity)
        entries = int(summary["entries"].sel(quantity=quantity))
        cells = []
        for label in labels:
            z, t, rms = (
                float(row[v].sel(ensemble=label)) for v in ("max_abs_z", "z_threshold", "rms_z")
            )
            cells.append(f"{_flagged(z, t, '.2f')} / {t:.2f} ({rms:.2f})")
        lines.append(_row([str(quantity), str(entries), *cells]))
    px = summary["pixels"].to_dataset()
    lines += [
        "",
        "## Pixel distribution",
        "",
        "Normalised two-sample Kolmogorov–Smirnov statistic D √(nm/(n+m)) of all pixel values"
        " against the reference's; between two random halves of the reference it is"
        f" {float(px['ks_reference_halves']):.2f} (median of {px.attrs['splits']} halvings: the"
        " level of two independent sets). Last column: the fraction of those halvings at or"
        " above the ensemble's value (a p-value).",
        "",
        _row(["ensemble", "KS vs reference", "halvings at or above"]),
        _row(["---", "---:", "---:"]),
    ]
    for label in labels:
        p = px.sel(ensemble=label)
        lines.append(
            _row(
                [
                    label,
                    f"{float(p['ks_vs_reference']):.2f}",
                    f"{100 * float(p['ks_halves_at_or_above']):.0f} %",
                ]
            )
        )
    thresholds = summary["z_threshold"]
    for name in held(summary, "statistics"):
        path = f"statistics/{name}"
        node = summary[path]
        if node.attrs.get("table"):
            table = _table(node.to_dataset(), thresholds.sel(quantity=path))
            lines += ["", f"## {node.attrs.get('title', name)}", "", *table]
    for name in held(summary, "observables"):
        path = f"observables/{name}"
        node = summary[path]
        title = f"## Observables: {node.attrs.get('title', name)} ({node.attrs['errors']})"
        lines += ["", title, "", *_table(node.to_dataset(), thresholds.sel(quantity=path))]
        if "expected" in node.attrs:
            lines += ["", f"({node.attrs['expected_label']}.)"]
    lines += ["", "## Figures", ""]
    lines += [f"![{f}](figures/{f})" for f in figures]
    return "\n".join(lines) + "\n"


def _verdict(summary: xr.DataTree, labels: Sequence[str]) -> list[str]:
    """The pass/fail summary: per ensemble, the quantities whose largest |z| exceeds the level
    that an ensemble of the reference's law exceeds with probability ``failure_level``, and
    the pixel KS statistic when it is above every halving of the reference."""
    level = summary.attrs["failure_level"]
    lines = [
        "## Summary",
        "",
        f"A quantity fails when its largest |z| over its m entries exceeds t_m, the level that m"
        f" independent z exceed with probability {level:g} (Šidák, with Student-t z of"
        " min(n_reference, n) − 1 degrees of freedom; correlated entries make it conservative);"
        " the pixel distribution fails when its KS statistic is above every halving of the"
        " reference.",
        "",
    ]
    failed = failures(summary)
    for label in labels:
        names = failed[label]
        verdict = f"**FAIL** on {', '.join(names)}" if names else "pass"
        lines.append(f"- {label}: {verdict}")
    if len(labels) > 1:
        total = summary.sizes["quantity"] + 1  # and the pixel distribution
        ranked = sorted(labels, key=lambda label: len(failed[label]))  # stable: ties keep order
        cells = ", ".join(f"{label} ({len(failed[label])} of {total} failed)" for label in ranked)
        lines += ["", f"Ranking, fewest failed checks first: {cells}."]
    return lines


def check_report_path(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse, before any work, a report directory :func:`save_report` could not write: a
    file name, an existing path without ``overwrite`` or that is not an rgfield report, a
    missing parent directory (``ValueError`` or ``FileExistsError`` naming ``out``)."""
    out = Path(out)
    if out.suffix in (".nc", ".npy", ".md", ".png"):
        raise ValueError(f"out: {out} names a file; a report is a directory (e.g. report/)")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (or --overwrite) to replace it")
    if out.exists() and not (out.is_dir() and REPORT_FILES <= {p.name for p in out.iterdir()}):
        raise ValueError(f"out: {out} exists and is not an rgfield report; it is left untouched")
    if not out.parent.is_dir():
        raise ValueError(f"out: directory {out.parent} does not exist")
    return out


def save_report(
    summary: xr.DataTree,
    out: str | os.PathLike,
    *,
    model=None,
    overwrite: bool = False,
    examples: Mapping[str, object] | None = None,
) -> Path:
    """Write a summary as a report directory: ``report.md`` (:func:`markdown`),
    ``summary.nc`` (the tree, one netCDF group per node; read it back with
    :func:`xarray.open_datatree`) and ``figures/*.png`` (:func:`rgfield.compare.plots.figures`).

    Parameters
    ----------
    summary : xarray.DataTree
        From :func:`rgfield.compare.summary`.
    out : path of the directory to create.
    model : fitted :class:`~rgfield.rg.HierarchicalModel`, optional
        Adds the learned potentials per scale.
    overwrite : bool
        Replace ``out`` if it holds an earlier report (any other existing path is refused).
    examples : mapping label → fields, optional
        The reference's and the ensembles' fields (2D): adds ``fields.png``, a few fields of
        each in one row (:func:`rgfield.compare.plots.example_fields`).

    The report is assembled in a temporary directory beside ``out`` and moved into place when
    complete, so an interrupted run leaves no partial report.

    Raises
    ------
    ValueError
        ``out`` names a file, exists and is not a report, or its parent does not exist.
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    """
    out = check_report_path(out, overwrite)
    figures = plots.figures(summary, model)
    if examples is not None and all(len(np.shape(f)) == 3 for f in examples.values()):
        figures = {"fields.png": plots.example_fields(examples), **figures}
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (work / "figures").mkdir()
        for name, fig in figures.items():
            fig.savefig(work / "figures" / name, dpi=110)
        summary.to_netcdf(work / "summary.nc")
        (work / "report.md").write_text(markdown(summary, list(figures)))
        work.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def write_report(
    reference,
    ensembles,
    out: str | os.PathLike,
    *,
    model=None,
    overwrite: bool = False,
    observables: str | Sequence[str] | None = None,
    statistics: str | Sequence[str] | None = None,
) -> Path:
    """Compare ensembles with a reference and write the report directory.

    :func:`~rgfield.compare.summary` then :func:`save_report`; the output path is checked
    first, before any statistic is computed.

    Parameters
    ----------
    reference : array_like, shape (sample, *spatial)
        numpy, torch or xarray (a DataArray's ``generator`` attr chooses the observables).
    ensembles : mapping label → array_like, or one array_like (labelled ``"samples"``)
    out : path of the directory to create.
    model : fitted :class:`~rgfield.rg.HierarchicalModel`, optional
        Adds the learned potentials per scale.
    overwrite : bool
        Replace ``out`` if it holds an earlier report (any other existing path is refused).
    observables : str or sequence of str, optional
        Observable sets to compare; by default those of the reference's generator.
    statistics : str or sequence of str, optional
        Statistics to compare; by default every registered one that applies.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    check_report_path(out, overwrite)
    result = summarise(reference, ensembles, statistics=statistics, observables=observables)
    named = ensembles if isinstance(ensembles, Mapping) else {"samples": ensembles}
    examples = {"reference": reference, **named}  # summary has checked them
    return save_report(result, out, model=model, overwrite=overwrite, examples=examples)
