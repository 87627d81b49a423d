"""Progress bars belong to drivers; algorithms report their steps through a plain callback.

A long computation (an MCMC pilot, a time integration) takes an ``on_step`` callable and calls
``on_step(n)`` after n more units of work (steps, or time units of a flow), and
``on_step(n, total)`` when it learns how much work there is in all, and may pass ``status`` (a
short text such as the current loss) to show beside the bar. The driver that runs it owns the
bar::

    with progress("pilot", total=500, enabled=show) as on_step:
        run_pilot(state, on_step)

On a terminal the bar refreshes ten times a second. Written to a file, a pipe or a CI log it
refreshes at most once a minute, so the log gets a few lines instead of thousands of carriage
returns.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Protocol

__all__ = ["StepCallback", "progress"]

_TERMINAL_INTERVAL = 0.1  # seconds between refreshes on a terminal (tqdm's default)
_LOG_INTERVAL = 60.0  # seconds between refreshes anywhere else


class StepCallback(Protocol):
    """``on_step(n, total=None, status=None)``: n more units done; ``total``, when given, the
    new total; ``status``, when given, a text shown after the bar."""

    def __call__(
        self, n: float = 1, total: float | None = None, status: str | None = None
    ) -> None: ...


def _ignore(n: float = 1, total: float | None = None, status: str | None = None) -> None:
    """The callback of a hidden bar."""


@contextmanager
def progress(
    desc: str,
    total: float | None = None,
    *,
    enabled: bool = True,
    unit: str = "it",
    leave: bool = True,
    file: IO[str] | None = None,
) -> Iterator[StepCallback]:
    """A progress bar for the duration of a ``with`` block, driven by the callback it yields.

    Parameters
    ----------
    desc : str
        Label of the bar.
    total : float, optional
        Units of work expected (unknown: the bar counts without a percentage).
    enabled : bool
        False: no bar; the callback does nothing.
    unit : str
        Name of one unit of work.
    leave : bool
        Keep the finished bar on screen (False for an inner bar of a longer run).
    file : text stream, optional
        Where the bar is written (default ``sys.stderr``). Unless it is a terminal (or the bar
        is a notebook widget), the bar refreshes at most once every 60 s.

    Yields
    ------
    StepCallback
        ``on_step(n=1, total=None, status=None)``: advance the bar by n; a new ``total``
        replaces the old; ``status`` is shown after the bar.
    """
    if not enabled:
        yield _ignore
        return
    from tqdm.auto import tqdm

    stream = sys.stderr if file is None else file
    notebook = any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)  # a widget
    live = notebook or _is_terminal(stream)
    interval = _TERMINAL_INTERVAL if live else _LOG_INTERVAL
    # maxinterval bounds how long tqdm's monitor thread lets a bar go unrefreshed: keep it at
    # the interval, or it would refresh a log every 10 s
    with tqdm(
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=stream,
        mininterval=interval,
        maxinterval=max(interval, 10.0),
        dynamic_ncols=live,
    ) as bar:

        def on_step(n: float = 1, total: float | None = None, status: str | None = None) -> None:
            if total is not None and total != bar.total:
                bar.total = total
                bar.refresh()
            if status is not None:
                bar.set_postfix_str(status, refresh=False)
            bar.update(n)

        yield on_step


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
