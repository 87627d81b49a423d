"""Neighbour envelopes: a local precision of the details that falls where their neighbours are
strong relative to the whole field — the clustering of intermittency within one scale.

With E(u) = Σ_b y_b(u)² the details' energy at cell u (all channels), ē its mean over the N
cells of the field, and r = (g ⋆ E) / ē the neighbours' energy relative to it (the ring filter
g: 1/((2R+1)² − 1) off the centre, g(0) = 0), the features of channel a are

    Φ_ak(y) = ½ Σ_u y_a(u)² B_k(r(u)),     B_k(r) = 1 / (1 + r / σ_k),

so that θᵀΦ = ½ Σ_a Σ_u y_a² Λ_a(r) adds to a Gaussian energy a local precision
Λ_a(r) = Σ_k θ_ak B_k(r) that is largest where the neighbours are quiet and falls to 0 where
they are strong. The knots σ_k are quantiles of r in the training data. With θ ≥ 0 the
family's energy is non-negative and its precision bounded, Λ_a ∈ [0, Σ_k θ_ak]
(``nonnegative``: fits keep θ ≥ 0). The energy is not convex — a strong neighbourhood
lowers the cost of a strong detail — which is what heavy tails need: a log-concave law has
excess kurtosis at most 3 (docs/rg_fields.md, "why the generated details stay Gaussian").

Why relative to ē: with the absolute energy g ⋆ E in its place, a fit to 128² forced
turbulence drew details at j = 2 with 9–195× the data's variance. The feedback (strong
neighbours, low precision, stronger details) has a quiet and an active branch, and the data
are a mixture of both in space; the chains went to the active branch everywhere. Relative to
the field's own mean no field can be active everywhere, and Φ is homogeneous of degree 2
(Φ(λy) = λ²Φ(y)).

Derivatives (g symmetric, Σg = 1, C channels; A = y_a² B_k'(r), Q = y_a² B_k''(r),
X = Q r + A, G = g ⋆ A, m = ⟨A r⟩ the mean over cells, Σ the sum over cells):

    ∂Φ_ak/∂y_b = δ_ab y_a B_k(r) + y_b (G − m) / ē,
    ΔΦ_ak = Σ B_k(r) + [C (ΣA − N m) − 4m + 2 Σ X r / N] / ē
            + 2 Σ E (g² ⋆ Q − g ⋆ (Q r) / N) / ē² − 2 Σ E (g ⋆ X + G − m) / (N ē²),

exact (no probes; tests against autograd Hessians); the coarse field does not enter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's convention

from rgfield._validate import is_integer
from rgfield.energies.base import EnergyFn, FeatureFamily, register_feature, sampled_names

__all__ = ["NeighbourEnvelope"]


@register_feature
class NeighbourEnvelope(FeatureFamily):
    """Local precisions ½ y_a² B_k(r) of the details, falling with their neighbours' relative
    energy r.

    Parameters
    ----------
    radius : int
        The neighbourhood: the (2R+1)² − 1 cells around a cell, periodically (R = 1: the 8
        nearest).
    quantiles : sequence of float
        Knots σ_k of the bases B_k(r) = 1/(1 + r/σ_k): these quantiles of r over the
        training details.
    """

    name = "envelope"
    nonnegative = True

    def __init__(self, radius: int = 1, quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> None:
        if not is_integer(radius) or radius < 1:
            raise ValueError(f"radius must be an integer >= 1; got {radius!r}")
        quantiles = [float(q) for q in np.atleast_1d(quantiles)]
        if not quantiles or not all(0 < q < 1 for q in quantiles):
            raise ValueError(f"quantiles must be in (0, 1); got {quantiles!r}")
        self.radius, self.quantiles = int(radius), quantiles
        self.channels = 0
        self.knots = np.zeros(0)  # σ_k

    # -- the neighbourhood -------------------------------------------------------------------

    def _ring(self, x: torch.Tensor, power: int = 1) -> torch.Tensor:
        """g^power ⋆ x over the last two axes of x (B, n, n): the ring mean (power 1), or its
        square's filter (power 2, weights 1/((2R+1)² − 1)²)."""
        width = 2 * self.radius + 1
        padded = F.pad(x.unsqueeze(1), (self.radius,) * 4, mode="circular")
        box = F.avg_pool2d(padded, width, stride=1).squeeze(1) * width**2
        return (box - x) / (width**2 - 1) ** power

    def _bases(self, r: torch.Tensor, order: int) -> torch.Tensor:
        """B_k(r) (order 0), B_k'(r) (1) or B_k''(r) (2) of r (B, n, n): shape (B, K, n, n)."""
        sigma = torch.as_tensor(self.knots, dtype=r.dtype, device=r.device).view(-1, 1, 1)
        inverse = 1.0 / (1.0 + r.unsqueeze(1) / sigma)
        return (1.0, -1.0 / sigma, 2.0 / sigma.square())[order] * inverse ** (order + 1)

    def _check(self, y: torch.Tensor) -> None:
        if y.dim() != 4 or y.shape[1] != self.channels:
            raise ValueError(f"y: expected shape (B, {self.channels}, n, n); got {tuple(y.shape)}")

    def _activity(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """E = Σ_b y_b² (B, n, n), ē its mean over the cells (B, 1, 1) and r = g ⋆ E / ē."""
        self._check(y)
        energy = y.square().sum(1)
        mean = energy.mean((-2, -1), keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
        return energy, mean, self._ring(energy) / mean

    # -- FeatureFamily -----------------------------------------------------------------------

    def fit(self, y: torch.Tensor, c: torch.Tensor | None, wavelet: str = "db4"):
        del c, wavelet  # the envelopes are the details' own
        self.channels = int(y.shape[1])
        r = self._activity(y)[2].flatten()
        step = max(1, len(r) // 1_000_000)  # torch.quantile's input limit
        q = torch.as_tensor(self.quantiles, dtype=r.dtype)
        self.knots = torch.quantile(r[::step], q).clamp_min(1e-12).numpy()
        return self

    @property
    def labels(self) -> list[str]:
        names = sampled_names(self.channels)
        return [f"½{a}²·B(r/{q:g})" for a in names for q in self.quantiles]

    def values(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        r = self._activity(y)[2]
        return 0.5 * torch.einsum("bauv,bkuv->bak", y.square(), self._bases(r, 0)).flatten(1)

    def _spread(self, x: torch.Tensor, power: int = 1) -> torch.Tensor:
        """g^power ⋆ x for x of shape (B, a, k, n, n)."""
        return self._ring(x.flatten(0, 2), power).view(x.shape)

    def gradients(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        _, mean, r = self._activity(y)
        slopes = y.square().unsqueeze(2) * self._bases(r, 1).unsqueeze(1)  # A: (B, a, k, n, n)
        m = (slopes * r[:, None, None]).mean((-2, -1), keepdim=True)
        factor = (self._spread(slopes) - m) / mean[:, None, None]  # (G − m)/ē
        out = y[:, None, None] * factor.unsqueeze(3)  # (B, a, k, b, n, n)
        channels = torch.arange(self.channels, device=y.device)
        out[:, channels, :, channels] += y.transpose(0, 1).unsqueeze(2) * self._bases(r, 0)
        return out.flatten(1, 2)

    def laplacians(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        energy, mean, r = self._activity(y)
        n, ebar = energy[0].numel(), mean.view(-1, 1, 1)  # ē against (B, a, k)
        e, rr = energy[:, None, None], r[:, None, None]  # against (B, a, k, n, n)
        square = y.square().unsqueeze(2)
        a = square * self._bases(r, 1).unsqueeze(1)  # A = y_a² B'(r)
        q = square * self._bases(r, 2).unsqueeze(1)  # Q = y_a² B''(r)
        x = q * rr + a
        m = (a * rr).mean((-2, -1))  # m = ⟨A r⟩, (B, a, k)

        def total(z: torch.Tensor) -> torch.Tensor:
            return z.sum((-2, -1))

        lap = (
            total(self._bases(r, 0)).unsqueeze(1)
            + (self.channels * (total(a) - n * m) - 4 * m + 2 * total(x * rr) / n) / ebar
            + 2 * total(e * (self._spread(q, 2) - self._spread(q * rr) / n)) / ebar**2
            - 2 * total(e * (self._spread(x + a) - m[..., None, None])) / (n * ebar**2)
        )
        return lap.flatten(1)

    def bind(self, theta: torch.Tensor) -> EnergyFn:
        """U = ½ Σ_a Σ_u y_a² Λ_a(r) and ∇_{y_b} U = y_b [Λ_b(r) + (g ⋆ S − ⟨S r⟩) / ē] with
        Λ_a = Σ_k θ_ak B_k and S = Σ_a y_a² Λ_a'(r): two ring filters per evaluation."""
        weights = theta.reshape(self.channels, -1)

        def energy_and_grad(y: torch.Tensor, c: torch.Tensor | None):
            _, mean, r = self._activity(y)
            w = weights.to(y)
            precision = torch.einsum("ak,bkuv->bauv", w, self._bases(r, 0))
            slope = (y.square() * torch.einsum("ak,bkuv->bauv", w, self._bases(r, 1))).sum(1)
            shift = (slope * r).mean((-2, -1), keepdim=True)
            energy = 0.5 * (y.square() * precision).sum((1, 2, 3))
            return energy, y * (precision + ((self._ring(slope) - shift) / mean).unsqueeze(1))

        return energy_and_grad

    def get_state(self) -> dict:
        return {
            "radius": self.radius,
            "quantiles": np.asarray(self.quantiles, dtype=np.float64),
            "channels": self.channels,
            "knots": np.asarray(self.knots, dtype=np.float64),
        }

    @classmethod
    def from_state(cls, state: dict) -> NeighbourEnvelope:
        family = cls(int(state["radius"]), np.asarray(state["quantiles"]).reshape(-1).tolist())
        family.channels = int(state["channels"])
        family.knots = np.asarray(state["knots"], dtype=np.float64).reshape(-1)
        return family
