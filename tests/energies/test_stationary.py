"""The chains' Gaussian start: its regression and covariance against an analytic Gaussian law,
and the start alone as an exact sampler of a stationary Gaussian field."""

from pathlib import Path

import numpy as np
import pytest
import torch

from rgfield import io, stats
from rgfield.energies.stationary import GaussianStart, SpectralSums
from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum
from rgfield.rg import HierarchicalModel
from rgfield.rg.sampling import finite_start
from rgfield.rg.scales import coarse_to_fine
from rgfield.wavelets import decompose

DATA = Path(__file__).parents[2] / "data"

SIZE = 8
MIX = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.2, 0.5]], dtype=torch.float64)


def _filter(weights: dict[tuple[int, int], float]) -> torch.Tensor:
    """A periodic stencil on the SIZE × SIZE grid from {(dy, dx): weight}."""
    h = torch.zeros(SIZE, SIZE, dtype=torch.float64)
    for (dy, dx), w in weights.items():
        h[dy % SIZE, dx % SIZE] = w
    return h


GAINS = [  # y_a = h_a ⋆ c + e_a: one stencil per channel
    _filter({(0, 0): 0.5, (0, 1): -0.5}),
    _filter({(0, 0): 0.3, (1, 0): 0.4}),
    _filter({(1, 1): -0.7}),
]
NOISE = [  # e_a = Σ_b MIX_ab (f_b ⋆ w_b): S(k) complex Hermitian, not even in k
    _filter({(0, 0): 1.0, (0, 1): 0.5, (1, 0): -0.25}),
    _filter({(0, 0): 1.0, (1, 1): 0.6}),
    _filter({(0, 0): 0.8, (0, 2): -0.4, (1, 0): 0.3}),
]


def _convolve(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(torch.fft.fft2(h) * torch.fft.fft2(x)).real


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, SIZE, SIZE, generator=g, dtype=torch.float64)
    w = torch.randn(n, 3, SIZE, SIZE, generator=g, dtype=torch.float64)
    w = torch.stack([_convolve(f, w[:, b]) for b, f in enumerate(NOISE)], 1)
    e = torch.einsum("ab,nbyx->nayx", MIX, w)
    y = torch.stack([_convolve(h, c) for h in GAINS], 1) + e
    return y, c


def _exact() -> tuple[torch.Tensor, torch.Tensor]:
    """g(k) = H_a(k) and S(k) = M F(k) F(k)ᴴ Mᵀ, F = diag(F_b(k)), on the rfft2 half-plane."""
    half = SIZE // 2 + 1
    gain = torch.stack([torch.fft.fft2(h)[:, :half] for h in GAINS], -1)
    f = torch.stack([torch.fft.fft2(h)[:, :half] for h in NOISE], -1)  # (n, m, C)
    a = MIX.to(torch.complex128) * f[..., None, :]  # M F(k)
    return gain, a @ a.mH


