"""The statistics registry: its contract, shared bins, and a statistic added with one decorator."""

import numpy as np
import pytest
import torch
import xarray as xr

from rgfield.compare import STATISTICS, markdown, register_statistic, summary
from rgfield.compare.statistics import PDF_BINS, PDF_MARGIN
from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum


@pytest.fixture
def registered():
    """Names registered during a test, removed afterwards."""
    names = []
    yield names
    for name in names:
        STATISTICS.pop(name, None)


TWO_D_ONLY = {"bispectrum", "minkowski", "peaks", "scattering_spectra"}


@pytest.mark.parametrize("shape", [(3, 16), (3, 16, 16), (3, 8, 8, 8)])
def test_every_statistic_gives_one_labelled_estimate_per_field(shape):
    fields = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    applicable = {name for name, s in STATISTICS.items() if s.applies(fields)}
    two_d = len(shape) == 3
    assert set(STATISTICS) - applicable == (set() if two_d else TWO_D_ONLY)
    for name in applicable:
        statistic = STATISTICS[name]
        values = statistic.bind(fields)(fields[:2])
        assert isinstance(values, xr.DataArray) and values.dims[0] == "sample", statistic.name
        assert values.sizes["sample"] == 2, statistic.name


def test_pdf_bins_are_the_reference_s_with_a_margin_for_tails(free_field):
    ref = free_field(8, size=8)
    wider = 1.1 * free_field(8, size=8, seed=1) + 0.2
    pdf = summary(ref, wider, statistics="pdf")["statistics/pdf"].to_dataset()
    edges = np.asarray(pdf.attrs["edges"])
    width = (float(ref.max()) - float(ref.min())) / PDF_BINS
    assert pdf.sizes["value"] == PDF_BINS + 2 * PDF_MARGIN
    assert edges[PDF_MARGIN] == pytest.approx(float(ref.min()))
    np.testing.assert_allclose(np.diff(edges), width)
    reference = pdf["reference"].values
    assert (reference[:PDF_MARGIN] == 0).all() and (reference[-PDF_MARGIN:] == 0).all()
    assert pdf["estimate"].values[0, -PDF_MARGIN:].sum() > 0  # the shifted tail is counted


def test_a_statistic_is_added_with_one_decorator(free_field, registered):
    @register_statistic(
        "mean_square", title="Mean square", table=True, setup=lambda ref: {"c": float(ref.mean())}
    )
    def mean_square(fields: torch.Tensor, c: float) -> xr.DataArray:
        values = (fields - c).square().mean((1, 2))
        return xr.DataArray(
            values.numpy()[:, None], dims=("sample", "order"), coords={"order": [2]}
        )

    registered.append("mean_square")
    ref = free_field(16, size=8)
    s = summary(ref, {"double": 2 * free_field(16, size=8, seed=1)})
    node = s["statistics/mean_square"].to_dataset().sel(ensemble="double", order=2)
    assert float(node.ratio) == pytest.approx(4, rel=0.35)
    assert float(s.max_abs_z.sel(quantity="statistics/mean_square", ensemble="double")) > 5
    assert "## Mean square" in markdown(s)
    with pytest.raises(ValueError, match="already registered"):
        register_statistic("mean_square", title="again")
    with pytest.raises(ValueError, match="identifier"):
        register_statistic("mean square", title="no")


def test_a_statistic_breaking_the_contract_is_named(free_field, registered):
    @register_statistic("broken", title="Broken")
    def broken(fields: torch.Tensor) -> np.ndarray:
        return fields.mean((1, 2)).numpy()

    registered.append("broken")
    ref = free_field(4, size=8)
    with pytest.raises(ValueError, match="statistic 'broken' must return a DataArray"):
        summary(ref, ref, statistics="broken")


