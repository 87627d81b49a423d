"""The Dask client of a run: an existing cluster, a local one, or none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["WORKER_CONFIG", "cluster"]

WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask configuration of rgfield's local workers: no statistical profiler (it samples every
thread's stack every 10 ms for the dashboard's profile page, holding the GIL) and the
event-loop, system and memory monitors every second or five instead of every 20, 500 and 100
ms. With Dask's defaults a worker ran the Python-driven φ⁴ chains 3–5 % slower than this
process did; with these, as fast. For a cluster of your own, set them in the workers'
environment (docs/scaling.md)."""


@contextmanager
def cluster(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client | None]:
    """A Dask client for the duration of a ``with`` block.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``, or a dask-jobqueue cluster's
        ``cluster.scheduler_address``).
    workers : int, optional
        Start a local cluster of this many single-threaded worker processes configured by
        :data:`WORKER_CONFIG`, closed at the end of the block.

    Yields
    ------
    distributed.Client or None
        None when neither is given: :func:`~rgfield.ensembles.generate` then runs in this
        process, with no Dask at all.

    Raises
    ------
    ValueError
        If both are given, or ``workers`` is not a positive integer.
    """
    if scheduler is not None and workers is not None:
        raise ValueError("give scheduler or workers, not both")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer; got {workers!r}")
    if scheduler is None and workers is None:
        yield None
        return
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with dask.config.set(WORKER_CONFIG):  # read by the workers when they start
        local = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0")
    with local, Client(local) as client:
        yield client
