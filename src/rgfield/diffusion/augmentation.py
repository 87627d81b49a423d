"""Data augmentation by the symmetries of a field's physics.

A periodic field of a translation-invariant process keeps its distribution under periodic
shifts; an isotropic one under the 90° rotations and reflections of the lattice. A reflection
changes the sign of a pseudoscalar such as 2D vorticity (ω = ∂ₓv − ∂ᵧu), and φ⁴ is symmetric under
φ → −φ, while a density has no sign symmetry. :func:`symmetries_for` picks the group from an
ensemble's ``generator`` attribute and variable name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

__all__ = ["Symmetries", "symmetries_for"]


@dataclass(frozen=True)
class Symmetries:
    """A symmetry group of a field's distribution, applied at random to training batches.

    Attributes
    ----------
    shifts : bool
        Periodic translations by any number of pixels.
    rotations : bool
        Rotations by multiples of 90°.
    reflection : int
        0: no mirror symmetry; +1: x ↦ x mirrored; −1: x ↦ −(x mirrored) (a pseudoscalar).
    sign : bool
        x ↦ −x.
    """

    shifts: bool = True
    rotations: bool = False
    reflection: int = 0
    sign: bool = False

    def __post_init__(self) -> None:
        if self.reflection not in (-1, 0, 1):
            raise ValueError(f"reflection must be -1, 0 or 1; got {self.reflection!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Each field of x (batch, H, W) moved by an independent random element of the group."""
        n, height, width = x.shape
        draw = lambda high: torch.randint(high, (n,), generator=generator)  # noqa: E731
        if self.shifts:
            dy, dx = draw(height), draw(width)
            rows = (torch.arange(height) + dy[:, None]) % height
            cols = (torch.arange(width) + dx[:, None]) % width
            x = x[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        if self.rotations and height == width:
            turns, rotated = draw(4), x.clone()
            for k in range(1, 4):
                rotated[turns == k] = torch.rot90(x[turns == k], k, (-2, -1))
            x = rotated
        if self.reflection:
            mirrored = draw(2).bool()
            flipped = x.flip(-1) * self.reflection
            x = torch.where(mirrored[:, None, None], flipped, x)
        if self.sign:
            x = x * (1 - 2 * draw(2)).to(x.dtype)[:, None, None]
        return x


def symmetries_for(generator: str, variable: str | None) -> Symmetries:
    """The symmetries of an ensemble by its ``generator`` attr and variable name: φ⁴ the
    lattice's rotations, reflections and φ → −φ; vorticity rotations and reflection with a sign
    change; the cosmic web's density rotations and reflections; anything else (a velocity
    component, an unknown source) periodic shifts only."""
    if "phi4" in generator:
        return Symmetries(rotations=True, reflection=1, sign=True)
    if variable == "vorticity" or ("turbulence" in generator and variable in (None, "field")):
        return Symmetries(rotations=True, reflection=-1)
    if "cosmic" in generator:
        return Symmetries(rotations=True, reflection=1)
    return Symmetries()
