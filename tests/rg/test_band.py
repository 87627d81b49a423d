"""Band-limited fields: the empty Fourier modes are found, saved with the model and projected
out of its samples."""

import warnings

import pytest
import torch

from rgfield.rg import HierarchicalModel
from rgfield.rg.band import Band
from rgfield.stats import mode_power

SIZE = 16


def dealiasing_mask() -> torch.Tensor:
    """The modes beyond 2/3 of the Nyquist wavenumber on either axis (the 2/3 rule)."""
    k = torch.fft.fftfreq(SIZE, 1 / SIZE).abs()
    return (k[:, None] > SIZE / 3) | (k[None, :] > SIZE / 3)


@pytest.fixture
def dealiased(free_field):
    """200 training and 200 held-out free fields without their dealiased modes, as a
    pseudo-spectral simulation writes them."""
    cut = ~dealiasing_mask()
    return tuple(
        torch.fft.ifft2(torch.fft.fft2(free_field(200, size=SIZE, seed=s)) * cut).real
        for s in (0, 1)
    )


def test_full_band_and_zero_mean_fields_have_no_band(free_field):
    x = free_field(50, size=SIZE)
    assert Band.of(x) is None
    assert Band.of(x - x.mean((1, 2), keepdim=True)) is None  # the mean is the coarsest's
    # float32 rounding of the dealiased modes (1e-15 of the mean power) is still empty
    x = free_field(50, size=SIZE)
    cut = torch.fft.ifft2(torch.fft.fft2(x) * ~dealiasing_mask()).real
    assert torch.equal(Band.of(cut.float().double()).empty, dealiasing_mask())


def test_the_empty_modes_are_found_and_projected_out(dealiased):
    train, _ = dealiased
    band = Band.of(train)
    assert torch.equal(band.empty, dealiasing_mask())
    assert torch.equal(band.empty, band.empty.flip(0, 1).roll((1, 1), (0, 1)))  # k ↔ −k
    noise = torch.randn(
        train.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    projected = band.project(train + noise)
    assert float(mode_power(projected)[band.empty].max()) < 1e-25
    # the live modes are kept: projecting the noise alone removes exactly what was added
    torch.testing.assert_close(projected, train + band.project(noise))
    torch.testing.assert_close(band.project(train), train)


@pytest.mark.parametrize(
    "features", [("potential", "quadratic"), ("potential", "gaussian", "quadratic")]
)
def test_a_model_of_band_limited_fields_samples_band_limited_fields(dealiased, tmp_path, features):
    train, held_out = dealiased
    whitened = "gaussian" in features
    model = HierarchicalModel(levels=2, refine=0, progress=False, features=features)
    with warnings.catch_warnings():
        if not whitened:  # local couplings alone: τ_int ≈ 24 trajectories at j = 1, a longer
            # pilot than the most it may run
            warnings.filterwarnings("ignore", "scale j=1: the steps='auto' pilot stopped")
        result = model.fit(train).sample(200, seed=2)
    drawn = result.fields
    # the finest chains move on the details' subspace, at an ordinary step (in the full
    # space of details the fitted energy confined the empty directions: steps of 4e-4); the
    # whitened ones mix within the pilot (its rule watches the details, not the coordinates'
    # free null directions)
    assert float(result.diagnostics.step_size.sel(scale="j=1").median()) > 0.05
    assert bool(result.diagnostics.mixed.sel(scale="j=1")) or not whitened
    assert torch.equal(model.band_.empty, dealiasing_mask())
    assert result.attrs["empty_modes"] == int(dealiasing_mask().sum())
    power, reference = mode_power(drawn), mode_power(held_out)
    assert float(power[model.band_.empty].max()) < 1e-20 * float(reference.mean())
    # every live mode's mean power within 4.5 standard errors of the held-out's: |x̂(k)|² is
    # exponential (relative sd 1) for a complex mode, χ²₁ (relative sd √2) for the real k = 0
    # mode, averaged over 200 fields per ensemble; the error counts the drawn, the held-out
    # and the training fields (the model's spectrum is learned from these), each of 200. Over
    # the 61 independent live modes (±k pairs) a 4.5σ bound fails by chance with p ≈ 4e-4
    live = ~model.band_.empty
    spread = torch.ones(SIZE, SIZE, dtype=torch.float64)
    spread[0, 0] = 2**0.5
    trained = mode_power(train)
    variance = power.square() + reference.square() + trained.square()
    se = (spread * variance.sqrt())[live] / len(drawn) ** 0.5
    z = (power[live] - reference[live]) / se
    assert float(z.abs().max()) < 4.5, float(z.abs().max())
    # saved and loaded with the model; a full-band model has none
    model.save(tmp_path / "m.nc")
    loaded = HierarchicalModel.load(tmp_path / "m.nc", progress=False)
    assert torch.equal(loaded.band_.empty, model.band_.empty)
    a, b = (m.sample(3, seed=0, steps=2, warmup=2).fields for m in (model, loaded))
    torch.testing.assert_close(a, b)
    # the block sampler needs local energies in the details: where the chains move in other
    # coordinates (j = 1 here) or the energy is not local (the Gaussian family's), the scale
    # says it runs MALA; a local energy on a grid too small for blocks (j = 2 of potential +
    # quadratic) runs MALA as documented, without a word
    with pytest.warns(UserWarning, match="scale j=1: sampler='block' runs MALA here") as record:
        model.sample(3, seed=0, steps=2, warmup=2, sampler="block")
    said = " ".join(str(w.message) for w in record)
    assert ("is not local" if whitened else "chains move in DetailSubspace coordinates") in said
    assert ("scale j=2: sampler='block'" in said) == whitened
    ds = model.to_dataset()
    lopsided = ds["band_empty"].values.copy()
    lopsided[0, 7] = 1 - lopsided[0, 7]  # a mode without its mirror image at −k
    for bad, message in [
        (ds["band_empty"] * 2, "band_empty must be 0s and 1s"),
        (ds["band_empty"][:8, :8], "band_empty must be 0s and 1s of shape"),
        (ds["band_empty"].copy(data=lopsided), "band_empty is not symmetric"),
    ]:
        name = f"bad{len(message)}.nc"
        ds.drop_vars("band_empty").assign(band_empty=bad).to_netcdf(tmp_path / name)
        with pytest.raises(ValueError, match=message):
            HierarchicalModel.load(tmp_path / name, progress=False)


def test_a_model_of_full_band_fields_has_no_band(free_field, tmp_path):
    model = HierarchicalModel(levels=2, refine=0, progress=False).fit(free_field(40, size=SIZE))
    assert model.band_ is None
    assert model.sample(2, seed=0, steps=2, warmup=2).attrs["empty_modes"] == 0
    assert "band_empty" not in model.to_dataset()
    model.save(tmp_path / "m.nc")
    assert HierarchicalModel.load(tmp_path / "m.nc", progress=False).band_ is None
