"""Drawing an ensemble chunk by chunk, in this process or as tasks on a Dask cluster."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import dask
import numpy as np
import xarray as xr

from rgfield import _progress, io
from rgfield._validate import fresh_seed
from rgfield.ensembles import store
from rgfield.ensembles.jobs import Job
from rgfield.ensembles.store import Block, Plan

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DEFAULT_BLOCK", "compute_chunk", "generate", "map_reduce"]

T, R, A = TypeVar("T"), TypeVar("R"), TypeVar("A")

DEFAULT_BLOCK = 16
"""Samples per seeded block: one ``job.run`` call, so one batch of chains or flows."""

DEFAULT_BLOCKS_PER_CHUNK = 4
"""Blocks per chunk (per task and per file) unless ``chunk`` is given."""


def generate(
    job: Job,
    samples: int,
    out: str | os.PathLike,
    *,
    seed: int | None = None,
    block: int = DEFAULT_BLOCK,
    chunk: int | None = None,
    client: Client | None = None,
    retries: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """Draw ``samples`` samples of ``job`` into the ensemble directory ``out``, chunk by chunk.

    Sample ``i`` belongs to block ``b = i // block``, drawn by ``job.run(n_b, seed_b)`` with
    ``seed_b = block_seed(seed, b)`` (:func:`~rgfield.ensembles.store.block_seed`), so the
    ensemble depends on ``(job, samples, block, seed)`` only: the same with 1, 2 or N workers,
    in this process or on a cluster, and for any ``chunk``. Each chunk (``chunk // block``
    blocks) is one task and one netCDF file, written by the worker that computed it as soon as
    it is done; the client holds none of the fields.

    Parameters
    ----------
    job : Job
        :class:`~rgfield.ensembles.Simulation`, :class:`~rgfield.ensembles.ModelSampling`,
        :class:`~rgfield.ensembles.Synthesis`, or any object with ``run(n, seed)`` and
        ``describe()``.
    samples : int
        Ensemble size.
    out : path
        The ensemble directory (:mod:`rgfield.ensembles.store`). If it already holds this
        ensemble (same job, samples, block, chunk and seed), only its missing chunks are
        computed: a run stopped by a crash, Ctrl-C or a lost worker resumes.
    seed : int, optional
        The ensemble's seed (recorded in the manifest and attrs). Default: the seed of the
        ensemble already in ``out``, so that the same call resumes it; else fresh entropy.
    block : int
        Samples per seeded block (default 16): a block is one batch of chains or flows, so a
        larger block vectorises better and, for simulators with a spin-up or burn-in, costs less
        per sample; a changed block changes the samples.
    chunk : int, optional
        Samples per task and file, a multiple of ``block`` (default 4 blocks). It does not
        change the samples: choose it for the scheduler (see docs/scaling.md).
    client : distributed.Client, optional
        Run the chunks as tasks on this Dask cluster (:func:`~rgfield.ensembles.cluster`); the
        workers must see ``out``. Without one they run here, one after the other.
    retries : int
        Times a failed task is retried (on the cluster) before the run stops with an error
        naming the chunk.
    overwrite : bool
        Replace a different ensemble found in ``out``.
    progress : bool
        A bar over chunks.

    Returns
    -------
    xarray.Dataset
        :func:`~rgfield.ensembles.open_ensemble` of ``out``: lazily loaded. It holds the
        variables of ``job.run``'s Datasets that have a ``sample`` dimension; others (a
        simulation's budget time series, say) belong to one block and are not kept.

    Raises
    ------
    FileExistsError
        If ``out`` holds another ensemble and ``overwrite`` is False.
    RuntimeError
        Naming the chunk, if its task raises (on a cluster: ``retries + 1`` times); the chunks
        done stay, and a rerun resumes.
    """
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer; got {retries!r}")
    if seed is None:
        seed = store.stored_seed(out)
        seed = fresh_seed() if seed is None else seed
    chunk = block * DEFAULT_BLOCKS_PER_CHUNK if chunk is None else chunk
    plan = Plan(samples, block, chunk, seed)
    content = store.manifest(plan, job.describe())
    directory = store.prepare(out, content, overwrite)
    created = store.read_manifest(directory)["created"]  # a resumed ensemble's own
    done = set(store.done_chunks(directory, plan))
    todo = [i for i in range(plan.chunks) if i not in done]
    map_reduce(
        partial(compute_chunk, job, plan, directory=directory, created=created),
        todo,
        _ignore,
        client=client,
        retries=retries,
        label=partial(_chunk_label, plan),
        then="; the finished chunks are kept: rerun to resume",
        progress=progress,
        done=len(done),
    )
    return store.open_ensemble(directory)


def compute_chunk(job: Job, plan: Plan, chunk: int, *, directory: Path, created: str) -> float:
    """Draw the blocks of chunk ``chunk`` and write them to its file; the seconds it took."""
    start = time.perf_counter()
    parts = [_draw_block(job, b) for b in plan.blocks(chunk)]
    ds = xr.concat(parts, dim="sample", data_vars="minimal", combine_attrs=store.common_attrs)
    ds.attrs.update(
        samples=plan.samples, block=plan.block, chunk=plan.chunk, seed=plan.seed, created=created
    )
    # In a Dask worker xarray guards HDF5 with a cluster-wide lock, a round trip to the
    # scheduler per write (50–60 ms a file, measured); each task writes its own file, so the
    # lock of this process is enough, and the synchronous scheduler makes xarray take it.
    with dask.config.set(scheduler="synchronous"):
        io.save(ds, store.chunk_path(Path(directory), chunk), overwrite=True)
    return time.perf_counter() - start


@contextmanager
def one_thread() -> Iterator[None]:
    """torch and numba on one thread within the block, restored after. A block's samples then
    do not depend on the machine: a default such as φ⁴'s ``chains`` (4 × numba's threads)
    is the same in this process, in a Dask worker and on a 64-core node, and no reduction is
    split differently between threads. Parallelism comes from the workers."""
    import numba
    import torch

    threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads[0])
        numba.set_num_threads(threads[1])


def _draw_block(job: Job, block: Block) -> xr.Dataset:
    """``job.run`` for one block, as its samples (variables along ``sample``) with the global
    sample index and the block's seed as coordinates."""
    n = block.stop - block.start
    with one_thread():
        ds = job.run(n, block.seed)
    if not isinstance(ds, xr.Dataset) or ds.sizes.get("sample") != n:
        got = f"dims {dict(ds.sizes)}" if isinstance(ds, xr.Dataset) else type(ds).__name__
        raise ValueError(f"job.run({n}, seed) must return a Dataset of {n} samples; got {got}")
    ds = ds.drop_vars([name for name in ds.variables if "sample" not in ds[name].dims])
    return ds.assign_coords(
        sample=np.arange(block.start, block.stop),
        block_seed=("sample", np.full(n, block.seed, dtype=np.int64)),
    )


