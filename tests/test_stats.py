import math

import numpy as np
import pytest
import scipy.stats
import torch

from rgfield import stats as S

# Tolerances on random estimates: |estimate − truth| < Z · (standard error). With Z = 5 a single
# comparison fails with probability 6e-7, so a few hundred comparisons per test stay reliable.
Z = 5.0


def white(shape, sigma=1.0, seed=0, dtype=torch.float64):
    return sigma * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def numpy_shells(n: int, spectrum) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent shell binning over the full 2D FFT plane: (shell mean of P, count, sum P²)."""
    m = np.fft.fftfreq(n, 1 / n)
    my, mx = np.meshgrid(m, m, indexing="ij")
    k = 2 * np.pi * np.hypot(my, mx) / n
    p = spectrum(k)
    shell = np.floor(np.hypot(my, mx) + 0.5).astype(int)
    means, counts, sq = [], [], []
    for b in range(1, n // 2 + 1):
        sel = shell == b
        means.append(p[sel].mean())
        counts.append(sel.sum())
        sq.append((p[sel] ** 2).sum())
    return np.array(means), np.array(counts), np.array(sq)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_white_noise_spectrum_is_flat_at_its_variance(ndim):
    n, samples, sigma = {1: (256, 64), 2: (64, 32), 3: (16, 16)}[ndim] + (1.7,)
    ps = S.power_spectrum(white((samples,) + (n,) * ndim, sigma), ndim)
    assert ps.dims == ("sample", "k") and ps.sizes["k"] == n // 2
    mean = ps.mean("sample").values
    # each shell averages count/2 independent exponential variables (± k are one mode)
    err = sigma**2 * np.sqrt(2 / (ps["count"].values * samples))
    assert np.all(np.abs(mean - sigma**2) < Z * err)


def test_spectrum_of_a_field_with_known_spectrum():
    n, samples = 64, 48

    def spectrum(k):
        return 1.0 / (k**2 + 0.05) ** 1.5

    m = np.fft.fftfreq(n, 1 / n)
    k = 2 * np.pi * np.hypot(*np.meshgrid(m, m, indexing="ij")) / n
    noise = np.fft.fft2(white((samples, n, n), seed=1).numpy())
    fields = np.fft.ifft2(noise * np.sqrt(spectrum(k))).real  # E|x̂|²/N = P(k) mode by mode
    ps = S.power_spectrum(fields)
    expected, counts, sum_sq = numpy_shells(n, spectrum)
    np.testing.assert_array_equal(ps["count"].values, counts)
    err = np.sqrt(2 * sum_sq / counts**2 / samples)
    assert np.all(np.abs(ps.mean("sample").values - expected) < Z * err)
    assert np.all(np.diff(ps.k.values) > 0) and ps.k.values[0] == pytest.approx(
        2 * np.pi / n * (4 + 4 * np.sqrt(2)) / 8
    )


def test_spectrum_normalisation_is_parseval_exact():
    # a field with only |k| < n/2 content: Σ_shells P·count = Σ_u x² exactly
    n = 32
    x = white((3, n, n), seed=2).numpy()
    xf = np.fft.fft2(x)
    m = np.fft.fftfreq(n, 1 / n)
    radius = np.hypot(*np.meshgrid(m, m, indexing="ij"))
    xf[:, (radius >= n / 2 - 0.5) | (radius == 0)] = 0
    x = np.fft.ifft2(xf).real
    ps = S.power_spectrum(x)
    total = (ps * ps["count"]).sum("k").values
    np.testing.assert_allclose(total, (x**2).sum((1, 2)), rtol=1e-10)
    # a single cosine of amplitude A on wavenumber 5 puts A² N / 2 into shell 5
    u = np.arange(n)
    cosine = 0.7 * np.cos(2 * np.pi * 5 * u / n)[None, :] * np.ones((n, 1))
    ps = S.power_spectrum(cosine)
    expected = np.zeros(n // 2)
    expected[4] = 0.7**2 * n * n / 2 / ps["count"].values[4]
    np.testing.assert_allclose(ps.values[0], expected, atol=1e-10)


def test_moments_match_scipy():
    x = np.exp(white((4, 32, 32), seed=3).numpy())  # log-normal: skewed, heavy-tailed
    mom = S.moments(x)
    flat = x.reshape(4, -1)
    np.testing.assert_allclose(mom.sel(moment="mean"), flat.mean(1), rtol=1e-12)
    np.testing.assert_allclose(mom.sel(moment="variance"), flat.var(1), rtol=1e-12)
    np.testing.assert_allclose(mom.sel(moment="skewness"), scipy.stats.skew(flat, 1), rtol=1e-10)
    np.testing.assert_allclose(
        mom.sel(moment="kurtosis"), scipy.stats.kurtosis(flat, 1), rtol=1e-10
    )


def test_pdf_matches_numpy_histogram_and_integrates_to_one():
    x = white((3, 32, 32), seed=4).numpy()
    p = S.pdf(x, bins=20)
    edges = p.attrs["edges"]
    for s in range(3):
        counts, _ = np.histogram(x[s], bins=edges)
        np.testing.assert_allclose(p.values[s], counts / (x[s].size * np.diff(edges)))
    np.testing.assert_allclose((p * p.width).sum("value"), 1.0)
    q = S.pdf(x, bins=[-1.0, 0.0, 2.0])
    inside = ((x >= -1) & (x <= 2)).reshape(3, -1).mean(1)
    np.testing.assert_allclose((q * q.width).sum("value"), inside)
    with pytest.raises(ValueError, match="increasing"):
        S.pdf(x, bins=[0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="range"):
        S.pdf(x, bins=4, range=(1.0, 1.0))


def test_structure_functions_match_a_direct_loop():
    x = white((2, 12, 16), seed=5).numpy()
    sf = S.structure_functions(x, orders=(1, 2, 3), max_lag=5)
    assert sf.dims == ("sample", "order", "axis", "lag")
    for s in range(2):
        for p in (1, 2, 3):
            for a, axis in enumerate(("y", "x")):
                for r in range(1, 6):
                    d = np.abs(np.roll(x[s], -r, axis=a) - x[s]) ** p
                    assert sf.sel(order=p, axis=axis, lag=r).values[s] == pytest.approx(d.mean())
    # white noise: S_2(r) = 2σ² at every lag
    big = S.structure_functions(white((8, 64, 64), seed=6), orders=(2,), max_lag=3)
    np.testing.assert_allclose(big.mean("sample").values, 2.0, atol=Z * 2 * math.sqrt(2 / 32768))
    with pytest.raises(ValueError, match="max_lag"):
        S.structure_functions(x, max_lag=12)


def test_correlation_function_matches_brute_force():
    n = 16
    x = np.cumsum(white((2, n, n), seed=7).numpy(), axis=2)  # correlated along x
    cf = S.correlation_function(x)
    xc = x - x.mean((1, 2), keepdims=True)
    shifts = np.fft.fftfreq(n, 1 / n).astype(int)
    sums = np.zeros((2, n // 2 + 1))
    count = np.zeros(n // 2 + 1)
    for dy in shifts:
        for dx in shifts:
            b = int(np.rint(np.hypot(dy, dx)))
            if b <= n // 2:
                prod = (xc * np.roll(xc, (-dy, -dx), axis=(1, 2))).mean((1, 2))
                sums[:, b] += prod
                count[b] += 1
    np.testing.assert_allclose(cf.values, sums / count, atol=1e-10)
    np.testing.assert_array_equal(cf["count"].values, count)
    np.testing.assert_allclose(cf.sel(r=0).values, xc.reshape(2, -1).var(1))


def test_coarse_field_variance_of_white_noise_and_of_a_constant():
    # the transform is orthonormal: white noise keeps its variance at every level
    v = S.coarse_field_variance(white((64, 32, 32), sigma=1.5, seed=3), levels=5)
    assert v.dims == ("sample", "level") and list(v.level.values) == list(range(6))
    mean, se = v.mean("sample"), v.std("sample", ddof=1) / 8
    assert (abs(mean - 1.5**2) < Z * se).all()
    # a constant c: the coarse field after j steps is 2^j c (2D), so v_j = 4^j c² about 0
    # and 0 about c; in 3D the factor per step is 2^(3/2)
    c = torch.full((2, 8, 8), 0.7, dtype=torch.float64)
    np.testing.assert_allclose(S.coarse_field_variance(c, 3).values[0], 0.49 * 4.0 ** np.arange(4))
    np.testing.assert_allclose(S.coarse_field_variance(c, 3, mean=0.7).values, 0, atol=1e-24)
    cube = torch.full((2, 8, 8, 8), 0.7, dtype=torch.float64)
    v3 = S.coarse_field_variance(cube, 2, ndim=3).values[0]
    np.testing.assert_allclose(v3, 0.49 * 8.0 ** np.arange(3))
    with pytest.raises(ValueError, match="levels must be in 1..3"):
        S.coarse_field_variance(c, 4)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="spatial dimensions"):
        S.power_spectrum(white((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="ndim"):
        S.power_spectrum(white((2, 8, 8)), ndim=4)
    with pytest.raises(ValueError, match="orders"):
        S.structure_functions(white((2, 8, 8)), orders=(0,))


def test_single_field_and_float32_input():
    x = white((32, 32), seed=10, dtype=torch.float32)
    ps = S.power_spectrum(x)
    assert ps.sizes["sample"] == 1 and ps.dtype == np.float64
    np.testing.assert_allclose(ps.values, S.power_spectrum(x.double()[None]).values, rtol=1e-5)


def test_non_square_spectrum_keeps_every_mode_in_half_open_shells():
    # on 32×64 pixels one cycle along x is exactly half a shell width: it belongs to shell 1
    ny, nx = 32, 64
    u = np.arange(nx)
    cosine = np.cos(2 * np.pi * u / nx)[None, :] * np.ones((ny, 1))
    ps = S.power_spectrum(cosine)
    total = float((ps * ps["count"]).sum("k").values[0])
    assert total == pytest.approx((cosine**2).sum(), rel=1e-10)
    # band-limited random content: Parseval holds shell by shell in total
    xf = np.fft.fft2(white((2, ny, nx), seed=11).numpy())
    ky = np.fft.fftfreq(ny)[:, None] * 2 * np.pi
    kx = np.fft.fftfreq(nx)[None, :] * 2 * np.pi
    width = 2 * np.pi / ny
    xf[:, (np.hypot(ky, kx) >= (ny // 2 + 0.5) * width) | (np.hypot(ky, kx) == 0)] = 0
    x = np.fft.ifft2(xf).real
    ps = S.power_spectrum(x)
    np.testing.assert_allclose((ps * ps["count"]).sum("k").values, (x**2).sum((1, 2)), rtol=1e-10)


def test_single_fields_are_one_sample_everywhere():
    x = white((16, 16), seed=12)
    assert S.moments(x).sizes["sample"] == 1
    assert S.pdf(x).sizes["sample"] == 1
    assert S.structure_functions(x, orders=2).sizes == {
        "sample": 1,
        "order": 1,
        "axis": 2,
        "lag": 8,
    }


def test_argument_errors_name_the_argument():
    x = white((2, 16, 16))
    with pytest.raises(ValueError, match="orders"):
        S.structure_functions(x, orders=(1.5,))
    with pytest.raises(ValueError, match="max_lag"):
        S.structure_functions(x, max_lag=2.7)
    with pytest.raises(ValueError, match="range"):
        S.pdf(x, bins=[0.0, 1.0], range=(0.0, 1.0))
    with pytest.raises(ValueError, match="range"):
        S.pdf(x, range=5)
    with pytest.raises(ValueError, match="at least one field"):
        S.power_spectrum(torch.zeros(0, 8, 8))
    with pytest.raises(ValueError, match="mean"):
        S.correlation_function(x, mean="sample")


def test_bispectrum_of_iid_pixels_is_their_third_cumulant():
    # x = g + ε(g² − 1) with white Gaussian g: every triangle has B = κ₃ = 6ε + 8ε³
    eps, n = 0.3, 32
    g = torch.randn(n, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = g + eps * (g**2 - 1)
    triangles = [(4, 4, 4), (3, 5, 7), (6, 6, 11), (10, 12, 20)]
    b = S.bispectrum(x, triangles)
    assert b.dims == ("sample", "triangle") and (b["count"] > 0).all()
    mean = b.mean("sample").values
    error = b.std("sample").values / np.sqrt(n)
    assert np.abs((mean - (6 * eps + 8 * eps**3)) / error).max() < 4
    gaussian = S.bispectrum(g, triangles)
    z = gaussian.mean("sample").values / (gaussian.std("sample").values / np.sqrt(n))
    assert np.abs(z).max() < 4
    with pytest.raises(ValueError, match="triangles"):
        S.bispectrum(x, [(1, 2, 5)])


def test_shell_power_is_the_mean_power_of_the_shell_modes():
    # against a loop over the modes of a small grid, and σ² for white noise
    x = np.random.default_rng(1).standard_normal((3, 12, 10))
    ks = [1.0, 2.5, 4.0]
    p = S.shell_power(x, ks, width=1.0)
    power = np.abs(np.fft.fft2(x - x.mean((1, 2), keepdims=True))) ** 2 / x[0].size
    for i, k in enumerate(ks):
        modes = [
            (a, b)
            for a in range(12)
            for b in range(10)
            if abs(np.hypot(min(a, 12 - a), min(b, 10 - b)) - k) < 0.5
        ]
        expected = np.mean([power[:, a, b] for a, b in modes], axis=0)
        np.testing.assert_allclose(p.isel(k=i).values, expected, rtol=1e-12)
    white = 1.7 * np.random.default_rng(2).standard_normal((200, 32, 32))
    p = S.shell_power(white, [2, 5, 9, 14])
    z = (p.mean("sample") - 1.7**2) / (p.std("sample") / np.sqrt(200))
    assert np.abs(z.values).max() < 4
    with pytest.raises(ValueError, match="ks must lie"):
        S.shell_power(white, [16])


@pytest.mark.parametrize("statistic", [S.power_spectrum, S.moments, S.pdf, S.structure_functions])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_statistics_refuse_nan_and_inf_naming_the_argument(statistic, bad):
    fields = np.random.default_rng(0).standard_normal((3, 16, 16))
    fields[2, 5, 5] = bad
    with pytest.raises(ValueError, match=r"fields contains 1 NaN or Inf values"):
        statistic(fields)


def test_nearest_distance_against_brute_force_over_shifts():
    """The FFT cross-correlation against every np.roll of every training field; a shifted copy
    is at distance 0, an unrelated field near 1 whatever its variance."""
    rng = np.random.default_rng(4)
    train = 3 + rng.standard_normal((5, 6, 8))
    fresh = 3 + rng.standard_normal((3, 6, 8)) * np.array([1.0, 0.5, 2.0])[:, None, None]
    fields = np.concatenate([fresh, np.roll(train[2:3], (2, -3), (1, 2))])
    mu = train.mean()
    typical = ((train - mu) ** 2).sum((1, 2)).mean()

    def nearest(x, shifts):
        moves = [(a, b) for a in range(6) for b in range(8)] if shifts else [(0, 0)]
        best = min(np.linalg.norm(x - np.roll(t, m, (0, 1))) for t in train for m in moves)
        return best / np.sqrt(((x - mu) ** 2).sum() + typical)

    d = S.nearest_distance(fields, train)
    # a copy's d is the square root of a cancelled difference: about √ε relative, not ε
    np.testing.assert_allclose(d.values, [nearest(x, True) for x in fields], atol=1e-6)
    assert d.values[-1] < 1e-6 and (d.values[:3] > 0.5).all()
    unshifted = S.nearest_distance(fields, train, shifts=False)
    np.testing.assert_allclose(unshifted, [nearest(x, False) for x in fields], atol=1e-6)
    with pytest.raises(ValueError, match="train: fields of shape"):
        S.nearest_distance(fields, train[:, :4])


def test_structure_functions_at_chosen_lags_equal_those_of_every_lag():
    x = np.random.default_rng(5).standard_normal((3, 16, 16))
    every = S.structure_functions(x, orders=(2, 4), max_lag=8)
    chosen = S.structure_functions(x, orders=(2, 4), lags=[1, 3, 8])
    np.testing.assert_array_equal(chosen.values, every.sel(lag=[1, 3, 8]).values)
    for lags in ([3, 1], [0, 2], [1, 16], [1, 1]):
        with pytest.raises(ValueError, match="lags must be increasing integers"):
            S.structure_functions(x, lags=lags)
    with pytest.raises(ValueError, match="max_lag or lags, not both"):
        S.structure_functions(x, max_lag=4, lags=[1, 2])


def test_mode_power_obeys_parseval_and_mirrored_maps_k_to_minus_k():
    x = torch.randn(5, 6, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    power = S.mode_power(x)
    assert power.shape == (6, 8)
    # Parseval: the mean over modes is the fields' mean square; a real field has P(k) = P(−k)
    assert float(power.mean()) == pytest.approx(float(x.square().mean()), rel=1e-12)
    torch.testing.assert_close(S.mirrored(power), power)
    k = torch.arange(6 * 8).reshape(6, 8)
    assert int(S.mirrored(k)[1, 2]) == int(k[5, 6]) and int(S.mirrored(k)[0, 0]) == 0
