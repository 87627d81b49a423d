"""Scattering-covariance features: products of details, their moduli and coarse envelopes.

Every feature of this family is a spatial product of two maps, one of them filtered,

    Φ_t(y, c) = Σ_u P_t(u) (Q_t ⋆ h_t)(u),

where P_t and Q_t are taken from the stack Z of

* the sampled channels y_a (the details x̄_j, or the field itself at the coarsest scale),
* their smoothed moduli m_a = √(y_a² + ε²), twice differentiable (Lempereur & Mallat,
  "Hierarchic flows to estimate and sample high-dimensional probabilities",
  arXiv:2405.03468),
* the envelopes of the conditioning coarse field, M_k = √(|c ⋆ ψ_k|² + ε²) with ψ_k the
  Morlet wavelets of :func:`rgfield.scattering.filter_bank`, and the coarse field c itself,
  each standardised and bounded: M̃_k = tanh((M_k − ⟨M_k⟩) / sd M_k), c̃ likewise (fixed given
  c; ⟨·⟩ and sd over the training data), and c̃². Bounded, so that an energy fitted where the
  data lie does not change sign in the extremes of the coarse field;

and h_t is a periodic shift δ_s or a Gaussian low-pass g_σ (σ = 1, 2, … cells). The terms are
those of the scattering covariance (docs/rg_fields.md, "The scattering-covariance family"):

* phase–modulus across scales, Σ_u y_a(u) M̃_k(u − s): where a coarse edge or filament is, the
  sign pattern of the details aligns with it (skewness, phase alignment);
* power–modulus across scales, Σ_u ½y_a(u)² M̃_k(u) (``cross="square"``, the default) or
  Σ_u m_a(u) M̃_k(u) (``cross="modulus"``): the envelope of the details follows the coarse
  envelope (intermittency carried down the scales);
* power–field, Σ_u ½y_a(u)² (c̃ ⋆ g_σ)(u) (or m_a): the envelope of the details depends on
  the sign of the coarse field (in the cosmic web's log density the voids are noisier than
  the filaments; the moduli M̃_k cannot tell them apart);
* phase–field², Σ_u y_a(u) c̃²(u − s) (``field_square=True``): a mean of the details even in
  the coarse field's departure from its mean, E[x̄ | c] ∋ (c − ⟨c⟩)², which is what a
  field's skewness E[(c + x̄)³] ∋ 3E[c² x̄] needs and a coupling linear in c cannot give;
* modulus–modulus within the scale, Σ_u m_a(u) (m_b ⋆ g_σ)(u): envelopes cluster in space;
* phase–modulus within the scale, Σ_u y_a(u) (m_b ⋆ g_σ)(u): odd in y, the details' skewness;
* the marginal modulus, Σ_u m_a(u) (``marginal=True``; the product of m_a with the constant
  map 1): for θ ≥ 0, with the quadratic family's ½y_a², a Laplace-like law of each
  coefficient, whose tails are heavier than the Gaussian's (excess kurtosis from 0 up to 3)
  whatever the coarse field (θ < 0 makes it bimodal).

The energy grows at most quadratically in y; the coarse maps are bounded, so the curvature
the cross-scale terms add is bounded by Σ|θ| whatever the coarse field. Score matching does
not make the fitted energy convex (docs/rg_fields.md); the loss stays quadratic in θ.

Derivatives are exact (no probes). With p and q the pointwise maps behind P and Q and h̃ the
flipped filter (h̃(s) = h(−s)),

    ∂Φ/∂y_a = p'(y_a) (Q ⋆ h)          on P's channel a,
    ∂Φ/∂y_b = q'(y_b) (P ⋆ h̃)          on Q's channel b (when Q is sampled),
    ΔΦ = Σ_u [p''(y_a) (Q ⋆ h) + q''(y_b) (P ⋆ h̃)] + 2 h(0) Σ_u p'(y_a) q'(y_a) [a = b],

with p' = 1, p'' = 0 for y, m' = y/m, m'' = ε²/m³ for the modulus and p' = y, p'' = 1 for
½y².
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from rgfield._validate import is_integer
from rgfield.energies.base import (
    EnergyFn,
    FeatureFamily,
    GivenEnergyFn,
    register_feature,
    sampled_names,
)
from rgfield.scattering import filter_bank

__all__ = ["ScatteringCovariance"]


@register_feature
class ScatteringCovariance(FeatureFamily):
    """Phase–modulus and modulus–modulus products of the details and the coarse field.

    Parameters
    ----------
    scales : int
        Scales k of the coarse field's Morlet envelopes M̃_k (wavelets of width ≈ 0.8·2^k
        cells of the detail grid), at most log2(n) − 1 on an n × n grid.
    orientations : int
        Orientations of the envelopes over [0, π).
    radius : int
        The phase–modulus products across scales take the shifts s of a (2R+1)² stencil.
    widths : int
        Low-pass filters of the within-scale products: the identity and Gaussians of
        σ = 1, 2, …, 2^(widths − 2) cells (those with 4σ ≤ n).
    epsilon : float
        Smoothing ε of the moduli, in units of the normalised variables (rms 1).
    cross : {"square", "modulus"}
        The function of the details coupled to the coarse envelopes and field: ½y_a² (the
        conditional is then Gaussian given c, with a local variance that follows the coarse
        field: exact Laplacians Σ_u M̃_k(u)) or the smoothed modulus m_a.
    within : bool
        Include the within-scale products (modulus–modulus and phase–modulus of the details
        themselves); without them (the default), with ``cross="square"`` and without the
        marginal moduli the energy is quadratic in y: Gaussian given c, with a mean and local
        variances that follow c.
    field_square : bool
        Include the phase–field² products y_a · c̃²(u − s) over the shift stencil (3(2R+1)²
        more parameters per conditional: 27 with ``radius=1``).
    marginal : bool
        Include the marginal moduli Σ_u m_a(u), one parameter per channel (3 per conditional,
        1 at the coarsest scale and in the free energies).

    Notes
    -----
    Parameters per conditional on an n × n grid with n ≥ 2^(scales + 1) and the defaults:
    216 + 24 + 9 = 249 (3 detail channels, 8 envelopes, 9 shifts, 3 filters), 291 with
    ``within=True``; at the coarsest scale and in the free energies (one channel, no coarse
    field) 0, or 5 with ``within=True``. On the cosmic web the within-scale products lower
    the score-matching loss, but without the curvature floor they make the finest
    conditional run away from the data (docs/rg_fields.md); with the floor they are not yet
    measured, so they are off by default.
    """

    name = "scatcov"

    def __init__(
        self,
        scales: int = 2,
        orientations: int = 4,
        radius: int = 1,
        widths: int = 3,
        epsilon: float = 0.1,
        cross: str = "square",
        within: bool = False,
        field_square: bool = False,
        marginal: bool = False,
    ) -> None:
        for name, value, low in (
            ("scales", scales, 0),
            ("orientations", orientations, 1),
            ("radius", radius, 0),
            ("widths", widths, 1),
        ):
            if not is_integer(value) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        if not (isinstance(epsilon, int | float) and epsilon > 0):
            raise ValueError(f"epsilon must be positive; got {epsilon!r}")
        self.scales, self.orientations, self.radius = int(scales), int(orientations), int(radius)
        self.widths, self.epsilon = int(widths), float(epsilon)
        if cross not in ("modulus", "square"):
            raise ValueError(f"cross must be 'modulus' or 'square'; got {cross!r}")
        self.cross, self.within, self.field_square = cross, bool(within), bool(field_square)
        self.marginal = bool(marginal)
        self.shape: tuple[int, int] | None = None
        self.sampled = 0
        self.conditioned = False
        self.envelope_scales = 0
        self.coarse_centres = np.zeros(0)  # (K·L + 1,): ⟨M_k⟩, ⟨c⟩ of the training data
        self.coarse_scales = np.zeros(0)  # (K·L + 1,): their standard deviations
        self.filters: np.ndarray | None = None  # (H, 3): kind (0 shift, 1 Gaussian), a, b
        self.terms: np.ndarray | None = None  # (F, 3): map p, map q, filter h
        self._cache: dict = {}

    # -- structure ---------------------------------------------------------------------------

    @property
    def n_envelopes(self) -> int:
        return self.envelope_scales * self.orientations

    @property
    def n_fixed(self) -> int:
        """Maps of Z fixed in a chain: envelopes, c̃ [, c̃²] given c, then [1]."""
        coarse = self.n_envelopes + self.conditioned * (1 + self.field_square)
        return coarse + self.marginal

    def _map_kind(self, i: int) -> str:
        """'y', 'm' (modulus), 'p' (½y²), 'M' (coarse envelope), 'c' (coarse field), 's'
        (its square) or '1' (the constant map) for map i of Z."""
        if i < 3 * self.sampled:
            return "ymp"[i // self.sampled]
        if self.marginal and i == 3 * self.sampled + self.n_fixed - 1:
            return "1"
        if i < 3 * self.sampled + self.n_envelopes:
            return "M"
        return "c" if i == 3 * self.sampled + self.n_envelopes else "s"

    def fit(self, y: torch.Tensor, c: torch.Tensor | None, wavelet: str = "db4"):
        del wavelet  # the products act on the coefficients directly
        ny, nx = self.shape = tuple(int(v) for v in y.shape[-2:])
        n = min(ny, nx)
        self.sampled, self.conditioned = y.shape[1], c is not None
        self.envelope_scales = 0 if c is None else max(0, min(self.scales, int(math.log2(n)) - 1))
        self._cache = {}
        shifts = [
            (0, sy % ny, sx % nx)
            for sy in range(-self.radius, self.radius + 1)
            for sx in range(-self.radius, self.radius + 1)
        ]
        gaussians = [(1, 2**r, 0) for r in range(self.widths - 1) if 4 * 2**r <= n]
        self.filters = np.array(sorted(set(shifts)) + gaussians, dtype=np.int64).reshape(-1, 3)
        if self.conditioned:
            raw = self._raw_coarse(c)
            self.coarse_centres = raw.mean((0, 2, 3)).cpu().numpy()
            self.coarse_scales = raw.std((0, 2, 3)).clamp_min(1e-12).cpu().numpy()
        identity = int(np.flatnonzero((self.filters == (0, 0, 0)).all(1))[0])
        smooth = [identity] + [
            len(self.filters) - len(gaussians) + i for i in range(len(gaussians))
        ]
        C, E = self.sampled, 3 * self.sampled  # noqa: N806 - first map of the moduli, envelopes
        A = C if self.cross == "modulus" else 2 * C  # noqa: N806 - first map coupled to c
        rows = []
        if self.n_envelopes:
            stencil = [i for i, f in enumerate(self.filters) if f[0] == 0]
            for a in range(C):  # phase–modulus across scales
                rows += [(a, E + k, h) for k in range(self.n_envelopes) for h in stencil]
            for a in range(C):  # power–modulus (or modulus–modulus) across scales
                rows += [(A + a, E + k, identity) for k in range(self.n_envelopes)]
        if self.conditioned:  # power–field (or modulus–field)
            rows += [(A + a, E + self.n_envelopes, h) for a in range(C) for h in smooth]
        if self.conditioned and self.field_square:  # phase–field²
            shifts = [i for i, f in enumerate(self.filters) if f[0] == 0]
            rows += [(a, E + self.n_envelopes + 1, h) for a in range(C) for h in shifts]
        for a in range(C if self.within else 0):  # modulus–modulus within the scale
            for b in range(a, C):  # (m_a·m_a is the quadratic family's y_a·y_a)
                rows += [(C + a, C + b, h) for h in smooth if not (a == b and h == identity)]
        for a in range(C if self.within else 0):  # phase–modulus within the scale
            rows += [(a, C + b, h) for b in range(C) for h in smooth]
        if self.marginal:  # the marginal moduli, m_a · 1
            rows += [(C + a, E + self.n_fixed - 1, identity) for a in range(C)]
        self.terms = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return self

    @property
    def labels(self) -> list[str]:
        channels = sampled_names(self.sampled)
        ny, nx = self.shape

        def map_name(i: int) -> str:
            kind = self._map_kind(i)
            if kind == "y":
                return channels[i]
            if kind == "m":
                return f"|{channels[i - self.sampled]}|"
            if kind in "cs1":
                return {"c": "c", "s": "c²", "1": "1"}[kind]
            if kind == "p":
                return f"½{channels[i - 2 * self.sampled]}²"
            k = i - 3 * self.sampled
            return f"M{k // self.orientations},{k % self.orientations}"

        def filter_name(h: int) -> str:
            kind, a, b = self.filters[h]
            if kind == 1:
                return f"*g{a}"
            sy, sx = (a if a <= ny // 2 else a - ny), (b if b <= nx // 2 else b - nx)
            return "" if (sy, sx) == (0, 0) else f"({sy},{sx})"

        return [f"{map_name(p)}·{map_name(q)}{filter_name(h)}" for p, q, h in self.terms]

    # -- the filters in Fourier --------------------------------------------------------------

    def _fourier(self, device: torch.device, dtype: torch.dtype) -> dict:
        """Filters ĥ (H, ny, nx//2+1), their values h(0), the flipped filters' indices, and the
        envelopes' wavelets ψ̂ (K·L, ny, nx), cached per device and dtype."""
        key = (str(device), dtype)
        if key not in self._cache:
            ny, nx = self.shape
            ky = torch.fft.fftfreq(ny, dtype=torch.float64).view(-1, 1) * 2 * math.pi
            kx = torch.fft.rfftfreq(nx, dtype=torch.float64).view(1, -1) * 2 * math.pi
            spectra, centre = [], []
            for kind, a, b in self.filters.tolist():
                if kind == 0:  # (h ⋆ Q)(u) = Q(u − s): ĥ = exp(−i k·s)
                    spectra.append(torch.exp(-1j * (ky * a + kx * b)))
                    centre.append(float((a, b) == (0, 0)))
                else:  # Gaussian of σ = a cells, periodised by its frequencies' aliases
                    g = torch.exp(-0.5 * a**2 * (ky.square() + kx.square())) + 0j
                    spectra.append(g)
                    centre.append(float(torch.fft.irfft2(g, s=(ny, nx))[0, 0]))
            index = {tuple(f): i for i, f in enumerate(self.filters.tolist())}
            flip = [
                index[(0, -a % ny, -b % nx)] if kind == 0 else i
                for i, (kind, a, b) in enumerate(self.filters.tolist())
            ]
            psi = None
            if self.n_envelopes:
                bank = filter_bank(self.shape, self.envelope_scales, self.orientations)
                psi = bank.psi.reshape(-1, ny, nx).to(device=device, dtype=dtype)
            cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
            self._cache[key] = {
                "spectra": torch.stack(spectra).to(device=device, dtype=cdtype),
                "centre": torch.tensor(centre, dtype=dtype, device=device),
                "flip": np.array(flip, dtype=np.int64),
                "psi": psi,
            }
        return self._cache[key]

    def _raw_coarse(self, c: torch.Tensor) -> torch.Tensor:
        """(M_k, c) with M_k = √(|c ⋆ ψ_k|² + ε²): shape (B, K·L + 1, ny, nx)."""
        maps = [c.unsqueeze(1)]
        if self.n_envelopes:
            psi = self._fourier(c.device, c.dtype)["psi"]
            w = torch.fft.ifft2(torch.fft.fft2(c).unsqueeze(1) * psi)
            maps.insert(0, torch.sqrt(w.real.square() + w.imag.square() + self.epsilon**2))
        return torch.cat(maps, dim=1)

    # -- maps and their derivatives ----------------------------------------------------------

    def _maps(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Z = (y, m(y), ½y², M̃(c), c̃[, c̃²][, 1]): (B, 3C + :attr:`n_fixed`, ny, nx)."""
        maps = self._sampled_maps(y)
        if not self.n_fixed:
            return maps
        return torch.cat([maps, self._fixed_maps(c, y).expand(y.shape[0], -1, -1, -1)], 1)

    def _sampled_maps(self, y: torch.Tensor) -> torch.Tensor:
        """(y, m(y), ½y²): (B, 3C, ny, nx)."""
        if tuple(y.shape[-2:]) != self.shape or y.shape[1] != self.sampled:
            raise ValueError(
                f"y: expected shape (B, {self.sampled}, {self.shape[0]}, {self.shape[1]}),"
                f" got {tuple(y.shape)}"
            )
        return torch.cat([y, torch.sqrt(y.square() + self.epsilon**2), 0.5 * y.square()], 1)

    def _fixed_maps(self, c: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """(M̃(c), c̃[, c̃²][, 1]) on ``like``'s device and dtype: (B, :attr:`n_fixed`, ny, nx),
        B = 1 without c."""
        maps = []
        if self.conditioned:
            c = c.to(like)
            centres, scales = (
                torch.as_tensor(v, dtype=c.dtype, device=c.device).view(-1, 1, 1)
                for v in (self.coarse_centres, self.coarse_scales)
            )
            maps.append(torch.tanh((self._raw_coarse(c) - centres) / scales))
            if self.field_square:
                maps.append(maps[0][:, -1:].square())
        if self.marginal:
            batch = maps[0].shape[0] if maps else 1
            maps.append(like.new_ones(batch, 1, *self.shape))
        return torch.cat(maps, 1) if maps else like.new_zeros(1, 0, *self.shape)

    def _derivatives(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First and second derivatives of the sampled maps (y and m) in their channel's
        variable, shape (B, 2C, ny, nx) each."""
        y, m = z[:, : self.sampled], z[:, self.sampled : 2 * self.sampled]
        first = torch.cat([torch.ones_like(y), y / m, y], dim=1)
        second = torch.cat([torch.zeros_like(y), self.epsilon**2 / m.pow(3), torch.ones_like(y)], 1)
        return first, second

    def _filtered(self, z: torch.Tensor, pairs: np.ndarray) -> torch.Tensor:
        """(Z_i ⋆ h_f) for the (map i, filter f) rows of ``pairs``: (B, len(pairs), ny, nx)."""
        if not len(pairs):  # a family without terms (no coarse field, within=False)
            return z.new_zeros(z.shape[0], 0, *self.shape)
        spectra = self._fourier(z.device, z.dtype)["spectra"]
        zf = torch.fft.rfft2(z)
        i, f = (torch.as_tensor(v, device=z.device) for v in pairs.T)
        return torch.fft.irfft2(zf[:, i] * spectra[f], s=self.shape)

    def _products(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
        """Q ⋆ h (B, F, ny, nx) for every term, P ⋆ h̃ for the terms whose Q is sampled, and
        the mask of those terms."""
        p, q, h = self.terms.T
        both = q < 3 * self.sampled
        flip = self._fourier(z.device, z.dtype)["flip"]
        q_h = self._filtered(z, np.stack([q, h], 1))
        p_h = self._filtered(z, np.stack([p[both], flip[h[both]]], 1)) if both.any() else None
        return q_h, p_h, both

    # -- the family's interface --------------------------------------------------------------

    def values(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        z = self._maps(y, c)
        q_h = self._filtered(z, self.terms[:, 1:])
        p = torch.as_tensor(self.terms[:, 0], device=z.device)
        return (z[:, p] * q_h).sum((-2, -1))

    def gradients(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        z = self._maps(y, c)
        first, _ = self._derivatives(z)
        q_h, p_h, both = self._products(z)
        p, q, _ = self.terms.T
        t = np.arange(len(self.terms))
        out = z.new_zeros(z.shape[0], len(t), self.sampled, *self.shape)
        out[:, t, p % self.sampled] = first[:, p] * q_h
        if p_h is not None:
            out[:, t[both], q[both] % self.sampled] += first[:, q[both]] * p_h
        return out

    def laplacians(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        z = self._maps(y, c)
        first, second = self._derivatives(z)
        q_h, p_h, both = self._products(z)
        p, q, h = self.terms.T
        lap = (second[:, p] * q_h).sum((-2, -1))
        if p_h is not None:
            lap[:, both] += (second[:, q[both]] * p_h).sum((-2, -1))
            same = both & (p % self.sampled == q % self.sampled)
            centre = self._fourier(z.device, z.dtype)["centre"][torch.as_tensor(h[same])]
            lap[:, same] += 2 * centre * (first[:, p[same]] * first[:, q[same]]).sum((-2, -1))
        return lap

    def bind(self, theta: torch.Tensor) -> EnergyFn:
        """U = θᵀΦ and ∇_y U for fixed θ through the combined kernels (see :meth:`_bound_given`),
        the fixed maps made afresh at every evaluation."""
        given = self.bind_given(theta)
        return lambda y, c: given(c)(y)

    def bind_given(self, theta: torch.Tensor) -> Callable[[torch.Tensor | None], GivenEnergyFn]:
        """As :meth:`bind`, with the fixed maps' share of the energy made once per ``c``: the
        envelopes and their transforms are half of an evaluation's cost, and fixed in a chain.
        The combined kernels are made once for all ``c``."""
        combined = self._combined_kernel(theta)
        return lambda c: self._bound_given(combined, c)

    def _combined_kernel(self, theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """y ↦ the combined kernels K̂_pq = Σ_t θ_t ĥ_t over the terms t = (p, q, h), on y's
        device and dtype (made once per device and dtype): the rows of the energy's maps p,
        then those of the gradient, K_iq + K̃_qi for the sampled maps i that some term uses
        (K̃ the flipped kernel, conj K̂); shape (rows, maps, ny, nx // 2 + 1).
        """
        maps = 3 * self.sampled + self.n_fixed
        rows, used = self._rows_and_used()
        kernels = {}

        def combined(y: torch.Tensor) -> torch.Tensor:
            key = (str(y.device), y.dtype)
            if key not in kernels:
                spectra = self._fourier(y.device, y.dtype)["spectra"]
                tp, tq, h = (torch.as_tensor(v, device=y.device) for v in self.terms.T)
                kernel = spectra.new_zeros(maps, maps, *spectra.shape[1:])
                kernel.index_put_((tp, tq), theta.to(spectra)[:, None, None] * spectra[h], True)
                adjoint = kernel[:, used].transpose(0, 1).conj()
                kernels[key] = torch.cat([kernel[rows], kernel[used] + adjoint])
            return kernels[key]

        return combined

    def _rows_and_used(self) -> tuple[np.ndarray, np.ndarray]:
        """The maps that multiply a filtered map (the energy's rows; always sampled maps) and
        the sampled maps in any term."""
        p, q, _ = self.terms.T
        return np.unique(p), np.unique(np.concatenate([p, q[q < 3 * self.sampled]]))

    def _bound_given(
        self, combined: Callable[[torch.Tensor], torch.Tensor], c: torch.Tensor | None
    ) -> GivenEnergyFn:
        """U and ∇_y U for the combined kernels and a fixed c:

            U = Σ_p ⟨Z_p, Σ_q K_pq ⋆ Z_q⟩,
            ∇_{y_a} U = Σ_i Z_i'(y_a) G_i,   G_i = Σ_j (K_ij + K̃_ji) ⋆ Z_j,

        i over the sampled maps of channel a (y_a, m_a, ½y_a²): one FFT of the sampled maps and
        one inverse FFT per map that some term uses per evaluation; the fixed maps' share
        Σ_{q fixed} K̂_pq Ẑ_q is made at the first evaluation on each device and dtype, and kept
        (without c, the constant map's, of batch 1, broadcast over the chains).
        """
        sampled = 3 * self.sampled
        rows, used = self._rows_and_used()
        fixed: dict[tuple[str, torch.dtype], torch.Tensor] = {}

        def energy_and_grad(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if not len(self.terms):
                return y.new_zeros(y.shape[0]), torch.zeros_like(y)
            kernel = combined(y)
            z = self._sampled_maps(y)
            mixed = torch.einsum("pqkl,bqkl->bpkl", kernel[:, :sampled], torch.fft.rfft2(z))
            if self.n_fixed:
                key = (str(y.device), y.dtype)
                if key not in fixed:
                    fixed_hat = torch.fft.rfft2(self._fixed_maps(c, y))
                    fixed[key] = torch.einsum("pqkl,bqkl->bpkl", kernel[:, sampled:], fixed_hat)
                mixed = mixed + fixed[key]
            out = torch.fft.irfft2(mixed, s=self.shape)
            energy = (z[:, rows] * out[:, : len(rows)]).sum((1, 2, 3))
            first, _ = self._derivatives(z)
            grad = y.new_zeros(y.shape)
            index = torch.as_tensor(used % self.sampled, device=y.device)
            grad.index_add_(1, index, first[:, used] * out[:, len(rows) :])
            return energy, grad

        return energy_and_grad

    def get_state(self) -> dict:
        return {
            "scales": self.scales,
            "orientations": self.orientations,
            "radius": self.radius,
            "widths": self.widths,
            "epsilon": self.epsilon,
            "cross": self.cross,
            "within": int(self.within),
            "field_square": int(self.field_square),
            "marginal": int(self.marginal),
            "shape": np.array(self.shape, dtype=np.int64),
            "sampled": self.sampled,
            "conditioned": int(self.conditioned),
            "envelope_scales": self.envelope_scales,
            "coarse_centres": np.asarray(self.coarse_centres, dtype=np.float64).reshape(-1),
            "coarse_scales": np.asarray(self.coarse_scales, dtype=np.float64).reshape(-1),
            "filters": self.filters,
            "terms": self.terms,
        }

    @classmethod
    def from_state(cls, state: dict) -> ScatteringCovariance:
        family = cls(
            int(state["scales"]),
            int(state["orientations"]),
            int(state["radius"]),
            int(state["widths"]),
            float(state["epsilon"]),
            str(state["cross"]),
            bool(int(state["within"])),
            bool(int(state.get("field_square", 0))),  # files before it existed: without
            bool(int(state.get("marginal", 0))),
        )
        family.shape = tuple(int(v) for v in np.asarray(state["shape"]))
        family.sampled, family.envelope_scales = (
            int(state["sampled"]),
            int(state["envelope_scales"]),
        )
        family.conditioned = bool(int(state["conditioned"]))
        for key in ("coarse_centres", "coarse_scales"):
            setattr(family, key, np.asarray(state[key], dtype=np.float64).reshape(-1))
        family.filters = np.asarray(state["filters"], dtype=np.int64).reshape(-1, 3)
        family.terms = np.asarray(state["terms"], dtype=np.int64).reshape(-1, 3)
        return family
