"""The per-step record of a batch of chains."""

import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from rgfield.mcmc import Trace


def test_trace_keeps_every_step_in_order_across_growth():
    trace = Trace(initial=2)
    steps = [torch.arange(3, dtype=torch.float64) + 10 * t for t in range(7)]
    for values in steps[:5]:
        trace.append(values)
    for values in steps[5:]:
        trace.append(values.numpy())  # numpy arrays too (the lattice kernels' Info)
    assert len(trace) == 7
    torch.testing.assert_close(trace.values(), torch.stack(steps, 1))
    assert Trace().values().shape == (0, 0)
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        trace.append(torch.zeros(4))
    with pytest.raises(ValueError, match=r"expected shape \(chains,\)"):
        Trace().append(torch.tensor(1.0))


def test_a_record_that_autograd_follows_is_kept_without_its_graph():
    trace, x = Trace(), torch.ones(3, requires_grad=True)
    trace.append(2 * x)
    assert not trace.values().requires_grad


def _resident_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or platform.libc_ver()[0] != "glibc",
    reason="reads Linux's /proc; the pinning is glibc's",
)
def test_recording_a_long_run_does_not_grow_the_heap():
    # the pattern of a chain run: a 1.5 MB temporary per step, a (chains,) record kept. Kept
    # in a list, the records pinned the heap and resident memory grew (+110 MB over these
    # steps in a review's run, +456 MB in a longer one); in a Trace it stays flat (+5 MB)
    trace = Trace()
    generator = torch.Generator().manual_seed(0)
    start = None
    for step in range(300):
        state = torch.randn(64, 3, 32, 32, generator=generator, dtype=torch.float64) * 2
        trace.append(state.sum((1, 2, 3)))
        if step == 20:
            start = _resident_mb()
    growth = _resident_mb() - start
    assert growth < 30, f"resident memory grew by {growth:.0f} MB over 280 steps"
    assert np.isfinite(trace.values().numpy()).all()
