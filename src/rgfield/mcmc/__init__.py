"""MCMC kernels with one contract, their warm-up, a chain runner and autocorrelation analysis.

Every kernel samples p(x) ∝ exp(log p(x)) for a batch of chains (the leading dimension) and
follows the BlackJAX habit (docs/architecture.md, "Sampler kernels"):

* it is built from a log-density function ``logdensity_and_grad(x) -> (log p, ∇ log p)``
  (:data:`LogDensityFn`) and its parameters (``step_size``, ...);
* ``init(position) -> State`` caches the position, log-density and gradient of every chain;
* ``step(state, generator) -> (State, Info)`` makes one transition of every chain; ``Info``
  holds the acceptance probability, the accepted fraction and divergences, chain by chain;
* the class attribute ``target_acceptance`` is what :func:`adapt_step_size` tunes towards;
  the step size is one number or one per chain; a :class:`Tunable` kernel tunes further
  parameters of its own in the same warm-up.

Kernels: :class:`MALA` (and unadjusted Langevin), :class:`BlockMALA` (one Metropolis test
per block of a coloured tiling, for sums of local densities) and :class:`HMC`; the φ⁴
Metropolis and Wolff kernels, on compiled lattice updates, are in :mod:`rgfield.fields.lattice`.
:func:`run_chains` warms a kernel up and runs it, recording the log-density trace;
:func:`advance` runs steps without recording (in one call for a :class:`MultiStep` kernel);
:func:`integrated_autocorrelation_time` and :func:`effective_sample_size` measure mixing;
a :class:`Trace` records per-step values of the chains without growing the heap.
"""

from rgfield.mcmc.adaptation import adapt_step_size
from rgfield.mcmc.base import (
    CountingDensity,
    Info,
    Kernel,
    LogDensityFn,
    MultiStep,
    State,
    StepSize,
    Tunable,
)
from rgfield.mcmc.block import BlockMALA
from rgfield.mcmc.chains import ChainRun, advance, run_chains
from rgfield.mcmc.diagnostics import (
    Autocorrelation,
    effective_sample_size,
    integrated_autocorrelation_time,
)
from rgfield.mcmc.hmc import HMC
from rgfield.mcmc.mala import MALA
from rgfield.mcmc.trace import Trace

__all__ = [
    "HMC",
    "MALA",
    "Autocorrelation",
    "BlockMALA",
    "ChainRun",
    "CountingDensity",
    "Info",
    "Kernel",
    "LogDensityFn",
    "MultiStep",
    "State",
    "StepSize",
    "Trace",
    "Tunable",
    "adapt_step_size",
    "advance",
    "effective_sample_size",
    "integrated_autocorrelation_time",
    "run_chains",
]
