"""An ensemble on disk: a directory of one netCDF file per chunk and a manifest.

::

    ensemble/
        ensemble.json        what the ensemble is: the job, samples, block, chunk, seed
        chunk-000000.nc      samples [0, chunk)
        chunk-000001.nc      samples [chunk, 2 chunk)
        ...

A chunk's file appears by an atomic rename once it is complete (:func:`rgfield.io.save`), so a
chunk is either complete or absent; a run that stops (a crash, Ctrl-C, a lost worker) leaves the
finished chunks, and the next run with the same manifest computes only the missing ones.
:func:`open_ensemble` shows the chunks as one lazily loaded Dataset.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = [
    "Block",
    "Plan",
    "block_seed",
    "chunk_path",
    "common_attrs",
    "complete_plan",
    "done_chunks",
    "open_ensemble",
]

MANIFEST = "ensemble.json"
FORMAT = "rgfield-ensemble/1"


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block`` of an ensemble of seed ``seed``: 63 bits of
    ``numpy.random.SeedSequence(seed, spawn_key=(block,))``, the ``block``-th child of
    ``SeedSequence(seed).spawn``. It depends on nothing else, so neither the chunking nor the
    worker that runs the block changes the samples; 63 bits fit netCDF's int64 and torch's
    ``manual_seed``."""
    state = np.random.SeedSequence(seed, spawn_key=(block,)).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


@dataclass(frozen=True)
class Block:
    """Samples ``start:stop`` drawn by one ``job.run(stop − start, seed)``."""

    index: int
    start: int
    stop: int
    seed: int


