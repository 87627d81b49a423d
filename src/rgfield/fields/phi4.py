"""Lattice φ⁴ field theory in 2D: the energy and ``simulate`` (its Metropolis and Wolff kernels
are in :mod:`rgfield.fields.lattice`).

Convention (docs/phi4.md): on an L×L periodic lattice,

    E(φ) = (β/2) Σ_⟨xy⟩ (φ_x − φ_y)² + Σ_x V(φ_x),    V(φ) = λ (φ² − 1)²  (default λ = 1),

each nearest-neighbour bond counted once. The on-site potential may be any polynomial
V(φ) = Σ_n c_n φⁿ; the Gaussian free field E = (β/2) Σ (φ_x − φ_y)² + (m²/2) Σ φ_x² is
``Phi4.gaussian(beta, m2)``. The probability of a configuration is ∝ exp(−E(φ)).

**Hopping parameterisation.** Lattice papers write S = Σ_x [−2κ Σ_μ ψ_x ψ_{x+μ} + ψ_x² +
λ_h (ψ_x² − 1)²] (μ over the d = 2 forward directions). Expanding both and setting φ = a ψ:

    β a² = 2κ,    (dβ − 2λ) a² = 1 − 2λ_h,    λ a⁴ = λ_h,

so s = a² solves 2λ s² + (dβ − 2λ) s − 1 = 0 (positive root), κ = β s / 2, λ_h = λ s²; and back,
s = 2λ_h / (2dκ − 1 + 2λ_h), β = 2κ / s, λ = λ_h / s². Critical couplings quoted in one
convention do not carry over to another: rgfield measures its own (docs/phi4.md). λ_h = 0 (a
massive Gaussian field) has no counterpart with this V unless 2dκ = 1.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
import torch
import xarray as xr

from rgfield import _progress
from rgfield._progress import StepCallback
from rgfield._validate import fresh_seed, is_integer
from rgfield.fields import resolve_device
from rgfield.fields.lattice import Metropolis, Wolff
from rgfield.io import as_tensor
from rgfield.mcmc import (
    HMC,
    Kernel,
    adapt_step_size,
    advance,
    integrated_autocorrelation_time,
)
from rgfield.mcmc.base import as_numpy

__all__ = ["SAMPLERS", "Phi4", "Phi4Config", "fit_couplings", "simulate"]

DIMENSION = 2


@dataclass(frozen=True)
class Phi4:
    """The lattice φ⁴ energy with coupling ``beta`` and on-site polynomial potential.

    Parameters
    ----------
    beta : float
        Nearest-neighbour coupling β > 0.
    lam : float
        Quartic coupling λ of V(φ) = λ(φ² − 1)²; ignored when ``potential`` is given.
    potential : tuple of float, optional
        Coefficients (c_0, c_1, ..., c_n) of V(φ) = Σ c_k φᵏ.
    """

    beta: float
    lam: float = 1.0
    potential: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a positive number; got {self.beta!r}")
        if self.potential is None:
            if not (math.isfinite(self.lam) and self.lam > 0):
                raise ValueError(f"lam must be a positive number; got {self.lam!r}")
        else:
            coeffs = tuple(float(c) for c in self.potential)
            if not coeffs or not all(math.isfinite(c) for c in coeffs):
                raise ValueError(f"potential must be finite coefficients; got {self.potential!r}")
            while len(coeffs) > 1 and coeffs[-1] == 0:
                coeffs = coeffs[:-1]
            # exp(−E) is normalisable only if V grows at both ends: even degree, positive lead
            if len(coeffs) < 3 or len(coeffs) % 2 == 0 or coeffs[-1] <= 0:
                raise ValueError(
                    "potential must have even degree >= 2 and a positive leading coefficient"
                    f" (otherwise exp(-E) cannot be normalised); got {self.potential!r}"
                )
            object.__setattr__(self, "potential", coeffs)

    @classmethod
    def gaussian(cls, beta: float, m2: float) -> Phi4:
        """The Gaussian free field: V(φ) = (m²/2) φ²."""
        if not m2 > 0:
            raise ValueError(f"m2 must be positive for a normalisable Gaussian field; got {m2!r}")
        return cls(beta=beta, potential=(0.0, 0.0, m2 / 2))

    @cached_property
    def coefficients(self) -> np.ndarray:
        """(c_0, ..., c_n) of the on-site potential V(φ) = Σ c_k φᵏ (read-only)."""
        if self.potential is None:
            coefficients = np.array([self.lam, 0.0, -2 * self.lam, 0.0, self.lam])
        else:
            coefficients = np.array(self.potential)
        coefficients.flags.writeable = False
        return coefficients

    @cached_property
    def is_even(self) -> bool:
        """Whether V(−φ) = V(φ), the symmetry the Wolff cluster update needs."""
        return bool(np.all(self.coefficients[1::2] == 0))

    # ---------------------------------------------------------------- energy and gradient

    def energy(self, phi) -> torch.Tensor:
        """E(φ) for fields of shape (..., L, L); returns shape (...)."""
        phi = _lattice(phi)
        bonds = sum((phi - torch.roll(phi, 1, d)).square() for d in (-1, -2))
        return (0.5 * self.beta * bonds + self.on_site(phi)).sum((-1, -2))

    def grad(self, phi) -> torch.Tensor:
        """∂E/∂φ_x = β (4 φ_x − Σ_nn φ_y) + V'(φ_x) (see :meth:`logdensity_and_grad`)."""
        return -self.logdensity_and_grad(phi)[1]

    def logdensity_and_grad(self, phi) -> tuple[torch.Tensor, torch.Tensor]:
        """log p = −E(φ) and ∇ log p = −∂E/∂φ in one pass (a :data:`rgfield.mcmc.LogDensityFn`).

        With the lattice Laplacian (Δφ)_x = Σ_nn φ_y − 4 φ_x, summation by parts on the periodic
        lattice turns the bond energy into (β/2) Σ_⟨xy⟩ (φ_x − φ_y)² = −½ ⟨φ, β Δφ⟩, so

            ∇ log p = β Δφ − V'(φ),    log p = ½ ⟨φ, β Δφ⟩ − Σ_x V(φ_x),

        V(φ) = Σ_k c_k φᵏ and V'(φ) = Σ_k k c_k φ^(k−1) from the same powers of φ, elementwise
        and in place, with one reduction (the sum over sites): HMC calls this at every leapfrog
        step, and it costs about what the gradient alone did.

        Parameters
        ----------
        phi : array_like (..., L, L)

        Returns
        -------
        logdensity : torch.Tensor (...)
        grad : torch.Tensor (..., L, L)
        """
        phi = _lattice(phi)
        grad = torch.roll(phi, 1, -1)
        for shift, dim in ((-1, -1), (1, -2), (-1, -2)):
            grad.add_(torch.roll(phi, shift, dim))
        grad.add_(phi, alpha=-2 * DIMENSION).mul_(self.beta)  # β Δφ
        c = [float(ck) for ck in self.coefficients]
        site = torch.mul(phi, grad).mul_(0.5)  # log p per site, bond part ½ φ β Δφ
        if c[1]:
            site.add_(phi, alpha=-c[1])
            grad.sub_(c[1])
        lower = phi  # φ^(k−1)
        for k in range(2, len(c)):
            if c[k]:
                site.addcmul_(lower, phi, value=-c[k])
                grad.add_(lower, alpha=-k * c[k])
            if k + 1 < len(c):
                lower = lower * phi
        return _site_sum(site) - c[0] * phi.shape[-1] * phi.shape[-2], grad

    def on_site(self, phi: torch.Tensor) -> torch.Tensor:
        """V(φ) elementwise (Horner)."""
        out = torch.zeros_like(phi)
        for c in self.coefficients[::-1]:
            out = out * phi + float(c)
        return out

    # ------------------------------------------------------------------- conventions

    def to_hopping(self) -> tuple[float, float]:
        """(κ, λ_h) of the hopping parameterisation, for the default quartic potential."""
        self._require_quartic()
        d, beta, lam = DIMENSION, self.beta, self.lam
        b = d * beta - 2 * lam
        s = 1 / b if lam == 0 else (-b + math.sqrt(b * b + 8 * lam)) / (4 * lam)
        return beta * s / 2, lam * s * s

    @classmethod
    def from_hopping(cls, kappa: float, lam_h: float) -> Phi4:
        """The rgfield couplings (β, λ) of hopping couplings (κ, λ_h)."""
        denominator = 2 * DIMENSION * kappa - 1 + 2 * lam_h
        if not (kappa > 0 and lam_h > 0 and denominator > 0):
            raise ValueError(
                "hopping couplings need kappa > 0, lam_h > 0 and 4 kappa - 1 + 2 lam_h > 0;"
                f" got kappa={kappa!r}, lam_h={lam_h!r}"
            )
        s = 2 * lam_h / denominator
        return cls(beta=2 * kappa / s, lam=lam_h / s**2)

    def _require_quartic(self) -> None:
        if self.potential is not None:
            raise ValueError("the hopping map is defined for the default λ(φ² − 1)² potential")


