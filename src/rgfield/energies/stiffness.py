"""Field-dependent stiffness of the reconstructed finer field: ½ Σ_bonds W (x_q − x_p)², with W
the stiffness Z at the bond's midpoint (``stiffness``) or its mean over the bond's two ends
(``site_stiffness``)."""

from __future__ import annotations

import math

import torch

from rgfield._validate import is_integer
from rgfield.energies import cubic_table
from rgfield.energies.base import DensityFn, register_feature
from rgfield.energies.finer_field import (
    FinerFieldFamily,
    atom_radius,
    details_projector,
    quantile_windows,
    table_like,
)

__all__ = ["FieldStiffness", "SiteStiffness"]

_CELLS_PER_WIDTH = 1000  # table cells per width of the narrowest window (slope error ~1e-9)
_OFFSETS = ((1, 0), (0, 1))  # the bonds (p, p + e): nearest neighbours along both axes


def _bonds(x: torch.Tensor) -> list[tuple[tuple[int, int], torch.Tensor, torch.Tensor]]:
    """(e, x_q, d) of the bonds (p, q = p + e) of fields x (B, N, M), periodic: the far end x_q
    and the difference d = x_q − x_p, both stored at p."""
    bonds = []
    for e in _OFFSETS:
        far = x.roll((-e[0], -e[1]), (-2, -1))
        bonds.append((e, far, far - x))
    return bonds