@dataclass(frozen=True)
class Plan:
    """How ``samples`` samples are split: into seeded blocks of ``block`` samples (the last may
    be shorter), grouped ``chunk // block`` to a task and a file."""

    samples: int
    block: int
    chunk: int
    seed: int

    def __post_init__(self) -> None:
        for name, least in (("samples", 1), ("block", 1), ("chunk", 1), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < least:
                kind = "a positive" if least else "a non-negative"
                raise ValueError(f"{name} must be {kind} integer; got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers: plain, for JSON
        if self.chunk % self.block:
            raise ValueError(
                f"chunk must be a multiple of block ({self.block}), so that chunks hold whole"
                f" seeded blocks; got {self.chunk}"
            )

    @property
    def chunks(self) -> int:
        return -(-self.samples // self.chunk)

    def blocks(self, chunk: int) -> list[Block]:
        """The blocks of chunk ``chunk``."""
        stop = min((chunk + 1) * self.chunk, self.samples)
        return [
            Block(b, start, min(start + self.block, stop), block_seed(self.seed, b))
            for b, start in (
                (s // self.block, s) for s in range(chunk * self.chunk, stop, self.block)
            )
        ]


def chunk_path(directory: Path, chunk: int) -> Path:
    return directory / f"chunk-{chunk:06d}.nc"


def done_chunks(directory: Path, plan: Plan) -> list[int]:
    """The chunks whose file exists."""
    return [i for i in range(plan.chunks) if chunk_path(directory, i).exists()]


def manifest(plan: Plan, job: dict) -> dict:
    """The manifest of an ensemble: format, plan, the job's description, creation time."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return {"format": FORMAT, **asdict(plan), "job": job, "created": created}


def prepare(directory: str | os.PathLike, content: dict, overwrite: bool) -> Path:
    """Make ``directory`` hold the ensemble ``content`` (a manifest): create it, or resume it
    when it already holds the same ensemble (whose manifest, with its creation time, stays).
    Returns the directory as an absolute path.

    Raises
    ------
    FileExistsError
        If it holds another ensemble (or other files) and ``overwrite`` is False.
    ValueError
        If it is a file, or its parent does not exist.
    """
    directory = Path(directory).absolute()  # workers may run elsewhere than this process
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"out: {directory} is a file; an ensemble is a directory")
    if not directory.parent.is_dir():
        raise ValueError(f"out: directory {directory.parent} does not exist")
    path = directory / MANIFEST
    if path.exists():
        if _same(read_manifest(directory), content):
            _remove_stale(directory)
            return directory
        if not overwrite:
            raise FileExistsError(
                f"out: {directory} holds another ensemble (its {MANIFEST} differs: job, samples,"
                " block, chunk or seed); pass overwrite=True (--overwrite) to replace it"
            )
        _clear(directory)
    elif directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"out: {directory} is not empty and holds no {MANIFEST}; pass overwrite=True"
                " (--overwrite) to replace its ensemble files, or choose another directory"
            )
        _clear(directory)
    directory.mkdir(exist_ok=True)
    tmp = directory / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)
    return directory


def stored_seed(directory: str | os.PathLike) -> int | None:
    """The seed of the ensemble in ``directory``, or None when it holds none."""
    path = Path(directory) / MANIFEST
    return int(read_manifest(path.parent)["seed"]) if path.is_file() else None


def _same(stored: dict, content: dict) -> bool:
    """Whether two manifests describe one ensemble (their creation times aside), compared as
    JSON text, so that a NaN equals a NaN."""
    stored, content = dict(stored), dict(content)
    stored.pop("created", None), content.pop("created", None)
    return json.dumps(stored, sort_keys=True) == json.dumps(content, sort_keys=True)


def read_manifest(directory: Path) -> dict:
    try:
        content = json.loads((directory / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{directory}: no readable {MANIFEST}: {err}") from err
    if content.get("format") != FORMAT:
        raise ValueError(f"{directory}/{MANIFEST}: not an rgfield ensemble ({FORMAT})")
    return content


def _clear(directory: Path) -> None:
    """Remove the ensemble files (manifest, chunks, temporary files) and nothing else."""
    for path in directory.iterdir():
        if path.name == MANIFEST or path.name.startswith(("chunk-", ".chunk-", f".{MANIFEST}")):
            path.unlink()


def _remove_stale(directory: Path) -> None:
    """Temporary files of writes that a crash or a killed worker cut short."""
    for path in directory.glob(".chunk-*.tmp"):
        path.unlink(missing_ok=True)


def common_attrs(attrs: list[dict], context=None) -> dict:
    """The attributes every one of ``attrs`` has with one value (xarray's ``combine_attrs``):
    what is true of the whole ensemble, whichever blocks a file holds."""
    first, *others = attrs
    return {
        key: value
        for key, value in first.items()
        if all(key in other and _equal(value, other[key]) for other in others)
    }


def _equal(a, b) -> bool:
    """Equal values (arrays elementwise), NaN equal to NaN."""
    a, b = np.asarray(a), np.asarray(b)
    nan = a.dtype.kind in "fc" and b.dtype.kind in "fc"
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=nan))


def complete_plan(directory: Path) -> Plan:
    """The plan of the ensemble in ``directory``, checking that every chunk is there.

    Raises
    ------
    ValueError
        If ``directory`` holds no ensemble, or some chunks are missing (the message says how
        many: rerun :func:`~rgfield.ensembles.generate` with the same arguments to finish it).
    """
    content = read_manifest(directory)
    plan = Plan(*(content[k] for k in ("samples", "block", "chunk", "seed")))
    done = done_chunks(directory, plan)
    if len(done) < plan.chunks:
        raise ValueError(
            f"{directory}: {plan.chunks - len(done)} of {plan.chunks} chunks missing; rerun"
            " generate with the same arguments to compute them"
        )
    return plan


def open_ensemble(directory: str | os.PathLike) -> xr.Dataset:
    """The ensemble in ``directory`` as one Dataset, loaded lazily (dask arrays, a chunk per
    file), with the attrs its chunks share (rgfield's conventions: ``generator``, the
    parameters, the ensemble ``seed``, ``block`` and ``chunk``; a block's own diagnostics,
    such as a measured τ_int, differ between blocks and are dropped) and the per-sample
    coordinate ``block_seed``: ``job.run(n, block_seed)`` redraws a block with them.

    Raises
    ------
    ValueError
        As :func:`complete_plan`: no ensemble, or missing chunks.
    """
    directory = Path(directory)
    plan = complete_plan(directory)
    return xr.open_mfdataset(
        [chunk_path(directory, i) for i in range(plan.chunks)],
        combine="nested",
        concat_dim="sample",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        combine_attrs=common_attrs,
        engine="netcdf4",
        parallel=False,
    )
