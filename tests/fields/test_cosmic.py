"""Cosmic web: spectra and growth against colossus and closed forms, LPT against analytic
displacements, CIC against a brute-force deposit, and the physics of the evolved density."""

import math

import numpy as np
import pytest
import torch
from colossus.cosmology import cosmology

from rgfield import io
from rgfield.cli import main
from rgfield.fields import cosmic

# z-score bound on seeded statistical checks: P(|z| > 4) ≈ 6e-5 per check
Z_MAX = 4.0


def _colossus(eh: cosmic.EisensteinHu):
    params = {
        "flat": True,
        "H0": 100 * eh.h,
        "Om0": eh.omega_m,
        "Ob0": eh.omega_b,
        "sigma8": eh.sigma8,
        "ns": eh.n_s,
        "Tcmb0": eh.t_cmb,
        "relspecies": False,
    }
    return cosmology.setCosmology("rgfield-test", params=params, persistence="")


def _tophat(x: np.ndarray) -> np.ndarray:
    safe = np.maximum(x, 1e-12)
    return np.where(x > 1e-3, 3 * (np.sin(safe) - safe * np.cos(safe)) / safe**3, 1.0)


def _physical_k(size: int, box: float, dims: int = 3) -> np.ndarray:
    """|k| in h/Mpc on the full FFT grid."""
    f = np.fft.fftfreq(size) * size * 2 * np.pi / box
    grid = np.meshgrid(*([f] * dims), indexing="ij")
    return np.sqrt(sum(g**2 for g in grid))


def _shell_ratio_z(fields: np.ndarray, expected_power: np.ndarray, shells: np.ndarray):
    """Per shell, z-score of the mean of |x̂|² / E|x̂|² against 1, using the scatter over fields.

    ``shells`` labels each Fourier mode of the full FFT grid; modes labelled 0 are left out."""
    axes = tuple(range(1, fields.ndim))
    ratio = np.abs(np.fft.fftn(fields, axes=axes)) ** 2 / expected_power
    labels = np.unique(shells[shells > 0])
    per_field = np.stack([ratio[:, shells == s].mean(axis=1) for s in labels], axis=1)
    mean = per_field.mean(axis=0)
    error = per_field.std(axis=0, ddof=1) / math.sqrt(fields.shape[0])
    return (mean - 1) / error


# --- spectra and growth -------------------------------------------------------------------


def test_eisenstein_hu_matches_colossus_and_is_normalised_to_sigma8():
    eh = cosmic.EisensteinHu(omega_m=0.3, omega_b=0.05, h=0.7, n_s=0.96, sigma8=0.8)
    reference = _colossus(eh)
    k = np.logspace(-4, 1.5, 40)
    ours = eh(torch.tensor(k)).numpy()
    np.testing.assert_allclose(
        ours, reference.matterPowerSpectrum(k, model="eisenstein98_zb"), 1e-3
    )
    assert float(eh.transfer(torch.tensor(1e-6))) == pytest.approx(1, abs=1e-5)
    sigma8 = reference.sigma(8.0, 0.0, ps_args={"model": "eisenstein98_zb"})
    assert cosmic.sigma_tophat(eh, 8.0) == pytest.approx(sigma8, rel=1e-3)


def test_sigma_tophat_of_white_noise_is_power_over_volume():
    # smoothing white noise of spectrum A by a normalised sphere of volume V gives variance A / V
    radius, amplitude = 10.0, 3.0
    sigma = cosmic.sigma_tophat(cosmic.PowerLaw(index=0.0, amplitude=amplitude), radius)
    assert sigma**2 == pytest.approx(amplitude / (4 / 3 * math.pi * radius**3), rel=1e-3)


def test_growth_factor_is_a_in_einstein_de_sitter_and_matches_colossus():
    for z in (0.0, 0.5, 3.0, 20.0):
        assert cosmic.growth_factor(z, omega_m=1.0) == pytest.approx(1 / (1 + z), rel=1e-8)
        assert cosmic.second_order_growth(z, omega_m=1.0) == pytest.approx(
            -3 / 7 / (1 + z) ** 2, rel=1e-8
        )
    reference = _colossus(cosmic.EisensteinHu(omega_m=0.27))
    for z in (0.5, 1.0, 3.0, 10.0):
        assert cosmic.growth_factor(z, omega_m=0.27) == pytest.approx(
            reference.growthFactor(z), rel=1e-4
        )


