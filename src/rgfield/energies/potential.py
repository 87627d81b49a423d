"""Scalar potential of the reconstructed finer field: Σ_u v(x_{j-1}(u)) on a sigmoid basis."""

from __future__ import annotations

import torch

from rgfield.energies import cubic_table
from rgfield.energies.base import DensityFn, register_feature
from rgfield.energies.finer_field import (
    FinerFieldFamily,
    atom_radius,
    details_projector,
    quantile_windows,
    table_like,
)

__all__ = ["ScalarPotential"]

_TABLE_CELLS = 2**14  # cells of the tabulated potential used for sampling


@register_feature
class ScalarPotential(FinerFieldFamily):
    """Features Φ_k = Σ_u σ((x(u) − c_k) / s_k), k = 1..K, of the finer field x.

    At a conditional scale x = merge(c, y) is the reconstructed finer field x_{j-1} (in the
    units of the normalised details); at the coarsest scale x = y is the coarse field itself. A
    combination Σ_k θ_k σ((t − c_k)/s_k) with the logistic σ is a smooth potential v(t) whose
    shape is free between the first and last centre (Marchand et al., PRX 13, 041038 (2023)).

    The centres c_k are the data quantiles (k − ½)/K of x, so windows crowd where the field
    spends its time; s_k = ``width`` × the local spacing of the centres. Outside the data's range
    widened by ``margin`` × the range on each side, v is flat and cannot confine the field: the
    model's support ends there and the energy is +∞ beyond it.

    Derivatives, with J = ∂x/∂y (a row of the orthonormal synthesis operator):
    ∇_y Φ_k = Jᵀ σ'(z_k)/s_k (the details of :func:`~rgfield.wavelets.split`) and
    Δ_y Φ_k = Σ_u σ''(z_k(u)) / s_k² · w(u), with w(u) = Σ_i J_{u,i}² over the detail
    coefficients i: 1 minus the coarse coefficients' share, a pattern of period 2.

    Parameters
    ----------
    windows : int
        Number K of sigmoid windows, at most one per 100 data values of the field (the coarsest
        scales have few values, and more windows over-fit them).
    width : float
        Window width in units of the local spacing between centres.
    margin : float
        Support beyond the data's range, as a fraction of that range on each side.
    """

    name = "potential"

    def __init__(self, windows: int = 20, width: float = 1.0, margin: float = 0.1) -> None:
        super().__init__(windows, width, margin)

    # -- the Jacobian of the finer field ----------------------------------------------------

    def _jacobian_weight(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """w(u) = Σ_i (∂x(u)/∂y_i)² over the sampled coefficients, shape of the field."""
        if c is None:
            return torch.ones(y.shape[-2:], dtype=y.dtype, device=y.device)
        shape = (2 * y.shape[-2], 2 * y.shape[-1])
        return details_projector(self.wavelet, shape)[0].to(y)

    def _windows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """σ(z_k) and 1/s_k for z_k = (x − c_k)/s_k: shapes (B, K, N, N) and (K, 1, 1)."""
        inv = (1.0 / self.scales.to(x)).reshape(-1, 1, 1)
        z = (x.unsqueeze(1) - self.centres.to(x).reshape(-1, 1, 1)) * inv
        return torch.sigmoid(z), inv

    # -- FeatureFamily ---------------------------------------------------------------------

    def fit(self, y: torch.Tensor, c: torch.Tensor | None, wavelet: str = "db4") -> ScalarPotential:
        self.wavelet = wavelet
        self.centres, self.scales, self.support = quantile_windows(
            self._field(y, c).detach(), self.windows, self.width, self.margin, "potential"
        )
        return self

    @property
    def labels(self) -> list[str]:
        return [f"sigmoid@{c:.3g}" for c in self.centres.tolist()]

    def values(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = self._field(y, c)  # window by window: arrays of the field's size stay in cache
        columns = [
            torch.sigmoid((x - centre) / scale).sum((-2, -1))
            for centre, scale in zip(self.centres.tolist(), self.scales.tolist(), strict=True)
        ]
        return torch.stack(columns, dim=1)

    def gradients(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        s, inv = self._windows(self._field(y, c))
        return self._pull_back(s * (1 - s) * inv, c)

    def laplacians(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        s, inv = self._windows(self._field(y, c))
        second = s * (1 - s) * (1 - 2 * s) * inv.square()
        return (second * self._jacobian_weight(y, c)).sum((-2, -1))

    def _potential_and_slope(
        self, theta: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v(x) and v'(x) for v = Σ_k θ_k σ((x − c_k)/s_k), window by window.

        Accumulating one window at a time keeps the work on arrays of the field's size (in
        cache) instead of a (B, K, N, N) stack: several times faster on large batches.
        """
        v, slope = torch.zeros_like(x), torch.zeros_like(x)
        for t, centre, scale in zip(
            theta.tolist(), self.centres.tolist(), self.scales.tolist(), strict=True
        ):
            s = torch.sigmoid((x - centre) / scale)
            v.add_(s, alpha=t)
            slope.addcmul_(s, 1 - s, value=t / scale)
        return v, slope

    def _cubic_table(self, theta: torch.Tensor) -> torch.Tensor:
        """The cubic Hermite table of v on ``support`` (:func:`~rgfield.energies.cubic_table.
        hermite`, ``_TABLE_CELLS`` cells): the error is about 1e-12 of v for the default
        windows."""
        lo, hi = self.support.tolist()
        theta = theta.double().cpu()
        return cubic_table.hermite(
            lambda t: self._potential_and_slope(theta, t), lo, hi, _TABLE_CELLS
        )

    @property
    def bounded(self) -> bool:
        """True once fitted: the energy is +∞ where the finer field leaves ``support``, and the
        orthonormal synthesis bounds y when x and c are bounded."""
        return self.support is not None

    @property
    def reach(self) -> int:
        """Reach of the density and gradient set by the wavelet's synthesis atoms (see
        :func:`~rgfield.energies.finer_field.atom_radius`; 3 for db4). Without a coarse field
        (the coarsest model) the reach is 0, which this bound covers."""
        return atom_radius(self.wavelet)

    def bind_density(self, theta: torch.Tensor) -> DensityFn:
        """u(p) = Σ v(x(u)) over the field pixels of cell p, and ∇_y U, with v and v' from the
        table of :meth:`_cubic_table`; u = +∞ where x leaves the support.

        The tabulated potential is C¹ and its slope is the exact derivative of the tabulated
        values, so a sampler using both targets exp(−Σ_u v_table) exactly; evaluating the table
        costs the same whatever the number of windows (several times less than summing 20
        sigmoids).
        """
        table = table_like(self._cubic_table(theta).to(theta.device))
        lo, hi = self.support.tolist()

        def density_and_grad(y: torch.Tensor, c: torch.Tensor | None):
            x = self._field(y, c)
            # the four field pixels of each cell of y's grid, or the pixel itself (coarsest)
            v, slope = cubic_table.evaluate(x, table(x), lo, hi, pool=1 if c is None else 2)
            return v, self._pull_back(slope, c)

        return density_and_grad

    def potential(self, theta: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v(t) = Σ_k θ_k σ((t − c_k)/s_k) at values ``t`` (for plots of the learned potential)."""
        return self._potential_and_slope(theta, torch.as_tensor(t, dtype=torch.float64))[0]
