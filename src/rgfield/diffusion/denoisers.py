"""Denoisers for periodic fields: a UNet with circular padding, and EDM preconditioning.

:class:`UNet` is F_θ(x, c_noise): residual blocks of 3 × 3 convolutions with circular padding
(fields are periodic: zero padding would break translation invariance at the borders), average
pooling down and nearest-neighbour upsampling up, skip connections between levels. With
``bias=False`` it has no additive constant anywhere (convolutions without bias, ReLU, and a
batch normalisation that only divides by a running root mean square) and ignores the noise
level, so that F(a x) = a F(x) for a > 0 in evaluation mode: the bias-free, noise-blind network
of Mohan et al. (ICLR 2020) and Kadkhodaie et al. (ICLR 2024).

:class:`Preconditioned` wraps it into the denoiser D(x, σ) = c_skip x + c_out F(c_in x, c_noise)
of Karras et al. (NeurIPS 2022, Table 1): c_skip = σ_d²/(σ² + σ_d²), c_out = σ σ_d/√(σ² + σ_d²),
c_in = 1/√(σ² + σ_d²), c_noise = ¼ ln σ, so that the network's input and target have unit
variance at every σ. For Gaussian data of variance σ_d² per pixel and F ≡ 0, D is the Wiener
filter; the network learns the rest.

Given the data's power spectrum P_k (per mode of the 2D FFT, mean σ_d²), the skip becomes the
Wiener filter of a Gaussian field with that spectrum, applied mode by mode:

    D(x, σ) = F⁻¹[P_k/(P_k + σ²) F(x)_k] + c_out F_θ(c_in x, c_noise),
    c_out² = ⟨P_k σ²/(P_k + σ²)⟩_k,   c_in = 1/√(⟨P_k⟩_k + σ²),

c_out² being the Wiener filter's mean squared error per pixel. With a flat spectrum this is the
scalar preconditioning above; with the data's, F ≡ 0 already draws Gaussian fields with the
data's spectrum and the network, still in pixel space and under white noise, learns only the
non-Gaussian part (the same goal as noise coloured by the spectrum, rgfield.diffusion.whitening,
without moving the network to whitened coordinates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SKIPS", "Ensemble", "Preconditioned", "UNet"]

SKIPS = ("scalar", "wiener")
"""The skip connections of :class:`Preconditioned`: EDM's scalar c_skip, or a Wiener filter."""


def _conv(channels_in: int, channels_out: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, 3, padding=1, padding_mode="circular", bias=bias)


class RootMeanSquareNorm(nn.Module):
    """Batch normalisation without centring or shift: x / √(E[x²] + ε) · g per channel, E over
    the batch and the pixels in training, a running average of it in evaluation (no additive
    constant: the bias-free UNet's normalisation)."""

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))
        self.register_buffer("running_square", torch.ones(channels))
        self.momentum, self.eps = momentum, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            square = x.square().mean((0, 2, 3))
            with torch.no_grad():
                self.running_square.lerp_(square.detach(), self.momentum)
        else:
            square = self.running_square
        scale = self.gain * (square + self.eps).rsqrt()
        return x * scale[None, :, None, None]


