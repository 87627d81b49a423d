"""MCMC of one factor, the coarse-to-fine draw of whole fields, and its diagnostics."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from rgfield.energies import ExponentialModel
from rgfield.io import to_dataset
from rgfield.mcmc import (
    MALA,
    BlockMALA,
    ChainRun,
    Info,
    LogDensityFn,
    State,
    Trace,
    integrated_autocorrelation_time,
    run_chains,
)
from rgfield.rg.gaussian_start import GaussianStart
from rgfield.rg.scalar import sample_scalar
from rgfield.rg.scales import Scale, coarse_to_fine

__all__ = [
    "AUTO_STEPS",
    "SAMPLERS",
    "STARTS",
    "MixingRule",
    "STUCK_ACCEPTANCE",
    "SampleResult",
    "check_sampler",
    "finite_start",
    "generate",
    "gradients_per_step",
    "kernel_for",
    "run_scale",
    "tau_or_nan",
    "warn_stuck",
]

SAMPLERS = ("mala", "block")
STARTS = ("gaussian", "zero")


@dataclass(frozen=True)
class SampleResult:
    """Fields drawn by :meth:`~rgfield.rg.HierarchicalModel.sample` with the sampler's diagnostics.

    Attributes
    ----------
    fields : torch.Tensor, shape (n, L, L), float64, on the device the chains ran on
    diagnostics : xarray.Dataset
        Per scale (coarse to fine): ``acceptance`` (mean over chains after warm-up),
        ``step_size`` (frozen after warm-up), ``steps``, ``gradients`` (gradient evaluations per
        chain, warm-up included), ``exact`` (1 where drawn exactly), and
        per step ``energy`` (mean energy per variable over chains, warm-up included,
        NaN-padded) and ``warmup_acceptance``.
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
    if sampler == "block" and not adjusted:
        raise ValueError("sampler: 'block' makes Metropolis tests; it needs adjusted=True")


def _block_size(reach: int | None, n: int) -> int | None:
    """Smallest even block side b ≥ 2 × reach with n a multiple of 2b; None if there is none."""
    if reach is None:
        return None
    return next((b for b in range(max(2, 2 * reach), n // 2 + 1, 2) if n % (2 * b) == 0), None)


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
) -> MALA | BlockMALA:
    """The kernel of one factor (grid n × n): BlockMALA when asked for and blocks fit, else MALA."""
    block = _block_size(model.reach, n) if sampler == "block" else None
    if block is not None:
        density = _negated(lambda y: model.density_and_grad(y, c))
        return BlockMALA(density, step_size, block)
    return MALA(_negated(model.given(c)), step_size, adjusted)


def gradients_per_step(kernel: MALA | BlockMALA) -> int:
    """Gradient evaluations per step of a chain: 1 for MALA, 4 for a BlockMALA sweep."""
    return 4 if isinstance(kernel, BlockMALA) else 1


AUTO_STEPS = {"multiple": 15, "check": 25, "most": 3000}
"""``steps="auto"``: run each factor's chains until warm-up + steps ≥ ``multiple`` × τ_int,
checked every ``check`` steps, at most ``most`` steps (see :class:`MixingRule`)."""


class MixingRule:
    """The stopping rule of ``steps="auto"``: enough once warm-up + t ≥ m τ_int.

    τ_int (Madras–Sokal, chains pooled) is the larger of the energy's and the summed details'
    (the slowest, long-wavelength mode) over all warm-up + t steps, re-estimated every
    ``check`` steps. Measured on φ⁴ at L = 32 (docs/rg.md, "burn-in"): from zero details the
    mean square of the details reaches its stationary level after 5–6 τ_int of their sum at
    every scale, and over a window of about 10 τ_int the estimate is about 30 % low (13.3
    against 19.4 steps at j = 1), so m = 15 is about 10 true τ_int, twice the burn-in.
    """

    def __init__(self, warmup: int, multiple: float, check: int) -> None:
        self.warmup, self.multiple, self.check = warmup, multiple, check
        self.energy, self.sums = (Trace(warmup + AUTO_STEPS["most"]) for _ in range(2))
        self.tau = np.nan

    def observe(self, state: State, info: Info, sampling: bool) -> None:
        """A chain-runner callback: records the energy and the summed details of every step."""
        self.energy.append(state.logdensity)
        self.sums.append(state.position.flatten(1).sum(1))

    def __call__(self, done: int) -> bool:
        if done % self.check:
            return False
        taus = [tau_or_nan(trace.values()) for trace in (self.energy, self.sums)]
        if np.isnan(taus).all():  # no chain has accepted a move: more steps would not mix them
            self.tau = np.nan
            return True
        self.tau = float(np.nanmax(taus))
        return self.warmup + done >= self.multiple * self.tau


def tau_or_nan(series: torch.Tensor | np.ndarray) -> float:
    """τ_int (Madras–Sokal) of (chains, steps) series; NaN where no chain moved (a constant
    series, whose autocorrelation time is undefined)."""
    values = torch.as_tensor(series)
    if not bool((values != values[:, :1]).any()):
        return np.nan
    return integrated_autocorrelation_time(values).tau


def run_scale(
    kernel: MALA | BlockMALA,
    y: torch.Tensor,
    generator: torch.Generator,
    warmup: int,
    steps: int | str,
    callback: Callable[[State, Info, bool], None] | None = None,
) -> tuple[ChainRun, dict]:
    """Chains of one factor from ``y``: warm-up (tuning h), then ``steps`` frozen steps, or
    as many as :class:`MixingRule` asks for when ``steps`` is ``"auto"``.

    Returns the run and its diagnostics row (see :class:`SampleResult`).
    """
    rule = None
    if steps == "auto":
        rule = MixingRule(warmup, AUTO_STEPS["multiple"], AUTO_STEPS["check"])
        steps, observe = AUTO_STEPS["most"], rule.observe
        callback = observe if callback is None else _both(observe, callback)
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
        "mixed": rule is None or warmup + run.steps >= rule.multiple * rule.tau,
        "gradients": (warmup + run.steps) * gradients_per_step(kernel),
        "seconds": run.seconds,
        "energy": np.where(counts > 0, mean, np.nan) / y[0].numel(),
        "warmup_acceptance": run.warmup_acceptance,
    }


def _both(first: Callable, second: Callable) -> Callable:
    def both(*args) -> None:
        first(*args)
        second(*args)

    return both


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
) -> tuple[torch.Tensor, dict]:
    """Normalised draws y of one factor given the coarse field x_j (None for the coarsest).

    A one-variable factor is drawn exactly; any other by chains on the generator's device,
    started from a draw of ``start`` (from zero details without one). ``on_step(k)`` reports
    k more steps done (progress).
    """
    model = model.to(generator.device)
    if shape[1:] == (1, 1, 1):
        if on_step is not None:
            on_step(warmup + (0 if steps == "auto" else steps))
        return sample_scalar(model, shape[0], generator), {"exact": 1}
    c = scale.condition(coarse)
    kernel = kernel_for(model, c, shape[-1], step_size, sampler, adjusted)
    callback = None if on_step is None else lambda state, info, sampling: on_step(1)
    if start is None:
        y0 = torch.zeros(shape, dtype=torch.float64, device=generator.device)
    else:
        y0 = finite_start(model, start, c, generator, shape[0])
    run, row = run_scale(kernel, y0, generator, warmup, steps, callback)
    return run.state.position, {**row, "exact": 0}