def fit_couplings(phi, grad) -> dict[str, float]:
    """Project an energy gradient onto the φ⁴ family, by least squares over sites and fields.

    Finds (β, c₂, c₄) minimising Σ ‖g − β ∇A − c₂ ∇Σφ² − c₄ ∇Σφ⁴‖², with
    A = ½ Σ_⟨xy⟩ (φ_x − φ_y)², so that ∇A = 4φ − Σ_nn φ, ∇Σφ² = 2φ and ∇Σφ⁴ = 4φ³. The energy
    E = (β/2) Σ (φ_x − φ_y)² + λ Σ (φ² − 1)² has β, c₂ = −2λ, c₄ = λ; the Gaussian free field
    has c₂ = m²/2, c₄ = 0. Used to read the couplings off a learned energy (docs/rg.md,
    energy recovery): gradients are free of the unknown additive constant.

    Parameters
    ----------
    phi : array_like (B, L, L)
        Fields at which the gradient is known (typically samples of the model).
    grad : array_like (B, L, L)
        ∇E at those fields.

    Returns
    -------
    dict with ``beta``, ``c2``, ``c4`` and ``explained``: the fraction 1 − ‖residual‖² / ‖g‖²
    of the gradient the φ⁴ family accounts for.
    """
    phi, grad = _lattice(phi).double(), _lattice(grad).double()
    if phi.shape != grad.shape:
        raise ValueError(
            f"grad must have the shape of phi {tuple(phi.shape)}; got {tuple(grad.shape)}"
        )
    neighbours = sum(torch.roll(phi, s, d) for d in (-1, -2) for s in (1, -1))
    basis = torch.stack([2 * DIMENSION * phi - neighbours, 2 * phi, 4 * phi**3], -1)
    basis, target = basis.reshape(-1, 3), grad.reshape(-1)
    coef = torch.linalg.lstsq(basis, target.unsqueeze(-1)).solution.squeeze(-1)
    residual = (target - basis @ coef).square().sum() / target.square().sum()
    beta, c2, c4 = coef.tolist()
    return {"beta": beta, "c2": c2, "c4": c4, "explained": float(1 - residual)}