def _moments(sums: SpectralSums) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Estimates of g and S with their standard errors (least squares at every k; the real
    wavenumbers estimate the same numbers with the same order of error)."""
    start = GaussianStart.fit(sums)
    covariance = start.root @ start.root.mH
    diagonal = torch.diagonal(covariance, dim1=-2, dim2=-1).real
    gain_se = (diagonal / sums.cc[..., None]).sqrt()
    cov_se = (2 * diagonal[..., :, None] * diagonal[..., None, :] / sums.count).sqrt()
    return start.gain, covariance, gain_se, cov_se


def test_fit_recovers_the_regression_and_residual_covariance_of_a_known_gaussian_law():
    y, c = _data(2000, seed=0)
    sums = SpectralSums.of(y[:700], c[:700]) + SpectralSums.of(y[700:], c[700:])
    gain, covariance, gain_se, cov_se = _moments(sums)
    exact_gain, exact_cov = _exact()
    assert (gain - exact_gain).abs().div(gain_se).max() < 5
    assert (covariance - exact_cov).abs().div(cov_se).max() < 5
    # the chunks' sums add up to the sums of all fields at once
    whole = SpectralSums.of(y, c)
    torch.testing.assert_close(sums.yy, whole.yy)
    assert sums.count == whole.count == 2000


def test_draws_follow_the_fitted_law_at_every_wavenumber_real_ones_included():
    exact_gain, exact_cov = _exact()
    values, vectors = torch.linalg.eigh(exact_cov)  # the Hermitian root the sampler uses
    root = (vectors * values.sqrt().to(vectors.dtype)[..., None, :]) @ vectors.mH
    start = GaussianStart(exact_gain, root, torch.zeros(3, dtype=torch.complex128), (SIZE, SIZE))
    _, c = _data(3000, seed=1)
    draws = start.draw(c, torch.Generator().manual_seed(2), 3000)
    assert draws.shape == (3000, 3, SIZE, SIZE) and draws.dtype == torch.float64
    gain, covariance, gain_se, cov_se = _moments(SpectralSums.of(draws, c))
    assert (gain - exact_gain).abs().div(gain_se).max() < 5
    assert (covariance - exact_cov).abs().div(cov_se).max() < 5
    # state round trip
    again = GaussianStart.from_state(start.get_state())
    torch.testing.assert_close(again.root, start.root)
    torch.testing.assert_close(again.gain, start.gain)
    assert again.shape == start.shape


def test_the_start_alone_samples_a_stationary_gaussian_field(free_field):
    # a Gaussian field's details and coarse field are jointly stationary on the coarse grid,
    # so the per-wavenumber regression is its exact conditional law: no MCMC step is needed
    train = free_field(400, 16)
    model = HierarchicalModel(features=("quadratic",), progress=False).fit(train)
    drawn = model.sample(400, seed=3, steps=0, warmup=0)
    assert drawn.attrs["start"] == "gaussian"
    held_out = free_field(400, 16, seed=5)
    power = [stats.power_spectrum(x) for x in (drawn.fields, held_out, train)]
    means = [p.mean("sample").values for p in power]
    # the drawn fields' spectrum errs by the draws' noise and by the training estimate's
    errors = np.stack([p.std("sample").values / np.sqrt(400) for p in power])
    z = (means[0] - means[1]) / np.sqrt((errors**2).sum(0))
    assert np.abs(z).max() < 4, z
    # from zero details and no steps the fields are the coarsest factor's alone
    zero = model.sample(4, seed=3, steps=0, warmup=0, start="zero")
    assert zero.attrs["start"] == "zero"
    assert stats.power_spectrum(zero.fields).values[:, -1].max() < 1e-20


def test_chains_start_inside_the_support_of_a_potential():
    # φ⁴ at β_c: Gaussian details put some pixels beyond the data's range, where U = +∞
    fields = np.asarray(io.load(DATA / "phi4_L32_beta0.9244.nc").values)[:200]
    model = HierarchicalModel(progress=False).fit(fields[:100])
    finest = coarse_to_fine(model.scales_)[-1]
    y, c = finest.variables(decompose(torch.as_tensor(fields[100:]), model.levels_, "db4"))
    factor, start = model.factor(finest), model.starts_[finest.name]
    drawn = start.draw(c, torch.Generator().manual_seed(0), 100)
    assert not torch.isfinite(factor.energy(drawn, c)).all()
    y0 = finite_start(factor, start, c, torch.Generator().manual_seed(0), 100)
    energy = factor.energy(y0, c)
    assert torch.isfinite(energy).all()
    # only the chains outside were shrunk: the others keep their full residual
    kept = torch.isfinite(factor.energy(drawn, c))
    torch.testing.assert_close(y0[kept], drawn[kept])
    # and those only near their offending pixels (the energy is local): far from them the
    # residual is whole, so the start keeps more of the draw's mean square than even one
    # halving of each outside chain's whole residual would
    shrunk = y0[~kept] != drawn[~kept]
    assert 0 < shrunk.double().mean() < 0.5, shrunk.double().mean()
    mean = start.mean(c, 100, torch.device("cpu"))
    halved = torch.where(kept[:, None, None, None], drawn, mean + 0.5 * (drawn - mean))
    assert y0.square().mean() > halved.square().mean()


@pytest.mark.parametrize("offset", [2.0, None])  # None: every field's mean removed exactly
def test_non_square_fields_and_a_coarsest_factor_with_a_mean(free_field, offset):
    # one RG step of 16 × 32 fields: the coarsest factor (8 × 16) carries the mean through Ŷ(0);
    # zero-mean coarse fields leave Ĉ(0) at rounding level, where no gain may be fitted
    spectrum = lattice_free_field_spectrum(beta=free_field.beta, m2=free_field.m2)
    train, held_out = (
        gaussian_field(spectrum, (16, 32), 400, seed=s, dtype=torch.float64) for s in (0, 1)
    )
    if offset is None:
        train, held_out = (x - x.mean((1, 2), keepdim=True) for x in (train, held_out))
    else:
        train, held_out = train + offset, held_out + offset
    model = HierarchicalModel(levels=1, features=("quadratic",), progress=False).fit(train)
    drawn = model.sample(400, seed=3, steps=0, warmup=0).fields
    assert drawn.shape == (400, 16, 32) and torch.isfinite(drawn).all()
    means = [x.mean((1, 2)) for x in (drawn, held_out, train)]
    error = np.sqrt(sum(m.var().item() for m in means) / 400) + 1e-12
    assert abs(means[0].mean() - means[1].mean()) < 4 * error
    power = [stats.power_spectrum(x) for x in (drawn, held_out, train)]
    errors = np.stack([p.std("sample").values / np.sqrt(400) for p in power])
    z = (power[0].mean("sample").values - power[1].mean("sample").values) / np.sqrt(
        (errors**2).sum(0)
    )
    assert np.abs(z).max() < 4, z