@register_feature
class FieldStiffness(FinerFieldFamily):
    """Features Φ_k = ½ Σ_{bonds (p, q)} w_k(m) d², m = (x_p + x_q)/2, d = x_q − x_p, over the
    nearest-neighbour bonds of the finer field x along both axes (periodic).

    A combination Z(m) = Σ_k θ_k w_k(m) is a stiffness that depends on the local field: the
    term after the potential in the derivative expansion of a coarse-grained action,
    Γ[φ] = Σ U(φ) + ½ Z(φ)(∇φ)² + O(∇⁴) (Berges, Tetradis & Wetterich, Phys. Rep. 363, 223
    (2002), §4). The microscopic φ⁴ energy has Z constant, so its finest conditional needs
    none; a coarser conditional models the law of a block-averaged field, whose interfaces
    (m ≈ 0) and bulk (m ≈ ±⟨|φ|⟩) pay different gradient costs (docs/rg.md, "Right tails").

    The windows are Gaussian bumps w_k(m) = exp(−½ ((m̃ − c_k)/s_k)²) with centres at the
    data's midpoint quantiles (k − ½)/K, s_k = ``width`` × the local spacing of the centres,
    and m̃ = m clamped to the data's midpoint range widened by ``margin`` × that range on each
    side: Z is constant beyond it. The field is the potential family's: x = merge(c, y) at a
    conditional scale, x = y at the coarsest. A bond a → b of weight W(x_a, x_b) (here
    W = w(m), so W_a = W_b = ½ w', W_aa = W_bb = W_ab = ¼ w'') has h = ½ W d² and

        ∂h/∂x_a = ½ W_a d² − W d,                ∂h/∂x_b = ½ W_b d² + W d,
        ∂²h/∂x_a² = ½ W_aa d² − 2 W_a d + W,     ∂²h/∂x_b² = ½ W_bb d² + 2 W_b d + W,
        ∂²h/∂x_a∂x_b = ½ W_ab d² + (W_a − W_b) d − W,

    ∇_y Φ_k = Jᵀ ∇_x Φ_k (J = ∂x/∂y, the orthonormal synthesis) and
    Δ_y Φ_k = Σ_bonds (h_aa G_aa + h_bb G_bb + 2 h_ab G_ab), with G = J Jᵀ the projector onto
    the details' span in pixel space (:func:`~rgfield.energies.finer_field.details_projector`);
    G = 1 at the coarsest scale.

    A finer field with a side below ``smallest`` (8) gets no features: on the 2 × 2 and 4 × 4
    fields of the coarsest conditionals of φ⁴ at L = 64 the family made the coarse-field growth
    and, at β = 1.0, the correlation length worse, and one conditional mix slowly; without
    them it keeps its gain in the pixel tails (docs/rg.md, "Right tails"). A field of one
    pixel has no bonds at all.

    Parameters
    ----------
    windows : int
        Number K of windows, at most one per 100 bond midpoints of the data.
    width : float
        Window width in units of the local spacing between centres.
    margin : float
        Range of m̃ beyond the data's, as a fraction of that range on each side.
    smallest : int
        The smallest side of a finer field that gets features.
    """

    name = "stiffness"
    at = "midpoints"
    """Where the bonds read Z: at their midpoints
    (:func:`~rgfield.energies.cubic_table.evaluate_bonds`)."""

    def __init__(
        self, windows: int = 16, width: float = 1.0, margin: float = 0.1, smallest: int = 8
    ) -> None:
        super().__init__(windows, width, margin)
        if not is_integer(smallest) or smallest < 1:
            raise ValueError(f"smallest must be a positive integer; got {smallest!r}")
        self.smallest = int(smallest)

    def _windows(self, m: torch.Tensor, order: int) -> list[torch.Tensor]:
        """[w, w', w''][: order + 1] of every window at values m (derivatives in m, 0 where
        m is clamped): each (B, K, N, M)."""
        lo, hi = self.support.tolist()
        inside = ((m >= lo) & (m <= hi)).to(m).unsqueeze(1)
        inv = (1.0 / self.scales.to(m)).reshape(-1, 1, 1)
        z = (m.clamp(lo, hi).unsqueeze(1) - self.centres.to(m).reshape(-1, 1, 1)) * inv
        w = torch.exp(-0.5 * z.square())
        if order == 0:
            return [w]
        slope = -z * inv * w * inside
        return [w, slope, (z.square() - 1) * inv.square() * w * inside][: order + 1]

    def _anchors(self, x: torch.Tensor) -> torch.Tensor:
        """The values the windows are read at, whose quantiles place them: bond midpoints."""
        return torch.cat([(0.5 * (x + far)).reshape(-1) for _, far, _ in _bonds(x)])

    def _bond_weights(self, x: torch.Tensor, order: int) -> list[list[torch.Tensor]]:
        """Per bond direction of :func:`_bonds`: [W], [W, W_a, W_b] or [W, W_a, W_b, W_aa,
        W_bb, W_ab] of every window for the bonds a = p → b = p + e: W = w((x_a + x_b)/2)."""
        weights = []
        for _, far, _ in _bonds(x):
            w, *derivatives = self._windows(0.5 * (x + far), order)
            if order == 0:
                weights.append([w])
            elif order == 1:
                half = 0.5 * derivatives[0]
                weights.append([w, half, half])
            else:
                half, quarter = 0.5 * derivatives[0], 0.25 * derivatives[1]
                weights.append([w, half, half, quarter, quarter, quarter])
        return weights

    # -- FeatureFamily ---------------------------------------------------------------------

    def fit(self, y: torch.Tensor, c: torch.Tensor | None, wavelet: str = "db4") -> FieldStiffness:
        self.wavelet = wavelet
        x = self._field(y, c).detach()
        if min(x.shape[-2:]) < max(self.smallest, 2):  # too small a grid, or no bonds
            self.centres = self.scales = torch.zeros(0, dtype=torch.float64)
            self.support = torch.zeros(2, dtype=torch.float64)
            return self
        self.centres, self.scales, self.support = quantile_windows(
            self._anchors(x), self.windows, self.width, self.margin, self.name
        )
        return self

    @property
    def labels(self) -> list[str]:
        return [f"{self.name}@{c:.3g}" for c in self.centres.tolist()]

    def values(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = self._field(y, c)
        total = x.new_zeros(len(x), self.n_features)
        for (_, _, d), (weight,) in zip(_bonds(x), self._bond_weights(x, 0), strict=True):
            total += 0.5 * (weight * d.square().unsqueeze(1)).sum((-2, -1))
        return total

    def gradients(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if not self.n_features:  # the wavelet analysis refuses an empty stack of fields
            return y.new_zeros(len(y), 0, *y.shape[1:])
        x = self._field(y, c)
        grad = x.new_zeros(len(x), self.n_features, *x.shape[-2:])
        for (e, _, d), weights in zip(_bonds(x), self._bond_weights(x, 1), strict=True):
            weight, near_slope, far_slope = weights
            d = d.unsqueeze(1)
            half_square, pull = 0.5 * d.square(), weight * d
            grad += near_slope * half_square - pull  # to the bond's start p
            grad += (far_slope * half_square + pull).roll(e, (-2, -1))  # to its end p + e
        return self._pull_back(grad, c)

    def laplacians(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = self._field(y, c)
        if c is None:
            own, *across = [torch.ones_like(x[0])] + [torch.zeros_like(x[0])] * len(_OFFSETS)
        else:
            projector = details_projector(self.wavelet, tuple(x.shape[-2:]), _OFFSETS)
            own, *across = (g.to(x) for g in projector)
        total = x.new_zeros(len(x), self.n_features)
        bonds = zip(_bonds(x), self._bond_weights(x, 2), across, strict=True)
        for (e, _, d), (w, wa, wb, waa, wbb, wab), pair in bonds:
            d = d.unsqueeze(1)
            half_square = 0.5 * d.square()
            h_aa = waa * half_square - 2 * wa * d + w
            h_bb = wbb * half_square + 2 * wb * d + w
            h_ab = wab * half_square + (wa - wb) * d - w
            # h_aa G(a, a) + h_bb G(b, b) + 2 h_ab G(a, b), b = a + e
            far_own = own.roll((-e[0], -e[1]), (-2, -1))
            total += (h_aa * own + h_bb * far_own + 2 * h_ab * pair).sum((-2, -1))
        return total

    @property
    def reach(self) -> int:
        """The potential's reach (:func:`~rgfield.energies.finer_field.atom_radius`) and one
        cell more: a bond joins a pixel to its neighbour."""
        return atom_radius(self.wavelet) + 1

    def _stiffness_table(self, theta: torch.Tensor) -> torch.Tensor:
        """The cubic Hermite table of Z = Σ_k θ_k w_k on ``support``."""

        def stiffness_and_slope(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            w, slope = self._windows(t.reshape(1, 1, -1), 1)
            coefficients = theta.double().cpu().reshape(1, -1, 1, 1)
            return (w * coefficients).sum(1).flatten(), (slope * coefficients).sum(1).flatten()

        lo, hi = self.support.tolist()
        cells = math.ceil(_CELLS_PER_WIDTH * (hi - lo) / float(self.scales.min()))
        return cubic_table.hermite(stiffness_and_slope, lo, hi, min(max(cells, 2**12), 2**18))

    def bind_density(self, theta: torch.Tensor) -> DensityFn:
        """u(p) = ½ Σ W d² over the bonds that start on the field pixels of cell p (W from Z at
        :attr:`at`, :func:`~rgfield.energies.cubic_table.evaluate_bonds`), and
        ∇_y U, with Z and Z' from a cubic Hermite table whose cells are 1/1000 of the narrowest
        window's width s (between 2¹² and 2¹⁸ cells): errors of order (h/s)⁴ in Z and (h/s)³ in
        s Z' relative to max|θ|, 1e-12 and 1e-9 unless the cap binds (windows narrower than
        1/262 of the support); the sampled energy is the table's, its gradient the table's
        exact one."""
        if theta.shape != (self.n_features,):
            shape = tuple(theta.shape)
            raise ValueError(f"theta must have shape ({self.n_features},); got {shape}")
        if not self.n_features:
            return lambda y, c: (y.new_zeros(len(y), *y.shape[-2:]), torch.zeros_like(y))
        table = table_like(self._stiffness_table(theta).to(theta.device))
        lo, hi = self.support.tolist()

        def density_and_grad(y: torch.Tensor, c: torch.Tensor | None):
            x = self._field(y, c)
            density, grad = cubic_table.evaluate_bonds(x, table(x), lo, hi, at=self.at)
            if c is not None:  # the four field pixels of each cell of y's grid
                n, m = density.shape[-2:]
                density = density.reshape(-1, n // 2, 2, m // 2, 2).sum((2, 4))
            return density, self._pull_back(grad, c)

        return density_and_grad

    def get_state(self) -> dict:
        return {**super().get_state(), "smallest": self.smallest}

    @classmethod
    def from_state(cls, state: dict) -> FieldStiffness:
        family = super().from_state(state)
        family.smallest = int(state["smallest"])
        return family


@register_feature
class SiteStiffness(FieldStiffness):
    """Features Φ_k = ¼ Σ_{bonds (p, q)} (w_k(x_p) + w_k(x_q)) d², d = x_q − x_p: the stiffness
    family with Z read at the bond's two ends and averaged, W = ½ (Z(x_p) + Z(x_q)), instead of
    at its midpoint; windows at the quantiles of the field's values.

    Both discretise ½ Z(φ)(∇φ)² and agree on smooth fields up to terms of order Z''(φ)(∇φ)⁴;
    they differ at the lattice scale. The midpoint form cannot tell a spike (one pixel far
    from its four neighbours: the bonds' midpoints at moderate values, large d) from a slope
    through the same midpoints; this form charges the spike at the value of its peak. On φ⁴
    at β = 1.0 the coarse conditionals fitted with the midpoint form alone made x_1 and x_2
    too smooth where they are extreme and too rough elsewhere, which the finer conditionals
    turned into too few deep minority droplets (docs/rg.md, "Right tails at the lattice
    scale"). For a bond a → b, W_a = ½ w'(x_a), W_b = ½ w'(x_b), W_aa = ½ w''(x_a),
    W_bb = ½ w''(x_b), W_ab = 0 in :class:`FieldStiffness`'s derivatives.

    The outermost windows are smooth steps, w_1 = Φ(−(x − c_1)/s_1) and w_K = Φ((x − c_K)/s_K)
    (Φ the normal distribution function), so Z tends to θ_1 and θ_K beyond the data's bulk
    instead of fading to zero: the data's extreme values are few, and with Gaussian end
    windows spikes to extreme values were nearly free (on φ⁴ at β = 1.0, L = 64, 5 of 1,000
    generated coarse fields then left the finer conditional's support). The steps are smooth,
    so the Laplacian has no singular part for score matching to exploit (clamping the windows
    at the outermost centres put kinks inside the data, and the held-out loss of j = 2, 3
    fell from −0.74 to −1.61 per variable: an artefact) and the sampler's cubic table stays
    accurate; beyond the support Z is constant as in :class:`FieldStiffness`.

    With a single window (``windows=1``, or values so concentrated that the quantiles
    coincide) the stiffness is a constant.

    Parameters are :class:`FieldStiffness`'s (``windows`` at most one per 100 pixel values).
    """

    name = "site_stiffness"
    at = "sites"

    def _windows(self, m: torch.Tensor, order: int) -> list[torch.Tensor]:
        """:meth:`FieldStiffness._windows` with the first and last windows as smooth steps."""
        derivatives = super()._windows(m, order)
        if self.n_features == 0:
            return derivatives
        if self.n_features == 1:  # one window (values nearly constant): a constant stiffness
            constant = torch.ones_like(derivatives[0])
            return [constant, *[torch.zeros_like(constant)] * order]
        lo, hi = self.support.tolist()
        inside = ((m >= lo) & (m <= hi)).to(m)
        steps = []
        for k, sign in ((0, -1.0), (-1, 1.0)):  # down below c_1, up above c_K
            scale = float(self.scales[k])
            z = (m.clamp(lo, hi) - float(self.centres[k])) / scale
            bump = torch.exp(-0.5 * z.square()) / math.sqrt(2 * math.pi) * inside
            step = torch.special.ndtr(sign * z)
            steps.append([step, sign * bump / scale, -sign * z * bump / scale**2][: order + 1])
        first, last = steps
        return [
            torch.cat([first[i].unsqueeze(1), d[:, 1:-1], last[i].unsqueeze(1)], 1)
            for i, d in enumerate(derivatives)
        ]

    def _anchors(self, x: torch.Tensor) -> torch.Tensor:
        """The values the windows are read at: the field's pixels."""
        return x.reshape(-1)

    def _bond_weights(self, x: torch.Tensor, order: int) -> list[list[torch.Tensor]]:
        """As :meth:`FieldStiffness._bond_weights`, with W = ½ (w(x_a) + w(x_b)): the windows
        read once at every pixel, each bond's far end by a roll."""
        at = self._windows(x, order)
        weights = []
        for e in _OFFSETS:
            far = [a.roll((-e[0], -e[1]), (-2, -1)) for a in at]
            weight = [0.5 * (at[0] + far[0])]
            if order >= 1:
                weight += [0.5 * at[1], 0.5 * far[1]]
            if order == 2:
                weight += [0.5 * at[2], 0.5 * far[2], torch.zeros_like(at[0])]
            weights.append(weight)
        return weights