def test_flatness_of_gaussian_increments_is_three():
    """White Gaussian noise: increments are Gaussian, S₄/S₂² = 3 at every lag, within 4
    standard errors of the mean over fields (the ratio's O(1/N) bias is far below them)."""
    fields = torch.randn(
        64, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    f = STATISTICS["flatness"].bind(fields)(fields)
    z = (f.mean("sample") - 3) / (f.std("sample") / np.sqrt(64))
    assert float(np.abs(z).max()) < 4


def test_wavelet_kurtosis_of_laplace_noise_matches_pywavelets_atoms():
    """For i.i.d. noise of excess kurtosis κ, an orthonormal coefficient Σ w_i u_i has excess
    kurtosis κ Σ w_i⁴ (Σ w_i² = 1): the atom w comes from PyWavelets (periodization) by
    reconstructing one unit coefficient. Laplace noise has κ = 3. The per-field estimate is
    biased by O(1/N) (about −30/N here): 4096 coefficients per field keep it below the
    standard error of the mean over 64 fields."""
    import pywt

    n = 128
    fields = torch.from_numpy(np.random.default_rng(2).laplace(size=(64, n, n)))
    measured = STATISTICS["wavelet_kurtosis"].function(fields, levels=1)
    for c, channel in enumerate(("da", "ad", "dd")):
        approximation, details = pywt.dwt2(np.zeros((n, n)), "db4", mode="periodization")
        details = [np.zeros_like(d) for d in details]
        details[c][n // 4, n // 4] = 1.0
        atom = pywt.idwt2((approximation, tuple(details)), "db4", mode="periodization")
        assert (atom**2).sum() == pytest.approx(1.0)
        expected = 3 * (atom**4).sum()
        values = measured.sel(level=1, channel=channel)
        z = (float(values.mean()) - expected) / float(values.std() / np.sqrt(64))
        assert abs(z) < 4, (channel, expected, float(values.mean()))


def test_scattering_spectra_see_what_the_spectrum_misses():
    """Gaussian fields against their exponential (lognormal fields, rescaled to the same
    variance): the spectra's S2 entries of the reference average to 1 (its band powers from
    the power spectrum by Parseval normalise the convolutions' ⟨|x ⋆ ψ|²⟩), and the lognormal
    fields' phase-alignment terms C01 are far off."""
    spectrum = lattice_free_field_spectrum(beta=1.0, m2=0.05)
    gauss = gaussian_field(spectrum, (32, 32), 48, seed=3, dtype=torch.float64)
    skewed = torch.exp(gauss)
    skewed = (skewed - skewed.mean()) / skewed.std() * gauss.std()
    node = summary(gauss, {"lognormal": skewed}, statistics="scattering_spectra")
    node = node["statistics/scattering_spectra"].to_dataset()
    s2 = node["reference"].sel(part="real").where(node["type"] == "S2", drop=True)
    np.testing.assert_allclose(s2.values, 1.0, rtol=1e-5)  # single precision
    c01 = np.abs(node["z"].sel(part="real", ensemble="lognormal").where(node["type"] == "C01"))
    assert float(c01.max()) > 10


def test_minkowski_and_peaks_use_the_reference_s_units(free_field):
    """The thresholds are the reference's mean + ν σ for every ensemble, so a field of twice
    the reference's spread covers much more of the plane above ν = 1 and V₀ shows it."""
    ref = free_field(32, size=16)
    node = summary(ref, {"wide": 2 * free_field(32, size=16, seed=1)}, statistics=["minkowski"])
    v0 = node["statistics/minkowski"].to_dataset().sel(functional="V0", threshold=1.0)
    assert float(v0["estimate"].sel(ensemble="wide")) > 1.5 * float(v0["reference"])
    assert float(v0["z"].sel(ensemble="wide")) > 5


def test_rms_z_is_a_distance_that_separates_laws(free_field):
    ref = free_field(64, size=32)
    s = summary(
        ref,
        {"same": free_field(64, size=32, seed=1), "scaled": 1.3 * free_field(64, size=32, seed=2)},
    )
    root = s.to_dataset()
    for quantity in root["quantity"].values:
        z = s[str(quantity)].to_dataset()["z"]
        for label in ("same", "scaled"):
            values = z.sel(ensemble=label).values
            values = values[np.isfinite(values)]
            expected = np.sqrt(np.mean(values**2)) if values.size else np.nan
            got = float(root["rms_z"].sel(quantity=quantity, ensemble=label))
            np.testing.assert_allclose(got, expected, rtol=1e-12)
    # one law: each z² has mean dof/(dof − 2) ≈ 1.03, so the rms of many entries is near 1; a
    # band power 69 % higher moves the whole scattering spectrum far beyond that
    rms = root["rms_z"].sel(quantity="statistics/scattering_spectra")
    assert float(rms.sel(ensemble="same")) < 2 < float(rms.sel(ensemble="scaled"))
    row = next(
        line
        for line in markdown(s).split("## Largest |z|")[1].splitlines()
        if line.startswith("| statistics/scattering_spectra |")
    )
    assert f"({float(rms.sel(ensemble='scaled')):.2f})" in row


def test_reduced_bispectrum_of_iid_pixels_is_their_third_cumulant_over_three_variances_squared():
    # x = g + ε(g² − 1), g white Gaussian: B = κ₃ = 6ε + 8ε³ and P = σ² = 1 + 2ε² at every
    # triangle, so Q = κ₃ / 3σ⁴; a Gaussian field has Q = 0
    eps = 0.3

    def law(seed: int, e: float) -> torch.Tensor:
        g = torch.randn(
            96, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        return g + e * (g**2 - 1)

    statistic = STATISTICS["bispectrum"]
    measure = statistic.bind(law(0, eps))
    expected = (6 * eps + 8 * eps**3) / (3 * (1 + 2 * eps**2) ** 2)
    for fields, target in ((law(1, eps), expected), (law(2, 0.0), 0.0)):
        q = measure(fields)
        z = (q.mean("sample") - target) / (q.std("sample") / np.sqrt(q.sizes["sample"]))
        assert np.abs(z.values).max() < 4, z.values
    shapes = q["shape"].values.tolist()
    assert shapes.count("equilateral") == 6 and shapes.count("squeezed") == 4  # k < 16
    assert q["k1"].values[shapes.index("squeezed")] == 2
    assert not statistic.applies(torch.zeros(4, 16)) and statistic.applies(torch.zeros(4, 8, 8))


def test_means_zero_by_construction_are_not_judged_on_their_rounding(free_field):
    def centred(seed: int, offset: float) -> torch.Tensor:
        x = free_field(64, size=16, seed=seed)
        return x - x.mean((1, 2), keepdim=True) + offset

    reference, rounded = centred(0, 3e-11), centred(1, -5e-10)  # rounding of a zero mean
    tree = summary(reference, {"generated": rounded}, statistics=["moments"])
    z = tree["statistics/moments"].dataset["z"].sel(moment="mean")
    assert bool(np.isnan(z).all())  # both exactly 0: nothing to judge
    assert not bool(tree.dataset["failed"].sel(quantity="statistics/moments").any())
    # a mean of 1e-3 of the rms is a mean: judged
    tree = summary(reference, {"shifted": centred(1, 1e-3)}, statistics=["moments"])
    z = float(tree["statistics/moments"].dataset["z"].sel(moment="mean").squeeze())
    assert z > 10


def test_shells_without_power_are_not_judged_on_their_rounding(free_field):
    from rgfield.rg.band import Band

    def dealiased(seed: int, corner: float) -> torch.Tensor:
        x = free_field(64, size=16, seed=seed)
        k = torch.fft.fftfreq(16, 1 / 16).abs()
        cut = (k[:, None] > 16 / 3) | (k[None, :] > 16 / 3)
        spectrum = torch.fft.fft2(x)
        return torch.fft.ifft2(torch.where(cut, corner * spectrum, spectrum)).real

    reference = dealiased(0, 1e-8)  # power 1e-16 of the live modes': float32-like rounding
    projected = dealiased(1, 0.0)
    assert Band.of(reference) is not None
    tree = summary(reference, {"projected": projected}, statistics=["power_spectrum"])
    assert not bool(tree.dataset["failed"].sel(quantity="statistics/power_spectrum").any())
    # power on the empty shells is judged
    tree = summary(reference, {"leaky": dealiased(1, 0.1)}, statistics=["power_spectrum"])
    assert bool(tree.dataset["failed"].sel(quantity="statistics/power_spectrum").all())
