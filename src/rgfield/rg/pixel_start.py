"""Starts nearer a conditional's law: Gaussian starts given the one-point law of equilibrated
fields.

The Gaussian start (:mod:`rgfield.rg.gaussian_start`) puts every mode of the details at its
stationary second moment, but not the finer field's pixels where the energy wants them: for φ⁴
at β_c they sit between and beyond the potential's wells, 3.5 standard deviations per chain
above the equilibrium energy at j = 1 of L = 128, and HMC sheds about half of that excess per
trajectory (docs/rg.md, "Sampling"). Here the finer field x = merge(c, y) of each start is given
the one-point law of equilibrated finer fields (the ``steps="auto"`` pilot's) by the monotone
map

    x'(p) = Q_ref(F_x(x(p))),

F_x the empirical distribution function of the starts' pixels (all chains pooled, by rank) and
Q_ref the quantile function of the reference pixels; the start's details are those of x', y'
= split(x')[1] (its coarse part is c's, not split(x')[0]), rescaled chain by chain to the mean
square of y, which the Gaussian start has right. Spatial order, the phases of the Gaussian
draw, is kept (the map is monotone); what changes is where each pixel sits in the law.

The map is a guess about the law, so the pilot judges it, paired on its own coarse fields: for
its chains, the Gaussian starts they began from and the mapped ones are compared with where they
ended (at equilibrium), and the other chains get the mapped starts only if those came nearer
the equilibrium energy on average, |E[U(y') − U(y_eq)]| < |E[U(y) − U(y_eq)]|. (The
equilibrium energy depends on the coarse field, so it is compared on the same coarse fields,
never against the pilot's mean.) A mapped start of infinite energy (beyond the potential's
support) is replaced by its Gaussian one. Like the Gaussian start, it changes where the chains
begin, never what they converge to.
"""

from __future__ import annotations

import torch

from rgfield.energies import ExponentialModel
from rgfield.wavelets import merge, split

__all__ = ["match_pixel_law", "pixel_law_start"]


def match_pixel_law(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Fields with the pixels of ``x`` (n, ny, nx) ranked as they are, given the one-point law
    of ``reference`` (any shape): x'(p) = Q_ref((rank(x(p)) + ½) / N) over all N pixels of x,
    the quantile function Q_ref interpolated linearly between the sorted reference pixels."""
    flat = x.flatten()
    order = flat.argsort()
    sorted_reference = reference.flatten().sort().values.to(x.dtype)
    position = (torch.arange(flat.numel(), dtype=x.dtype, device=x.device) + 0.5) * (
        (sorted_reference.numel() - 1) / flat.numel()
    )
    lower = position.floor().long()
    upper = (lower + 1).clamp_max(sorted_reference.numel() - 1)
    weight = position - lower
    values = torch.lerp(sorted_reference[lower], sorted_reference[upper], weight)
    mapped = torch.empty_like(flat)
    mapped[order] = values
    return mapped.reshape(x.shape)


def _mapped(
    model: ExponentialModel, y: torch.Tensor, c: torch.Tensor, reference: torch.Tensor, wavelet: str
) -> torch.Tensor:
    """Starts y' of the module docstring, Gaussian starts ``y`` kept where y' has infinite
    energy."""
    mapped = split(match_pixel_law(merge(c, y, wavelet), reference), wavelet)[1]
    dims = tuple(range(1, y.dim()))
    power = mapped.square().sum(dims, keepdim=True)
    mapped = mapped * (y.square().sum(dims, keepdim=True) / power.where(power > 0, 1.0)).sqrt()
    finite = torch.isfinite(model.energy(mapped, c))
    return torch.where(finite[:, None, None, None], mapped, y)


def pixel_law_start(
    model: ExponentialModel,
    y: torch.Tensor,
    c: torch.Tensor,
    pilot: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    wavelet: str,
) -> torch.Tensor | None:
    """Starts (n, 3, ny, nx) of a conditional from its Gaussian starts ``y`` given coarse fields
    ``c`` (n, ny, nx), with the one-point law of the pilot's chains, ``pilot`` = (their
    Gaussian starts, their equilibrated ends, their coarse fields); None where, on the pilot's
    chains, the mapped starts were not nearer the equilibrium energy (see the module
    docstring): the chains then keep their Gaussian starts."""
    start, end, given = pilot
    reference = merge(given, end, wavelet)
    equilibrium = model.energy(end, given)
    gaussian_excess = (model.energy(start, given) - equilibrium).mean()
    mapped_excess = (
        model.energy(_mapped(model, start, given, reference, wavelet), given) - equilibrium
    ).mean()
    if not mapped_excess.abs() < gaussian_excess.abs():
        return None
    return _mapped(model, y, c, reference, wavelet)
