"""Samplers of the reverse process, k-diffusion style: ``sample_x(denoiser, x, sigmas, ...)``.

``denoiser(x, sigma)`` returns D(x, σ) ≈ E[x₀ | x₀ + σ n = x] for a batch x (sample, ...) and
one noise level σ (a float); the score is Tweedie's ∇log p_σ(x) = (D(x, σ) − x)/σ². ``x``
starts at noise of level σ₀ = ``sigmas[0]`` (``x = sigmas[0] * randn``), ``sigmas`` descends
and ends at 0 (:meth:`~rgfield.diffusion.VarianceExploding.sigmas`). Every step is a positive
multiple of D plus terms in x and fresh noise (the sign rule: the coefficient on the denoiser
is (σ_i − σ_{i+1})/σ_i, (σ_i² − σ_{i+1}²)/σ_i², ε/σ², ... ≥ 0); the last step, to σ = 0, is
Tweedie's denoising x ← D(x, σ) in every sampler.

``callback(info)`` gets a dict (x, i, sigma, sigma_next, denoised) after every step;
``progress`` shows a bar over the steps. The number of denoiser evaluations of each sampler
for N = len(sigmas) − 1 steps: Euler N, Heun 2N − 1, DDIM N, Euler–Maruyama N,
predictor–corrector N (1 + corrector_steps) − corrector_steps.

References: Karras et al., NeurIPS 2022 (Euler, Heun, stochastic churn: their Algorithms 1–2);
Song, Meng & Ermon, ICLR 2021 (DDIM, η); Song et al., ICLR 2021 (reverse SDE, predictor–
corrector with a Langevin corrector at a signal-to-noise ratio r).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import torch

from rgfield._progress import progress as progress_bar

__all__ = [
    "SAMPLERS",
    "Denoiser",
    "sample_ddim",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_pc",
]

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
Callback = Callable[[dict], None] | None


def _steps(sigmas: torch.Tensor, enabled: bool, desc: str):
    """(i, σ_i, σ_{i+1}) over the grid, with a progress bar; checks the grid."""
    values = [float(s) for s in sigmas]
    if len(values) < 2 or values[-1] != 0 or any(b >= a for a, b in pairwise(values)):
        raise ValueError("sigmas must descend strictly and end at 0 (at least one step)")
    with progress_bar(desc, total=len(values) - 1, enabled=enabled, unit="step") as on_step:
        for i, (sigma, sigma_next) in enumerate(pairwise(values)):
            yield i, sigma, sigma_next
            on_step()


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _report(callback: Callback, x, i, sigma, sigma_next, denoised) -> None:
    if callback is not None:
        callback(dict(x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised))


def _churn(
    x: torch.Tensor, sigma: float, churn: float, steps: int, generator
) -> tuple[torch.Tensor, float]:
    """EDM's stochastic churn (Karras et al. 2022, Algorithm 2): raise the noise level to
    σ̂ = σ (1 + γ), γ = min(S_churn / N, √2 − 1), by adding √(σ̂² − σ²) ξ. Returns (x̂, σ̂)."""
    if churn <= 0 or sigma == 0:
        return x, sigma
    gamma = min(churn / steps, math.sqrt(2) - 1)
    sigma_hat = sigma * (1 + gamma)
    return x + math.sqrt(sigma_hat**2 - sigma**2) * _noise(x, generator), sigma_hat


def _euler_step(x, denoised, sigma, sigma_next):
    """x + (σ' − σ) (x − D)/σ = (σ'/σ) x + (1 − σ'/σ) D: the probability-flow ODE
    dx/dσ = (x − D(x, σ))/σ over one step."""
    return x + (sigma_next - sigma) * (x - denoised) / sigma


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    churn: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE dx/dσ = (x − D(x, σ))/σ, optionally with
    stochastic churn ``churn`` = S_churn (0: deterministic)."""
    steps = len(sigmas) - 1
    for i, sigma, sigma_next in _steps(sigmas, progress, "Euler"):
        x, sigma_hat = _churn(x, sigma, churn, steps, generator)
        denoised = denoiser(x, sigma_hat)
        x = _euler_step(x, denoised, sigma_hat, sigma_next)
        _report(callback, x, i, sigma, sigma_next, denoised)
    return x


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    churn: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    progress: bool = False,
) -> torch.Tensor:
    """Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm
    1; with ``churn`` > 0, Algorithm 2): an Euler step to σ', corrected by the mean of the
    slopes at σ and σ'; the last step (σ' = 0) is Euler's, i.e. x ← D(x, σ)."""
    steps = len(sigmas) - 1
    for i, sigma, sigma_next in _steps(sigmas, progress, "Heun"):
        x, sigma_hat = _churn(x, sigma, churn, steps, generator)
        denoised = denoiser(x, sigma_hat)
        slope = (x - denoised) / sigma_hat
        x_euler = x + (sigma_next - sigma_hat) * slope
        if sigma_next > 0:
            slope_next = (x_euler - denoiser(x_euler, sigma_next)) / sigma_next
            x = x + (sigma_next - sigma_hat) * (slope + slope_next) / 2
        else:
            x = x_euler
        _report(callback, x, i, sigma, sigma_next, denoised)
    return x


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    progress: bool = False,
) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021) in the unscaled variable:

        x' = D + √(σ'² − c²) (x − D)/σ + c ξ,   c = η σ' √(1 − σ'²/σ²),

    so η = 0 is deterministic (and the same step as Euler's) and η = 1 the ancestral sampler
    (the posterior p(x' | x, x₀ = D))."""
    if not eta >= 0:
        raise ValueError(f"eta must be non-negative; got {eta!r}")
    for i, sigma, sigma_next in _steps(sigmas, progress, "DDIM"):
        denoised = denoiser(x, sigma)
        c = eta * sigma_next * math.sqrt(max(0.0, 1 - sigma_next**2 / sigma**2))
        x = denoised + math.sqrt(max(0.0, sigma_next**2 - c**2)) * (x - denoised) / sigma
        if c > 0:
            x = x + c * _noise(x, generator)
        _report(callback, x, i, sigma, sigma_next, denoised)
    return x


def _reverse_sde_step(x, denoised, sigma, sigma_next, generator):
    """Euler–Maruyama on the reverse SDE dx = −d(σ²) ∇log p_σ(x) + √(d(σ²)) dW̄, from σ to σ':

        x' = x + (σ² − σ'²) (D − x)/σ² + √(σ² − σ'²) ξ,

    and x' = D on the last step (σ' = 0)."""
    if sigma_next == 0:
        return denoised
    variance = sigma**2 - sigma_next**2
    return x + variance / sigma**2 * (denoised - x) + math.sqrt(variance) * _noise(x, generator)


@torch.no_grad()
def sample_euler_maruyama(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    churn: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    progress: bool = False,
) -> torch.Tensor:
    """Euler–Maruyama on the reverse SDE (see :func:`_reverse_sde_step`), optionally with
    EDM's stochastic churn before each step."""
    steps = len(sigmas) - 1
    for i, sigma, sigma_next in _steps(sigmas, progress, "Euler–Maruyama"):
        x, sigma_hat = _churn(x, sigma, churn, steps, generator)
        denoised = denoiser(x, sigma_hat)
        x = _reverse_sde_step(x, denoised, sigma_hat, sigma_next, generator)
        _report(callback, x, i, sigma, sigma_next, denoised)
    return x


def _langevin_corrector(denoiser, x, sigma, snr, generator):
    """One Langevin step at noise level σ (Song et al. 2021, Algorithm 5):
    x ← x + ε s + √(2ε) ξ, s = (D − x)/σ², ε = 2 (r ‖ξ‖/‖s‖)² per sample."""
    score = (denoiser(x, sigma) - x) / sigma**2
    noise = _noise(x, generator)
    dims = tuple(range(1, x.dim()))
    ratio = torch.linalg.vector_norm(noise, dim=dims) / torch.linalg.vector_norm(score, dim=dims)
    epsilon = (2 * (snr * ratio) ** 2).reshape((-1,) + (1,) * len(dims))
    return x + epsilon * score + (2 * epsilon).sqrt() * noise


@torch.no_grad()
def sample_pc(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    corrector_steps: int = 1,
    snr: float = 0.05,
    generator: torch.Generator | None = None,
    callback: Callback = None,
    progress: bool = False,
) -> torch.Tensor:
    """Predictor–corrector (Song et al. 2021): a reverse-SDE predictor step (Euler–Maruyama)
    to σ', then ``corrector_steps`` Langevin steps at σ' with signal-to-noise ratio ``snr``
    (none after the last step, to σ = 0).

    An unadjusted Langevin step of size ε inflates the variance of a Gaussian mode of variance
    v by about ε/2v, and ε ≈ 2 r² × (the harmonic mean of the modes' variances), so the modes of
    least variance (a field's finest scales) come out too strong by about r². Song et al.'s
    r = 0.16 for images makes that 2.6 % (measured with the exact Wiener denoiser: fine-scale
    shells 3-5 % high); the default r = 0.05 makes it 0.25 %."""
    if not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be a non-negative integer; got {corrector_steps!r}")
    if not snr > 0:
        raise ValueError(f"snr must be positive; got {snr!r}")
    for i, sigma, sigma_next in _steps(sigmas, progress, "predictor–corrector"):
        denoised = denoiser(x, sigma)
        x = _reverse_sde_step(x, denoised, sigma, sigma_next, generator)
        if sigma_next > 0:
            for _ in range(corrector_steps):
                x = _langevin_corrector(denoiser, x, sigma_next, snr, generator)
        _report(callback, x, i, sigma, sigma_next, denoised)
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "euler_maruyama": sample_euler_maruyama,
    "pc": sample_pc,
}
"""The samplers by name; ``heun`` and ``ddim`` are deterministic (without churn, η = 0)."""
