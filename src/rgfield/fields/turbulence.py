"""Two-dimensional incompressible Navier–Stokes turbulence: pseudo-spectral, vorticity form.

    ∂_t ω + u·∇ω = −ν (−Δ) ω − ν_h (−Δ)^p ω − μ ω − α (−Δ)⁻¹ ω + f,
    u = (∂_y ψ, −∂_x ψ),   −Δψ = ω,

on the periodic box [0, 2π)² sampled by an N×N grid (integer wavenumbers). The nonlinear term
is computed in physical space with the 2/3 rule against aliasing; the linear terms are
integrated exactly by an integrating factor inside a classical fourth-order Runge–Kutta step
(IF-RK4; e.g. Kassam & Trefethen, SIAM J. Sci. Comput. 26, 1214 (2005), Sec. 2). Batched over
independent flows, float32 or float64, on the device of the input.

Conventions: FFTs are unnormalised, so for a field g, mean_x g² = Σ_k |ĝ_k|² / N⁴ (full grid).
Energy E = ½ ⟨|u|²⟩ = Σ_k |ω̂_k|² / (2 k² N⁴), enstrophy Z = ½ ⟨ω²⟩.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields

import numpy as np
import torch
import xarray as xr

from rgfield import _progress
from rgfield._progress import StepCallback
from rgfield._validate import fresh_seed, is_integer
from rgfield.fields import resolve_device
from rgfield.io import to_dataset
from rgfield.mcmc import integrated_autocorrelation_time

__all__ = [
    "BudgetSeries",
    "Turbulence2D",
    "TurbulenceConfig",
    "energy_spectrum",
    "fluxes",
    "initial_vorticity",
    "integrate",
    "simulate",
]

FORCINGS = ("ring", "kolmogorov", "none")
_TAU_BLOCKS = 8  # blocks of stationary flow on which simulate measures τ_int


@dataclass(frozen=True)
class Turbulence2D:
    """A 2D Navier–Stokes flow's parameters, its right-hand side and its time step.

    Parameters
    ----------
    size : int
        Grid points N per side (even).
    viscosity : float
        ν of −ν(−Δ)ω.
    hyperviscosity : float
        ν_h of −ν_h(−Δ)^p ω (0: none).
    hyper_order : int
        p ≥ 2.
    drag : float
        Linear (Ekman) drag μ of −μω: removes the energy of the inverse cascade at large scales.
        It acts on every scale, and in the direct cascade it steepens E(k) beyond k⁻³.
    hypodrag : float
        α of the large-scale friction −α(−Δ)⁻¹ω (rate α/k², 0: none): removes the inverse
        cascade's energy near the box scale and leaves the direct cascade almost untouched.
    forcing : {"ring", "kolmogorov", "none"}
        ``"ring"``: isotropic Gaussian forcing, white in time, on the wavevectors with
        |k − k_f| ≤ ½; its energy injection rate is exactly ``strength`` = ε on average (Itô).
        ``"kolmogorov"``: the steady body force F sin(k_f y) x̂, i.e. f = −F k_f cos(k_f y),
        with F = ``strength``.
    forcing_wavenumber : float
        k_f (an integer for Kolmogorov forcing).
    strength : float
        ε (ring) or F (Kolmogorov).
    """

    size: int = 256
    viscosity: float = 1e-3
    hyperviscosity: float = 0.0
    hyper_order: int = 4
    drag: float = 0.1
    hypodrag: float = 0.0
    forcing: str = "ring"
    forcing_wavenumber: float = 4.0
    strength: float = 1.0
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (is_integer(self.size) and self.size >= 8 and self.size % 2 == 0):
            raise ValueError(f"size must be an even integer >= 8; got {self.size!r}")
        for name in ("viscosity", "hyperviscosity", "drag", "hypodrag", "strength"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative; got {getattr(self, name)!r}")
        if not (is_integer(self.hyper_order) and self.hyper_order >= 2):
            raise ValueError(f"hyper_order must be an integer >= 2; got {self.hyper_order!r}")
        if self.forcing not in FORCINGS:
            raise ValueError(f"forcing must be one of {FORCINGS}; got {self.forcing!r}")
        k_f = self.forcing_wavenumber
        if self.forcing != "none" and not 1 <= k_f < self.size / 3 - 0.5:
            raise ValueError(
                f"forcing_wavenumber must lie in [1, N/3 − ½) (resolved after dealiasing);"
                f" got {k_f!r} for N = {self.size}"
            )
        if self.forcing == "kolmogorov" and k_f != int(k_f):
            raise ValueError(
                f"forcing_wavenumber must be an integer for Kolmogorov forcing; got {k_f!r}"
            )

    # -- spectral grid --------------------------------------------------------------------

    def grid(self, device=None, dtype=torch.float64) -> dict[str, torch.Tensor]:
        """Wavenumbers and operators on the rfft2 grid (N, N/2 + 1), cached per device/dtype.

        ``kx``, ``ky``; ``k2`` = |k|² (1 at k = 0 to keep divisions finite); ``keep``: the
        2/3-rule mask |k_x|, |k_y| < N/3; ``linear`` L(k) = −νk² − ν_h k^{2p} − μ − α/k²;
        ``weight``: multiplicity of each rfft2 mode in the full grid (1 or 2); ``ring``: the
        ring-forced modes; ``forcing``: f̂ of the Kolmogorov forcing (else None).
        """
        key = (torch.device(device or "cpu"), dtype)
        if key not in self._cache:
            n = self.size
            ky = torch.fft.fftfreq(n, 1 / n, dtype=dtype, device=device).reshape(-1, 1)
            kx = torch.fft.rfftfreq(n, 1 / n, dtype=dtype, device=device).reshape(1, -1)
            ky, kx = torch.broadcast_tensors(ky, kx)
            k2 = kx.square() + ky.square()
            safe_k2 = torch.where(k2 > 0, k2, torch.ones_like(k2))  # ω̂(0) = 0 anyway
            linear = (
                -self.viscosity * k2
                - self.hyperviscosity * k2**self.hyper_order
                - self.drag
                - self.hypodrag / safe_k2
            )
            weight = torch.full_like(k2, 2.0)
            weight[:, 0] = 1
            weight[:, -1] = 1
            self._cache[key] = {
                "kx": kx,
                "ky": ky,
                "k2": safe_k2,
                "keep": (kx.abs() < n / 3) & (ky.abs() < n / 3),
                "linear": linear,
                "weight": weight,
                "ring": ((k2.sqrt() - self.forcing_wavenumber).abs() <= 0.5) & (k2 > 0),
                "forcing": self._kolmogorov(device, dtype),
            }
        return self._cache[key]

    def _real(self, dtype: torch.dtype) -> torch.dtype:
        return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32

    def _grid_of(self, w_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.grid(w_hat.device, self._real(w_hat.dtype))

    # -- right-hand side --------------------------------------------------------------------

    def velocity(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u = ∂_yψ and v = −∂_xψ in physical space, with ψ̂ = ω̂ / k²."""
        g = self._grid_of(w_hat)
        psi_hat = w_hat / g["k2"]
        shape = (self.size, self.size)
        u = torch.fft.irfft2(1j * g["ky"] * psi_hat, s=shape)
        return u, torch.fft.irfft2(-1j * g["kx"] * psi_hat, s=shape)

    def advection(self, w_hat: torch.Tensor) -> torch.Tensor:
        """−(u·∇ω)^ of ω̂ (shape (..., N, N/2 + 1)), dealiased by the 2/3 rule."""
        g = self._grid_of(w_hat)
        w_hat = w_hat * g["keep"]
        u, v = self.velocity(w_hat)
        shape = (self.size, self.size)
        wx = torch.fft.irfft2(1j * g["kx"] * w_hat, s=shape)
        wy = torch.fft.irfft2(1j * g["ky"] * w_hat, s=shape)
        return -torch.fft.rfft2(u * wx + v * wy) * g["keep"]

    def _kolmogorov(self, device, dtype: torch.dtype) -> torch.Tensor | None:
        """f̂ of the Kolmogorov forcing f = −F k_f cos(k_f y) (None for other forcings)."""
        if self.forcing != "kolmogorov":
            return None
        n = self.size
        y = torch.arange(n, dtype=dtype, device=device) * (2 * torch.pi / n)
        k_f = self.forcing_wavenumber
        f = (-self.strength * k_f * torch.cos(k_f * y)).reshape(-1, 1).expand(n, n)
        return torch.fft.rfft2(f)

    def nonlinear(self, w_hat: torch.Tensor, f_hat: torch.Tensor | None) -> torch.Tensor:
        """N(ω̂) = −(u·∇ω)^ + f̂: everything but the linear terms."""
        out = self.advection(w_hat)
        return out if f_hat is None else out + f_hat

    def step(
        self, w_hat: torch.Tensor, dt: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One IF-RK4 step of length dt (then the random forcing's increment, if any).

        With E = e^{L dt}, E½ = e^{L dt/2} and N the nonlinear part:
        a = N(ω̂), b = N(E½(ω̂ + dt a/2)), c = N(E½ ω̂ + dt b/2), d = N(E ω̂ + dt E½ c),
        ω̂ ← E ω̂ + dt (E a + 2 E½ (b + c) + d) / 6 — exact for the linear terms.
        """
        g = self._grid_of(w_hat)
        real = self._real(w_hat.dtype)
        f_hat = g["forcing"]
        e = torch.exp(g["linear"] * dt)
        e2 = torch.exp(g["linear"] * dt / 2)
        a = self.nonlinear(w_hat, f_hat)
        b = self.nonlinear(e2 * (w_hat + dt / 2 * a), f_hat)
        c = self.nonlinear(e2 * w_hat + dt / 2 * b, f_hat)
        d = self.nonlinear(e * w_hat + dt * e2 * c, f_hat)
        w_hat = e * w_hat + dt / 6 * (e * a + 2 * e2 * (b + c) + d)
        if self.forcing == "ring":
            w_hat = w_hat + dt**0.5 * self.ring_increment(w_hat.shape[:-2], g, real, generator)
        return w_hat * g["keep"]

    def ring_increment(
        self, batch: tuple[int, ...], g: dict, dtype: torch.dtype, generator: torch.Generator | None
    ) -> torch.Tensor:
        """ξ̂ of the ring forcing per unit √time: E[ΔE] = ε dt for the increment √dt ξ̂.

        ξ = F⁻¹[A · F w] with real white noise w (E|ŵ_k|² = N²) and A constant on the ring,
        so E|ξ̂_k|² = A² N² there and the energy it adds per unit time is
        Σ_ring A² N² / (2 k² N⁴) (full grid) — set equal to ε.
        """
        if generator is None:
            raise ValueError("generator: the ring forcing is random; pass a torch.Generator")
        n = self.size
        ring = g["ring"]
        per_mode = (g["weight"] * ring / (2 * g["k2"] * n**2)).sum()
        amplitude = (self.strength / per_mode).sqrt()
        noise = torch.randn(*batch, n, n, generator=generator, dtype=dtype).to(ring.device)
        return amplitude * ring * torch.fft.rfft2(noise)

    # -- diagnostics --------------------------------------------------------------------------

    def _sum(self, w_hat: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        """Σ_k density(k) |ω̂_k|² / N⁴ over the full grid, per flow."""
        g = self._grid_of(w_hat)
        return (g["weight"] * density * w_hat.abs().square()).sum((-2, -1)) / self.size**4

    def energy(self, w_hat: torch.Tensor) -> torch.Tensor:
        """E = ½⟨|u|²⟩ per flow."""
        return self._sum(w_hat, 0.5 / self._grid_of(w_hat)["k2"])

    def enstrophy(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Z = ½⟨ω²⟩ per flow."""
        return self._sum(w_hat, torch.full_like(self._grid_of(w_hat)["k2"], 0.5))

    def dissipation(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Energy removed per unit time by all the linear terms: −Σ L|ω̂|²/(k²N⁴)."""
        g = self._grid_of(w_hat)
        return self._sum(w_hat, -g["linear"] / g["k2"])

    def injection(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Energy injected per unit time by the forcing: ⟨ψ f⟩ (Kolmogorov), ε (ring), 0."""
        if self.forcing == "ring":
            return torch.full(w_hat.shape[:-2], self.strength, dtype=self._real(w_hat.dtype))
        g = self._grid_of(w_hat)
        f_hat = g["forcing"]
        if f_hat is None:
            return torch.zeros(w_hat.shape[:-2], dtype=self._real(w_hat.dtype))
        product = (w_hat / g["k2"]).conj() * f_hat
        return (g["weight"] * product.real).sum((-2, -1)) / self.size**4

    def max_velocity(self, w_hat: torch.Tensor) -> torch.Tensor:
        """max_x |u| per flow (for the CFL condition)."""
        u, v = self.velocity(w_hat)
        return (u.square() + v.square()).sqrt().amax((-2, -1))


# -- spectra and fluxes -----------------------------------------------------------------------


def _shells(flow: Turbulence2D, values: torch.Tensor, g: dict) -> xr.DataArray:
    """Sum of rfft2-grid ``values`` (…, N, N/2 + 1) over shells k − ½ ≤ |k| < k + ½, k = 1..N/2."""
    shell = torch.round(g["k2"].sqrt() * (g["kx"].square() + g["ky"].square() > 0)).long()
    n_shells = flow.size // 2
    flat = (g["weight"] * values).flatten(-2)
    out = flat.new_zeros(*flat.shape[:-1], n_shells + 1 + flow.size)
    out.index_add_(-1, shell.flatten(), flat)
    return out[..., 1 : n_shells + 1]


def _vorticity_hat(flow: Turbulence2D, omega) -> torch.Tensor:
    """rfft2 of vorticity fields (N, N) or (samples, N, N) as float64, checked against the flow."""
    w = torch.as_tensor(np.asarray(omega), dtype=torch.float64)
    if w.dim() not in (2, 3) or tuple(w.shape[-2:]) != (flow.size, flow.size):
        raise ValueError(
            f"omega must have shape ({flow.size}, {flow.size}) or (samples, {flow.size},"
            f" {flow.size}); got {tuple(w.shape)}"
        )
    return torch.fft.rfft2(w)


def _by_shell(energy: torch.Tensor, enstrophy: torch.Tensor) -> xr.DataArray:
    """Label per-shell values (…, N/2) as a DataArray (quantity: energy, enstrophy; [sample,] k)."""
    values = torch.stack([energy, enstrophy]).numpy()
    k = np.arange(1, values.shape[-1] + 1, dtype=np.float64)
    dims = ("quantity", *(["sample"] if values.ndim == 3 else []), "k")
    return xr.DataArray(values, dims=dims, coords={"quantity": ["energy", "enstrophy"], "k": k})


def energy_spectrum(flow: Turbulence2D, omega) -> xr.DataArray:
    """Shell-summed energy and enstrophy spectra E(k), Z(k) = k² E(k) of vorticity fields.

    E(k) = Σ_{k−½ ≤ |k'| < k+½} |ω̂_k'|² / (2 k'² N⁴), so Σ_k E(k) = E (up to the corner modes
    beyond k = N/2). Returns a DataArray (quantity: energy, enstrophy; [sample,] k).
    """
    w_hat = _vorticity_hat(flow, omega)
    g = flow.grid(dtype=torch.float64)
    e = _shells(flow, w_hat.abs().square() / (2 * g["k2"] * flow.size**4), g)
    k = torch.arange(1, e.shape[-1] + 1, dtype=torch.float64)
    return _by_shell(e, e * k.square())


def fluxes(flow: Turbulence2D, omega) -> xr.DataArray:
    """Spectral fluxes of energy and enstrophy through wavenumber k by the nonlinear term.

    With A = −(u·∇ω)^, the transfers are T_E(k) = Σ_shell Re[conj(ψ̂) A] / N⁴ and
    T_Z(k) = Σ_shell Re[conj(ω̂) A] / N⁴, and Π(k) = −Σ_{k' ≤ k} T(k') is what flows from the
    modes |k'| ≤ k to larger wavenumbers (Π_E < 0 for the inverse energy cascade, Π_Z > 0 for
    the direct enstrophy cascade). Both sum to zero over all k (conservation by advection).
    """
    w_hat = _vorticity_hat(flow, omega)
    g = flow.grid(dtype=torch.float64)
    advected = flow.advection(w_hat)
    w_kept = w_hat * g["keep"]
    t_e = _shells(flow, ((w_kept / g["k2"]).conj() * advected).real / flow.size**4, g)
    t_z = _shells(flow, (w_kept.conj() * advected).real / flow.size**4, g)
    return _by_shell(-t_e.cumsum(-1), -t_z.cumsum(-1))


# -- time integration -------------------------------------------------------------------------


@dataclass
class BudgetSeries:
    """Budget time series recorded every ``interval`` time units (per flow)."""

    time: list = field(default_factory=list)
    energy: list = field(default_factory=list)
    enstrophy: list = field(default_factory=list)
    injection: list = field(default_factory=list)
    dissipation: list = field(default_factory=list)

    def record(self, flow: Turbulence2D, t: float, w_hat: torch.Tensor) -> None:
        self.time.append(t)
        for name in ("energy", "enstrophy", "injection", "dissipation"):
            getattr(self, name).append(getattr(flow, name)(w_hat).cpu().numpy())

    def array(self, name: str) -> np.ndarray:
        """(flows, records)"""
        return np.stack(getattr(self, name), axis=1)


def integrate(
    flow: Turbulence2D,
    w_hat: torch.Tensor,
    duration: float,
    generator: torch.Generator | None = None,
    cfl: float = 0.5,
    dt_max: float = 0.05,
    interval: float | None = None,
    series: BudgetSeries | None = None,
    start: float = 0.0,
    on_step: StepCallback | None = None,
) -> tuple[torch.Tensor, int]:
    """Advance ω̂ by ``duration`` with steps dt = min(dt_max, cfl Δx / max|u|) (Δx = 2π/N).

    The last step is shortened to end exactly at ``duration``. Every ``interval`` the budget
    (energy, enstrophy, injection, dissipation) is appended to ``series``. After each step,
    ``on_step(dt)`` reports the time advanced. Returns ω̂ and the number of steps.
    """
    dx, t, steps = 2 * np.pi / flow.size, 0.0, 0
    next_record = interval if interval else np.inf
    while t < duration * (1 - 1e-12):
        speed = float(flow.max_velocity(w_hat).max())
        dt = min(dt_max, cfl * dx / max(speed, 1e-300), duration - t)
        w_hat = flow.step(w_hat, dt, generator)
        if not torch.isfinite(w_hat).all():
            raise FloatingPointError(
                f"the flow blew up at t = {start + t:.4g}; lower cfl or dt_max, or raise"
                " the viscosity"
            )
        t, steps = t + dt, steps + 1
        while t >= next_record * (1 - 1e-12):
            series.record(flow, start + t, w_hat)
            next_record += interval
        if on_step is not None:
            on_step(dt)
    return w_hat, steps


def initial_vorticity(
    flow: Turbulence2D,
    n: int,
    generator: torch.Generator,
    energy: float = 0.01,
    dtype=torch.float64,
) -> torch.Tensor:
    """ω̂ of ``n`` random Gaussian flows with energy ``energy``, band-limited around k_f."""
    g = flow.grid(dtype=dtype)
    k = g["k2"].sqrt()
    band = torch.exp(-((k - flow.forcing_wavenumber) ** 2) / 2) * g["keep"]
    noise = torch.randn(n, flow.size, flow.size, generator=generator, dtype=dtype)
    w_hat = band * torch.fft.rfft2(noise)
    return w_hat * (energy / flow.energy(w_hat)).sqrt().reshape(-1, 1, 1)


@dataclass(frozen=True)
class TurbulenceConfig:
    """How :func:`simulate` draws stationary snapshots of a flow.

    The physics and its grid are ``flow``; the other fields are numerical choices of the
    ensemble (how many flows, how spin-up is detected, how snapshots are spaced, the time step),
    which is why they are not part of :class:`Turbulence2D`, the object :func:`integrate`,
    :func:`energy_spectrum` and :func:`fluxes` work with.

    Parameters
    ----------
    flow : Turbulence2D
    flows : int, optional
        Independent flows integrated as one batch (default min(samples, 4)).
    spacing : float, optional
        Time between snapshots (default: 2 max(τ_E, τ_Z), measured).
    velocity : bool
        Also store the velocity components ``u`` (along x) and ``v`` (along y) of each snapshot.
    block_time : float, optional
        Length of a spin-up block (default 1/(μ + α), the friction time at k = 1).
    tolerance : float
        Spin-up ends when the block means of energy and enstrophy change by less than this.
    max_blocks : int
        The most spin-up blocks before giving up (a warning then says so, and attrs record
        ``stationary = 0``).
    cfl, dt_max : float
        Time step dt = min(dt_max, cfl Δx / max|u|).
    dtype : {"float64", "float32"}
        Precision of the integration (the snapshots are stored as float32).
    """

    flow: Turbulence2D
    flows: int | None = None
    spacing: float | None = None
    velocity: bool = False
    block_time: float | None = None
    tolerance: float = 0.05
    max_blocks: int = 40
    cfl: float = 0.5
    dt_max: float = 0.05
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if not isinstance(self.flow, Turbulence2D):
            raise ValueError(f"flow must be a Turbulence2D; got {type(self.flow).__name__}")
        if self.flows is not None and not (is_integer(self.flows) and self.flows >= 1):
            raise ValueError(f"flows must be a positive integer; got {self.flows!r}")
        if self.spacing is not None and not self.spacing > 0:
            raise ValueError(f"spacing must be positive; got {self.spacing!r}")
        if not isinstance(self.velocity, bool):
            raise ValueError(f"velocity must be True or False; got {self.velocity!r}")
        if self.block_time is None and self.flow.drag + self.flow.hypodrag <= 0:
            raise ValueError("block_time: without drag there is no default spin-up block; pass one")
        if self.block_time is not None and not self.block_time > 0:
            raise ValueError(f"block_time must be positive; got {self.block_time!r}")
        for name in ("tolerance", "cfl", "dt_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not (is_integer(self.max_blocks) and self.max_blocks >= 1):
            raise ValueError(f"max_blocks must be a positive integer; got {self.max_blocks!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_DTYPES)}; got {self.dtype!r}")

    @property
    def spin_up_block(self) -> float:
        """``block_time``, or 1/(μ + α) when it is None."""
        if self.block_time is None:
            return 1 / (self.flow.drag + self.flow.hypodrag)
        return self.block_time


_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def simulate(
    config: TurbulenceConfig,
    samples: int,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """Statistically stationary vorticity snapshots of a forced flow.

    Spin-up runs in blocks of ``block_time`` from weak random flows until the block means of
    the energy and of the enstrophy (over the flows) both change by less than ``tolerance`` from
    one block to the next. The decorrelation time is then measured on eight more blocks: τ_int
    of the energy and of the enstrophy (Madras–Sokal, flows as chains, series sampled every
    block_time / 100), and unless given the spacing between snapshots is 2 max(τ_E, τ_Z), so
    snapshots are effectively independent. (On two blocks τ_E came out 3× too short, on eight
    within about 25 % of a long run's.)

    Parameters
    ----------
    config : TurbulenceConfig
        The flow and the numerical options.
    samples : int
        Snapshots to return, taken evenly from the flows (flow-major).
    seed : int, optional
        Default: fresh entropy; recorded in attrs.
    device : str
        Where to integrate.
    progress : bool
        Show bars for the spin-up (in time units) and the snapshots.

    Returns
    -------
    xarray.Dataset
        ``vorticity`` (sample, y, x) float32 with a ``flow`` coordinate; the budget time series
        ``energy``, ``enstrophy``, ``injection``, ``dissipation`` (flow-averaged, dim ``time``);
        ``u`` and ``v`` with ``velocity=True``;
        attrs with every parameter, the seed, the spin-up time (the snapshots start 8 blocks
        later), the τ_int found, the spacing, the number of steps and the mean time step.
    """
    if not isinstance(config, TurbulenceConfig):
        raise ValueError(f"config must be a TurbulenceConfig; got {type(config).__name__}")
    if not is_integer(samples) or samples < 1:
        raise ValueError(f"samples must be a positive integer; got {samples!r}")
    device = resolve_device(device)
    flow, cfl, dt_max = config.flow, config.cfl, config.dt_max
    flows = min(samples, 4) if config.flows is None else config.flows
    block_time = config.spin_up_block
    seed = fresh_seed() if seed is None else int(seed)
    generator = torch.Generator().manual_seed(seed)
    w_hat = initial_vorticity(flow, flows, generator, dtype=_DTYPES[config.dtype]).to(device)
    interval = block_time / 100
    series, t, steps, blocks, means = BudgetSeries(), 0.0, 0, 0, []
    with _progress.progress("spin-up (time)", enabled=progress, unit="") as on_step:
        while True:
            w_hat, n = integrate(
                flow, w_hat, block_time, generator, cfl, dt_max, interval, series, t, on_step
            )
            t, steps, blocks = t + block_time, steps + n, blocks + 1
            recent = slice(-100, None)
            means.append([series.array(q)[:, recent].mean() for q in ("energy", "enstrophy")])
            change = np.abs(np.diff(means[-2:], axis=0)) / np.abs(means[-1]) if blocks > 1 else [1]
            stationary = blocks > 1 and bool(np.all(change < config.tolerance))
            if stationary or blocks >= config.max_blocks:
                break
    if not stationary:
        warnings.warn(
            f"spin-up: energy and enstrophy still drift by more than {config.tolerance:.0%} per"
            f" block after {blocks} blocks of {block_time:g}; snapshots may not be stationary",
            RuntimeWarning,
            stacklevel=2,
        )
    spin_up = t
    w_hat, n = integrate(
        flow, w_hat, _TAU_BLOCKS * block_time, generator, cfl, dt_max, interval, series, t
    )
    t, steps = t + _TAU_BLOCKS * block_time, steps + n
    window = slice(-100 * _TAU_BLOCKS, None)
    tau = {
        q: integrated_autocorrelation_time(series.array(q)[:, window]).tau * interval
        for q in ("energy", "enstrophy")
    }
    spacing = config.spacing or max(2 * max(tau.values()), interval)
    per_flow = -(-samples // flows)
    saved: dict[str, list] = {"vorticity": [], "u": [], "v": []}
    with _progress.progress("snapshots", per_flow, enabled=progress) as on_step:
        for _ in range(per_flow):
            w_hat, n = integrate(flow, w_hat, spacing, generator, cfl, dt_max, interval, series, t)
            t, steps = t + spacing, steps + n
            saved["vorticity"].append(torch.fft.irfft2(w_hat, s=(flow.size, flow.size)))
            if config.velocity:
                u, v = flow.velocity(w_hat)
                saved["u"].append(u)
                saved["v"].append(v)
            on_step()

    def ensemble(snapshots: list) -> torch.Tensor:
        stacked = torch.stack(snapshots, 1).float().cpu()
        return stacked.reshape(-1, flow.size, flow.size)[:samples]

    fields = ensemble(saved["vorticity"])
    attrs = {
        "generator": "rgfield.fields.turbulence.simulate",
        **{f.name: getattr(flow, f.name) for f in dataclass_fields(flow) if f.init},
        "seed": seed,
        "flows": flows,
        "velocity": config.velocity,
        "cfl": cfl,
        "dt_max": dt_max,
        "dtype": config.dtype,
        "block_time": block_time,
        "tolerance": config.tolerance,
        "max_blocks": config.max_blocks,
        "stationary": int(stationary),
        "spin_up_time": spin_up,
        "tau_energy": tau["energy"],
        "tau_enstrophy": tau["enstrophy"],
        "spacing": spacing,
        "steps": steps,
        "mean_dt": t / steps,
    }
    ds = to_dataset(fields, "vorticity", attrs)
    if config.velocity:
        ds = ds.assign(u=(ds.vorticity.dims, ensemble(saved["u"]).numpy()))
        ds = ds.assign(v=(ds.vorticity.dims, ensemble(saved["v"]).numpy()))
    ds = ds.assign_coords(flow=("sample", np.repeat(np.arange(flows), per_flow)[:samples]))
    budget = {
        q: ("time", series.array(q).mean(0))
        for q in ("energy", "enstrophy", "injection", "dissipation")
    }
    return ds.assign(budget).assign_coords(time=("time", np.array(series.time)))