def _site_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ over the last two dimensions as a matrix–vector product: torch's parallel sum of a
    (8, 64, 64) batch took about 8 ms on a busy 2-core machine, this about 20 µs."""
    return x.flatten(-2) @ x.new_ones(x.shape[-2] * x.shape[-1])


def _lattice(phi) -> torch.Tensor:
    phi = as_tensor(phi)
    if phi.dim() < 2 or phi.shape[-1] != phi.shape[-2] or phi.shape[-1] < 3:
        raise ValueError(f"phi must have shape (..., L, L) with L >= 3; got {tuple(phi.shape)}")
    return phi


# --------------------------------------------------------------------------------------------
# Chains and the simulation driver
# --------------------------------------------------------------------------------------------

_KERNELS: dict[str, Callable[[Phi4, int], Kernel]] = {
    "wolff": lambda model, chains: Wolff(model, np.ones(chains)),
    "metropolis": lambda model, chains: Metropolis(model, np.ones(chains)),
    "hmc": lambda model, chains: HMC(model.logdensity_and_grad, step_size=0.1, n_leapfrog=10),
}
"""The kernel of each sampler, with its step sizes before the warm-up, for ``chains`` chains."""

SAMPLERS = tuple(_KERNELS)


class _Chains:
    """A batch of chains of one kernel; ``advance`` runs steps, ``adapt`` is the warm-up.

    One step is: a Metropolis sweep with one step size per chain (metropolis); a Metropolis
    sweep and a fixed number of Wolff clusters, set in the warm-up to flip about L² sites on
    average (wolff); one HMC trajectory (hmc). Fields start as white noise; picklable, so a long
    run can be checkpointed.
    """

    def __init__(self, model: Phi4, sampler: str, size: int, chains: int, seed, device) -> None:
        rng = np.random.default_rng(seed)
        phi = rng.standard_normal((chains, size, size))
        self.sampler = sampler
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(int(rng.integers(2**63)))
        self.kernel = _KERNELS[sampler](model, chains)
        self.state = self.kernel.init(torch.as_tensor(phi, device=self.device))
        self.steps_run = 0
        self.seconds = 0.0  # wall time spent in advance() and adapt()
        self.accepted = 0.0  # Σ over steps of the chains' mean accepted fraction
        self.accepted_steps = 0

    @property
    def chains(self) -> int:
        return self.state.position.shape[0]

    def advance(self, steps: int) -> None:
        if steps <= 0:
            return
        start = time.perf_counter()
        self.state, info = advance(self.kernel, self.state, self.generator, steps)
        self.seconds += time.perf_counter() - start
        accepted = as_numpy(info.accepted)
        self._count(steps * accepted.sum() / accepted.size, steps)  # mean() has a Python layer

    def adapt(self, steps: int) -> None:
        """Tune the kernel over ``steps`` steps (:func:`rgfield.mcmc.adapt_step_size`: its step
        sizes towards its target acceptance, 0.5 for Metropolis sweeps and 0.8 for HMC, and
        the Wolff cluster count), then freeze it."""
        start = time.perf_counter()
        self.kernel, self.state, acceptance = adapt_step_size(
            self.kernel, self.state, self.generator, steps
        )
        self.seconds += time.perf_counter() - start
        self._count(acceptance.sum(), steps)

    def _count(self, accepted: float, steps: int) -> None:
        """Book ``steps`` steps whose mean accepted fractions sum to ``accepted``."""
        self.steps_run += steps
        self.accepted += accepted
        self.accepted_steps += steps

    def record(
        self, series: np.ndarray, start: int, stop: int, on_step: StepCallback | None = None
    ) -> None:
        """Advance one step at a time, storing ``observables()`` in rows start … stop − 1;
        ``on_step()`` after each step."""
        for i in range(start, stop):
            self.advance(1)
            series[i] = self.observables()
            if on_step is not None:
                on_step()

    def __getstate__(self) -> dict:
        """Picklable state (a long run can be checkpointed): the torch generator as its state."""
        return self.__dict__ | {"generator": self.generator.get_state()}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.generator = torch.Generator(self.device)
        self.generator.set_state(state["generator"])

    def mean_acceptance(self) -> float:
        """Mean accepted fraction since the last ``reset_acceptance``."""
        return float(self.accepted / max(self.accepted_steps, 1))

    def reset_acceptance(self) -> None:
        self.accepted = 0.0
        self.accepted_steps = 0

    def kernel_attrs(self) -> dict:
        """The kernel's tuned parameters, named ``<sampler>_<parameter>`` (for the attrs)."""
        values = {f.name: getattr(self.kernel, f.name) for f in dataclasses.fields(self.kernel)}
        return {
            f"{self.sampler}_{name}": value
            for name, value in values.items()
            if isinstance(value, int | float | np.ndarray)
        }

    @property
    def fields(self) -> np.ndarray:
        """Current configurations (chains, L, L) as float64 numpy."""
        return self.state.position.double().cpu().numpy()

    def observables(self) -> np.ndarray:
        """(M, |M|, E/V) of every chain now, shape (3, chains); E = −log p of the state."""
        fields = self.fields  # numpy's mean: no thread pool to wake between numba sweeps
        m = fields.mean((-1, -2))
        energy = -as_numpy(self.state.logdensity) / fields[0].size
        return np.stack([m, np.abs(m), energy])


