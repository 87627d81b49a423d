"""MCMC of one factor, the coarse-to-fine draw of whole fields, and its diagnostics."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from rgfield.energies import ExponentialModel
from rgfield.energies.stationary import GaussianStart
from rgfield.io import to_dataset
from rgfield.mcmc import (
    HMC,
    MALA,
    BlockMALA,
    ChainRun,
    CountingDensity,
    Info,
    LogDensityFn,
    State,
    Trace,
    integrated_autocorrelation_time,
    run_chains,
)
from rgfield.rg.burnin import burn_in_steps
from rgfield.rg.coordinates import Coordinates
from rgfield.rg.scalar import sample_scalar
from rgfield.rg.scales import Scale, coarse_to_fine

__all__ = [
    "AUTO_STEPS",
    "CHAIN_GROUP",
    "Calibration",
    "SAMPLERS",
    "SAMPLER_DEFAULTS",
    "STARTS",
    "HMC_JITTER",
    "HMC_LENGTH",
    "HMC_MAX_LEAPFROGS",
    "MixingRule",
    "PILOT_CHAINS",
    "STUCK_ACCEPTANCE",
    "SampleResult",
    "both",
    "chain_groups",
    "chains_at_data",
    "counting",
    "check_sampler",
    "draw_calibrated",
    "draw_with_pilot",
    "finite_start",
    "generate",
    "gradients_per_step",
    "kernel_for",
    "require_finite_end",
    "run_scale",
    "tau_or_nan",
    "warn_stuck",
]

SAMPLERS = ("hmc", "mala", "block")
SAMPLER_DEFAULTS = {
    "hmc": {"warmup": 50, "step_size": 0.2},
    "mala": {"warmup": 200, "step_size": 0.05},
    "block": {"warmup": 200, "step_size": 0.05},
}
"""Warm-up steps (HMC: trajectories) and initial step of each sampler when not given."""
STARTS = ("gaussian", "zero")


@dataclass(frozen=True)
class SampleResult:
    """Fields drawn by :meth:`~rgfield.rg.HierarchicalModel.sample` with the sampler's diagnostics.

    Attributes
    ----------
    fields : torch.Tensor, shape (n, L, L), float64, on the device the chains ran on
    diagnostics : xarray.Dataset
        Per scale (coarse to fine): ``acceptance`` (mean over chains after warm-up),
        ``step_size`` (frozen after warm-up), ``steps``, ``pilot_steps`` and ``tau`` (of the
        ``steps="auto"`` pilot, :func:`draw_with_pilot`, or of the model's calibration, with
        ``pilot_steps`` 0, :func:`draw_calibrated`; NaN with a fixed count),
        ``gradients`` (gradient evaluations per field, every evaluation counted: warm-up,
        the chains' first, the pilot's share), ``exact`` (1 where drawn exactly), and per step
        ``energy`` (mean energy per variable over chains, warm-up included, NaN-padded; with
        a pilot, its 32 chains' warm-up and run, then all chains') and ``warmup_acceptance``.
    attrs : dict
        Provenance for :meth:`to_dataset`.
    """

    fields: torch.Tensor
    diagnostics: xr.Dataset
    attrs: dict

    def to_dataset(self, name: str = "field") -> xr.Dataset:
        """The samples as an ensemble Dataset in rgfield's file convention (float32)."""
        return to_dataset(self.fields.float(), name=name, attrs=self.attrs)


def check_sampler(sampler: str, adjusted: bool = True) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")
    if sampler != "mala" and not adjusted:
        raise ValueError(f"sampler: {sampler!r} makes Metropolis tests; it needs adjusted=True")


