"""Microcanonical synthesis: new fields whose scattering statistics match a target's.

Given a target's statistics Φ̄_f, averaged over the target fields, for the families f chosen
(scattering covariance normalised by the target's band powers; power spectrum relative to the
target's; pixel moments), each sample x_i minimises its own loss

    ℓ(x_i) = Σ_f ‖Φ_f(x_i) − Φ̄_f‖² / n_f,

from a phase-randomised surrogate of the target (its periodogram, random phases) or white noise,
by L-BFGS with a strong-Wolfe line search (Bruna & Mallat, Math. Stat. Learn. 1, 257 (2019);
Cheng et al., arXiv:2306.17210). The samples are optimised in one batch, but each is matched to
Φ̄ on its own (matching the batch average instead would let the histograms drift). The run
always stops: after ``steps`` L-BFGS iterations, once 1.25 × ``steps`` evaluations are made
(checked between iterations: a line search under way finishes first, at most 25 more), or when
the loss changes by less than ``tolerance`` times its initial value between iterations. The
fields are optimised in the target's standard units, (x − mean)/std.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from rgfield._validate import fresh_seed, is_integer
from rgfield.io import to_dataset
from rgfield.scattering import ScatteringCovariance, band_powers, normalized, reduce
from rgfield.stats import pixel_moments

__all__ = ["Synthesis", "synthesize"]

INITS = ("gaussian", "white")
STATISTICS = ("scattering", "spectrum", "moments")
_EMPTY_SHELL = 1e-6  # shells with less target power than this fraction of the peak are skipped
_OVERSHOOT = 1e12  # loss (in units of the initial loss) returned for non-finite trial fields


@dataclass
class Synthesis:
    """Result of :func:`synthesize`.

    Attributes
    ----------
    fields : torch.Tensor, shape (n, M, N), float32, CPU
    loss : numpy.ndarray
        Total loss (summed over samples) at every evaluation (inf for a line-search trial that
        overshot to non-finite values).
    final_loss : float
        The loss of the returned fields.
    iterations, evaluations : int
    converged : bool
        True when the loss-change tolerance stopped the run before the iteration cap.
    settings : dict
        J, L, kind, reduction, steps, tolerance, init, seed, target fields.
    """

    fields: torch.Tensor
    loss: np.ndarray
    final_loss: float
    iterations: int
    evaluations: int
    converged: bool
    settings: dict

    def to_dataset(self) -> xr.Dataset:
        """The samples as an ensemble Dataset with the settings and the final loss in attrs."""
        attrs = {
            "generator": "rgfield.microcanonical.synthesize",
            **self.settings,
            "iterations": self.iterations,
            "evaluations": self.evaluations,
            "converged": int(self.converged),
            "final_loss": self.final_loss,
            "initial_loss": float(self.loss[0]),
        }
        return to_dataset(self.fields, "field", attrs)


def _initial_fields(
    target: torch.Tensor, n: int, init: str, generator: torch.Generator
) -> torch.Tensor:
    """Phase-randomised surrogates — the target's mean periodogram |x̂|² with the phases of
    white noise (Hermitian, so the field is real) — plus the target's mean; or white noise with
    the target's mean and variance."""
    shape = target.shape[-2:]
    noise = torch.randn(n, *shape, generator=generator, dtype=torch.float64).to(target.device)
    mean = target.mean()
    if init == "white":
        return (mean + target.std() * noise).to(target.dtype)
    power = torch.fft.fft2(target - target.mean(dim=(-2, -1), keepdim=True)).abs().square()
    amplitude = power.mean(dim=0).sqrt().to(torch.float64)
    noise_hat = torch.fft.fft2(noise)
    phases = noise_hat / noise_hat.abs().clamp_min(1e-300)
    return (mean + torch.fft.ifft2(amplitude * phases).real).to(target.dtype)


