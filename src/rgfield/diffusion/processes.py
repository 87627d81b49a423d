"""Noise processes: variance exploding and variance preserving, in one parametrisation.

Every process is written as x_t = α_t (x + σ_t n), n ~ N(0, 1) (Karras et al., "Elucidating the
design space of diffusion-based generative models", NeurIPS 2022, eq. 4 with s = α): the
samplers and the denoisers work on the unscaled variable x̂ = x_t / α_t = x + σ n and its noise
level σ alone, so that one sampler serves every process. The processes differ in

* the grid of noise levels a sampler visits (:meth:`sigmas`), ending with σ = 0;
* the distribution of σ in training (:meth:`training_sigmas`);
* α(σ), which a network sees through the EDM input scaling c_in = 1/√(σ² + σ_data²): for
  σ_data = 1 (the whitened fields of :class:`~rgfield.diffusion.Whitening`), c_in x̂ = α x̂ is
  exactly the variance-preserving x_t.

Noise coloured by the data's power spectrum is the same diffusion run on whitened fields
(:class:`~rgfield.diffusion.Whitening`), so it needs no process of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

__all__ = ["PROCESSES", "NoiseProcess", "VarianceExploding", "VariancePreserving", "make_process"]


def _descending(sigmas: torch.Tensor) -> torch.Tensor:
    """The grid with σ = 0 appended (the last step denoises)."""
    return torch.cat([sigmas, sigmas.new_zeros(1)])


@dataclass(frozen=True)
class VarianceExploding:
    """x̂ = x + σ n with σ from ``sigma_max`` down to ``sigma_min`` (α = 1).

    Sampling grid (Karras et al. 2022, eq. 5), i = 0 … N − 1, then σ_N = 0:

        σ_i = (σ_max^{1/ρ} + i/(N − 1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ.

    Training draws ln σ uniformly on [ln σ_min, ln σ_max] (``training="loguniform"``, the
    default), or ln σ ~ N(P_mean, P_std²) clipped to that range (``training="lognormal"``,
    EDM's P_mean = −1.2, P_std = 1.2). The probability-flow ODE moves a sample by
    dx = (x − D)/σ dσ, so an error e in D shifts it by about ∫ e d ln σ: every e-fold of σ the
    sampler visits counts alike, and a denoiser must be trained on all of them. EDM's
    log-normal, made for images, leaves σ > 3 σ_data to 3 % of the examples and σ > 10 σ_data
    to 0.2 %; for a field whose largest scales carry the physics (the magnetisation of critical
    φ⁴) the sampler then starts on a denoiser that has hardly seen its inputs (measured on φ⁴
    at β_c, L = 32: ⟨|M|⟩ 14 standard errors off).
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    training: str = "loguniform"
    p_mean: float = -1.2
    p_std: float = 1.2
    name: ClassVar[str] = "ve"
    trainings: ClassVar[tuple[str, ...]] = ("loguniform", "lognormal")

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"sigma_min, sigma_max: need 0 < sigma_min < sigma_max; got {self.sigma_min},"
                f" {self.sigma_max}"
            )
        if self.training not in self.trainings:
            raise ValueError(f"training must be one of {self.trainings}; got {self.training!r}")
        if not self.rho > 0 or not self.p_std > 0:
            raise ValueError(f"rho and p_std must be positive; got {self.rho}, {self.p_std}")

    def sigmas(self, steps: int) -> torch.Tensor:
        """The N = ``steps`` noise levels of a sampler, descending, and σ = 0 (float64)."""
        _check_steps(steps)
        ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
        low, high = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return _descending((high + ramp * (low - high)) ** self.rho)

    def training_sigmas(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """σ of ``n`` training examples, within [σ_min, σ_max] (float64)."""
        low, high = math.log(self.sigma_min), math.log(self.sigma_max)
        if self.training == "loguniform":
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            return (low + (high - low) * u).exp()
        log_sigma = self.p_mean + self.p_std * torch.randn(
            n, generator=generator, dtype=torch.float64
        )
        return log_sigma.clamp(low, high).exp()

    def alpha(self, sigma: torch.Tensor) -> torch.Tensor:
        """α = 1."""
        return torch.ones_like(sigma)


@dataclass(frozen=True)
class VariancePreserving:
    """x_t = α_t x + √(1 − α_t²) n, t ∈ [t_min, 1]; in the unscaled variable σ_t = √(1 − α_t²)/α_t.

    ``schedule="linear"`` (Ho et al. 2020 in continuous time, Song et al. 2021):
    α_t² = exp(−½ (β_max − β_min) t² − β_min t), so
    σ_t = √(exp(½ (β_max − β_min) t² + β_min t) − 1).

    ``schedule="cosine"`` (Nichol & Dhariwal 2021): α_t² = f(t)/f(0),
    f(t) = cos²(π/2 (t + s)/(1 + s)), so σ_t = √(f(0)/f(t) − 1), with t_max = 1 − 10⁻⁴ (σ finite).

    Sampling visits t uniformly spaced from t_max down to t_min, then σ = 0; training draws t
    uniform on [t_min, t_max].
    """

    schedule: str = "linear"
    beta_min: float = 0.1
    beta_max: float = 20.0
    s: float = 0.008
    t_min: float = 1e-3
    name: ClassVar[str] = "vp"
    schedules: ClassVar[tuple[str, ...]] = ("linear", "cosine")

    def __post_init__(self) -> None:
        if self.schedule not in self.schedules:
            raise ValueError(f"schedule must be one of {self.schedules}; got {self.schedule!r}")
        if not 0 < self.beta_min < self.beta_max:
            raise ValueError(
                f"beta_min, beta_max: need 0 < beta_min < beta_max; got {self.beta_min},"
                f" {self.beta_max}"
            )
        if not 0 < self.t_min < 1 or not self.s > 0:
            raise ValueError(f"t_min must be in (0, 1) and s positive; got {self.t_min}, {self.s}")

    @property
    def t_max(self) -> float:
        return 1.0 if self.schedule == "linear" else 1.0 - 1e-4

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ_t of the unscaled variable (see the class docstring)."""
        if self.schedule == "linear":
            exponent = 0.5 * (self.beta_max - self.beta_min) * t**2 + self.beta_min * t
            return torch.expm1(exponent).sqrt()
        angle = lambda u: math.pi / 2 * (u + self.s) / (1 + self.s)  # noqa: E731
        return (math.cos(angle(0.0)) ** 2 / torch.cos(angle(t)) ** 2 - 1).sqrt()

    def sigmas(self, steps: int) -> torch.Tensor:
        """σ at ``steps`` times evenly spaced from t_max to t_min, and σ = 0 (float64)."""
        _check_steps(steps)
        t = torch.linspace(self.t_max, self.t_min, steps, dtype=torch.float64)
        return _descending(self.sigma(t))

    def training_sigmas(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """σ_t for t uniform on [t_min, t_max] (float64)."""
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return self.sigma(self.t_min + (self.t_max - self.t_min) * u)

    def alpha(self, sigma: torch.Tensor) -> torch.Tensor:
        """α = 1/√(1 + σ²)."""
        return (1 + sigma**2).rsqrt()


NoiseProcess = VarianceExploding | VariancePreserving
PROCESSES = {"ve": VarianceExploding, "vp": VariancePreserving}


def make_process(name: str, **options) -> NoiseProcess:
    """A process by name (``"ve"``, ``"vp"``) with its options (``schedule="cosine"``, ...)."""
    if name not in PROCESSES:
        raise ValueError(f"process must be one of {tuple(PROCESSES)}; got {name!r}")
    return PROCESSES[name](**options)


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an integer of at least 2; got {steps!r}")