def _block_size(reach: int | None, n: int) -> int | None:
    """Smallest even block side b ≥ 2 × reach with n a multiple of 2b; None if there is none."""
    if reach is None:
        return None
    return next((b for b in range(max(2, 2 * reach), n // 2 + 1, 2) if n % (2 * b) == 0), None)


HMC_LENGTH = 2.0
"""Duration of the RG sampler's HMC trajectories, in units of the normalised details."""
HMC_JITTER = 0.5
"""Relative spread of each chain's HMC step per trajectory (:class:`~rgfield.mcmc.HMC`)."""
HMC_MAX_LEAPFROGS = 50
"""The most leapfrog steps of a trajectory (14–15 at j = 1 of φ⁴ at L = 128): a stiff
conditional (a fit on data with a null space) gets shorter trajectories, not unbounded cost."""


def _negated(function: Callable) -> LogDensityFn:
    """log p = −U and ∇ log p = −∇U of an energy function of y."""

    def logdensity_and_grad(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energy, grad = function(y)
        return -energy, -grad

    return logdensity_and_grad


def kernel_for(
    model: ExponentialModel,
    c: torch.Tensor | None,
    n: int,
    step_size: float,
    sampler: str = "mala",
    adjusted: bool = True,
    coordinates: Coordinates | None = None,
) -> MALA | BlockMALA | HMC:
    """The kernel of one factor (grid n × n): HMC, or BlockMALA when asked for and blocks fit,
    else MALA; its log-density counts the gradient evaluations (:class:`CountingDensity`).

    With ``coordinates`` (:mod:`rgfield.rg.coordinates`) the chains' positions are coordinates
    w of the details (map them with ``coordinates.onto``); the maps are not local, so no
    blocks.
    """
    block = _block_size(model.reach, n) if sampler == "block" and coordinates is None else None
    if block is not None:
        density = CountingDensity(_negated(lambda y: model.density_and_grad(y, c)))
        return BlockMALA(density, step_size, block)
    energy = model.given(c) if coordinates is None else coordinates.given(model.given(c), c)
    density = CountingDensity(_negated(energy))
    if sampler == "hmc":
        return HMC(
            density,
            step_size,
            length=HMC_LENGTH,
            max_leapfrogs=HMC_MAX_LEAPFROGS,
            jitter=HMC_JITTER,
        )
    return MALA(density, step_size, adjusted)


def gradients_per_step(kernel: MALA | BlockMALA | HMC) -> int:
    """Gradient evaluations per step of a chain at the kernel's present step size: 1 for MALA,
    4 for a BlockMALA sweep, the leapfrog steps of an HMC trajectory."""
    if isinstance(kernel, HMC):
        return kernel.leapfrogs()
    return 4 if isinstance(kernel, BlockMALA) else 1


AUTO_STEPS = {"pilot": 50, "multiple": 10, "check": 25, "most": 3000}
"""``steps="auto"`` (see :func:`draw_with_pilot`): a pilot of :data:`PILOT_CHAINS` chains runs
after its warm-up until those steps make ``pilot`` × its τ_int; then every chain runs
``multiple`` × τ_int steps from its start. ``check`` and ``most`` count gradient evaluations
at the step a run starts with (the initial step for the pilot, the tuned one after): τ_int
is re-estimated every 25 (25 MALA steps, 6 BlockMALA sweeps, one to three HMC trajectories),
and the pilot and the other chains run at most 3,000 (3,000 MALA steps)."""


class MixingRule:
    """The pilot's stopping rule: enough once its t steps after the warm-up make m τ_int.

    τ_int (Madras–Sokal, chains pooled) is the larger of the energy's and the summed details'
    (the slowest, long-wavelength mode) over those t steps, re-estimated every ``check``
    steps. Each chain's own mean absorbs the fluctuations slower than its window, so over a
    window of a few τ_int the estimate is far too low: at j = 1 of φ⁴ at L = 128 (MALA, 500
    chains from Gaussian starts) 10 steps over 150 steps, against 48 over 1,200 steps at
    equilibrium (docs/rg.md, "Sampling"). Over m = 50 τ_int its bias is a few per cent
    (about −2τ/t) and 32 chains give it to about 10 %.
    """

    def __init__(
        self,
        multiple: float,
        check: int,
        details: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.multiple, self.check, self.details = multiple, check, details
        self.energy, self.sums = (Trace(AUTO_STEPS["most"]) for _ in range(2))
        self.tau = np.nan

    def observe(self, state: State, info: Info, sampling: bool) -> None:
        """A chain-runner callback: records the energy and the summed details of every step
        after the warm-up (the positions mapped by ``details`` when the chains move in other
        coordinates: their null directions wander freely and would never mix)."""
        if sampling:
            self.energy.append(state.logdensity)
            position = state.position if self.details is None else self.details(state.position)
            self.sums.append(position.flatten(1).sum(1))

    def __call__(self, done: int) -> bool:
        if done % self.check or done < 4:  # τ_int needs four steps at least
            return False
        taus = [tau_or_nan(trace.values()) for trace in (self.energy, self.sums)]
        if np.isnan(taus).all():  # no chain has accepted a move: more steps would not mix them
            self.tau = np.nan
            return True
        self.tau = float(np.nanmax(taus))
        return done >= self.multiple * self.tau


def in_steps(kernel: MALA | BlockMALA | HMC, gradients: int) -> int:
    """A number of gradient evaluations in steps of ``kernel`` (at least one)."""
    return max(1, gradients // gradients_per_step(kernel))


def tau_or_nan(series: torch.Tensor | np.ndarray) -> float:
    """τ_int (Madras–Sokal) of (chains, steps) series; NaN where no chain moved (a constant
    series, whose autocorrelation time is undefined). Chains whose series is not finite
    throughout (still outside a potential's support, at infinite energy) are left out."""
    values = torch.as_tensor(series)
    values = values[torch.isfinite(values).all(-1)]
    if not len(values):
        return np.nan
    if not bool((values != values[:, :1]).any()):
        return np.nan
    return integrated_autocorrelation_time(values).tau


def run_scale(
    kernel: MALA | BlockMALA | HMC,
    y: torch.Tensor,
    generator: torch.Generator,
    warmup: int,
    steps: int | str,
    callback: Callable[[State, Info, bool], None] | None = None,
    details: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[ChainRun, dict]:
    """Chains of one factor from ``y``: warm-up (tuning h), then ``steps`` frozen steps, or
    as many as :class:`MixingRule` asks for when ``steps`` is ``"auto"`` (``AUTO_STEPS["pilot"]``
    τ_int; ``details`` maps positions to details for it, when the chains move in other
    coordinates). ``kernel`` comes from :func:`kernel_for`: its log-density counts the gradient
    evaluations.

    Returns the run and its diagnostics row (see :class:`SampleResult`).
    """
    rule = None
    if steps == "auto":
        rule = MixingRule(AUTO_STEPS["pilot"], in_steps(kernel, AUTO_STEPS["check"]), details)
        steps, observe = in_steps(kernel, AUTO_STEPS["most"]), rule.observe
        callback = both(observe, callback)
    calls = kernel.logdensity_and_grad.calls
    run = run_chains(
        kernel, y, generator, warmup=warmup, steps=steps, callback=callback, enough=rule
    )
    energy = -run.logdensity  # NaN where not finite
    finite = np.isfinite(energy)
    counts = finite.sum(0)
    mean = np.where(finite, energy, 0.0).sum(0) / np.maximum(counts, 1)
    return run, {
        "acceptance": float(run.acceptance.mean()) if run.steps else np.nan,
        "step_size": run.kernel.step_size,
        "warmup": warmup,
        "steps": run.steps,
        "tau": np.nan if rule is None else rule.tau,
        "mixed": rule is None or run.steps >= rule.multiple * rule.tau,
        "gradients": kernel.logdensity_and_grad.calls - calls,
        "seconds": run.seconds,
        "energy": np.where(counts > 0, mean, np.nan) / y[0].numel(),
        "warmup_acceptance": run.warmup_acceptance,
    }


def chains_at_data(
    model, scale: Scale, pyramid, device: torch.device, step_size: float, sampler: str
) -> tuple[
    torch.Tensor, torch.Tensor | None, MALA | BlockMALA | HMC, torch.Tensor, Callable | None
]:
    """Chains of one factor started at data: the data's details y and coarse fields c, the
    kernel given c, the chains' start (y in the coordinates the chains move in), and the map
    from positions back to details (None where the chains move in the details).

    The set-up of the mixing study and of the calibration (equilibrium starts where the model
    fits). ``pyramid`` is the data's wavelet pyramid on ``device``."""
    y, c = scale.variables(pyramid)
    factor = model.factor(scale).to(device)
    coordinates = model.coordinates(scale)
    if coordinates is None:
        return y, c, kernel_for(factor, c, y.shape[-1], step_size, sampler), y, None
    coordinates = coordinates.to(device)
    kernel = kernel_for(factor, c, y.shape[-1], step_size, sampler, coordinates=coordinates)
    return y, c, kernel, coordinates.into(y, c), lambda w: coordinates.onto(w, c)


def both(first: Callable, second: Callable | None) -> Callable:
    """A chain-runner callback that calls ``first``, then ``second`` (when there is one)."""
    if second is None:
        return first

    def call_both(*args) -> None:
        first(*args)
        second(*args)

    return call_both


def counting(on_step: Callable[[int], None] | None) -> Callable[[State, Info, bool], None] | None:
    """The chain-runner callback that reports every step as ``on_step(1)`` (None without one)."""
    if on_step is None:
        return None
    return lambda state, info, sampling: on_step(1)


def draw_scale(
    scale: Scale,
    model: ExponentialModel,
    coarse: torch.Tensor | None,
    shape: tuple[int, ...],
    generator: torch.Generator,
    warmup: int,
    steps: int | str,
    step_size: float,
    sampler: str,
    adjusted: bool,
    start: GaussianStart | None = None,
    on_step: Callable[[int], None] | None = None,
    coordinates: Coordinates | None = None,
    calibration: Calibration | None = None,
) -> tuple[torch.Tensor, dict]:
    """Normalised draws y of one factor given the coarse field x_j (None for the coarsest).

    A one-variable factor is drawn exactly; any other by chains on the generator's device,
    started from a draw of ``start`` (from zero details without one). ``on_step(k)`` reports
    k more steps done (progress). With a number of ``steps``, every chain warms up and runs
    them; with ``"auto"``, see :func:`draw_with_pilot`, or, given the factor's
    ``calibration`` for this sampler and a ``start``, :func:`draw_calibrated`. With
    ``coordinates`` the chains move in them (see :func:`kernel_for`).
    """
    model = model.to(generator.device)
    coordinates = None if coordinates is None else coordinates.to(generator.device)
    if shape[1:] == (1, 1, 1):
        if on_step is not None:
            on_step(warmup + (0 if steps == "auto" else steps))
        return sample_scalar(model, shape[0], generator), {"exact": 1}
    if sampler == "block" and (reason := _not_blockable(model, coordinates)):
        warnings.warn(f"scale {scale.name}: sampler='block' runs MALA here: {reason}", stacklevel=4)
    c = scale.condition(coarse)
    callback = counting(on_step)
    if start is None:
        y0 = torch.zeros(shape, dtype=torch.float64, device=generator.device)
    else:
        y0 = finite_start(model, start, c, generator, shape[0], coordinates)
    if coordinates is not None:
        y0 = coordinates.into(y0, c)

    def make_kernel(given: torch.Tensor | None, h: float) -> MALA | BlockMALA | HMC:
        return kernel_for(model, given, shape[-1], h, sampler, adjusted, coordinates)

    calibrated = calibration is not None and calibration.sampler == sampler and adjusted
    if steps == "auto" and calibrated and start is not None:
        y, row = draw_calibrated(make_kernel, c, y0, generator, calibration, on_step)
    elif steps == "auto":

        def details(given: torch.Tensor | None):
            if coordinates is None:
                return None
            return lambda w: coordinates.onto(w, given)

        pilot = shape[0] if start is None else PILOT_CHAINS
        y, row = draw_with_pilot(
            (make_kernel, details), c, y0, generator, (warmup, step_size), callback, pilot
        )
        row = {**row, "exact": 0}
    else:
        run, row = run_scale(make_kernel(c, step_size), y0, generator, warmup, steps, callback)
        y, row = run.state.position, {**row, "pilot_steps": np.nan, "exact": 0}
    if coordinates is not None:
        y = coordinates.onto(y, c)
    require_finite_end(scale.name, model, y, c)
    return y, row


def _not_blockable(model: ExponentialModel, coordinates: Coordinates | None) -> str | None:
    """Why a factor's chains cannot take block moves whatever its grid (None if they can
    where blocks fit, :func:`_block_size`)."""
    if model.reach is None:
        families = [f.name for f in model.features if f.reach is None] or "its families"
        return f"the energy of {families} is not local"
    if coordinates is not None:
        return f"its chains move in {type(coordinates).__name__} coordinates, which are not local"
    return None


@dataclass(frozen=True)
class Calibration:
    """One scale's sampler, tuned at equilibrium, and the burn-in of its chains.

    Attributes
    ----------
    sampler : str
        The kernel it was measured with (``"hmc"``, ``"mala"`` or ``"block"``).
    step_size : float
        The step after the warm-up's tuning towards the kernel's target acceptance.
    tau : float
        τ_int in steps of that kernel at that step (the larger of the energy's and the summed
        details', :class:`~rgfield.rg.sampling.MixingRule`), over 50 τ_int.
    bias, bias_error : tuple of tuples of float
        Per :data:`~rgfield.rg.burnin.BURN_IN_OBSERVABLES`, the bias r(t) of chains from the
        Gaussian start after t = 0, 1, … steps and its standard error, in standard deviations
        of the observable at equilibrium (:func:`~rgfield.rg.burnin.bias_curves`); empty in
        a calibration stored without them (model files written before they were measured).
    """

    sampler: str
    step_size: float
    tau: float
    bias: tuple[tuple[float, ...], ...] = ()
    bias_error: tuple[tuple[float, ...], ...] = ()

    def burn_in(self, n: int) -> int:
        """Steps that n chains from the Gaussian start run: their measured burn-in
        (:func:`~rgfield.rg.burnin.burn_in_steps`), or ``AUTO_STEPS["multiple"]`` τ_int
        where the calibration has no bias curves (model files calibrated before they were
        measured)."""
        if not self.bias:
            return max(1, math.ceil(AUTO_STEPS["multiple"] * self.tau))
        return burn_in_steps(np.array(self.bias), np.array(self.bias_error), self.tau, n)


PILOT_CHAINS = 32
"""Chains of the pilot that tunes the step and measures τ_int under ``steps="auto"``."""


CHAIN_GROUP = 2**19
"""The most variables (chains × variables of a chain) of a group of chains in a calibrated
draw on the CPU: the batch runs group after group, each group's arrays (4 MB) one chunk of
the energy's evaluation (:meth:`~rgfield.energies.ExponentialModel.energy_and_grad`), with
no large temporaries to allocate and concatenate. At j = 1 of φ⁴ at L = 128 (12,288
variables a chain), 3 HMC trajectories of 500 chains took 4.17 s in one batch and 3.82 s in
12 groups of about 42 (medians of 5 alternating runs; 2^21 and 2^18 variables: no better). On a
GPU the batch runs whole."""


def chain_groups(n: int, variables: int, device: torch.device) -> list[slice]:
    """Groups of about equal size of ``n`` chains of ``variables`` each (one on a GPU)."""
    if device.type != "cpu":
        return [slice(0, n)]
    count = math.ceil(n / max(1, CHAIN_GROUP // variables))
    bounds = [k * n // count for k in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def draw_calibrated(
    make_kernel: Callable[[torch.Tensor | None, float], MALA | BlockMALA | HMC],
    c: torch.Tensor | None,
    y0: torch.Tensor,
    generator: torch.Generator,
    calibration: Calibration,
    on_step: Callable[[int], None] | None,
) -> tuple[torch.Tensor, dict]:
    """``steps="auto"`` on a calibrated factor: every chain runs the calibration's burn-in
    for a batch of its size (:meth:`Calibration.burn_in`) from its start ``y0``, at the
    calibration's step, with no warm-up and no pilot (:mod:`rgfield.rg.calibration`), in
    the groups of :func:`chain_groups`. ``make_kernel(c, h)`` builds the kernel of chains
    given coarse fields ``c`` at step h (:func:`kernel_for`); ``on_step(1)`` reports one step
    of the batch, made of as many group steps as there are groups (progress). Returns the
    last states and the diagnostics row (``tau`` the calibration's, ``pilot_steps`` 0,
    ``seconds`` of all groups, ``gradients`` per field, the same in every group)."""
    n = len(y0)
    wanted = calibration.burn_in(n)
    groups = chain_groups(n, y0[0].numel(), y0.device)
    group_steps = itertools.count(1)

    def report(state: State, info: Info, sampling: bool) -> None:
        if next(group_steps) % len(groups) == 0:
            on_step(1)

    callback = None if on_step is None else report
    ends, rows = [], []
    for group in groups:
        kernel = make_kernel(None if c is None else c[group], calibration.step_size)
        most = in_steps(kernel, AUTO_STEPS["most"])
        run, row = run_scale(kernel, y0[group], generator, 0, min(wanted, most), callback)
        ends.append(run.state.position)
        rows.append(row)
    shares = np.array([group.stop - group.start for group in groups]) / n
    return torch.cat(ends), {
        **rows[0],
        "acceptance": float(np.dot(shares, [r["acceptance"] for r in rows])),
        "seconds": sum(r["seconds"] for r in rows),
        "energy": np.tensordot(shares, np.stack([r["energy"] for r in rows]), 1),
        "tau": calibration.tau,
        "pilot_steps": 0,
        "mixed": all(r["steps"] >= wanted for r in rows),
        "exact": 0,
    }


def draw_with_pilot(
    makers: tuple[Callable, Callable],
    c: torch.Tensor | None,
    y0: torch.Tensor,
    generator: torch.Generator,
    tuning: tuple[int, float],
    callback: Callable[[State, Info, bool], None] | None,
    pilot: int = PILOT_CHAINS,
) -> tuple[torch.Tensor, dict]:
    """``steps="auto"``: a pilot of the first ``pilot`` chains warms up (tuning the step) and
    runs until its steps make ``AUTO_STEPS["pilot"]`` (50) τ_int (:class:`MixingRule`); then
    every chain, the pilot's from where they are and the others from their starts, runs
    ``AUTO_STEPS["multiple"]`` (10) τ_int steps at the tuned step. The burn-in from the
    Gaussian start is 3–6 τ_int (docs/rg.md, "Sampling"), so 10 are about twice it. The
    pilot's cost is shared among the fields: with n chains, the warm-up and the τ_int
    measurement cost pilot/n of theirs per field. A batch no larger than the pilot is the
    pilot; so is every batch started from zero details (``draw_scale`` passes ``pilot=n``),
    whose burn-in is longer and needs the warm-up's tuning (at L = 32, 13 HMC trajectories
    from zero details at the pilot's step left the finest details 30 % short of their power).

    ``makers`` holds ``make_kernel(c, h)``, which builds the kernel of chains given coarse
    fields ``c`` at step h (:func:`kernel_for`), and ``details(c)``, the map from their
    positions to details (None for the details themselves); ``tuning`` holds the warm-up
    steps and the initial step. Returns the last states and the diagnostics row: ``steps``
    after the start of the non-pilot chains, ``pilot_steps``, ``tau`` the pilot's,
    ``gradients`` per field.
    """
    warmup, step_size = tuning
    make_kernel, details = makers
    n, pilot = len(y0), min(len(y0), pilot)
    kernel = make_kernel(_first(c, pilot), step_size)
    tuned, row = run_scale(
        kernel, y0[:pilot], generator, warmup, "auto", callback, details(_first(c, pilot))
    )
    row["pilot_steps"] = row["steps"]
    if pilot == n:
        return tuned.state.position, row
    steps = 0 if np.isnan(row["tau"]) else math.ceil(AUTO_STEPS["multiple"] * row["tau"])
    kernel = make_kernel(c, tuned.kernel.step_size)
    y = torch.cat([tuned.state.position, y0[pilot:]])
    most = in_steps(kernel, AUTO_STEPS["most"])
    run, main = run_scale(kernel, y, generator, 0, min(steps, most), callback)
    moved = main if main["steps"] else row  # a stuck pilot (τ_int NaN): its acceptance tells
    return run.state.position, {
        **main,
        **{k: row[k] for k in ("tau", "warmup", "warmup_acceptance", "pilot_steps")},
        "acceptance": moved["acceptance"],
        "mixed": row["mixed"] and main["steps"] >= steps,
        "gradients": main["gradients"] + row["gradients"] * pilot / n,
        "energy": np.concatenate([row["energy"], main["energy"]]),
    }


def _first(c: torch.Tensor | None, n: int) -> torch.Tensor | None:
    return None if c is None else c[:n]


START_HALVINGS = 8
"""Halvings of a start's residual tried before a chain starts at zero details instead."""


def finite_start(
    model: ExponentialModel,
    start: GaussianStart,
    c: torch.Tensor | None,
    generator: torch.Generator,
    n: int,
    coordinates: Coordinates | None = None,
) -> torch.Tensor:
    """Starts y = E[y | c] + s ξ of ``n`` chains with finite energy U(y | c), placed where
    the chains' ``coordinates`` reach when given (y ↦ onto(into(y))).

    A Gaussian draw can leave the support of a potential family (the data's range, widened
    a little), where U = +∞: at j = 1 of φ⁴ at β_c, 22 % of the chains at L = 32 and 61 % at
    L = 128, each through a few pixels. For a local energy (:attr:`ExponentialModel.reach`)
    the residual ξ is halved only on the cells within the reach of a cell whose energy
    density is infinite, so the rest of the field keeps its stationary amplitude; for
    another energy, on the whole chain. After :data:`START_HALVINGS` halvings the residual
    is dropped where still needed (s = 0, the mean), and a chain still outside starts from
    zero details. Whole-chain halving at L = 128 left the finest details at 52 % of their
    mean square, a burn-in of about 250 MALA steps (docs/rg.md, "Sampling").
    """

    def place(y: torch.Tensor) -> torch.Tensor:
        return y if coordinates is None else coordinates.onto(coordinates.into(y, c), c)

    mean = start.mean(c, n, generator.device)
    noise = start.noise(generator, n)
    scale = torch.ones_like(noise)
    for smaller in [0.5] * START_HALVINGS + [0.0, None]:
        y = place(mean + scale * noise)
        outside = ~torch.isfinite(model.energy(y, c))
        if not outside.any() or smaller is None:
            break
        shrink = outside[:, None, None, None]
        if model.reach is not None:  # where an infinite energy has no infinite cell: whole
            near = _near_infinite_density(model, y, c)
            shrink = (near | (outside & ~near.flatten(1).any(1))[:, None, None])[:, None]
        scale = torch.where(shrink, scale * smaller, scale)
    return torch.where(outside[:, None, None, None], place(torch.zeros_like(y)), y)


def require_finite_end(
    name: str, model: ExponentialModel, y: torch.Tensor, c: torch.Tensor | None
) -> None:
    """Refuse chains that end at infinite energy U(y | c), outside the model's support.

    A chain starts there only where even zero details are outside (:func:`finite_start`),
    that is where the coarse field x_j itself lies outside the range the conditional was
    fitted on (a potential family's support); such a chain moves in only if a trajectory
    happens to land inside (the gradient outside is not finite), and otherwise its state is
    not a sample of the model. Raises ``ValueError`` naming the scale, the cause and the
    ways out.
    """
    outside = int((~torch.isfinite(model.energy(y, c))).sum())
    if outside:
        raise ValueError(
            f"scale {name}: {outside} of {len(y)} chains end where the energy is not finite,"
            " outside the support of this conditional: their coarse fields, drawn at the"
            " coarser scales, lie beyond the range of the training fields it was fitted on."
            " Either a coarser conditional ran away from the data (a fit with a curvature"
            " floor, HierarchicalModel(min_curvature=0.1) or rgfield fit --min-curvature 0.1,"
            " keeps it stable), or the chains were too short to enter the support (more"
            " steps, or steps='auto')"
        )


def _near_infinite_density(
    model: ExponentialModel, y: torch.Tensor, c: torch.Tensor | None
) -> torch.Tensor:
    """Cells (B, n, n) within the energy's reach (periodically) of a cell of infinite density."""
    near = ~torch.isfinite(model.density_and_grad(y, c)[0])
    for dim in (-2, -1):  # a periodic dilation, one axis at a time (grids smaller than 2r + 1 too)
        near = torch.stack([near.roll(s, dim) for s in range(-model.reach, model.reach + 1)]).any(0)
    return near


def trace_dataset(rows: list[dict]) -> xr.Dataset:
    """Per-scale diagnostics; per-step series padded with NaN to a common ``step`` length.

    Scales sampled exactly have no MCMC diagnostics: NaN there.
    """
    keys = max((list(r) for r in rows), key=len)
    rows = [{k: r.get(k, np.nan if k != "energy" else np.array([])) for k in keys} for r in rows]
    rows = [{**r, "warmup_acceptance": np.atleast_1d(r["warmup_acceptance"])} for r in rows]
    data = {}
    for key in keys:
        if key == "scale":
            continue
        values = [r[key] for r in rows]
        if isinstance(values[0], np.ndarray):
            table = np.full((len(rows), max(v.size for v in values)), np.nan)
            for k, v in enumerate(values):
                table[k, : v.size] = v
            data[key] = (("scale", "warmup_step" if key.startswith("warmup") else "step"), table)
        else:
            data[key] = ("scale", np.array(values))
    return xr.Dataset(data, coords={"scale": [r["scale"] for r in rows]})


def generate(
    model,
    n: int,
    generator: torch.Generator,
    steps: list[int | str],
    warmup: list[int],
    step_size: float,
    adjusted: bool,
    sampler: str,
    starts: dict[str, GaussianStart],
    on_step: Callable[[int], None] | None = None,
    calibrations: dict[str, Calibration] | None = None,
) -> tuple[torch.Tensor, xr.Dataset]:
    """Draw ``n`` fields of a fitted model coarse to fine: x_J, then x̄_j | x_j for j = J..1.

    ``steps`` and ``warmup`` hold one count per factor in
    :func:`~rgfield.rg.scales.coarse_to_fine` order (a step count may be ``"auto"``). The
    chains run on the generator's device, each factor's started from ``starts[name]``
    (zero details for a factor not in ``starts``); ``calibrations`` holds the factors' tuned
    steps and τ_int by name (:mod:`rgfield.rg.calibration`; a pilot measures them where
    absent). Returns the fields (n, L, L) there and the per-scale diagnostics (see
    :class:`SampleResult`).
    """
    calibrations = calibrations or {}
    x, rows = None, []
    for scale, n_warm, n_run in zip(coarse_to_fine(model.scales_), warmup, steps, strict=True):
        coarse_shape = model.low_shape if x is None else tuple(x.shape[-2:])
        y, row = draw_scale(
            scale,
            model.factor(scale),
            x,
            scale.shape(n, coarse_shape),
            generator,
            n_warm,
            n_run,
            step_size,
            sampler,
            adjusted,
            starts.get(scale.name),
            on_step,
            model.coordinates(scale),
            calibrations.get(scale.name),
        )
        x = scale.grow(x, y, model.wavelet)
        rows.append({"scale": scale.name, **row})
        _warn_if_stuck(scale.name, row)
    return x, trace_dataset(rows)


STUCK_ACCEPTANCE = 0.05
"""Below this mean acceptance after the warm-up a scale's chains are reported as stuck."""


def _warn_if_stuck(name: str, row: dict) -> None:
    """A warning naming the scale when its chains barely moved after the warm-up, or when
    the ``steps="auto"`` pilot stopped at its most steps before it had measured τ_int."""
    if row.get("acceptance", np.nan) < STUCK_ACCEPTANCE:
        warn_stuck(name, row["acceptance"], float(np.median(row["step_size"])))
    elif not row.get("mixed", True):
        warnings.warn(
            f"scale {name}: the steps='auto' pilot stopped at its most,"
            f" {row['pilot_steps']} steps after the warm-up, short of {AUTO_STEPS['pilot']}"
            f" τ_int ({AUTO_STEPS['pilot'] * row['tau']:.0f} steps); τ_int, and with it the"
            " chains' length, may be underestimated: these samples may not be equilibrated",
            stacklevel=4,
        )


def warn_stuck(
    name: str,
    acceptance: float,
    step_size: float,
    consequence: str = "these samples are not draws of the model",
) -> None:
    """Warn that the chains of scale ``name`` barely move (acceptance below
    :data:`STUCK_ACCEPTANCE` after the warm-up), and what follows from it."""
    warnings.warn(
        f"scale {name}: acceptance {acceptance:.3f} after the warm-up (step size"
        f" {step_size:.2g}); its chains barely move, so {consequence} (an unnormalisable or"
        " badly conditioned fit, or too short a warm-up)",
        stacklevel=5,
    )