def test_linear_density_has_the_input_spectrum_in_every_shell():
    size, box, n = 24, 200.0, 16
    spectrum = cosmic.PowerLaw(index=-1.5, amplitude=50.0)
    fields = cosmic.linear_density(spectrum, size, box, n=n, seed=11).numpy()
    k = _physical_k(size, box)
    keep = k > 0
    # a periodic field of the box B: E|Σ_x δ(x) e^{−ik·x}|² = N² P(k) / B³ (continuum P)
    expected = np.where(keep, spectrum(torch.tensor(np.where(keep, k, 1.0))).numpy(), 1.0)
    expected *= size**6 / box**3
    shells = np.round(k / (2 * np.pi / box)).astype(int)
    shells[shells > size // 2 - 1] = 0  # complete shells, away from the Nyquist planes
    z = _shell_ratio_z(fields, expected, shells)
    assert np.abs(z).max() < Z_MAX, z
    assert np.abs(fields.mean(axis=(1, 2, 3))).max() < 1e-12  # no k = 0 mode


def test_linear_density_variance_matches_the_continuum_sigma_r():
    # an independent check of the units: top-hat smoothed variance against (1/B³) Σ_k P W²,
    # and that sum against the continuum integral σ²(R) (discreteness costs 1.7 % here)
    size, box, radius, n = 64, 1000.0, 20.0, 16
    eh = cosmic.EisensteinHu()
    fields = cosmic.linear_density(eh, size, box, n=n, seed=4).numpy()
    k = _physical_k(size, box)
    nyquist = np.isclose(np.abs(np.stack(np.meshgrid(*[np.fft.fftfreq(size)] * 3))), 0.5).any(0)
    window = np.where(nyquist, 0.0, _tophat(k * radius))
    power = np.where(k > 0, eh(torch.tensor(np.maximum(k, 1e-30))).numpy(), 0.0)
    expected = (power * window**2).sum() / box**3
    smoothed = np.fft.ifftn(np.fft.fftn(fields, axes=(1, 2, 3)) * window, axes=(1, 2, 3)).real
    variance = (smoothed**2).mean(axis=(1, 2, 3))
    z = (variance.mean() - expected) / (variance.std(ddof=1) / math.sqrt(n))
    assert abs(z) < Z_MAX
    assert expected == pytest.approx(cosmic.sigma_tophat(eh, radius) ** 2, rel=0.03)


# --- Lagrangian perturbation theory and the deposit -----------------------------------


def _plane_waves(size: int, amplitudes: tuple[float, float], mode: int = 2):
    """δ = A cos(k x) + B cos(k y) on a 3D grid (x: last axis), k = 2π mode / size."""
    k = 2 * math.pi * mode / size
    z, y, x = torch.meshgrid(*[torch.arange(size, dtype=torch.float64)] * 3, indexing="ij")
    a, b = amplitudes
    return (a * torch.cos(k * x) + b * torch.cos(k * y))[None], k, (x, y)


def test_zeldovich_displacement_of_a_plane_wave_is_exact_and_has_no_second_order():
    delta, k, (x, _) = _plane_waves(16, (0.3, 0.0))
    psi1, psi2 = cosmic.lpt_displacements(delta)
    # ∇²φ₁ = A cos kx → φ₁ = −A cos(kx)/k², ψ₁ = −∂ₓφ₁ = −A sin(kx)/k
    torch.testing.assert_close(psi1[0, 2], -0.3 * torch.sin(k * x) / k, atol=1e-12, rtol=0)
    torch.testing.assert_close(psi1[0, :2], torch.zeros_like(psi1[0, :2]), atol=1e-12, rtol=0)
    torch.testing.assert_close(psi2, torch.zeros_like(psi2), atol=1e-12, rtol=0)  # 1D: ZA exact


def test_second_order_displacement_of_crossed_plane_waves_is_analytic():
    # δ = A cos kx + B cos ky: the 2LPT source is φ₁,ₓₓ φ₁,ᵧᵧ = AB cos kx cos ky (|k|² = 2k²),
    # so φ₂ = −AB cos kx cos ky / (2k²) and ψ₂ = ∇φ₂ = AB/(2k) (sin kx cos ky, cos kx sin ky)
    a, b = 0.3, -0.2
    delta, k, (x, y) = _plane_waves(16, (a, b), mode=3)
    _, psi2 = cosmic.lpt_displacements(delta)
    c = a * b / (2 * k)
    torch.testing.assert_close(
        psi2[0, 2], c * torch.sin(k * x) * torch.cos(k * y), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        psi2[0, 1], c * torch.cos(k * x) * torch.sin(k * y), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(psi2[0, 0], torch.zeros_like(psi2[0, 0]), atol=1e-12, rtol=0)


def _brute_force_cic(points: np.ndarray, size: int) -> np.ndarray:
    """Weight max(0, 1 − |Δ|) per axis with periodic minimum-image distances, cell by cell."""
    mass = np.zeros((size,) * points.shape[1])
    cells = np.stack(np.meshgrid(*[np.arange(size)] * points.shape[1], indexing="ij"), -1)
    for p in points:
        gap = np.abs((cells - p + size / 2) % size - size / 2)
        mass += np.prod(np.clip(1 - gap, 0, None), axis=-1)
    return mass


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("dims", [2, 3])
def test_cic_conserves_mass_and_equals_a_brute_force_deposit(dims, backend):
    size = 6
    rng = np.random.default_rng(0)
    points = rng.uniform(-size, 2 * size, size=(2, 40, dims))  # wrapped periodically
    positions = torch.tensor(points.transpose(0, 2, 1))
    mass = cosmic.cic_deposit(positions, (size,) * dims, backend=backend)
    np.testing.assert_allclose(mass.sum(dim=tuple(range(1, dims + 1))), [40, 40], rtol=1e-14)
    for sample in range(2):
        expected = _brute_force_cic(points[sample], size)
        np.testing.assert_allclose(mass[sample].numpy(), expected, atol=1e-12)
    on_grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * dims, indexing="ij"))[None]
    mass = cosmic.cic_deposit(on_grid, (4,) * dims, backend=backend)
    assert torch.equal(mass, torch.ones(1, *(4,) * dims))


