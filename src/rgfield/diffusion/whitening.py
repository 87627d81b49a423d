"""The linear map between physical fields and the fields a diffusion model works on.

z = F⁻¹[F(x − μ)_k / A_k] with amplitude A_k per 2D Fourier mode, inverted by x = μ + F⁻¹[A_k
F(z)_k]. Two choices:

* ``"white"``: A_k ≡ s, the data's standard deviation: z = (x − μ)/s, white noise added to z is
  white noise added to x (standard diffusion);
* ``"spectrum"``: A_k = √P_k, P the data's mean periodogram: z has a flat spectrum of unit
  power, and white noise added to z is noise with the data's power spectrum added to x. The
  Gaussian prior at large σ is then a Gaussian field with the data's spectrum, and, with the
  EDM preconditioning at σ_d = 1, a network output F ≡ 0 is already the Wiener filter of that
  Gaussian field: the network learns only the non-Gaussian part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rgfield.stats import mirrored, mode_power

__all__ = ["NOISES", "Whitening", "fit_whitening"]

NOISES = ("white", "spectrum")


@dataclass(frozen=True)
class Whitening:
    """z = F⁻¹[F(x − μ)/A], x = μ + F⁻¹[A F(z)] (see the module docstring).

    Attributes
    ----------
    mean : float
        μ.
    amplitude : torch.Tensor, shape (H, W), float64
        A_k > 0 per mode of the unnormalised 2D FFT.
    """

    mean: float
    amplitude: torch.Tensor

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """z of fields x (..., H, W), in the dtype of x."""
        return self._filter(x - self.mean, 1 / self.amplitude)

    def colour(self, z: torch.Tensor) -> torch.Tensor:
        """x of whitened fields z (..., H, W), in the dtype of z."""
        return self._filter(z, self.amplitude) + self.mean

    def _filter(self, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.amplitude.shape:
            raise ValueError(
                f"fields of size {tuple(x.shape[-2:])}; this model's are"
                f" {tuple(self.amplitude.shape)}"
            )
        spectrum = torch.fft.fft2(x.to(torch.float64)) * gain.to(x.device)
        return torch.fft.ifft2(spectrum).real.to(x.dtype)


def fit_whitening(fields: torch.Tensor, noise: str = "white") -> Whitening:
    """The :class:`Whitening` of ``noise`` kind for training fields (N, H, W).

    ``"white"``: μ and s the mean and standard deviation over all pixels; ``"spectrum"``: μ the
    mean, P_k = ⟨|F(x − μ)_k|²⟩/(H W) averaged over the fields and over k ↔ −k, floored at
    10⁻¹² of its mean (a mode the data never excite would otherwise be divided by 0).
    """
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}; got {noise!r}")
    x = fields.to(torch.float64)
    mean = float(x.mean())
    if noise == "white":
        std = float(x.std())
        if not std > 0:
            raise ValueError("fields: the training fields are constant; nothing to model")
        return Whitening(mean, torch.full(x.shape[-2:], std, dtype=torch.float64))
    power = mode_power(x - mean)
    power = (power + mirrored(power)) / 2  # P_k = P_−k
    if not power.mean() > 0:
        raise ValueError("fields: the training fields are constant; nothing to model")
    return Whitening(mean, power.clamp(min=1e-12 * float(power.mean())).sqrt())
