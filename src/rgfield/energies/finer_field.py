"""What the potential and stiffness families share: functions of the reconstructed finer field
x = merge(c, y) on windows placed at the data's quantiles."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch

from rgfield._validate import is_integer
from rgfield.energies.base import FeatureFamily
from rgfield.wavelets import merge, split

__all__ = ["FinerFieldFamily", "atom_radius", "details_projector", "quantile_windows", "table_like"]

_VALUES_PER_WINDOW = 100  # data values per window at least: coarse scales are data-poor


@cache
def atom_radius(wavelet: str) -> int:
    """Reach (in cells) of a pixel-local density of the finer field and of its gradient, from
    the wavelet's synthesis atoms.

    A detail coefficient at cell k moves the finer field on fine pixels 2k + a .. 2k + b (all
    three detail channels together, read off the synthesis of one impulse). The gradient at k
    reaches the coefficients whose atoms overlap k's, |k − k'| ≤ ⌊(b − a)/2⌋; the density of
    cell p (fine pixels 2p, 2p + 1) those whose atoms cover them, k − p in
    [⌈−b/2⌉, ⌊(1 − a)/2⌋]. Returns the larger reach: 3 for db4 (a, b = −3, 4).
    """
    n = 64  # wide enough that the atom does not wrap around
    impulse = torch.zeros(1, 3, n, n, dtype=torch.float64)
    impulse[0, :, n // 2, n // 2] = 1.0
    rows = merge(torch.zeros(1, n, n, dtype=torch.float64), impulse, wavelet)[0].abs().sum(1)
    covered = torch.nonzero(rows > 0).flatten()
    a, b = int(covered.min()) - n, int(covered.max()) - n
    return max((b - a) // 2, b // 2, (1 - a) // 2)


def quantile_windows(
    values: torch.Tensor, windows: int, width: float, margin: float, what: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centres c_k at the quantiles (k − ½)/K of ``values``, widths s_k = ``width`` × the
    local spacing of the centres, and the support: the values' range widened by ``margin`` ×
    that range on each side. K is ``windows``, at most one per 100 values (the coarse
    scales hold few). ``what`` names the family in the error for constant values."""
    values = values.reshape(-1).double()
    lo, hi = values.min(), values.max()
    if not hi > lo:
        raise ValueError(f"data: the field is constant at one scale; no {what} can be fitted")
    if values.numel() > 2**22:  # quantiles of a deterministic subsample
        values = values[:: values.numel() // 2**22 + 1]
    count = min(windows, max(2, values.numel() // _VALUES_PER_WINDOW))
    levels = (torch.arange(count, dtype=torch.float64) + 0.5) / count
    centres = torch.quantile(values, levels).unique()
    if centres.numel() == 1:
        spacing = (hi - lo).reshape(1)
    else:
        gaps = centres.diff()
        spacing = torch.cat([gaps[:1], (gaps[1:] + gaps[:-1]) / 2, gaps[-1:]])
    pad = margin * (hi - lo)
    return centres, width * spacing, torch.stack([lo - pad, hi + pad])


@cache
def details_projector(
    wavelet: str, shape: tuple[int, int], offsets: tuple[tuple[int, int], ...] = ()
) -> tuple[torch.Tensor, ...]:
    """G(p, p), then G(p, p + e) for every offset e in ``offsets`` (steps of 0 or +1 per axis),
    on a finer grid of ``shape`` (each (N, M), float64): G = J Jᵀ, the projector onto the
    details' span in pixel space (J = ∂x/∂y, the orthonormal synthesis of the details), so
    G(p, p) = Σ_i J_{p,i}². For a separable wavelet G = 1 − C_y ⊗ C_x with C the periodic 1-D
    low-pass projector, C(u, v) = Σ_k φ_k(u) φ_k(v) over the synthesis atoms φ_k of the coarse
    coefficients; a pattern of period 2."""
    lows = []  # per axis: s ↦ C(u, u + s) for s = 0, 1
    for n in shape:
        atoms = merge(
            torch.eye(n // 2, dtype=torch.float64),
            torch.zeros(n // 2, 1, n // 2, dtype=torch.float64),
            wavelet,
        )  # row k: the synthesis atom of coarse coefficient k
        low, u = atoms.T @ atoms, torch.arange(n)
        lows.append([low[u, (u + s) % n] for s in (0, 1)])
    cy, cx = lows
    own = 1 - cy[0][:, None] * cx[0][None, :]
    return (own, *(-cy[dy][:, None] * cx[dx][None, :] for dy, dx in offsets))


def table_like(table: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """x ↦ ``table`` on x's device and in its dtype, each copy made once."""
    copies = {}

    def like(x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in copies:
            copies[key] = table.to(x)
        return copies[key]

    return like


class FinerFieldFamily(FeatureFamily):
    """A family of K windows of the finer field x: x = merge(c, y) at a conditional scale, x = y
    at the coarsest. Holds the windows' options and fitted ``centres``, ``scales`` and
    ``support`` (:func:`quantile_windows`), the field, the pull-back of a field gradient to y,
    and the state of a fitted family. Subclasses set ``name`` and the features."""

    def __init__(self, windows: int, width: float, margin: float) -> None:
        if not is_integer(windows) or windows < 1:
            raise ValueError(f"windows must be a positive integer; got {windows!r}")
        if not width > 0:
            raise ValueError(f"width must be positive; got {width!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be non-negative; got {margin!r}")
        self.windows, self.width, self.margin = int(windows), float(width), float(margin)
        self.wavelet: str | None = None
        self.centres = self.scales = self.support = None

    def _field(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return y[:, 0] if c is None else merge(c, y, self.wavelet)

    def _pull_back(self, g: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Jᵀ g: a field gradient (..., N, M) as a y-gradient (..., C, n, m)."""
        return g.unsqueeze(-3) if c is None else split(g, self.wavelet)[1]

    def get_state(self) -> dict:
        return {
            "windows": self.windows,
            "width": self.width,
            "margin": self.margin,
            "wavelet": self.wavelet,
            "centres": self.centres.numpy(),
            "scales": self.scales.numpy(),
            "support": self.support.numpy(),
        }

    @classmethod
    def from_state(cls, state: dict) -> FinerFieldFamily:
        family = cls(int(state["windows"]), float(state["width"]), float(state["margin"]))
        family.wavelet = str(state["wavelet"])
        for key in ("centres", "scales", "support"):
            setattr(family, key, torch.as_tensor(np.asarray(state[key], dtype=np.float64)))
        return family