def test_evolved_density_grows_as_d_squared_at_large_scales():
    # the same realisation's linear field, grown by D₁ and seen through the CIC window, is the
    # reference: cosmic variance cancels and the 5 % criterion tests the dynamics only
    size, box, redshift = 48, 400.0, 1.0
    linear = cosmic.linear_density(cosmic.EisensteinHu(), size, box, seed=5)
    d1 = cosmic.growth_factor(redshift)
    freq = np.fft.fftfreq(size)
    grid = np.meshgrid(*[freq] * 3, indexing="ij")
    window = np.prod([np.sinc(g) ** 2 for g in grid], axis=0)
    shells = np.round(np.sqrt(sum(g**2 for g in grid)) * size).astype(int)
    reference = np.abs(np.fft.fftn(linear[0].numpy())) ** 2 * d1**2 * window**2
    for order in (1, 2):
        evolved = cosmic.evolve(linear, redshift, order=order)[0].numpy()
        power = np.abs(np.fft.fftn(evolved)) ** 2
        for shell in range(1, 4):  # k ≤ 0.047 h/Mpc
            ratio = power[shells == shell].sum() / reference[shells == shell].sum()
            assert ratio == pytest.approx(1, abs=0.05), (order, shell, ratio)


def test_second_order_lpt_has_larger_skewness_than_zeldovich():
    # tree-level PT: S₃ = 34/7 − γ for the exact dynamics (which 2LPT reproduces at this
    # order) and 4 − γ for Zel'dovich; compare skewness of top-hat-smoothed densities, paired
    size, box, radius = 48, 192.0, 10.0
    k = _physical_k(size, box)
    window = _tophat(k * radius)
    differences = []
    for seed in range(4):
        linear = cosmic.linear_density(cosmic.EisensteinHu(), size, box, seed=seed)
        skewness = []
        for order in (1, 2):
            density = cosmic.evolve(linear, 0.0, order=order)[0].numpy()
            smoothed = np.fft.ifftn(np.fft.fftn(density) * window).real
            skewness.append((smoothed**3).mean() / (smoothed**2).mean() ** 1.5)
        differences.append(skewness[1] - skewness[0])
    differences = np.array(differences)
    assert (differences > 0).all()
    assert differences.mean() > Z_MAX * differences.std(ddof=1) / math.sqrt(len(differences))


# --- log-normal fields --------------------------------------------------------------------


