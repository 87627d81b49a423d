"""Starts with the one-point law of equilibrated fields: the rank map against numpy's quantiles,
and φ⁴ starts nearer the equilibrium energy than the Gaussian starts they come from."""

from pathlib import Path

import numpy as np
import torch

from rgfield import io
from rgfield.rg import HierarchicalModel
from rgfield.rg.pixel_start import match_pixel_law, pixel_law_start
from rgfield.rg.sampling import finite_start
from rgfield.rg.scales import coarse_to_fine
from rgfield.wavelets import decompose, merge

DATA = Path(__file__).parents[2] / "data"


def test_the_map_keeps_the_ranks_and_gives_the_reference_quantiles():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 7, generator=g, dtype=torch.float64)
    reference = torch.empty(999, dtype=torch.float64).exponential_(generator=g) ** 2
    mapped = match_pixel_law(x, reference)
    assert mapped.shape == x.shape
    assert torch.equal(mapped.flatten().argsort(), x.flatten().argsort())
    levels = (np.arange(x.numel()) + 0.5) / x.numel()
    np.testing.assert_allclose(
        mapped.flatten().sort().values.numpy(), np.quantile(reference.numpy(), levels), rtol=1e-12
    )


def test_phi4_starts_move_nearer_the_equilibrium_energy():
    # φ⁴ at β_c, L = 32: Gaussian details leave the finest pixels between the potential's
    # wells, above the equilibrium energy; given the pixel law of 32 fields at equilibrium
    # (held-out data, which the fitted conditional keeps: docs/rg.md) the starts come nearer
    fields = torch.as_tensor(
        np.asarray(io.load(DATA / "phi4_L32_beta0.9244.nc").values), dtype=torch.float64
    )
    model = HierarchicalModel(progress=False).fit(fields[:100])
    finest = coarse_to_fine(model.scales_)[-1]
    factor, start = model.factor(finest), model.starts_[finest.name]
    y, c = finest.variables(decompose(fields[100:300], model.levels_, "db4"))

    def starts(c, seed):
        return finite_start(factor, start, c, torch.Generator().manual_seed(seed), len(c))

    pilot = (starts(c[:32], 1), y[:32], c[:32])
    held_out, given = y[32:], c[32:]
    gaussian = starts(given, 2)
    moved = pixel_law_start(factor, gaussian, given, pilot, model.wavelet)

    def excess(s):  # paired on the coarse fields, in standard errors of the mean
        d = factor.energy(s, given) - factor.energy(held_out, given)
        return (d.mean() / d.std() * len(d) ** 0.5).item()

    assert excess(gaussian) > 5 and abs(excess(moved)) < 0.5 * excess(gaussian)
    # every chain moved (none left the potential's support), keeping its details' mean square
    assert (moved != gaussian).flatten(1).any(1).all()
    power = [s.square().sum((1, 2, 3)) for s in (gaussian, moved)]
    torch.testing.assert_close(power[1], power[0])

    def kurtosis(y):  # of the finer fields' pixels
        x = merge(given, y, model.wavelet)
        x = x - x.mean((1, 2), keepdim=True)
        return (x.pow(4).mean() / x.square().mean().square() - 3).item()

    data, before, after = (kurtosis(s) for s in (held_out, gaussian, moved))
    assert abs(after - data) < 0.5 * abs(before - data), (data, before, after)
    # a pilot whose Gaussian starts were already at its chains' ends: the map cannot come
    # nearer, so the starts stay Gaussian
    assert pixel_law_start(factor, gaussian, given, (pilot[0], pilot[0], pilot[2]), "db4") is None