def _scattering_family(target: torch.Tensor, J: int, L: int, kind: str, reduction: str | None):  # noqa: N803
    """x ↦ scattering covariance normalised by the target's mean band powers (and reduced)."""
    operator = ScatteringCovariance(tuple(target.shape[-2:]), J, L, kind, target.device)
    reference = band_powers(operator(target), operator.labels).mean(dim=0)

    def phi(x: torch.Tensor) -> torch.Tensor:
        values = normalized(operator(x), operator.labels, reference)
        return values if reduction is None else reduce(values, operator.labels, reduction)[0]

    return phi


def _spectrum_family(target: torch.Tensor):
    """x ↦ P(k)/P̄(k) − 1 over the complete integer shells k = 1 … n/2 of the rfft2 half plane
    (columns 1 … N/2 − 1 weighted twice: they stand for ±k) where the target has power
    (P̄ > 10⁻⁶ of its maximum: float32 fields cannot resolve relative deviations below)."""
    m, n = target.shape[-2:]
    ky = torch.fft.fftfreq(m, 1 / m, device=target.device).view(-1, 1)
    kx = torch.fft.rfftfreq(n, 1 / n, device=target.device).view(1, -1)
    shell = torch.round(torch.sqrt((ky / m) ** 2 + (kx / n) ** 2) * min(m, n)).long().flatten()
    column = torch.arange(n // 2 + 1, device=target.device)
    weight = torch.where((column == 0) | (2 * column == n), 1.0, 2.0).expand(m, -1).flatten()
    keep = (shell >= 1) & (shell <= min(m, n) // 2)
    shell, weight = shell[keep] - 1, weight[keep]
    counts = torch.zeros(min(m, n) // 2, device=target.device).index_add(0, shell, weight)

    def power(x: torch.Tensor) -> torch.Tensor:
        modes = torch.fft.rfft2(x).abs().square().flatten(start_dim=-2)[..., keep] * weight
        total = torch.zeros(*x.shape[:-2], len(counts), device=x.device, dtype=modes.dtype)
        return total.index_add(-1, shell, modes) / counts

    reference = power(target).mean(dim=0)
    # shells the target leaves empty (dealiased or filtered fields) have no relative deviation
    powered = reference > _EMPTY_SHELL * reference.max()
    return lambda x: power(x)[..., powered] / reference[powered] - 1


def synthesize(
    target,
    *,
    statistics: tuple[str, ...] = ("scattering", "spectrum", "moments"),
    n: int = 1,
    J: int | None = None,  # noqa: N803
    L: int = 4,  # noqa: N803
    kind: str = "morlet",
    reduction: str | None = None,
    steps: int = 300,
    tolerance: float = 1e-9,
    init: str = "gaussian",
    seed: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Synthesis:
    """Fields matching the scattering covariance (and other statistics) of ``target``.

    Parameters
    ----------
    target : array_like, shape (M, N) or (k, M, N)
        One field or several (their statistics are averaged).
    statistics : tuple of {"scattering", "spectrum", "moments"}
        The families matched; each contributes the mean of its squared deviations to the loss.
        ``"scattering"``: the scattering covariance normalised by the target's band powers
        (its :func:`~rgfield.scattering.reduce`-d form with ``reduction``). ``"spectrum"``: the
        shell-averaged power spectrum P(k) (every complete integer shell) relative to the
        target's, P/P̄ − 1 — wavelet band powers alone leave P(k) free within each octave.
        ``"moments"``: mean, variance, skewness and excess kurtosis of the pixel values in the
        target's standard units (all three by default: a physicist's synthetic field should
        have the target's spectrum and one-point moments; the scattering covariance alone
        leaves the excess kurtosis of a log-normal field at about 55 %, docs/scattering.md).
    n : int
        Samples to synthesise (one batch).
    J, L, kind :
        The wavelet bank (default J = log₂ min(M, N) − 2, at least 1).
    reduction : None, "isotropic", "scale" or "isotropic+scale"
        Match reduced statistics (:func:`rgfield.scattering.reduce`): fewer constraints, so a
        looser fit and more variety.
    steps : int
        L-BFGS iterations at most.
    tolerance : float
        Stop when the loss changes by less than this fraction of its initial value between
        iterations.
    init : {"gaussian", "white"}
    seed : int, optional
    device : str
    progress : bool
        A progress bar over loss evaluations.

    Returns
    -------
    Synthesis
    """
    from tqdm.auto import tqdm

    target = torch.as_tensor(np.asarray(target), dtype=torch.float32, device=device)
    if target.ndim == 2:
        target = target[None]
    if target.ndim != 3 or min(target.shape[-2:]) < 4:
        raise ValueError(f"target must have shape (M, N) or (k, M, N); got {tuple(target.shape)}")
    if not torch.isfinite(target).all():
        raise ValueError("target contains NaN or Inf")
    if not is_integer(n) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if not is_integer(steps) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be non-negative; got {tolerance!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}")
    unknown = set(statistics) - set(STATISTICS)
    if not statistics or unknown:
        raise ValueError(
            f"statistics must be a non-empty subset of {STATISTICS}; got {statistics!r}"
        )
    shape = tuple(target.shape[-2:])
    J = max(int(math.log2(min(shape))) - 2, 1) if J is None else J  # noqa: N806
    offset, scale = target.mean(), target.std()
    families = {
        "scattering": _scattering_family(target, J, L, kind, reduction),
        "spectrum": _spectrum_family(target),
        "moments": lambda x: pixel_moments(((x - offset) / scale).flatten(start_dim=-2)),
    }
    families = {name: families[name] for name in statistics}
    goals = {name: phi(target).mean(dim=0) for name, phi in families.items()}
    seed = fresh_seed() if seed is None else int(seed)
    start = _initial_fields(target, n, init, torch.Generator().manual_seed(seed)).to(device)
    # optimise z = (x − mean)/std of the target, with the loss in units of its initial value,
    # so that L-BFGS's first step and its tolerance do not depend on the field's units
    z = ((start - offset) / scale).requires_grad_(True)

    def loss_of(z: torch.Tensor) -> torch.Tensor:
        x = offset + scale * z
        return sum(
            (phi(x) - goals[name]).abs().square().sum() / goals[name].numel()
            for name, phi in families.items()
        )

    with torch.no_grad():
        initial = float(loss_of(z)) or 1.0
    optimizer = torch.optim.LBFGS(
        [z],
        lr=1.0,
        max_iter=steps,
        max_eval=int(1.25 * steps),
        tolerance_grad=0.0,
        tolerance_change=tolerance,
        history_size=50,
        line_search_fn="strong_wolfe",
    )
    history: list[float] = []
    with tqdm(total=int(1.25 * steps), desc="synthesis", disable=not progress) as bar:

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_of(z) if torch.isfinite(z).all() else None
            if loss is None or not torch.isfinite(loss):  # an overshooting line-search trial:
                history.append(float("inf"))  # a huge loss (no gradient) makes it step back
                bar.update()
                return torch.tensor(_OVERSHOOT)
            (loss / initial).backward()
            history.append(float(loss.detach()))
            bar.update()
            bar.set_postfix(loss=f"{history[-1]:.3g}")
            return loss.detach() / initial

        optimizer.step(closure)
    x = offset + scale * z.detach()
    with torch.no_grad():
        final = float(loss_of(z.detach()))
    iterations = int(optimizer.state[z].get("n_iter", 0))
    settings = {
        "J": J,
        "L": L,
        "kind": kind,
        "statistics": ",".join(statistics),
        "reduction": reduction or "none",
        "steps": steps,
        "tolerance": tolerance,
        "init": init,
        "seed": seed,
        "target_fields": target.shape[0],
    }
    return Synthesis(
        fields=x.to("cpu", torch.float32),
        loss=np.array(history),
        final_loss=final,
        iterations=iterations,
        evaluations=len(history),
        converged=iterations < steps and len(history) < int(1.25 * steps),
        settings=settings,
    )
