"""The details a band-limited field allows: an affine subspace, and chains and scores on it.

A field x of a dealiased simulation lies in the live subspace V = {x : x̂(k) = 0 for the empty
modes k} of its :class:`~rgfield.rg.band.Band`. Its finest details x̄ given the coarse field
x_1 then lie on the affine subspace

    A(x_1) = {x̄ : merge(x_1, x̄) ∈ V} = {x̄ : (1 − P) x̄ = o(x_1)},

with P the orthogonal projection onto its direction D = {x̄ : merge(0, x̄) ∈ V} and o(x_1) the
part of every such x̄ orthogonal to D. The wavelet transform commutes with shifts by one cell
of the coarse grid (two of the field's), so both act mode by mode of the coarse grid's Fourier
transform: at a coarse wavenumber q the field's modes are its four aliases q + n·e (e ∈ {0,1}²,
n the coarse size), the 3 detail channels enter them through a 4 × 3 matrix M(q) and the
coarse field through a 4-vector a(q) (the Fourier transforms of merged impulses), and with
M_E(q) the rows of the empty aliases,

    P(q) = 1 − M_E⁺ M_E,    ô(q) = −M_E⁺ a_E(q) ĉ(q)

(⁺: Moore–Penrose inverse; ô is the minimum-norm solution of M_E ô = −a_E ĉ, exact where the
coarse field is itself band-limited, least squares otherwise).

On A(x_1) the finest conditional is an ordinary density. Its score matching uses the scores
along D only (:class:`LaplaciansAlong`), and its chains move along D only: they sample
w ↦ U(P w + o(x_1)), whose gradient P∇U vanishes off D (:meth:`DetailSubspace.given`), and
their positions are mapped onto A(x_1) at the end. Without the constraint the fitted energy
must confine the empty directions, which the data do not fill, and its chains need steps of
5e-5 on rgfield's 128² turbulence (docs/rg_fields.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from rgfield.rg.band import Band
from rgfield.wavelets import merge

__all__ = ["DetailSubspace", "LaplaciansAlong"]

_RANK_TOLERANCE = 1e-8  # singular values below this fraction of the largest count as zero


@dataclass(frozen=True, eq=False)
class DetailSubspace:
    """The affine subspace of the finest details of band-limited fields, mode by mode.

    Attributes
    ----------
    projector : torch.Tensor, complex, shape (n, n, 3, 3)
        P(q), the projection onto the direction D at each coarse wavenumber q.
    offset : torch.Tensor, complex, shape (n, n, 3)
        G(q) = −M_E⁺ a_E(q), so that ô(q) = G(q) ĉ(q).
    """

    projector: torch.Tensor
    offset: torch.Tensor

    @classmethod
    def of(cls, band: Band, wavelet: str) -> DetailSubspace:
        """The subspace of the finest details of fields with ``band``, split by ``wavelet``."""
        size = band.empty.shape[-1]
        n = size // 2
        impulses = torch.zeros(4, 4, n, n, dtype=torch.float64)
        for channel in range(4):  # channel 0: the coarse field, 1–3: the details
            impulses[channel, channel, 0, 0] = 1.0
        responses = torch.fft.fft2(merge(impulses[:, 0], impulses[:, 1:], wavelet))
        # aliases of q: (qy + n ey, qx + n ex), in the order e = (0,0), (0,1), (1,0), (1,1)
        aliases = responses.reshape(4, 2, n, 2, n).permute(2, 4, 1, 3, 0).reshape(n, n, 4, 4)
        empty = band.empty.reshape(2, n, 2, n).permute(1, 3, 0, 2).reshape(n, n, 4, 1)
        rows = aliases * empty  # the live aliases' rows zeroed
        inverse = torch.linalg.pinv(rows[..., 1:], rtol=_RANK_TOLERANCE)
        eye = torch.eye(3, dtype=inverse.dtype)
        return cls(
            projector=eye - inverse @ rows[..., 1:],
            offset=-(inverse @ rows[..., :1])[..., 0],
        )

    def to(self, device: str | torch.device) -> DetailSubspace:
        """The same subspace with its maps on ``device`` (chains there copy nothing per step)."""
        return replace(self, projector=self.projector.to(device), offset=self.offset.to(device))

    @property
    def dimension(self) -> int:
        """dim D: the number of free detail variables (of 3 n²)."""
        return int(torch.diagonal(self.projector, dim1=-2, dim2=-1).real.sum().round())

    def project(self, y: torch.Tensor) -> torch.Tensor:
        """P y for details ``y`` of shape (..., 3, n, n)."""
        p = self.projector.to(device=y.device, dtype=_complex(y.dtype))
        spectrum = torch.fft.fft2(y)
        return torch.fft.ifft2(torch.einsum("yxcd,...dyx->...cyx", p, spectrum)).real

    def fixed(self, c: torch.Tensor) -> torch.Tensor:
        """o(c), the part of the details fixed by coarse fields ``c`` (B, n, n) or (B, 1, n, n);
        shape (B, 3, n, n)."""
        g = self.offset.to(device=c.device, dtype=_complex(c.dtype))
        spectrum = torch.fft.fft2(c.reshape(c.shape[0], *c.shape[-2:]))
        return torch.fft.ifft2(torch.einsum("yxc,byx->bcyx", g, spectrum)).real

    def onto(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """P w + o(c): the point of the subspace given ``c`` nearest to details ``w``."""
        return self.project(w) + self.fixed(c)

    def into(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Coordinates w of details ``y`` of the subspace: y itself (onto(y, c) = y)."""
        del c
        return y

    def given(
        self, energy_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], c
    ) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """w ↦ (U(P w + o(c)), P ∇U(P w + o(c))) for y ↦ (U(y), ∇U(y)) given ``c``: the energy
        of chains that move along D only."""
        fixed = self.fixed(c)

        def on_subspace(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            energy, grad = energy_and_grad(self.project(w) + fixed)
            return energy, self.project(grad)

        return on_subspace


class LaplaciansAlong:
    """tr(P ∇²_y Φ_k(y | c)) for every feature k of ``families``: their Laplacians along the
    ``subspace``, by calls ``(y, c)`` → shape (B, F).

    Exact for a family whose Hessian is the same everywhere and commutes with shifts
    (:attr:`~rgfield.energies.FeatureFamily.stationary_hessian`): both operators are then
    3 × 3 blocks Ĥ(q), P(q) in the coarse grid's Fourier modes, and tr(P H) = Σ_q tr(P(q) Ĥ(q)),
    with Ĥ(q)'s columns the transforms of H applied to an impulse in each channel (computed at
    the first call, then kept). Otherwise a Hutchinson estimate, tr(P H) = E_v[(P v)ᵀ H (P v)]
    for v ~ N(0, 1) (P = Pᵀ = P²), averaged over ``probes`` vectors per sample drawn from
    ``generator``, with exact Hessian products (forward-mode differentiation of the feature
    gradients, :func:`torch.func.jvp`): unbiased, so the score-matching sums stay unbiased and
    linear in them.
    """

    def __init__(
        self,
        families: list,
        subspace: DetailSubspace,
        generator: torch.Generator | None,
        probes: int,
    ) -> None:
        self.families, self.subspace = families, subspace
        self.generator, self.probes = generator, probes
        self._stationary: dict[int, torch.Tensor] = {}

    def __call__(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        columns = []
        for i, family in enumerate(self.families):
            if family.stationary_hessian:
                if i not in self._stationary:
                    self._stationary[i] = _stationary_traces(family, y, c, self.subspace)
                columns.append(self._stationary[i].expand(y.shape[0], -1))
            else:
                columns.append(
                    _hutchinson(family, y, c, self.subspace, self.generator, self.probes)
                )
        return torch.cat(columns, 1)


def _stationary_traces(family, y, c, subspace: DetailSubspace) -> torch.Tensor:
    """Σ_q tr(P(q) Ĥ_k(q)) for a family of stationary Hessians, shape (1, F)."""
    channels, n = y.shape[1], y.shape[-1]
    impulses = y.new_zeros(channels, channels, n, n)
    impulses[range(channels), range(channels), 0, 0] = 1.0
    at = y.new_zeros(impulses.shape)
    given = None if c is None else c.new_zeros(channels, *c.shape[1:])
    responses = _hessian_product(family, at, given, impulses)  # (channel b, F, a, n, n)
    blocks = torch.fft.fft2(responses)  # Ĥ_k(q)[a, b] at [b, k, a, q]
    p = subspace.projector.to(device=y.device, dtype=blocks.dtype)  # P(q)[b, a] at [q, b, a]
    return torch.einsum("yxba,bkayx->k", p, blocks).real.unsqueeze(0)


def _hutchinson(family, y, c, subspace: DetailSubspace, generator, probes: int) -> torch.Tensor:
    """Mean of (P v)ᵀ ∇²Φ_k (P v) over ``probes`` Gaussian v per sample, shape (B, F)."""
    total = 0.0
    for _ in range(probes):
        v = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        u = subspace.project(v)
        total = total + (_hessian_product(family, y, c, u) * u.unsqueeze(1)).flatten(2).sum(2)
    return total / probes


def _hessian_product(family, y, c, v) -> torch.Tensor:
    """∇²_y Φ_k(y | c) v for every feature k, shape (B, F, *y.shape[1:])."""
    return torch.func.jvp(lambda z: family.gradients(z, c), (y,), (v,))[1]


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex64 if dtype == torch.float32 else torch.complex128