class _Block(nn.Module):
    """Residual block: x + conv(act(norm(conv(act(norm(x))) + e))), e the noise embedding
    projected to the channels (absent in the bias-free network)."""

    def __init__(self, channels_in: int, channels: int, embedding: int, bias: bool) -> None:
        super().__init__()
        norm = (lambda c: nn.GroupNorm(math.gcd(8, c), c)) if bias else RootMeanSquareNorm
        self.norm_in, self.norm_mid = norm(channels_in), norm(channels)
        self.conv_in, self.conv_mid = (
            _conv(channels_in, channels, bias),
            _conv(channels, channels, bias),
        )
        self.act = nn.SiLU() if bias else nn.ReLU()
        self.embed = nn.Linear(embedding, channels) if embedding else None
        self.skip = (
            nn.Conv2d(channels_in, channels, 1, bias=bias)
            if channels_in != channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        h = self.conv_in(self.act(self.norm_in(x)))
        if self.embed is not None:
            h = h + self.embed(embedding)[:, :, None, None]
        return self.skip(x) + self.conv_mid(self.act(self.norm_mid(h)))


class UNet(nn.Module):
    """F_θ(x, c_noise) for fields (batch, channels, H, W), H and W divisible by 2^(levels − 1).

    Parameters
    ----------
    channels : int
        Field channels (1 for a scalar field).
    width : int
        Feature channels at the finest level; doubled at each coarser level.
    levels : int
        Resolutions (``levels − 1`` halvings).
    bias : bool
        False: the bias-free, noise-blind variant (see the module docstring).
    embedding : int
        Width of the noise-level embedding (Fourier features of c_noise and an MLP).
    """

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        levels: int = 3,
        bias: bool = True,
        embedding: int = 64,
    ) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("width", width), ("levels", levels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        self.config = dict(
            channels=channels, width=width, levels=levels, bias=bias, embedding=embedding
        )
        embed = embedding if bias else 0
        if embed:
            self.register_buffer(
                "frequencies", torch.exp(torch.linspace(0, math.log(100), embed // 2))
            )
            self.mlp = nn.Sequential(nn.Linear(embed, embed), nn.SiLU(), nn.Linear(embed, embed))
        widths = [width * 2**level for level in range(levels)]
        self.lift = _conv(channels, width, bias)
        self.down = nn.ModuleList(
            _Block(w_in, w, embed, bias)
            for w_in, w in zip([width, *widths[:-1]], widths, strict=True)
        )
        self.middle = _Block(widths[-1], widths[-1], embed, bias)
        self.up = nn.ModuleList(
            _Block(w_out + w, w, embed, bias)
            for w_out, w in zip([widths[-1], *widths[:0:-1]], widths[::-1], strict=True)
        )
        self.project = _conv(width, channels, bias)

    def _embedding(self, c_noise: torch.Tensor, batch: int) -> torch.Tensor | None:
        if not hasattr(self, "mlp"):
            return None
        angle = c_noise.reshape(-1, 1).expand(batch, 1) * self.frequencies
        return self.mlp(torch.cat([angle.cos(), angle.sin()], dim=1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        levels = self.config["levels"]
        if x.shape[-1] % 2 ** (levels - 1) or x.shape[-2] % 2 ** (levels - 1):
            raise ValueError(
                f"x: field size {tuple(x.shape[-2:])} is not divisible by 2^{levels - 1}"
            )
        embedding = self._embedding(c_noise.to(x.dtype), len(x))
        h, skips = self.lift(x), []
        for i, block in enumerate(self.down):
            h = block(h, embedding)
            skips.append(h)
            if i < levels - 1:
                h = nn.functional.avg_pool2d(h, 2)
        h = self.middle(h, embedding)
        for i, block in enumerate(self.up):
            if i > 0:
                h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), embedding)
        return self.project(h)


class Preconditioned(nn.Module):
    """D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, ¼ ln σ) (Karras et al. 2022, Table 1), or
    with the Wiener filter of a power spectrum as the skip (see the module docstring).

    Parameters
    ----------
    network : nn.Module
        F(x, c_noise), e.g. :class:`UNet`.
    sigma_data : float
        σ_d, the data's standard deviation per pixel (1 for whitened fields).
    power : torch.Tensor (H, W), optional
        P_k, the data's power per mode of the unnormalised 2D FFT (|F(x)_k|²/(H W) averaged
        over fields, so that its mean is the variance per pixel); given, the skip is the Wiener
        filter of that spectrum and ``sigma_data`` is not used.

    ``forward(x, sigma)`` takes fields (batch, H, W) or (batch, C, H, W) and σ as a number or
    one per field.
    """

    def __init__(
        self, network: nn.Module, sigma_data: float = 1.0, power: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.network, self.sigma_data = network, float(sigma_data)
        if power is not None and not (power.dim() == 2 and bool((power > 0).all())):
            raise ValueError("power must be a positive (H, W) tensor, one value per mode")
        self.register_buffer("power", None if power is None else power.detach().clone())

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_out, c_in) at noise levels ``sigma`` (any shape)."""
        if self.power is None:
            total = sigma**2 + self.sigma_data**2
            return sigma * self.sigma_data * total.rsqrt(), total.rsqrt()
        power = self.power.to(sigma)
        shape = sigma.shape
        s2 = sigma.reshape(-1, 1, 1) ** 2
        error = (power * s2 / (power + s2)).mean((-2, -1)).reshape(shape)
        return error.sqrt(), (power.mean() + sigma**2).rsqrt()

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """λ(σ) = 1/c_out(σ)², EDM's weighting: the network's target has unit variance."""
        return self.coefficients(sigma)[0].pow(-2)

    def skip(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """c_skip x, or the Wiener filter F⁻¹[P/(P + σ²) F(x)] with a spectrum (x: (B, C, H, W),
        σ: (B,))."""
        s2 = sigma[:, None, None, None] ** 2
        if self.power is None:
            return self.sigma_data**2 / (s2 + self.sigma_data**2) * x
        power = self.power.to(x)
        gain = power / (power + s2)
        return torch.fft.ifft2(torch.fft.fft2(x) * gain).real.to(x.dtype)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        scalar = x.dim() == 3
        if scalar:
            x = x[:, None]
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sigma = sigma.expand(len(x)) if sigma.numel() == 1 else sigma
        c_out, c_in = (c[:, None, None, None] for c in self.coefficients(sigma))
        out = self.skip(x, sigma) + c_out * self.network(x * c_in, sigma.log() / 4)
        return out[:, 0] if scalar else out


class Ensemble(nn.Module):
    """The mean of K denoisers, D(x, σ) = (1/K) Σ_k D_k(x, σ).

    Every D_k estimates the same posterior mean E[x | x + σ n]. Networks trained from other
    initial weights and draws of the training examples err differently; where their errors are
    independent, the mean's variance is one K-th of one network's and a bias they share stays
    (the deep ensembles of Lakshminarayanan et al., NeurIPS 2017). ``members[k]`` is D_k.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("members: an ensemble needs at least one denoiser")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x, sigma) for member in self.members]).mean(0)