@dataclass(frozen=True)
class Phi4Config:
    """How :func:`simulate` draws φ⁴ configurations: the energy, the lattice and the chains.

    Parameters
    ----------
    model : Phi4
        The energy E(φ).
    size : int
        Lattice size L (≥ 4; even for the Metropolis and Wolff samplers).
    sampler : {"wolff", "metropolis", "hmc"}
        See :class:`_Chains` for what one step is.
    chains : int, optional
        Independent chains run as a batch (default: 4 × numba threads, at most ``samples``).
    thermalization, spacing : int, optional
        Steps before the first saved sample (at least the burn-in it includes) and between saved
        samples; measured when omitted.
    min_pilot_steps : int
        Length of the pilot's first stage. The pilot can only see modes slower than its own
        length by chance (a chain must tunnel once), so near a critical point a short first
        stage may stop on a low τ_int; set this to ≳ 50 × the slowest τ_int expected. With
        ``min_pilot_steps = max_pilot_steps`` the pilot has a fixed length.
    max_pilot_steps : int
        Bound on the pilot run; if it ends before spanning 50 τ_int a warning says so, the
        attrs record ``pilot_converged = 0`` and the τ_int found are lower estimates.
    """

    model: Phi4
    size: int
    sampler: str = "wolff"
    chains: int | None = None
    thermalization: int | None = None
    spacing: int | None = None
    min_pilot_steps: int = 500
    max_pilot_steps: int = 2**20

    def __post_init__(self) -> None:
        if not isinstance(self.model, Phi4):
            raise ValueError(f"model must be a Phi4; got {type(self.model).__name__}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}; got {self.sampler!r}")
        if not is_integer(self.size) or self.size < 4:
            raise ValueError(f"size must be an integer >= 4; got {self.size!r}")
        if self.sampler != "hmc" and self.size % 2:
            raise ValueError(
                f"size must be even for the checkerboard sweeps of {self.sampler!r};"
                f" got {self.size}"
            )
        if self.sampler == "wolff" and not self.model.is_even:
            raise ValueError("sampler='wolff' needs an even potential V(φ) = V(−φ)")
        if self.chains is not None and not (is_integer(self.chains) and self.chains >= 1):
            raise ValueError(f"chains must be a positive integer; got {self.chains!r}")
        steps = self.thermalization
        if steps is not None and (not is_integer(steps) or steps < 0):
            raise ValueError(f"thermalization must be a non-negative integer; got {steps!r}")
        if self.spacing is not None and (not is_integer(self.spacing) or self.spacing < 1):
            raise ValueError(f"spacing must be a positive integer; got {self.spacing!r}")
        cap = self.max_pilot_steps
        if not is_integer(cap) or cap < 4:
            raise ValueError(f"max_pilot_steps must be an integer >= 4; got {cap!r}")
        if not is_integer(self.min_pilot_steps) or not 4 <= self.min_pilot_steps <= cap:
            raise ValueError(
                "min_pilot_steps must be an integer in 4..max_pilot_steps;"
                f" got {self.min_pilot_steps!r}"
            )


