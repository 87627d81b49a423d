"""Shared helpers of the benchmark scripts: timing, machine description, docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numba
import torch

import rgfield

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls after ``warmup`` calls."""
    return statistics.median(wall_times(fn, repeats, warmup))


def wall_times(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` in seconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()}"
        f" threads), numba {numba.__version__} ({numba.get_num_threads()} threads),"
        f" rgfield {rgfield.__version__}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) section ``name`` of docs/benchmarks.md, stamped with machine and date."""
    stamp = f"Measured {datetime.date.today().isoformat()} on {machine()}."
    block = f"<!-- bench:{name} -->\n{stamp}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    DOC.write_text(text)