def _ignore(total: None, result: object) -> None:
    """Combine nothing: a chunk's result is its file."""


def _chunk_label(plan: Plan, chunk: int) -> str:
    last = min((chunk + 1) * plan.chunk, plan.samples) - 1
    return f"chunk {chunk} (samples {chunk * plan.chunk}–{last})"


def map_reduce(
    function: Callable[[T], R],
    items: Sequence[T],
    combine: Callable[[A | None, R], A],
    *,
    client: Client | None = None,
    retries: int = 2,
    label: Callable[[T], str] = str,
    then: str = "",
    desc: str = "chunks",
    progress: bool = True,
    done: int = 0,
) -> A | None:
    """``combine`` the results of ``function(item)`` over ``items`` as they arrive, starting
    from None: here one after the other, or as tasks on ``client`` (each result fetched once
    and released, so the client holds the running total and one result at most).

    A task lost with its worker is rerun elsewhere by the scheduler; one that raises is retried
    ``retries`` times (on the cluster), then the others are cancelled and a RuntimeError names
    the item (``label(item)``), followed by ``then``. ``desc`` labels the progress bar;
    ``done``: items already done before this call, for the bar.
    """

    def failure(item: T, err: Exception, retried: str = "") -> RuntimeError:
        return RuntimeError(f"{label(item)} failed{retried}: {type(err).__name__}: {err}{then}")

    total = None
    with _progress.progress(desc, done + len(items), enabled=progress, unit="chunk") as bar:
        bar(done)
        if client is None:
            for item in items:
                try:
                    result = function(item)
                except Exception as err:
                    raise failure(item, err) from err
                total = combine(total, result)
                bar()
            return total
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        futures = {
            client.submit(function, item, key=f"rgfield-{i:06d}-{token}", retries=retries): item
            for i, item in enumerate(items)
        }
        try:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as err:
                    raise failure(
                        futures[future], err, f" on the cluster ({retries} retries)"
                    ) from err
                total = combine(total, result)
                future.release()
                bar()
        finally:
            client.cancel(list(futures))
    return total