def simulate(
    config: Phi4Config,
    samples: int,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """Draw decorrelated φ⁴ configurations with one of rgfield's MCMC samplers.

    A burn-in of up to 200 steps tunes the samplers (then frozen). A pilot run then records M,
    |M| and E/V at every step and grows until it spans at least 50 τ_int of each (Madras–Sokal
    windowing, each chain's series taken about its own mean, chains pooled). Unless given,
    thermalisation is burn-in + pilot and the spacing between saved configurations is
    ⌈2 τ_int⌉ steps of the slowest of the three, so saved samples are effectively independent —
    except for the sign of M in the ordered phase: tunnelling between the two ordered states
    is invisible about each chain's mean and can be far slower for the local samplers (Wolff
    flips it freely). ``tau_int_m_saved`` reports what remains; since V is even, flipping
    samples' signs at random is exact when it matters.

    Parameters
    ----------
    config : Phi4Config
        The energy, the lattice size, the sampler and its chains.
    samples : int
        Number of configurations to return, drawn evenly from the chains.
    seed : int, optional
        Default: a fresh random seed; the seed used is recorded in attrs, so any run can be
        repeated exactly.
    device : str
        torch device of the HMC chains (the numba samplers run on CPU).
    progress : bool
        Show progress bars of the pilot and of the sampling.

    Returns
    -------
    xarray.Dataset
        ``phi`` (sample, y, x) float32 with a ``chain`` coordinate (samples are chain-major),
        attrs with the parameters, the pilot's τ_int (in steps) of M, |M| and E, the steps of
        thermalisation actually run, the spacing, the mean acceptance while sampling, the wall
        time of one step of all chains (``seconds_per_step``), and τ_int of M and |M| over the
        saved samples (≈ 0.5 when they are independent).
    """
    from rgfield.io import to_dataset

    if not isinstance(config, Phi4Config):
        raise ValueError(f"config must be a Phi4Config; got {type(config).__name__}")
    if not is_integer(samples) or samples < 1:
        raise ValueError(f"samples must be a positive integer; got {samples!r}")
    model, size, sampler = config.model, int(config.size), config.sampler
    thermalization, spacing = config.thermalization, config.spacing
    chains = min(samples, 4 * numba.get_num_threads()) if config.chains is None else config.chains
    if chains > samples:
        raise ValueError(f"chains must be at most samples = {samples}; got {chains}")
    device = resolve_device(device)
    seed = fresh_seed() if seed is None else int(seed)

    state = _Chains(model, sampler, int(size), int(chains), seed, device)
    state.adapt(_BURN_IN if thermalization is None else min(_BURN_IN, thermalization))
    attrs: dict = {}
    if spacing is None or thermalization is None:
        start, cap = config.min_pilot_steps, config.max_pilot_steps
        with _progress.progress(
            "pilot (measuring tau_int)", min(start, cap), enabled=progress
        ) as on_step:
            tau, pilot = _pilot(state, integrated_autocorrelation_time, start, cap, on_step)
        attrs.update(
            tau_int_m=tau[0],
            tau_int_abs_m=tau[1],
            tau_int_energy=tau[2],
            pilot_steps=pilot,
            pilot_converged=int(pilot >= 50 * max(tau)),
            seconds_per_step=state.seconds / state.steps_run,
        )
        spacing = max(1, math.ceil(2 * max(tau))) if spacing is None else spacing
    if thermalization is not None:
        state.advance(thermalization - state.steps_run)
    thermalized = state.steps_run

    per_chain = -(-samples // chains)
    saved = np.empty((per_chain, chains, size, size), dtype=np.float32)
    state.reset_acceptance()
    with _progress.progress(f"phi4 {sampler} L={size}", per_chain, enabled=progress) as on_step:
        for i in range(per_chain):
            state.advance(spacing)
            saved[i] = state.fields
            on_step()
    fields = saved.transpose(1, 0, 2, 3).reshape(-1, size, size)[:samples]
    chain_of = np.repeat(np.arange(chains), per_chain)[:samples]
    m = saved.astype(np.float64).mean((2, 3)).T  # (chains, per chain)
    attrs.update(
        generator="rgfield.fields.phi4.simulate",
        beta=model.beta,
        lam=model.lam if model.potential is None else np.nan,
        potential=model.coefficients,
        size=size,
        sampler=sampler,
        seed=seed,
        chains=chains,
        min_pilot_steps=config.min_pilot_steps,
        max_pilot_steps=config.max_pilot_steps,
        thermalization=thermalized,
        spacing=spacing,
        acceptance=state.mean_acceptance(),
        tau_int_m_saved=_saved_tau(integrated_autocorrelation_time, m),
        tau_int_abs_m_saved=_saved_tau(integrated_autocorrelation_time, np.abs(m)),
    )
    attrs.update(state.kernel_attrs())
    ds = to_dataset(fields, "phi", attrs)
    return ds.assign_coords(chain=("sample", chain_of))


_BURN_IN = 200


def _saved_tau(tau_of, series: np.ndarray) -> float:
    """τ_int over the saved samples (NaN when too few or constant)."""
    if series.shape[1] < 4 or np.all(series.std(axis=1) == 0):
        return float("nan")
    return tau_of(series).tau


def _pilot(
    state: _Chains, tau_of, start: int, cap: int, on_step: StepCallback
) -> tuple[tuple[float, ...], int]:
    """Run until the M, |M| and E/V series span ≥ 50 τ_int; return their τ_int and the steps.

    ``on_step()`` after each step, and ``on_step(0, total)`` when the run is extended."""
    target = min(start, cap)
    # one preallocated record, grown by doubling: a small long-lived array per step would sit
    # above each step's large temporaries and fragment the heap (0.5 MB per step at L = 128)
    recorded = np.empty((target, 3, state.chains))
    steps = 0
    while True:
        state.record(recorded, steps, target, on_step)
        steps = target
        taus = tuple(tau_of(recorded[:steps, k].T).tau for k in range(3))
        if steps >= 50 * max(taus):
            return taus, steps
        if steps >= cap:
            warnings.warn(
                f"pilot stopped at {cap} steps before spanning 50 tau_int"
                f" (tau_int ≈ {max(taus):.0f}); the spacing may be too short",
                stacklevel=3,
            )
            return taus, steps
        target = min(cap, max(2 * target, math.ceil(60 * max(taus))))
        grown = np.empty((target, *recorded.shape[1:]))
        grown[:steps] = recorded[:steps]
        recorded = grown
        on_step(0, target)
