"""Every generative pathway of rgfield, fitted to one simulated training ensemble and judged
against held-out simulations: the run behind ``rgfield pathways``.

::

    from rgfield.pathways import run

    result = run("turbulence", size=32, train=96, held_out=96, samples=96, out="pathways/")
    print(result.costs)                      # one row per pathway: parameters, times, evaluations
    result.summary.max_abs_z.to_pandas()     # the comparison (rgfield.compare.summary)

A *kind* (:data:`KINDS`) says how to simulate a data set of a given size; a *pathway*
(:data:`PATHWAYS`) fits itself to the training fields and generates new ones, reporting what it
cost. The training and held-out ensembles are independent simulations (separate chains, flows or
boxes, seeds ``seed`` and ``seed + 1``); the comparison uses the held-out fields as the reference
and the training fields for the memorisation test.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import torch
import xarray as xr

from rgfield._validate import is_integer

__all__ = [
    "KINDS",
    "PATHWAYS",
    "DiffusionPathway",
    "Generated",
    "Kind",
    "Pathway",
    "PathwaysResult",
    "ahead_table",
    "compare_pathways",
    "run",
]


@dataclass(frozen=True)
class Kind:
    """A data kind: ``config(size)`` is the simulator config, ``variable`` the field to model."""

    name: str
    description: str
    config: Callable[[int], object]
    variable: str


def _phi4(size: int):
    from rgfield.fields.phi4 import Phi4, Phi4Config

    return Phi4Config(Phi4(PHI4_BETA), size=size)


def _turbulence(size: int):
    from rgfield.fields.turbulence import Turbulence2D, TurbulenceConfig

    flow = Turbulence2D(size=size, viscosity=1e-3, drag=0.1, forcing="ring", forcing_wavenumber=4.0)
    return TurbulenceConfig(flow, flows=TURBULENCE_FLOWS)


def _decaying(size: int):
    from rgfield.fields.decaying_turbulence import DecayingConfig, decaying_flow

    return DecayingConfig(decaying_flow(size))


def _cosmic(size: int):
    from rgfield.fields.cosmic import CosmicConfig

    return CosmicConfig(size=size, box=2.0 * size, product="slab")


PHI4_BETA = 0.9244
"""β of the φ⁴ kind: the critical coupling of λ = 1 (the shipped ensemble's)."""
TURBULENCE_FLOWS = 8
"""Independent flows integrated as one batch. Each flow spins up first (30–40 time units,
5000–7000 steps at 64²), so more flows cost more: on 2 cores at 64², 8 flows × 8 snapshots
took 195 s and 32 flows × 4 snapshots 890 s."""

KINDS: dict[str, Kind] = {
    "phi4": Kind("phi4", f"lattice φ⁴ at β = {PHI4_BETA} (critical), Wolff chains", _phi4, "phi"),
    "turbulence": Kind(
        "turbulence",
        "forced 2D Navier–Stokes vorticity (ring forcing at k = 4, ν = 1e-3, drag 0.1)",
        _turbulence,
        "vorticity",
    ),
    "decaying": Kind(
        "decaying",
        "freely decaying 2D vorticity at t = 40 (McWilliams 1984: coherent vortices)",
        _decaying,
        "vorticity",
    ),
    "cosmic": Kind(
        "cosmic",
        "log(1 + δ) of 2LPT slabs (z = 0, 2 Mpc/h cells, Eisenstein–Hu spectrum)",
        _cosmic,
        "log_density",
    ),
}


@dataclass
class Generated:
    """A pathway's fields and its costs: ``parameters`` fitted, ``fit_seconds``,
    ``seconds_per_sample`` and ``evaluations_per_sample`` (gradient evaluations of its energy
    or loss per generated field; for a diffusion model, network evaluations)."""

    fields: torch.Tensor
    parameters: int
    fit_seconds: float
    seconds_per_sample: float
    evaluations_per_sample: float


class Pathway(Protocol):
    """A way to generate fields: it fits itself to the training fields and generates.

    ``workdir``, when given, is a directory of the run where the pathway may keep what it
    fitted (a model file, a training checkpoint) and take it back from when the run is
    resumed after a stop; None: keep nothing.
    """

    name: str
    description: str

    def generate(
        self,
        train: xr.DataArray,
        samples: int,
        seed: int,
        progress: bool,
        workdir: Path | None = None,
    ) -> Generated: ...


class RGPathway:
    """The hierarchical wavelet RG model, sampled scale by scale with its defaults (HMC): by
    default with the potential and quadratic families; ``RGPathway.scattering()`` with the
    scattering-covariance family."""

    def __init__(
        self,
        name: str = "rg",
        features: Sequence[str] | Mapping[str, Mapping] = ("potential", "quadratic"),
        min_curvature: float | None = None,
    ) -> None:
        from rgfield.rg.parameters import describe_features

        self.name, self.features, self.min_curvature = name, features, min_curvature
        floor = "" if min_curvature is None else f", curvature floor {min_curvature}"
        self.description = (
            f"hierarchical wavelet RG model, {describe_features(features)} features"
            f" (score matching{floor})"
        )

    @classmethod
    def scattering(cls) -> RGPathway:
        """The RG model with the families ``rgfield fit`` takes for the cosmic web
        (:data:`rgfield.rg.parameters.GEOMETRIC`: quadratic + scatcov under the floor, the
        potential from j = 2 up)."""
        from rgfield.rg.parameters import GEOMETRIC

        return cls("rg-scattering", **copy.deepcopy(GEOMETRIC))

    def generate(
        self,
        train: xr.DataArray,
        samples: int,
        seed: int,
        progress: bool,
        workdir: Path | None = None,
    ) -> Generated:
        """Fit (or, with ``workdir`` holding ``<name>.model.nc`` and its fit time
        ``<name>.fit.json`` from a stopped run, load) the model and draw ``samples`` fields; a
        fitted model is saved there before sampling."""
        from rgfield.rg import HierarchicalModel

        saved = None if workdir is None else workdir / f"{self.name}.model.nc"
        timing = None if workdir is None else workdir / f"{self.name}.fit.json"
        if saved is not None and saved.is_file() and timing.is_file():
            model = HierarchicalModel.load(saved, progress=progress)
            fit_seconds = float(json.loads(timing.read_text())["fit_seconds"])
        else:
            start = time.perf_counter()
            model = HierarchicalModel(
                features=self.features, min_curvature=self.min_curvature, progress=progress
            ).fit(train, seed=seed)
            fit_seconds = time.perf_counter() - start
            if saved is not None:
                model.save(saved, overwrite=True)
                _write_json(timing, {"fit_seconds": fit_seconds})  # after the model: the mark
        fitted = time.perf_counter()
        result = model.sample(samples, seed=seed + 1)
        sampled = time.perf_counter()
        factors = [model.low_, *model.conditionals_]
        return Generated(
            result.fields,
            parameters=sum(int(m.theta.numel()) for m in factors),
            fit_seconds=fit_seconds,
            seconds_per_sample=(sampled - fitted) / samples,
            evaluations_per_sample=float(result.attrs["gradients_per_field"]),
        )


class MicrocanonicalPathway:
    """Microcanonical synthesis matching the training set's mean scattering covariance, power
    spectrum and pixel moments (:func:`rgfield.microcanonical.synthesize`)."""

    name = "microcanonical"
    description = "microcanonical scattering-covariance synthesis (L-BFGS from Gaussian surrogates)"

    def generate(
        self,
        train: xr.DataArray,
        samples: int,
        seed: int,
        progress: bool,
        workdir: Path | None = None,
    ) -> Generated:
        """Synthesise ``samples`` fields (each on its own: nothing to keep in ``workdir``)."""
        from rgfield.microcanonical import synthesize

        start = time.perf_counter()
        result = synthesize(train.values, n=samples, seed=seed, progress=progress)
        elapsed = time.perf_counter() - start
        return Generated(
            result.fields.double(),
            parameters=0,
            fit_seconds=0.0,
            seconds_per_sample=elapsed / samples,
            evaluations_per_sample=float(result.evaluations),
        )


@dataclass(frozen=True)
class DiffusionPathway:
    """A denoising diffusion model (:class:`rgfield.diffusion.DiffusionModel`) with its
    defaults (white noise, a 1.3 M-parameter UNet trained for 4,000 steps of 32 fields, Heun's
    sampler over 64 noise levels: 127 network evaluations per field); ``options`` go to the
    model's constructor."""

    options: dict = field(default_factory=dict)
    name: ClassVar[str] = "diffusion"

    @property
    def description(self) -> str:
        options = f", options {self.options}" if self.options else ""
        return (
            "score diffusion: circular UNet denoiser (EDM preconditioning), Heun sampler" + options
        )

    def generate(
        self,
        train: xr.DataArray,
        samples: int,
        seed: int,
        progress: bool,
        workdir: Path | None = None,
    ) -> Generated:
        """Train (resuming from ``workdir``'s checkpoint of a stopped run) and sample."""
        from rgfield.diffusion import DiffusionModel

        checkpoint = None if workdir is None else workdir / f"{self.name}.checkpoint"
        model = DiffusionModel(seed=seed, progress=progress, **self.options)
        model.fit(train, checkpoint=checkpoint)
        start = time.perf_counter()
        generated = model.sample(samples, seed=seed + 1)
        elapsed = time.perf_counter() - start
        return Generated(
            torch.as_tensor(generated["field"].values).double(),
            parameters=model.n_parameters_,
            fit_seconds=model.training_seconds_,
            seconds_per_sample=elapsed / samples,
            evaluations_per_sample=float(generated.attrs["network_evaluations"]),
        )


PATHWAYS: dict[str, Pathway] = {
    p.name: p
    for p in (RGPathway(), RGPathway.scattering(), MicrocanonicalPathway(), DiffusionPathway())
}
"""The pathways, in the order they run."""


@dataclass
class PathwaysResult:
    """What :func:`run` made: the ensembles, the comparison and one cost row per pathway."""

    train: xr.DataArray
    held_out: xr.DataArray
    generated: dict[str, torch.Tensor]
    summary: xr.DataTree
    costs: list[dict]


def simulate_kind(kind: str, size: int, samples: int, seed: int, progress: bool) -> xr.DataArray:
    """``samples`` fields of a kind at a size, from its simulator (see :data:`KINDS`)."""
    from rgfield.fields import simulate

    spec = KINDS[kind]
    dataset = simulate(spec.config(size), samples, seed=seed, progress=progress)
    field = dataset[spec.variable]
    field.attrs = {**dataset.attrs, **field.attrs}
    return field


def run(
    kind: str,
    size: int = 32,
    train: int = 96,
    held_out: int = 96,
    samples: int = 96,
    *,
    pathways: list[str | Pathway] | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> PathwaysResult:
    """Simulate a kind, then :func:`compare_pathways` (see the module docstring).

    The default, 96 fields of 32² per ensemble, takes about 2.5 minutes for turbulence on 2
    cores (docs/compare.md); ``--size 64`` with 200 fields each, about 36 minutes.

    Parameters
    ----------
    kind : a key of :data:`KINDS`.
    size : int
        Fields of size × size.
    train, held_out, samples : int
        Training fields, held-out fields (the reference) and fields generated per pathway.
    pathways, seed, out, overwrite, resume, progress, log :
        As in :func:`compare_pathways`; a resumed run reads its training and held-out fields
        back from ``out`` instead of simulating them (``out`` is required).

    Returns
    -------
    PathwaysResult
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}; got {kind!r}")
    chosen = _chosen(pathways)
    smallest = {"size": 8, "train": 2, "held_out": 2, "samples": 2}
    for (name, least), number in zip(
        smallest.items(), (size, train, held_out, samples), strict=True
    ):
        if not is_integer(number) or number < least:
            raise ValueError(f"{name} must be an integer >= {least}; got {number!r}")
    target = None if out is None else _check_out(Path(out), overwrite, resume)

    if resume:
        training, reference = _saved_ensembles(target, (train, held_out), size)
        log(f"resuming the run in {target}: its training and held-out fields read back")
    else:
        log(
            f"simulating {train} training and {held_out} held-out fields of {size}²:"
            f" {KINDS[kind].description}"
        )
        training = simulate_kind(kind, size, train, seed, progress)
        reference = simulate_kind(kind, size, held_out, seed + 1, progress)
    return compare_pathways(
        training,
        reference,
        samples,
        pathways=chosen,
        seed=seed,
        out=target,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        log=log,
    )


def compare_pathways(
    training: xr.DataArray,
    reference: xr.DataArray,
    samples: int,
    *,
    pathways: list[str | Pathway] | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> PathwaysResult:
    """Fit every pathway to ``training``, generate ``samples`` fields with each, and compare
    them with the held-out ``reference`` (and ``training`` for memorisation).

    Parameters
    ----------
    training, reference : xarray.DataArray (sample, y, x)
        Independent ensembles of one kind, e.g. from :func:`simulate_kind` or files.
    samples : int
        Fields generated per pathway.
    pathways : list of str or Pathway, optional
        Keys of :data:`PATHWAYS` to run (default all), or pathway objects with their own
        options, e.g. ``["rg", DiffusionPathway({"width": 8, "steps": 3000})]``.
    seed : int
    out : path, optional
        Directory for the report (``report/``: :func:`rgfield.compare.save_report`),
        ``pathways.md`` (the cost table) and ``ensembles/`` (train.nc and held_out.nc at the
        start, then each pathway's fields and costs as soon as it is done, to compare again
        with ``rgfield compare``); ``work/`` keeps what pathways fitted (an RG model file, a
        diffusion checkpoint). The ensembles or report of an earlier run there are replaced
        only with ``overwrite``, checked before any work.
    resume : bool
        Continue a stopped run in ``out`` (the same training fields, checked): pathways whose
        fields were saved are read back, the others take what they kept in ``work/`` (an RG
        pathway stopped while sampling does not fit again).
    progress : bool
    log : callable
        Receives one line per stage.

    Returns
    -------
    PathwaysResult
    """
    from rgfield.compare import save_report, summary

    chosen = _chosen(pathways)
    if not is_integer(samples) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2; got {samples!r}")
    target = None if out is None else _check_out(Path(out), overwrite, resume)
    store = None
    if target is not None:
        store = _RunStore(target, training, reference, resume)
        store.check_settings(seed, chosen)
    generated, costs = {}, []
    for pathway in chosen:
        name = pathway.name
        done = None if store is None else store.finished(name, samples)
        if done is not None:
            log(f"{name}: read back from {store.ensembles} (resumed run)")
            generated[name], cost = done
        else:
            log(f"{name}: {pathway.description}")
            workdir = None if store is None else store.work
            made = pathway.generate(training, samples, seed, progress, workdir=workdir)
            generated[name] = made.fields
            cost = {k: v for k, v in vars(made).items() if k != "fields"}
            if store is not None:
                store.keep(name, made.fields, cost, training.name)
        costs.append({"pathway": name, **cost})
    log("comparing with the held-out fields")
    result = summary(reference, generated, train=training)
    if target is not None:
        examples = {"held-out": reference.values, **generated}
        save_report(result, target / "report", overwrite=overwrite or resume, examples=examples)
        table = target / "pathways.md"
        partial = table.with_suffix(".md.partial")
        partial.write_text(cost_table(costs, result) + "\n" + ahead_table(result))
        os.replace(partial, table)  # whole or absent, also on Ctrl-C
        log(f"report written to {target}/report/report.md, costs in {table}")
    return PathwaysResult(training, reference, generated, result, costs)


def _chosen(pathways: list[str | Pathway] | None) -> list[Pathway]:
    """The pathways to run: all of :data:`PATHWAYS` by default; names are looked up there
    (unknown ones refused), :class:`Pathway` objects (e.g. ``DiffusionPathway({"width": 8})``)
    run as given; two with one name are refused, as their results would share a name."""
    chosen = list(PATHWAYS) if pathways is None else list(pathways)
    unknown = [p for p in chosen if isinstance(p, str) and p not in PATHWAYS]
    if unknown:
        raise ValueError(f"pathways: unknown {unknown}; available {list(PATHWAYS)}")
    chosen = [PATHWAYS[p] if isinstance(p, str) else p for p in chosen]
    names = [p.name for p in chosen]
    if len(set(names)) < len(names):
        raise ValueError(f"pathways: each name once; got {names}")
    return chosen


class _RunStore:
    """What a run keeps in its output directory as it goes, so that a stopped run resumes.

    ``ensembles/`` holds train.nc and held_out.nc (written first) and, as each pathway
    finishes, ``<pathway>.nc`` (its fields, float64) and ``<pathway>.json`` (its costs, written
    after the fields: the mark that it is done); ``run.json`` the seed and each pathway's
    description; ``work/`` is the pathways' own (see :class:`Pathway`). A new run (``resume``
    False) first removes all of it and an earlier report; a resumed one checks that its
    training and held-out fields and its settings are those saved.
    """

    def __init__(self, out: Path, train: xr.DataArray, held_out: xr.DataArray, resume: bool):
        from rgfield import io

        self.ensembles, self.work, self.settings = out / "ensembles", out / "work", out / "run.json"
        if resume:
            for name, fields in (("train", train), ("held_out", held_out)):
                saved = io.load(self.ensembles / f"{name}.nc")
                if not np.array_equal(saved.values, fields.values):
                    raise ValueError(
                        f"resume: {self.ensembles / name}.nc holds other fields than this run's"
                        f" {name}; resume a run with the data it started with"
                    )
            return
        for folder in (self.ensembles, self.work, out / "report"):
            shutil.rmtree(folder, ignore_errors=True)
        for path in (self.settings, out / "pathways.md"):
            path.unlink(missing_ok=True)
        for folder in (self.ensembles, self.work):
            folder.mkdir(parents=True)
        io.save(train, self.ensembles / "train.nc")
        io.save(held_out, self.ensembles / "held_out.nc")

    def check_settings(self, seed: int, chosen: list[Pathway]) -> None:
        """Record the seed and the pathways' descriptions; on resume, refuse other ones for
        the pathways both runs share (their fields and fitted models would not be this run's)."""
        settings = {"seed": seed, "pathways": {p.name: p.description for p in chosen}}
        if self.settings.is_file():
            saved = json.loads(self.settings.read_text())
            shared = set(saved["pathways"]) & set(settings["pathways"])
            differ = [k for k in shared if saved["pathways"][k] != settings["pathways"][k]]
            if saved["seed"] != seed or differ:
                raise ValueError(
                    f"resume: {self.settings} records seed {saved['seed']} and other settings"
                    f" for {sorted(differ)}; this run has seed {seed}. Resume with the same"
                    " settings, or start again with overwrite"
                )
            settings["pathways"] = {**saved["pathways"], **settings["pathways"]}
        _write_json(self.settings, settings)

    def finished(self, name: str, samples: int) -> tuple[torch.Tensor, dict] | None:
        """The fields and costs of pathway ``name`` if a run saved ``samples`` of them."""
        from rgfield import io

        fields, costs = self.ensembles / f"{name}.nc", self.ensembles / f"{name}.json"
        if not costs.is_file():
            return None
        cost = json.loads(costs.read_text())
        if cost.pop("samples") != samples:
            return None
        return torch.as_tensor(io.load(fields).values), cost

    def keep(self, name: str, fields: torch.Tensor, cost: dict, variable: str | None) -> None:
        """Save a pathway's fields, then its costs (the mark that it is done)."""
        from rgfield import io

        mark = self.ensembles / f"{name}.json"
        mark.unlink(missing_ok=True)  # a stop between the two writes leaves no stale mark
        io.save(io.to_dataset(fields, name=variable), self.ensembles / f"{name}.nc", overwrite=True)
        _write_json(mark, {**cost, "samples": len(fields)})


def _write_json(path: Path, values: dict) -> None:
    """``values`` as JSON (numbers as floats where not plain), whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(values, default=float))
    os.replace(partial, path)


def _saved_ensembles(
    out: Path | None, counts: tuple[int, int], size: int
) -> tuple[xr.DataArray, xr.DataArray]:
    """The training and held-out fields a stopped run saved in ``out``, refused unless they
    have the counts and size asked for."""
    from rgfield import io

    if out is None:
        raise ValueError("resume: give out, the directory of the run to resume")
    ensembles = [io.load(out / "ensembles" / f"{name}.nc") for name in ("train", "held_out")]
    for fields, count, name in zip(ensembles, counts, ("train", "held_out"), strict=True):
        if fields.shape != (count, size, size):
            raise ValueError(
                f"resume: {out}/ensembles/{name}.nc holds fields of shape {fields.shape}, not"
                f" ({count}, {size}, {size}); resume with the run's own arguments"
            )
    return ensembles[0], ensembles[1]


def _check_out(out: Path, overwrite: bool, resume: bool = False) -> Path:
    """Refuse, before any work, an output :func:`run` could not write at the end, an earlier
    run's output replaced without ``overwrite``, and a resume without a run to resume."""
    from rgfield.compare import check_report_path

    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue a run, or replace it")
    if resume:
        missing = [f for f in ("train.nc", "held_out.nc") if not (out / "ensembles" / f).is_file()]
        if missing:
            raise ValueError(f"resume: {out}/ensembles lacks {missing}; there is no run to resume")
        check_report_path(out / "report", overwrite=True)
    elif out.is_dir():
        check_report_path(out / "report", overwrite)
        if (out / "ensembles").exists() and not overwrite:
            raise FileExistsError(
                f"out: {out} holds the ensembles of an earlier run; resume it (resume=True,"
                " --resume) or replace it (overwrite=True, --overwrite)"
            )
    elif out.exists():
        raise ValueError(f"out: {out} is a file; give a directory")
    elif not out.parent.is_dir():
        raise ValueError(f"out: directory {out.parent} does not exist")
    return out


def cost_table(costs: list[dict], result: xr.DataTree) -> str:
    """Markdown: per pathway its costs, the checks failed (of all compared: every quantity and
    the pixel distribution, :func:`rgfield.compare.failures`) and the rank."""
    from rgfield.compare import failures

    failed = [len(failures(result)[c["pathway"]]) for c in costs]
    total = result.sizes["quantity"] + 1
    order = sorted(range(len(costs)), key=lambda i: failed[i])
    lines = [
        "| rank | pathway | failed checks | parameters | fit (s) | s per sample"
        " | evaluations per sample |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rank, i in enumerate(order, start=1):
        c = costs[i]
        lines.append(
            f"| {rank} | {c['pathway']} | {int(failed[i])} of {total} | {c['parameters']} |"
            f" {c['fit_seconds']:.0f} | {c['seconds_per_sample']:.3g} |"
            f" {c['evaluations_per_sample']:.0f} |"
        )
    lines += [
        "",
        "Microcanonical synthesis fits no parameters: each field is optimised to match the"
        " training set's statistics, so its whole cost is per sample (L-BFGS evaluations of"
        " the loss and its gradient).",
    ]
    return "\n".join(lines) + "\n"


def ahead_table(result: xr.DataTree) -> str:
    """Markdown: per compared quantity, each pathway's largest |z| against the held-out
    fields (✗ where it fails its level) and the pathway ahead (the smallest); last, the pixel
    KS statistic against the median of the held-out set's own halvings."""
    names = [str(e) for e in result["ensemble"].values]
    lines = [
        "| quantity | " + " | ".join(names) + " | ahead |",
        "|---|" + "---:|" * len(names) + "---|",
    ]
    for q in result["quantity"].values:
        z = result["max_abs_z"].sel(quantity=q).values
        failed = result["failed"].sel(quantity=q).values
        cells = _cells(z, failed, digits=1)
        ahead = names[int(np.nanargmin(z))] if np.isfinite(z).any() else "–"
        lines.append(f"| {q} | " + " | ".join(cells) + f" | {ahead} |")
    ks = result["pixels"].to_dataset()
    values, failed = ks["ks_vs_reference"].values, ks["ks_failed"].values
    cells = _cells(values, failed, digits=2)
    lines.append(
        f"| pixels (KS; halves {float(ks['ks_reference_halves']):.2f}) | "
        + " | ".join(cells)
        + f" | {names[int(np.argmin(values))]} |"
    )
    return (
        "Largest |z| per quantity against the held-out fields (✗: beyond its level,"
        " rgfield.compare.failures):\n\n" + "\n".join(lines) + "\n"
    )


def _cells(values, failed, digits: int) -> list[str]:
    """Table cells: each value, marked ✗ where it fails."""
    return [f"{v:.{digits}f}{' ✗' if f else ''}" for v, f in zip(values, failed, strict=True)]
