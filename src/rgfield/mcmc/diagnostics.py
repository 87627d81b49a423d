"""Autocorrelation analysis of MCMC series: τ_int with automatic windowing, and the ESS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Autocorrelation", "effective_sample_size", "integrated_autocorrelation_time"]


@dataclass(frozen=True)
class Autocorrelation:
    """τ_int of a series with its statistical error, window and normalised autocorrelation."""

    tau: float
    error: float
    window: int
    rho: np.ndarray


def _autocorrelation(series: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation ρ(t) of (chains, time) series, averaged over chains (FFT)."""
    x = series - series.mean(axis=1, keepdims=True)
    n = x.shape[1]
    f = np.fft.rfft(x, n=2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n] / np.arange(n, 0, -1)
    acov = acov.mean(axis=0)
    if acov[0] <= 0:
        raise ValueError("series is constant: its autocorrelation time is undefined")
    return acov / acov[0]


def integrated_autocorrelation_time(series, c: float = 6.0) -> Autocorrelation:
    """Integrated autocorrelation time with Madras–Sokal automatic windowing.

    τ_int(W) = ½ + Σ_{t=1..W} ρ(t); the window W is the smallest with W ≥ c τ_int(W)
    (Madras & Sokal, J. Stat. Phys. 50, 109 (1988)). Its error is
    δτ ≈ τ √(2(2W + 1)/N) with N the total number of samples. With this convention
    N / (2 τ_int) samples are effectively independent; for an AR(1) series x_t = a x_{t−1} + ξ_t
    τ_int = (1 + a) / (2 (1 − a)).

    Parameters
    ----------
    series : array_like or torch.Tensor (on any device), shape (time,) or (chains, time)
        Chains are assumed independent and equally long; ρ is averaged over them.
    c : float
        Window factor (5–10; 6 by default).
    """
    if hasattr(series, "detach"):  # a torch tensor, perhaps on an accelerator
        series = series.detach().cpu()
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < 4:
        raise ValueError(
            f"series must have shape (time,) or (chains, time) with time >= 4; got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("series contains NaN or Inf")
    rho = _autocorrelation(x)
    taus = 0.5 + np.cumsum(rho[1:])
    windows = np.arange(1, rho.size)
    ok = windows >= c * taus
    window = int(windows[np.argmax(ok)]) if ok.any() else int(windows[-1])
    tau = float(max(taus[window - 1], 0.5))
    error = tau * np.sqrt(2 * (2 * window + 1) / x.size)
    return Autocorrelation(tau=tau, error=float(error), window=window, rho=rho[: window + 1])


def effective_sample_size(series, c: float = 6.0) -> float:
    """N / (2 τ_int): the number of effectively independent samples in (chains, time) series."""
    x = np.asarray(series, dtype=np.float64)
    return float(x.size / (2 * integrated_autocorrelation_time(x, c).tau))
