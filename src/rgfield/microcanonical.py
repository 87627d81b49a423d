"""Microcanonical synthesis: new fields whose scattering statistics match a target's.

Given a target's statistics Φ̄ (the scattering covariance, normalised by the target's band
powers, averaged over the target fields), each sample x_i minimises its own loss

    ℓ(x_i) = ‖Φ(x_i) − Φ̄‖² / n_Φ,

from a phase-randomised surrogate of the target (its periodogram, random phases) or white noise,
by L-BFGS with a strong-Wolfe line search (Bruna & Mallat, Math. Stat. Learn. 1, 257 (2019);
Cheng et al., arXiv:2306.17210). The samples are optimised in one batch, but each is matched to
Φ̄ on its own (matching the batch average instead would let the histograms drift). The run
always stops: after ``steps`` L-BFGS iterations, 1.25 × ``steps`` evaluations, or when the loss
changes by less than ``tolerance`` between iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from rgfield._validate import fresh_seed, is_integer
from rgfield.io import to_dataset
from rgfield.scattering import ScatteringCovariance, _s2, normalized, reduce

__all__ = ["Synthesis", "synthesize"]

INITS = ("gaussian", "white")


@dataclass
class Synthesis:
    """Result of :func:`synthesize`.

    Attributes
    ----------
    fields : torch.Tensor, shape (n, M, N), float32, CPU
    loss : numpy.ndarray
        Total loss (summed over samples) at every evaluation.
    iterations, evaluations : int
    converged : bool
        True when the loss-change tolerance stopped the run before the iteration cap.
    settings : dict
        J, L, kind, reduction, steps, tolerance, init, seed, target fields.
    """

    fields: torch.Tensor
    loss: np.ndarray
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
            "final_loss": float(self.loss[-1]),
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


def synthesize(
    target,
    *,
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
    """Fields matching the scattering covariance of ``target``.

    Parameters
    ----------
    target : array_like, shape (M, N) or (k, M, N)
        One field or several (their statistics are averaged).
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
        Stop when the loss changes by less than this between iterations.
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
    shape = tuple(target.shape[-2:])
    J = max(int(math.log2(min(shape))) - 2, 1) if J is None else J  # noqa: N806
    statistics = ScatteringCovariance(shape, J, L, kind, device, torch.float32)
    raw = statistics(target)
    reference = _s2(raw, statistics.labels).mean(dim=0)

    def phi(x: torch.Tensor) -> torch.Tensor:
        values = normalized(statistics(x), statistics.labels, reference)
        return values if reduction is None else reduce(values, statistics.labels, reduction)[0]

    goal = phi(target).mean(dim=0)
    seed = fresh_seed() if seed is None else int(seed)
    x = _initial_fields(target, n, init, torch.Generator().manual_seed(seed)).to(device)
    x.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x],
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
            loss = (phi(x) - goal).abs().square().sum() / goal.numel()
            loss.backward()
            history.append(float(loss.detach()))
            bar.update()
            bar.set_postfix(loss=f"{history[-1]:.3g}")
            return loss

        optimizer.step(closure)
    iterations = int(optimizer.state[x].get("n_iter", 0))
    settings = {
        "J": J,
        "L": L,
        "kind": kind,
        "reduction": reduction or "none",
        "steps": steps,
        "tolerance": tolerance,
        "init": init,
        "seed": seed,
        "target_fields": target.shape[0],
    }
    return Synthesis(
        fields=x.detach().to("cpu", torch.float32),
        loss=np.array(history),
        iterations=iterations,
        evaluations=len(history),
        converged=iterations < steps and len(history) < int(1.25 * steps),
        settings=settings,
    )
