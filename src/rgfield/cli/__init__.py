"""The ``rgfield`` command line.

One module per command (:mod:`~rgfield.cli.demo`, :mod:`~rgfield.cli.fit`, ...), each defining
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; the options they share
and the checks made on them before any work are in :mod:`rgfield.cli._options`. Command modules
import torch, numba, xarray and matplotlib inside ``run``, so ``rgfield --help`` starts at once.

Failure behaviour, the same for every command:

- an error a user can fix (bad arguments, a missing, existing or unwritable file, an unknown
  or absent device) prints one line ``rgfield CMD: error: ...`` and exits with status 1;
- Ctrl-C (SIGINT) prints ``rgfield CMD: interrupted; nothing written`` (or the files written
  before the interruption) and exits with status 130; SIGTERM the same with status 143. Files
  are written atomically (:func:`rgfield.io.save`), so an interruption leaves no partial file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import rgfield
from rgfield.cli import (
    _options,
    compare,
    demo,
    diffusion,
    fit,
    info,
    pathways,
    sample,
    simulate,
    synthesize,
)

__all__ = ["COMMANDS", "Terminated", "build_parser", "main"]

COMMANDS = {
    c.NAME: c for c in (demo, pathways, fit, sample, info, compare, synthesize, simulate, diffusion)
}
"""The command modules by name, in the order ``rgfield --help`` lists them."""

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 130, 143  # 128 + SIGINT, 128 + SIGTERM


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM while a command runs (a BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it)."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``rgfield`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="rgfield",
        description="Multiscale statistical physics: wavelet RG models of physical fields.",
    )
    parser.add_argument("--version", action="version", version=f"rgfield {rgfield.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for command in COMMANDS.values():
        command.add_arguments(
            sub.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rgfield`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    prog = f"rgfield {args.command}"
    before = _options.output_state(args)
    try:
        with _sigterm_raises(), warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            _options.check(args)
            return COMMANDS[args.command].run(args)
    except (ValueError, OSError) as err:  # OSError: missing, existing or unwritable files
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, Terminated) as stop:
        kept = _options.written_since(args, before)
        what = f"kept {', '.join(kept)}" if kept else "nothing written"
        print(f"{prog}: interrupted; {what}", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else EXIT_TERMINATED


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (so ``finally`` clauses, such as
    the removal of a temporary file, run); the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():  # signals go to main only
        yield
        return

    def terminate(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"rgfield: note: {message}", file=sys.stderr)
