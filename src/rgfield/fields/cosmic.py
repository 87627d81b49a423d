"""The cosmic web: Gaussian initial conditions, Lagrangian perturbation theory, log-normal fields.

Units are cosmological: lengths in Mpc/h, wavenumbers k in h/Mpc, 3D power spectra P(k) in
(Mpc/h)³ (in d dimensions, (Mpc/h)^d). A field on an N^d grid of a periodic box of side B has
cells of volume V_c = (B/N)^d; its continuum spectrum is P(k) = V_c P_pixel(k_pixel) at
k = k_pixel N / B, with P_pixel the per-pixel spectrum of :func:`rgfield.stats.power_spectrum`
(k_pixel in radians per pixel).

The displacement of a grid of particles (one per cell, at the cell centres q) is, in second-order
Lagrangian perturbation theory (2LPT; Bouchet et al., A&A 296, 575 (1995); Scoccimarro,
MNRAS 299, 1097 (1998)),

    x(q) = q + D₁ ψ₁(q) + D₂ ψ₂(q),   ψ₁ = −∇φ₁,   ψ₂ = ∇φ₂,
    ∇²φ₁ = δ_L(q),   ∇²φ₂ = Σ_{i<j} (φ₁,ᵢᵢ φ₁,ⱼⱼ − φ₁,ᵢⱼ²),   D₂ ≈ −(3/7) D₁² Ω_m(a)^(−1/143),

with δ_L the linear density contrast today (D₁ = 1 at z = 0); dropping ψ₂ gives the Zel'dovich
approximation. Particles are deposited on the grid by cloud-in-cell.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numba
import numpy as np
import torch
import xarray as xr
from scipy import integrate

from rgfield import _progress
from rgfield._validate import fresh_seed, is_integer
from rgfield.fields import resolve_device, spectrum_attrs
from rgfield.fields.gaussian import gaussian_field, rfft_wavevectors
from rgfield.io import to_dataset

__all__ = [
    "CosmicConfig",
    "EisensteinHu",
    "PowerLaw",
    "cic_deposit",
    "density_contrast",
    "evolve",
    "growth_factor",
    "linear_density",
    "lognormal_density",
    "lpt_displacements",
    "second_order_growth",
    "sigma_tophat",
    "simulate",
    "slab_log_density",
]

MODELS = ("2lpt", "zeldovich", "lognormal")
PRODUCTS = ("slab", "density")
_FLOOR = 1e-3  # 1 + δ of an empty slab pixel is raised to this before the logarithm
Spectrum = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PowerLaw:
    """P(k) = A k^n (k in h/Mpc, P in (Mpc/h)^d), any dimension."""

    index: float = -2.0
    amplitude: float = 1.0

    def __call__(self, k: torch.Tensor) -> torch.Tensor:
        return self.amplitude * k**self.index


@dataclass(frozen=True)
class EisensteinHu:
    """Linear matter power spectrum today, P(k) = A k^{n_s} T(k)², with the Eisenstein–Hu
    transfer function without baryon wiggles and A set by σ₈ (3D; flat ΛCDM).

    T(k) = L₀ / (L₀ + C₀ q²),  L₀ = ln(2e + 1.8 q),  C₀ = 14.2 + 731 / (1 + 62.5 q),
    q = k Θ²₂.₇ / Γ_eff(k)  (k in h/Mpc),
    Γ_eff = Ω_m h [α_Γ + (1 − α_Γ) / (1 + (0.43 k s)⁴)]  (k in 1/Mpc here),
    α_Γ = 1 − 0.328 ln(431 ω_m) f_b + 0.38 ln(22.3 ω_m) f_b²,
    s = 44.5 ln(9.83/ω_m) / √(1 + 10 ω_b^{3/4}) Mpc,

    with ω = Ω h², f_b = Ω_b/Ω_m, Θ₂.₇ = T_cmb/2.7 K (Eisenstein & Hu, ApJ 496, 605 (1998),
    eqs. 26, 28–31). A is fixed by :func:`sigma_tophat` (P, 8 Mpc/h) = σ₈.
    """

    omega_m: float = 0.31
    omega_b: float = 0.049
    h: float = 0.68
    n_s: float = 0.965
    sigma8: float = 0.81
    t_cmb: float = 2.7255

    def __post_init__(self) -> None:
        for name in ("omega_m", "h", "sigma8", "t_cmb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not 0 <= self.omega_b < self.omega_m:
            raise ValueError(f"omega_b must be in [0, omega_m); got {self.omega_b!r}")

    def transfer(self, k: torch.Tensor) -> torch.Tensor:
        """T(k), k in h/Mpc (T → 1 as k → 0)."""
        k = torch.as_tensor(k, dtype=torch.float64)
        wm, wb = self.omega_m * self.h**2, self.omega_b * self.h**2
        fb = self.omega_b / self.omega_m
        s = 44.5 * math.log(9.83 / wm) / math.sqrt(1 + 10 * wb**0.75)
        alpha = 1 - 0.328 * math.log(431 * wm) * fb + 0.38 * math.log(22.3 * wm) * fb**2
        gamma = self.omega_m * self.h * (alpha + (1 - alpha) / (1 + (0.43 * k * self.h * s) ** 4))
        q = k * (self.t_cmb / 2.7) ** 2 / gamma
        l0 = torch.log(2 * math.e + 1.8 * q)
        c0 = 14.2 + 731 / (1 + 62.5 * q)
        return l0 / (l0 + c0 * q**2)

    @cached_property
    def amplitude(self) -> float:
        """A such that σ(8 Mpc/h) = σ₈."""
        return (self.sigma8 / sigma_tophat(self._shape, 8.0)) ** 2

    def _shape(self, k: torch.Tensor) -> torch.Tensor:
        return k**self.n_s * self.transfer(k) ** 2

    def __call__(self, k: torch.Tensor) -> torch.Tensor:
        return self.amplitude * self._shape(k)


def sigma_tophat(spectrum: Spectrum, radius: float) -> float:
    """RMS of a 3D field with spectrum P(k) smoothed by a sphere of the given radius (Mpc/h).

    σ²(R) = (1 / 2π²) ∫ dk k² P(k) W(kR)²,  W(x) = 3 (sin x − x cos x) / x³,
    evaluated by the trapezoidal rule in ln k over 10⁻⁵ … 10³ h/Mpc (20 000 points).
    """
    if not radius > 0:
        raise ValueError(f"radius must be positive; got {radius!r}")
    lnk = torch.linspace(math.log(1e-5), math.log(1e3), 20_000, dtype=torch.float64)
    k = lnk.exp()
    x = k * radius
    small = x < 1e-3  # the closed form cancels catastrophically there
    window = torch.where(
        small, 1 - x**2 / 10, 3 * (torch.sin(x) - x * torch.cos(x)) / x.clamp_min(1e-3) ** 3
    )
    integrand = k**3 * spectrum(k) * window**2 / (2 * math.pi**2)
    return float(torch.trapezoid(integrand, lnk).sqrt())


def _hubble(a: float, omega_m: float) -> float:
    """E(a) = H(a)/H₀ of flat ΛCDM without radiation."""
    return math.sqrt(omega_m / a**3 + 1 - omega_m)


def growth_factor(redshift: float, omega_m: float = 0.31) -> float:
    """Linear growth factor D₁ of flat ΛCDM, normalised to D₁(z = 0) = 1.

    D₁(a) ∝ E(a) ∫₀^a da' / (a' E(a'))³ (Heath 1977), E² = Ω_m a⁻³ + 1 − Ω_m; D₁ = a for Ω_m = 1.
    """
    if not redshift > -1:
        raise ValueError(f"redshift must be > -1; got {redshift!r}")
    if not 0 < omega_m <= 1:
        raise ValueError(f"omega_m must be in (0, 1]; got {omega_m!r}")

    def unnormalised(a: float) -> float:
        integral, _ = integrate.quad(lambda b: (b * _hubble(b, omega_m)) ** -3, 0, a, epsabs=0)
        return _hubble(a, omega_m) * integral

    return unnormalised(1 / (1 + redshift)) / unnormalised(1.0)


def second_order_growth(redshift: float, omega_m: float = 0.31) -> float:
    """D₂ ≈ −(3/7) D₁² Ω_m(a)^(−1/143) (Bouchet et al. 1995), Ω_m(a) = Ω_m a⁻³ / E(a)²."""
    a = 1 / (1 + redshift)
    omega_a = omega_m / a**3 / _hubble(a, omega_m) ** 2
    return -3 / 7 * growth_factor(redshift, omega_m) ** 2 * omega_a ** (-1 / 143)


def _check_grid(size, box, dims) -> None:
    if not is_integer(size) or size < 2:
        raise ValueError(f"size must be an integer ≥ 2; got {size!r}")
    if not box > 0:
        raise ValueError(f"box must be positive (Mpc/h); got {box!r}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3; got {dims!r}")


def _pixel_spectrum(spectrum: Spectrum, size: int, box: float, dims: int) -> Callable:
    """The per-pixel spectrum P(k N/B) / V_c of :func:`gaussian_field`, with no k = 0 mode."""
    cell = (box / size) ** dims

    def pixel(*k: torch.Tensor) -> torch.Tensor:
        physical = torch.sqrt(sum(kk**2 for kk in k)) * size / box
        power = spectrum(physical.clamp_min(1e-30)) / cell
        return torch.where(physical > 0, power, 0.0)

    return pixel


def linear_density(
    spectrum: Spectrum,
    size: int,
    box: float,
    *,
    dims: int = 3,
    n: int = 1,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Gaussian density contrast δ with power spectrum P(k) on an N^d grid of a periodic box.

    ⟨δ̃(k) δ̃*(k')⟩ = B^d P(k) δ_kk' for the continuum Fourier modes δ̃(k) = V_c Σ_x δ(x) e^{−ik·x};
    the k = 0 mode is zero (the box has the mean density). Exact: see :func:`gaussian_field`.

    Returns
    -------
    torch.Tensor, shape (n, *[size] * dims)
    """
    _check_grid(size, box, dims)
    pixel = _pixel_spectrum(spectrum, size, box, dims)
    return gaussian_field(pixel, (size,) * dims, n, seed, dtype=dtype, device=device)


def _inverse_laplacian(field_hat: torch.Tensor, k: list[torch.Tensor]) -> torch.Tensor:
    """Fourier modes of φ with ∇²φ = field and zero mean, without the Nyquist planes (|k_i| = π),
    on which the derivative of a real field is ill-defined."""
    k2 = sum(kk**2 for kk in k)
    keep = (k2 > 0) & torch.stack([kk.abs() < math.pi - 1e-9 for kk in k]).all(dim=0)
    return torch.where(keep, -field_hat / torch.where(keep, k2, 1.0), 0.0)


def lpt_displacements(delta: torch.Tensor, order: int = 2) -> list[torch.Tensor]:
    """Lagrangian displacement fields of unit growth, in cells: [ψ₁] or [ψ₁, ψ₂].

    ψ₁ = −∇φ₁ with ∇²φ₁ = δ (so ∇·ψ₁ = −δ), and ψ₂ = ∇φ₂ with
    ∇²φ₂ = Σ_{i<j} (φ₁,ᵢᵢ φ₁,ⱼⱼ − φ₁,ᵢⱼ²), by exact spectral derivatives; the Nyquist planes of
    δ are dropped. Positions are then q + D₁ψ₁ + D₂ψ₂ (see the module docstring).

    Parameters
    ----------
    delta : torch.Tensor, shape (n, *grid)
        Linear density contrast today on the particles' Lagrangian grid (2D or 3D).
    order : 1 or 2
        1: Zel'dovich approximation only.

    Returns
    -------
    list of torch.Tensor, each (n, d, *grid): component i displaces along grid axis i.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (Zel'dovich) or 2 (2LPT); got {order!r}")
    if delta.ndim not in (3, 4):
        raise ValueError(f"delta must have shape (n, y, x) or (n, z, y, x); got {delta.shape}")
    shape = tuple(delta.shape[1:])
    dims = tuple(range(1, delta.ndim))
    k = rfft_wavevectors(shape, delta.device)

    def gradient(phi_hat: torch.Tensor, sign: float) -> torch.Tensor:
        parts = [torch.fft.irfftn(sign * 1j * kk * phi_hat, s=shape, dim=dims) for kk in k]
        return torch.stack(parts, dim=1)

    phi1 = _inverse_laplacian(torch.fft.rfftn(delta, dim=dims), k)
    psi1 = gradient(phi1, -1.0)
    if order == 1:
        return [psi1]
    hessian = {
        (i, j): torch.fft.irfftn(-k[i] * k[j] * phi1, s=shape, dim=dims)
        for i in range(len(k))
        for j in range(i, len(k))
    }
    source = sum(
        hessian[i, i] * hessian[j, j] - hessian[i, j] ** 2
        for i, j in itertools.combinations(range(len(k)), 2)
    )
    phi2 = _inverse_laplacian(torch.fft.rfftn(source, dim=dims), k)
    return [psi1, gradient(phi2, 1.0)]


@numba.njit(parallel=True, cache=True)
def _cic_numba(x: np.ndarray, shape: np.ndarray, chunks: int) -> np.ndarray:
    """CIC of x (n, d, P) on a grid of prod(shape) cells; particles split into ``chunks`` parts,
    each deposited by one thread into its own copy of the grid, then summed."""
    n, d, p = x.shape
    cells = 1
    for size in shape:
        cells *= size
    partial = np.zeros((chunks, n, cells))
    for task in numba.prange(chunks * n):
        chunk, s = task // n, task % n
        lower, upper = np.empty(d, np.int64), np.empty(d, np.int64)  # flat-index parts per axis
        frac = np.empty(d)
        for j in range(chunk * p // chunks, (chunk + 1) * p // chunks):
            stride = cells
            for i in range(d):
                stride //= shape[i]
                base = math.floor(x[s, i, j])
                frac[i] = x[s, i, j] - base
                lower[i] = (base % shape[i]) * stride
                upper[i] = ((base + 1) % shape[i]) * stride
            for corner in range(2**d):
                index, weight = 0, 1.0
                for i in range(d):
                    if (corner >> i) & 1:
                        index += upper[i]
                        weight *= frac[i]
                    else:
                        index += lower[i]
                        weight *= 1.0 - frac[i]
                partial[chunk, s, index] += weight
    return partial.sum(axis=0)


def _cic_torch(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    n, d = x.shape[:2]
    base = torch.floor(x)
    frac = x - base
    base = base.long()
    axes = []  # per axis: the flat-index contributions and weights of the lower and upper cell
    for i, size in enumerate(shape):
        stride = math.prod(shape[i + 1 :])
        lower = base[:, i] % size
        axes.append(((lower * stride, (lower + 1) % size * stride), (1 - frac[:, i], frac[:, i])))
    offset = (torch.arange(n, device=x.device) * math.prod(shape)).view(n, 1)
    mass = torch.zeros(n * math.prod(shape), dtype=x.dtype, device=x.device)
    for corner in itertools.product((0, 1), repeat=d):
        index = offset + sum(axes[i][0][c] for i, c in enumerate(corner))
        weight = math.prod(axes[i][1][c] for i, c in enumerate(corner))
        mass.index_add_(0, index.reshape(-1), weight.reshape(-1))
    return mass.view(n, *shape)


def cic_deposit(
    positions: torch.Tensor, shape: tuple[int, ...], *, backend: str = "auto"
) -> torch.Tensor:
    """Cloud-in-cell mass assignment of unit-mass particles on a periodic grid.

    A particle at x (in cells; cell i is centred on i) gives each of the 2^d nearest grid points
    the weight Π_axes (1 − |x − i|); the weights of a particle sum to one, so mass is conserved.

    Parameters
    ----------
    positions : torch.Tensor, shape (n, d, *particle_dims)
        Coordinates along each grid axis; any real values (wrapped periodically).
    shape : tuple of int
        The grid, d sizes.
    backend : {"auto", "numba", "torch"}
        ``"auto"``: numba on CPU tensors (a threaded loop over particles), torch elsewhere
        (``index_add_``, which also runs on GPUs).

    Returns
    -------
    torch.Tensor, shape (n, *shape): the mass in each cell, in the dtype of ``positions``.
    """
    d = len(shape)
    if positions.ndim < 2 or positions.shape[1] != d:
        raise ValueError(
            f"positions must have shape (n, {d}, ...) for a {d}D grid; got {tuple(positions.shape)}"
        )
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'torch'; got {backend!r}")
    if backend == "numba" and positions.device.type != "cpu":
        raise ValueError(f"backend='numba' runs on CPU tensors; got one on {positions.device}")
    x = positions.reshape(positions.shape[0], d, -1)
    if backend == "torch" or positions.device.type != "cpu":
        return _cic_torch(x, shape)
    points = np.ascontiguousarray(x.detach().numpy(), dtype=np.float64)
    mass = _cic_numba(points, np.array(shape, dtype=np.int64), numba.get_num_threads())
    return torch.from_numpy(mass).to(positions.dtype).view(positions.shape[0], *shape)


def density_contrast(mass: torch.Tensor) -> torch.Tensor:
    """δ = ρ / ρ̄ − 1 of each field of a batch (n, *grid)."""
    dims = tuple(range(1, mass.ndim))
    return mass / mass.mean(dim=dims, keepdim=True) - 1


def evolve(
    delta_linear: torch.Tensor, redshift: float = 0.0, omega_m: float = 0.31, order: int = 2
) -> torch.Tensor:
    """Density contrast at ``redshift`` of particles displaced from a grid by 2LPT (or Zel'dovich
    for ``order=1``), deposited by cloud-in-cell on the same grid.

    Parameters
    ----------
    delta_linear : torch.Tensor, shape (n, *grid)
        Linear density contrast today (D₁ = 1), e.g. from :func:`linear_density`.
    redshift, omega_m :
        Flat ΛCDM time: D₁ = :func:`growth_factor`, D₂ = :func:`second_order_growth`.
    order : 1 or 2

    Returns
    -------
    torch.Tensor, shape of ``delta_linear``.
    """
    displacements = lpt_displacements(delta_linear, order)
    growths = [growth_factor(redshift, omega_m), second_order_growth(redshift, omega_m)]
    shape = tuple(delta_linear.shape[1:])
    grid = torch.meshgrid(
        *(torch.arange(s, dtype=delta_linear.dtype, device=delta_linear.device) for s in shape),
        indexing="ij",
    )
    positions = torch.stack(grid).unsqueeze(0) + sum(
        g * psi for g, psi in zip(growths, displacements, strict=False)
    )
    return density_contrast(cic_deposit(positions, shape))


def lognormal_density(
    spectrum: Spectrum,
    size: int,
    box: float,
    *,
    dims: int = 3,
    n: int = 1,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Log-normal density contrast δ = exp(g − σ_g²/2) − 1 whose spectrum is P(k).

    The Gaussian g has correlation ξ_g = ln(1 + ξ), with ξ the correlation function of P on the
    grid, so that exp(g) has correlation ξ exactly (Coles & Jones, MNRAS 248, 1 (1991)). Where
    the spectrum of ξ_g is negative it is set to zero, and the field's spectrum then deviates
    from P; a warning says so when that removes more than 1 % of g's variance. Requires ξ > −1
    everywhere.

    Returns
    -------
    torch.Tensor, shape (n, *[size] * dims); 1 + δ > 0 and ⟨δ⟩ = 0.
    """
    _check_grid(size, box, dims)
    shape = (size,) * dims
    k = rfft_wavevectors(shape, device)
    power = _pixel_spectrum(spectrum, size, box, dims)(*k)
    xi = torch.fft.irfftn(power, s=shape)  # ξ(r) = (1/N) Σ_k P_pixel(k) e^{ik·r}
    if not (xi > -1).all():
        raise ValueError("spectrum too strong for a log-normal field: ξ(r) ≤ −1 somewhere")
    gaussian_power = torch.fft.rfftn(torch.log1p(xi)).real
    variance = float(torch.fft.irfftn(gaussian_power.clamp_min(0), s=shape).reshape(-1)[0])
    removed = float(torch.fft.irfftn(gaussian_power.clamp_max(0), s=shape).reshape(-1)[0])
    if -removed > 0.01 * variance:
        warnings.warn(
            f"log-normal field: {-removed / variance:.1%} of the Gaussian variance had a negative"
            " spectrum and was dropped; the field's spectrum deviates from the target",
            stacklevel=2,
        )
    gaussian_power = gaussian_power.clamp_min(0)

    def gaussian_spectrum(*kk: torch.Tensor) -> torch.Tensor:
        return gaussian_power

    g = gaussian_field(gaussian_spectrum, shape, n, seed, dtype=torch.float64, device=device)
    return torch.expm1(g - variance / 2).to(dtype)


def slab_log_density(
    delta: torch.Tensor, thickness: int, *, axis: int = 0, start: int = 0, floor: float = 1e-3
) -> torch.Tensor:
    """log(1 + δ) of slabs: 1 + δ averaged over ``thickness`` cells along ``axis`` from ``start``.

    ``thickness=1`` is a thin slice, the full size a projection of the box. Cells with
    1 + δ < ``floor`` (empty voids) are raised to ``floor`` before the logarithm.

    Parameters
    ----------
    delta : torch.Tensor, shape (n, z, y, x)
    thickness, axis, start : the slab, in cells and along spatial axis 0, 1 or 2 (periodic).

    Returns
    -------
    torch.Tensor, shape (n, the two other axes)
    """
    if delta.ndim != 4:
        raise ValueError(f"delta must have shape (n, z, y, x); got {tuple(delta.shape)}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2; got {axis!r}")
    size = delta.shape[1 + axis]
    if not is_integer(thickness) or not 1 <= thickness <= size:
        raise ValueError(f"thickness must be an integer in [1, {size}]; got {thickness!r}")
    if not floor > 0:
        raise ValueError(f"floor must be positive; got {floor!r}")
    cells = torch.arange(start, start + thickness, device=delta.device) % size
    slab = 1 + delta.index_select(1 + axis, cells).mean(dim=1 + axis)
    return torch.log(slab.clamp_min(floor))


@dataclass(frozen=True)
class CosmicConfig:
    """A cosmic-web ensemble for :func:`simulate`: the box, the dynamics and the 2D product.

    Parameters
    ----------
    size : int
        Grid points (and, for LPT, particles) per side.
    box : float
        Box side in Mpc/h.
    redshift : float
        Time of the output (growth of flat ΛCDM with the spectrum's Ω_m, 0.31 if it has none).
    model : {"2lpt", "zeldovich", "lognormal"}
        Particles displaced by 2LPT or the Zel'dovich approximation and deposited by CIC, or a
        log-normal field with the linear spectrum times D₁².
    spectrum : callable
        Linear P(k) today (k in h/Mpc); default :class:`EisensteinHu` ().
    product : {"slab", "density"}
        ``"slab"``: log(1 + δ) of a slab ``thickness`` cells thick across axis 0, variable
        ``log_density`` (sample, y, x). ``"density"``: δ itself, variable ``delta``, (sample, y,
        x) or (sample, z, y, x).
    thickness : int, optional
        Of the slab, in cells (default size // 8; 1 is a thin slice, ``size`` the projection of
        the whole box).
    dims : 2 or 3
        3 for the LPT models and slabs; a log-normal ``"density"`` may be 2D.
    """

    size: int = 128
    box: float = 256.0
    redshift: float = 0.0
    model: str = "2lpt"
    spectrum: Spectrum = field(default_factory=EisensteinHu)
    product: str = "slab"
    thickness: int | None = None
    dims: int = 3

    def __post_init__(self) -> None:
        _check_grid(self.size, self.box, self.dims)
        if not self.redshift > -1:
            raise ValueError(f"redshift must be > -1; got {self.redshift!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}; got {self.model!r}")
        if not callable(self.spectrum):
            raise ValueError(f"spectrum must be callable; got {type(self.spectrum).__name__}")
        if self.product not in PRODUCTS:
            raise ValueError(f"product must be one of {PRODUCTS}; got {self.product!r}")
        if self.dims == 2 and (self.model != "lognormal" or self.product != "density"):
            raise ValueError("dims=2 is only for model='lognormal' with product='density'")
        if self.thickness is not None and not (
            is_integer(self.thickness) and 1 <= self.thickness <= self.size
        ):
            raise ValueError(
                f"thickness must be an integer in [1, {self.size}]; got {self.thickness!r}"
            )

    @property
    def slab_thickness(self) -> int:
        """The slab's thickness in cells: ``thickness``, or size // 8 (at least 1)."""
        return max(self.size // 8, 1) if self.thickness is None else int(self.thickness)


def simulate(
    config: CosmicConfig,
    samples: int,
    *,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """An ensemble of cosmic-web fields, one independent box per sample.

    Parameters
    ----------
    config : CosmicConfig
    samples : int
    seed : int, optional
        Sample i uses the i-th seed spawned from it, so a sample does not depend on ``samples``.
        Default: fresh entropy; recorded in attrs.
    device : str
        torch device of the computation (the noise is drawn on the CPU: same fields anywhere).
    progress : bool
        Show a bar over the boxes.

    Returns
    -------
    xarray.Dataset with attrs: every parameter, the spectrum's parameters (``spectrum_*``), the
    growth factors, the seed and the fraction of slab cells raised to the floor.
    """
    if not isinstance(config, CosmicConfig):
        raise ValueError(f"config must be a CosmicConfig; got {type(config).__name__}")
    if not is_integer(samples) or samples < 1:
        raise ValueError(f"samples must be a positive integer; got {samples!r}")
    device = resolve_device(device)
    c = config
    omega_m = getattr(c.spectrum, "omega_m", 0.31)
    d1 = growth_factor(c.redshift, omega_m)
    seed = fresh_seed() if seed is None else int(seed)
    seeds = np.random.SeedSequence(seed).generate_state(samples, dtype=np.uint64)
    outputs, floored = [], 0
    with _progress.progress(f"{c.model} boxes", samples, enabled=progress) as on_step:
        for s in seeds:
            box, empty = _box(c, int(s), d1, omega_m, device)
            outputs.append(box)
            floored += empty
            on_step()
    attrs = {
        "generator": "rgfield.fields.cosmic.simulate",
        "model": c.model,
        "product": c.product,
        "size": c.size,
        "box_mpc_h": c.box,
        "redshift": c.redshift,
        "omega_m_growth": omega_m,
        "growth_d1": d1,
        "growth_d2": second_order_growth(c.redshift, omega_m),
        "dims": c.dims,
        "seed": seed,
        **spectrum_attrs(c.spectrum),
    }
    if c.product == "slab":
        fraction = floored / (samples * c.size**2)
        attrs.update(thickness=c.slab_thickness, floor=_FLOOR, floored_fraction=fraction)
    name = "log_density" if c.product == "slab" else "delta"
    return to_dataset(torch.stack(outputs), name, attrs)


def _box(
    config: CosmicConfig, seed: int, d1: float, omega_m: float, device
) -> tuple[torch.Tensor, int]:
    """One sample of ``config``'s product (float32, on the CPU) from the noise of ``seed``, and
    the number of its slab pixels raised to the floor."""
    c = config
    if c.model == "lognormal":
        grown = _scaled(c.spectrum, d1**2)
        delta = lognormal_density(grown, c.size, c.box, dims=c.dims, seed=seed, device=device)
    else:
        linear = linear_density(c.spectrum, c.size, c.box, dims=c.dims, seed=seed, device=device)
        delta = evolve(linear, c.redshift, omega_m, order=1 if c.model == "zeldovich" else 2)
    empty = 0
    if c.product == "slab":
        delta = slab_log_density(delta, c.slab_thickness, floor=_FLOOR)
        empty = int((delta <= math.log(_FLOOR)).sum())
    return delta[0].to(torch.float32).cpu(), empty


def _scaled(spectrum: Spectrum, factor: float) -> Spectrum:
    return lambda k: factor * spectrum(k)