START_HALVINGS = 8
"""Halvings of a start's residual tried before a chain starts at zero details instead."""


def finite_start(
    model: ExponentialModel,
    start: GaussianStart,
    c: torch.Tensor | None,
    generator: torch.Generator,
    n: int,
) -> torch.Tensor:
    """Starts y = E[y | c] + s ξ of ``n`` chains with finite energy U(y | c).

    A Gaussian draw can leave the support of a potential family (the data's range, widened
    a little), where U = +∞ (22 % of the chains at j = 1 of φ⁴ at L = 32): there the residual
    ξ is halved, up to :data:`START_HALVINGS` times, then dropped (s = 0, the mean); a chain
    still outside starts from zero details.
    """
    mean = start.mean(c, n, generator.device)
    noise = start.noise(generator, n)
    scale = torch.ones(n, 1, 1, 1, dtype=torch.float64, device=generator.device)
    for smaller in [2.0**-k for k in range(1, START_HALVINGS + 1)] + [0.0, None]:
        y = mean + scale * noise
        outside = ~torch.isfinite(model.energy(y, c))
        if not outside.any() or smaller is None:
            break
        scale[outside] = smaller
    return torch.where(outside[:, None, None, None], 0.0, y)


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
) -> tuple[torch.Tensor, xr.Dataset]:
    """Draw ``n`` fields of a fitted model coarse to fine: x_J, then x̄_j | x_j for j = J..1.

    ``steps`` and ``warmup`` hold one count per factor in
    :func:`~rgfield.rg.scales.coarse_to_fine` order (a step count may be ``"auto"``). The
    chains run on the generator's device, each factor's started from ``starts[name]``
    (zero details for a factor not in ``starts``). Returns the fields (n, L, L) there and the
    per-scale diagnostics (see :class:`SampleResult`).
    """
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
        )
        x = scale.grow(x, y, model.wavelet)
        rows.append({"scale": scale.name, **row})
        _warn_if_stuck(scale.name, row)
    return x, trace_dataset(rows)


STUCK_ACCEPTANCE = 0.05
"""Below this mean acceptance after the warm-up a scale's chains are reported as stuck."""


def _warn_if_stuck(name: str, row: dict) -> None:
    """A warning naming the scale when its chains barely moved after the warm-up, or when
    ``steps="auto"`` stopped at its most steps before the chains had mixed."""
    if row.get("acceptance", np.nan) < STUCK_ACCEPTANCE:
        warn_stuck(name, row["acceptance"], float(np.median(row["step_size"])))
    elif not row.get("mixed", True):
        warnings.warn(
            f"scale {name}: steps='auto' stopped at its most, {row['steps']} steps after the"
            f" warm-up, short of {AUTO_STEPS['multiple']} τ_int"
            f" ({AUTO_STEPS['multiple'] * row['tau']:.0f} steps); these samples may not be"
            " equilibrated",
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
