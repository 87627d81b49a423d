"""Options shared by rgfield's commands, and the checks :func:`rgfield.cli.main` runs on them
before a command does any work.

A command adds a shared option with one call (``add_output(parser)``, ``add_seed(parser)``, ...);
``main`` then calls :func:`check` on the parsed arguments, so every command refuses an unusable
output path or device in the same words, at once rather than after a long run. Nothing here
imports torch, numba or xarray at import time (``rgfield --help`` must stay fast).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = [
    "add_cluster",
    "add_device",
    "add_ensemble",
    "add_output",
    "add_progress",
    "add_seed",
    "add_var",
    "check",
    "check_output",
    "ensemble_mode",
    "output_state",
    "written_since",
]

OUTPUT_KINDS = ("file", "directory")


def count_or_auto(text: str) -> int | str:
    """An argparse type: a whole number, or ``"auto"``."""
    return text if text == "auto" else int(text)


def add_output(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    kind: str = "file",
    required: bool = True,
    default: str | None = None,
) -> None:
    """``--out`` (a file or a directory, ``kind``) and ``--overwrite``."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"kind must be one of {OUTPUT_KINDS}; got {kind!r}")
    parser.add_argument("--out", required=required, default=default, help=help)
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(out_kind=kind)


def add_seed(parser: argparse.ArgumentParser, default: int | None = None, help: str = "") -> None:
    """``--seed``; by default fresh entropy (the seed used is recorded in the output)."""
    fallback = "fresh entropy" if default is None else str(default)
    parser.add_argument(
        "--seed", type=int, default=default, help=f"{help or 'random seed'} (default: {fallback})"
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: a torch device, checked before the work (:func:`check`)."""
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N, mps")


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_var(parser: argparse.ArgumentParser, help: str = "variable to read") -> None:
    """``--var``: the netCDF variable of the input (by default its only field)."""
    parser.add_argument("--var", help=f"{help} (default: the only field)")


def add_cluster(parser: argparse.ArgumentParser, group=None) -> None:
    """``--workers`` and ``--scheduler``: run on a Dask cluster (:mod:`rgfield.ensembles`)."""
    group = group or parser.add_argument_group(
        "cluster", "Run on a Dask cluster (docs/scaling.md)."
    )
    group.add_argument("--workers", type=int, help="run on N local worker processes")
    group.add_argument("--scheduler", help="run on the Dask cluster at this address")


def add_ensemble(parser: argparse.ArgumentParser) -> None:
    """:func:`add_cluster`, ``--chunk`` and ``--block``: write the output as a chunked,
    resumable ensemble directory (:mod:`rgfield.ensembles`), on a Dask cluster if asked."""
    group = parser.add_argument_group(
        "ensembles",
        "Any of --workers, --scheduler, --chunk or --block makes --out an ensemble directory:"
        " one netCDF file per chunk, written as chunks finish; rerunning the same command"
        " resumes it (docs/scaling.md). The samples depend on --seed and --block only.",
    )
    add_cluster(parser, group)
    group.add_argument("--chunk", type=int, help="samples per task and file (default 4 blocks)")
    group.add_argument("--block", type=int, help="samples per seeded call (default 16)")
    parser.set_defaults(ensemble_output=True)


def ensemble_mode(args: argparse.Namespace) -> bool:
    """Whether the command writes an ensemble directory (see :func:`add_ensemble`)."""
    return getattr(args, "ensemble_output", False) and any(
        getattr(args, name, None) is not None for name in ("workers", "scheduler", "chunk", "block")
    )


def check(args: argparse.Namespace) -> None:
    """Check the shared options of a parsed command line: ``--out`` (:func:`check_output`; an
    ensemble directory may exist, to be resumed), ``--device`` (known to torch and present on
    this machine) and the ensemble options. Raises ``ValueError`` or ``OSError`` naming the
    option."""
    if getattr(args, "workers", None) is not None and args.scheduler is not None:
        raise ValueError("--workers and --scheduler: give one of them")
    for name in ("workers", "chunk", "block"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive integer; got {value}")
    if ensemble_mode(args):
        check_output(args.out, overwrite=True, kind="directory")
    elif getattr(args, "out", None) is not None:
        check_output(args.out, args.overwrite, args.out_kind)
    if getattr(args, "device", None) is not None:
        from rgfield.fields import resolve_device

        resolve_device(args.device, "--device")


def check_output(out: str | os.PathLike, overwrite: bool, kind: str = "file") -> Path:
    """Refuse an output path that the command could not write at the end of its work.

    The rules: the parent directory exists and is writable; a file output is not a directory,
    a directory output is not a file (and is writable if it exists); an existing path is
    replaced only with ``overwrite``.

    Raises
    ------
    ValueError, PermissionError or FileExistsError
        Naming ``--out``.
    """
    path = Path(out)
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"--out: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--out: directory {parent} is not writable")
    if kind == "file" and path.is_dir():
        raise ValueError(f"--out: {path} is a directory; give a file name")
    if kind == "directory" and path.exists() and not path.is_dir():
        raise ValueError(f"--out: {path} is a file; give a directory")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if kind == "directory" and path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"--out: directory {path} is not writable")
    return path


def output_state(args: argparse.Namespace) -> dict[Path, tuple[int, int]]:
    """(inode, modification time) of every file at ``--out`` (the file, or those under the
    directory): compared after an interruption to say what the command wrote."""
    out = getattr(args, "out", None)
    if out is None:
        return {}
    path = Path(out)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    state = {}
    for file in files:
        try:
            stat = file.stat()
        except OSError:  # removed meanwhile
            continue
        state[file] = (stat.st_ino, stat.st_mtime_ns)
    return state


def written_since(args: argparse.Namespace, before: dict[Path, tuple[int, int]]) -> list[str]:
    """Files at ``--out`` created or replaced since ``before`` (:func:`output_state`)."""
    return sorted(str(p) for p, now in output_state(args).items() if before.get(p) != now)