@pytest.mark.parametrize("dims", [2, 3])
def test_lognormal_field_is_positive_with_mean_zero_and_the_target_spectrum(dims):
    size, box, n = (64, 100.0, 32) if dims == 2 else (20, 100.0, 16)
    spectrum = cosmic.PowerLaw(index=-2.0, amplitude=2.0 if dims == 2 else 40.0)
    fields = cosmic.lognormal_density(spectrum, size, box, dims=dims, n=n, seed=2).numpy()
    assert fields.min() > -1
    means = fields.mean(axis=tuple(range(1, dims + 1)))
    assert abs(means.mean()) < Z_MAX * means.std(ddof=1) / math.sqrt(n)
    assert fields.std() > 0.5  # markedly non-Gaussian: the test would see a wrong ξ_g
    k = _physical_k(size, box, dims)
    keep = k > 0
    expected = np.where(keep, spectrum(torch.tensor(np.where(keep, k, 1.0))).numpy(), 1.0)
    expected *= size ** (2 * dims) / box**dims
    shells = np.round(k / (2 * np.pi / box)).astype(int)
    shells[shells > size // 2 - 1] = 0
    z = _shell_ratio_z(fields, expected, shells)
    assert np.abs(z).max() < Z_MAX, z


# --- ensembles and the command line ------------------------------------------------------


def test_simulate_is_reproducible_and_a_sample_does_not_depend_on_the_ensemble_size():
    config = cosmic.CosmicConfig(size=16, box=128.0)
    two = cosmic.simulate(config, 2, seed=7, progress=False)
    three = cosmic.simulate(config, 3, seed=7, progress=False)
    np.testing.assert_array_equal(two.log_density.values, three.log_density.values[:2])
    assert two.log_density.shape == (2, 16, 16)
    a = two.attrs
    assert a["model"] == "2lpt" and a["seed"] == 7 and a["thickness"] == 2
    assert a["spectrum_sigma8"] == 0.81 and a["growth_d1"] == 1.0
    config = cosmic.CosmicConfig(size=16, box=128.0, product="density", model="zeldovich")
    density = cosmic.simulate(config, 1, seed=7, progress=False)
    assert density.delta.shape == (1, 16, 16, 16)
    assert abs(float(density.delta.mean())) < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 1}, "size"),
        ({"box": -1.0}, "box"),
        ({"model": "nbody"}, "model"),
        ({"product": "halos"}, "product"),
        ({"thickness": 99}, "thickness"),
        ({"dims": 2}, "dims"),
        ({"redshift": -2.0}, "redshift"),
        ({"spectrum": 1.0}, "spectrum"),
    ],
)
def test_config_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cosmic.CosmicConfig(**{"size": 8, **kwargs})


def test_simulate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="samples"):
        cosmic.simulate(cosmic.CosmicConfig(size=8), 0)
    with pytest.raises(ValueError, match="config must be a CosmicConfig"):
        cosmic.simulate(8, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_box_matches_cpu():
    linear = cosmic.linear_density(cosmic.EisensteinHu(), 32, 128.0, seed=1)
    on_gpu = cosmic.linear_density(cosmic.EisensteinHu(), 32, 128.0, seed=1, device="cuda")
    torch.testing.assert_close(on_gpu.cpu(), linear, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        cosmic.evolve(on_gpu).cpu(), cosmic.evolve(linear), atol=1e-8, rtol=0
    )


def test_bad_spectrum_parameters_and_too_strong_lognormal_are_refused():
    with pytest.raises(ValueError, match="omega_b"):
        cosmic.EisensteinHu(omega_b=0.5)
    with pytest.raises(ValueError, match="redshift"):
        cosmic.growth_factor(-1.5)
    with pytest.raises(ValueError, match="backend"):
        cosmic.cic_deposit(torch.zeros(1, 2, 3), (4, 4), backend="cuda")
    with pytest.raises(ValueError, match="positions"):
        cosmic.cic_deposit(torch.zeros(1, 3, 3), (4, 4))
    with pytest.raises(ValueError, match="log-normal"):
        cosmic.lognormal_density(cosmic.PowerLaw(-2.0, 1e6), 16, 10.0, dims=2, seed=0)


def test_cli_writes_a_cosmic_ensemble_with_its_parameters(tmp_path):
    out = tmp_path / "web.nc"
    argv = ["simulate", "cosmic", "--size", "16", "--samples", "2", "--box", "100"]
    argv += ["--redshift", "0.5", "--thickness", "4", "--seed", "3", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    da = io.load(out)
    assert da.name == "log_density" and da.sizes == {"sample": 2, "y": 16, "x": 16}
    assert da.attrs["redshift"] == 0.5 and da.attrs["thickness"] == 4 and da.attrs["seed"] == 3
    assert da.attrs["growth_d1"] == pytest.approx(cosmic.growth_factor(0.5))


def test_shipped_cosmic_ensemble_loads_with_its_provenance():
    from pathlib import Path

    da = io.load(Path(__file__).parents[2] / "data" / "cosmic_N128.nc")
    assert da.name == "log_density" and da.sizes == {"sample": 64, "y": 128, "x": 128}
    assert da.attrs["model"] == "2lpt" and da.attrs["seed"] == 1 and da.attrs["thickness"] == 16
