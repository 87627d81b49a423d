"""Scattering: filters against kymatio and a brute-force periodisation, statistics against a
direct computation in space, identities, invariances, Gaussian values and gradients."""

import itertools
import math

import numpy as np
import pytest
import torch
from kymatio.scattering2d.filter_bank import filter_bank as kymatio_filter_bank

from rgfield import scattering as sc
from rgfield.fields.gaussian import gaussian_field


def _field(shape=(32, 32), n=2, seed=0, dtype=torch.float64) -> torch.Tensor:
    """Smooth-ish non-Gaussian test fields: exp of a correlated Gaussian."""
    g = gaussian_field(lambda *k: 1 / (0.05 + sum(kk**2 for kk in k)), shape, n, seed)
    return torch.exp(g / g.std()).to(dtype)


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(("M", "N", "J", "L"), [(32, 32, 3, 8), (64, 32, 4, 4), (32, 64, 3, 6)])
def test_morlet_bank_equals_kymatio(M, N, J, L):  # noqa: N803
    reference = kymatio_filter_bank(M, N, J, L)
    bank = sc.filter_bank((M, N), J, L)
    for j, ell in itertools.product(range(J), range(L)):
        expected = reference["psi"][j * L + ell]["levels"][0]
        np.testing.assert_allclose(bank.psi[j, ell].numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(bank.phi.numpy(), reference["phi"]["levels"][0], rtol=0, atol=1e-6)


def _brute_force_morlet(M, N, sigma, theta, xi, slant, periods):  # noqa: N803
    """kymatio's Gabor-minus-envelope construction in space with (2·periods + 1)² periods."""
    c, s = math.cos(theta), math.sin(theta)

    def gabor(frequency):
        total = np.zeros((M, N), complex)
        for ex, ey in itertools.product(range(-periods, periods + 1), repeat=2):
            xx, yy = np.mgrid[ex * M : (ex + 1) * M, ey * N : (ey + 1) * N].astype(float)
            r0, r1 = c * xx + s * yy, -s * xx + c * yy
            arg = -(r0**2 + slant**2 * r1**2) / (2 * sigma**2)
            total += np.exp(arg + 1j * frequency * (c * xx + s * yy))
        return total / (2 * 3.1415 * sigma**2 / slant)

    wave, envelope = gabor(xi), gabor(0.0)
    return np.real(np.fft.fft2(wave - wave.sum() / envelope.sum() * envelope))


def test_wide_morlet_is_the_exactly_periodic_filter():
    # at 32², J = 5 the largest wavelet is wider than kymatio's 5×5 periods reach (kymatio is
    # off by 3e-4 there); rgfield's equals a brute-force sum over 13×13 periods
    M, J, L = 32, 5, 6  # noqa: N806
    bank = sc.filter_bank((M, M), J, L)
    for j, ell in ((4, 0), (4, 2), (3, 5), (0, 1)):
        theta = (int(L - L / 2 - 1) - ell) * math.pi / L
        expected = _brute_force_morlet(M, M, 0.8 * 2**j, theta, 3 * math.pi / 4 / 2**j, 4 / L, 6)
        np.testing.assert_allclose(bank.psi[j, ell].numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["morlet", "bump"])
def test_filters_have_zero_mean_and_a_bounded_littlewood_paley_sum(kind):
    bank = sc.filter_bank((64, 64), 5, 8, kind)
    assert bank.psi[..., 0, 0].abs().max() < 1e-12  # no response to a constant
    # an upper frame bound near 1 (a wrong normalisation would show at once) and no hole in
    # the band |ω| ≤ π/2 (measured minima: Morlet 0.75, bump 0.43; docs/scattering.md)
    frame = bank.littlewood_paley()
    omega = sc._frequencies((64, 64))
    band = omega[0] ** 2 + omega[1] ** 2 <= (math.pi / 2) ** 2
    assert float(frame.max()) < 1.05 and float(frame[band].min()) > 0.4
    one_d = sc.filter_bank(64, 4, 1, kind)
    assert one_d.psi.shape == (4, 1, 64) and one_d.psi[..., 0].abs().max() < 1e-12


def test_filter_banks_are_cached():
    assert sc.filter_bank((32, 32), 3, 4) is sc.filter_bank((32, 32), 3, 4)


# --- statistics against a direct computation ----------------------------------------------


def _direct_covariance(x: np.ndarray, bank: sc.FilterBank, labels: dict) -> np.ndarray:
    """Every coefficient from spatial maps: FFT convolutions, products and means in space."""
    psi = bank.psi.numpy()

    def conv(f, filt):
        return np.fft.ifft2(np.fft.fft2(f) * filt)

    wave = {(j, ell): conv(x, psi[j, ell]) for j, ell in np.ndindex(psi.shape[:2])}
    out = []
    for t, j1, l1, j2, l2, j3, l3 in zip(*labels.values(), strict=True):
        if t == "mean":
            out.append(x.mean())
        elif t == "S1":
            out.append(np.abs(wave[j1, l1]).mean())
        elif t == "S2":
            out.append((np.abs(wave[j1, l1]) ** 2).mean())
        elif t == "C01":
            envelope = conv(np.abs(wave[j1, l1]), psi[j2, l2])
            out.append((wave[j2, l2] * envelope.conj()).mean())
        else:
            a = conv(np.abs(wave[j1, l1]), psi[j3, l3])
            b = conv(np.abs(wave[j2, l2]), psi[j3, l3])
            out.append((a * b.conj()).mean())
    return np.array(out)


@pytest.mark.parametrize("kind", ["morlet", "bump"])
def test_covariance_equals_the_direct_computation_in_space(kind):
    x = _field((32, 32), n=2)
    stats = sc.ScatteringCovariance((32, 32), J=3, L=3, kind=kind, dtype=torch.float64)
    values = stats(x).numpy()
    assert values.shape == (2, stats.size)
    for sample in range(2):
        expected = _direct_covariance(x[sample].numpy(), stats.bank, stats.labels)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(values[sample], expected, rtol=0, atol=1e-7 * scale)


def test_cropping_the_fourier_plane_changes_nothing_visible(monkeypatch):
    x = _field((64, 64), n=1, seed=3)
    cropped = sc.ScatteringCovariance((64, 64), J=4, L=4, dtype=torch.float64)(x)
    monkeypatch.setattr(sc, "_CROP", 0.0)
    full = sc.ScatteringCovariance((64, 64), J=4, L=4, dtype=torch.float64)(x)
    torch.testing.assert_close(cropped, full, rtol=0, atol=1e-6 * float(full.abs().max()))


def test_cross_statistics_of_a_field_with_itself_are_its_statistics():
    x = _field((32, 32), n=2, seed=5)
    stats = sc.ScatteringCovariance((32, 32), J=3, L=2, dtype=torch.float64)
    torch.testing.assert_close(stats(x, x.clone()), stats(x))
    y = _field((32, 32), n=2, seed=6)
    assert not torch.allclose(stats(x, y), stats(x))


# --- identities and invariances ------------------------------------------------------------


def test_band_powers_and_low_pass_power_frame_the_variance():
    # Σ_λ S2_λ + ⟨|x ⋆ φ|²⟩ = Σ_k |x̂|² A(k) / N²: between A_min and A_max times ⟨x²⟩
    x = _field((64, 64), n=3, seed=1)
    stats = sc.ScatteringCovariance((64, 64), J=5, L=8, dtype=torch.float64)
    values = stats(x)
    s2 = values[:, stats.labels["type"] == "S2"].real.sum(dim=1)
    low = torch.fft.ifft2(torch.fft.fft2(x) * stats.bank.phi).abs().square().mean(dim=(-2, -1))
    energy = x.square().mean(dim=(-2, -1))
    frame = stats.bank.littlewood_paley()
    ratio = (s2 + low) / energy
    assert (ratio >= frame.min() - 1e-12).all() and (ratio <= frame.max() + 1e-12).all()
    exact = (torch.fft.fft2(x).abs().square() * frame).sum(dim=(-2, -1)) / 64**4
    torch.testing.assert_close(s2 + low, exact)


def test_statistics_are_translation_invariant():
    x = _field((32, 32), n=1, seed=2)
    stats = sc.ScatteringCovariance((32, 32), J=3, L=4, dtype=torch.float64)
    shifted = torch.roll(x, shifts=(5, -11), dims=(-2, -1))
    torch.testing.assert_close(stats(shifted), stats(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["morlet", "bump"])
def test_rotation_by_90_degrees_shifts_orientations_by_half(kind):
    # documented map: torch.rot90(x, 1) has at ℓ the statistics of x at (ℓ + L/2) mod L, with
    # a linear wavelet coefficient conjugated where the index wraps: C01 when ℓ2 ≥ L/2, C11 when
    # ℓ3 ≥ L/2 (ψ_{θ+π} = conj ψ_θ in space, so x ⋆ ψ_{θ+π} = conj(x ⋆ ψ_θ) for real x)
    L = 4  # noqa: N806
    x = _field((32, 32), n=1, seed=4)
    stats = sc.ScatteringCovariance((32, 32), J=3, L=L, kind=kind, dtype=torch.float64)
    original, rotated = stats(x)[0], stats(torch.rot90(x, 1, dims=(-2, -1)))[0]
    lab = stats.labels
    position = {key: i for i, key in enumerate(zip(*lab.values(), strict=True))}
    for i, (t, j1, l1, j2, l2, j3, l3) in enumerate(zip(*lab.values(), strict=True)):

        def turn(ell):
            return (ell + L // 2) % L if ell >= 0 else ell

        source = original[position[(t, j1, turn(l1), j2, turn(l2), j3, turn(l3))]]
        wraps = (t == "C01" and l2 >= L // 2) or (t == "C11" and l3 >= L // 2)
        expected = source.conj() if wraps else source
        # to the Fourier cropping (ψ̂² < 1e-7 of its maximum left out; not rotation-symmetric
        # on a grid whose Nyquist row holds −π only)
        torch.testing.assert_close(rotated[i], expected, rtol=1e-6, atol=1e-12)


def test_isotropic_reduction_is_invariant_under_rotation_by_90_degrees():
    x = _field((32, 32), n=1, seed=4)
    a = sc.scattering_covariance(x, J=3, L=4, reduction="isotropic")
    b = sc.scattering_covariance(torch.rot90(x, 1, dims=(-2, -1)), J=3, L=4, reduction="isotropic")
    modulus = np.abs(a.values).max()
    # C01/C11 rows are averages over l1 of values that are conjugated for half of them
    np.testing.assert_allclose(b.values.real, a.values.real, atol=1e-10 * modulus)
    assert a.sizes["coeff"] < sc.ScatteringCovariance((32, 32), 3, 4).size
    assert (a.l1.values == -1).all()


def test_scale_reduction_groups_by_scale_offsets():
    x = _field((32, 32), n=1)
    full = sc.scattering_covariance(x, J=3, L=2)
    reduced = sc.scattering_covariance(x, J=3, L=2, reduction="isotropic+scale")
    c11 = reduced.where(reduced.type == "C11", drop=True)
    # offsets (j2 − j1, j3 − j1) with 0 ≤ j2 − j1 ≤ j3 − j1 ≤ 2, times (l2 − l1, l3 − l1)
    assert c11.sizes["coeff"] == 6 * 4
    expected = full.where((full.type == "C01") & (full.j2 == full.j1), drop=True).values.mean()
    zero_offset = reduced.where((reduced.type == "C01") & (reduced.j2 == 0), drop=True)
    assert zero_offset.values.mean() == pytest.approx(expected)


def test_angular_harmonics_are_a_dft_over_relative_orientations():
    x = _field((32, 32), n=2, seed=9)
    op = sc.ScatteringCovariance((32, 32), 3, 4, dtype=torch.float64)
    values, labels = sc.reduce(op(x), op.labels, "isotropic")
    harmonics = sc.angular_harmonics(values, labels)
    kind = labels["type"]
    same = ~np.isin(kind, ("C01", "C11"))
    torch.testing.assert_close(harmonics[:, same], values[:, same])
    for name, axes in (("C01", 1), ("C11", 2)):  # Parseval per block: Σ|Ĉ|² = L^axes Σ|C|²
        rows = kind == name
        ratio = harmonics[:, rows].abs().square().sum(1) / values[:, rows].abs().square().sum(1)
        torch.testing.assert_close(ratio, torch.full_like(ratio, 4.0**axes))
    c01 = (kind == "C01") & (labels["j1"] == 0) & (labels["j2"] == 1)
    block = values[:, c01]  # ordered by δl2 = 0..3 within the (0, 1) block
    torch.testing.assert_close(harmonics[:, c01][:, 0], block.sum(dim=1))  # m = 0: the sum
    with pytest.raises(ValueError, match="isotropic"):
        sc.angular_harmonics(op(x), op.labels)


def test_scale_cosine_is_scipys_orthonormal_dct_along_j1():
    from scipy.fft import dct

    x = _field((32, 32), n=2, seed=4)
    op = sc.ScatteringCovariance((32, 32), 4, 2, dtype=torch.float64)
    values, labels = sc.reduce(op(x), op.labels, "isotropic")
    cosine, keys = sc.scale_cosine(values, labels)
    kind, j1 = labels["type"], labels["j1"]
    offsets = [np.where(labels[k] >= 0, labels[k] - j1, -1) for k in ("j2", "j3")]
    rest = np.stack([*offsets, labels["l2"], labels["l3"]], 1)  # what a sequence shares
    rest_out = np.stack([keys[k] for k in ("j2", "j3", "l2", "l3")], 1)
    checked = 0
    for name in ("S1", "C01", "C11"):
        for shared in np.unique(rest[kind == name], axis=0):
            rows = np.flatnonzero((kind == name) & (rest == shared).all(1))
            rows = rows[np.argsort(j1[rows])]  # the sequence along j1 = 0, 1, …
            expected = dct(values[:, rows].numpy(), type=2, norm="ortho", axis=-1)
            out = np.flatnonzero((keys["type"] == name) & (rest_out == shared).all(1))
            out = out[np.argsort(keys["j1"][out])]  # by cosine index k
            np.testing.assert_allclose(cosine[:, out].numpy(), expected, rtol=1e-12, atol=1e-14)
            checked += 1
    assert checked > 10
    mean = kind == "mean"
    torch.testing.assert_close(cosine[:, mean], values[:, mean])
    # c_0 = √N × the average over j1 that reduce(..., "scale") takes
    scale, scale_labels = sc.reduce(values, labels, "scale")
    offsets = (
        (scale_labels["type"] == "C11") & (scale_labels["j2"] == 1) & (scale_labels["j3"] == 2)
    )
    first = (keys["type"] == "C11") & (keys["j1"] == 0) & (keys["j2"] == 1) & (keys["j3"] == 2)
    torch.testing.assert_close(cosine[:, first], scale[:, offsets] * math.sqrt(2))
    with pytest.raises(ValueError, match="averaged over scale"):
        sc.scale_cosine(scale, scale_labels)


def test_significant_compares_the_mean_with_the_sample_scatter():
    samples = torch.tensor([[2.0, 1.0, 3.0 + 1j], [0.0, -1.0, 3.0 - 1j]])  # means 1, 0, 3; std 1
    assert sc.significant(samples, 0.5).tolist() == [True, False, True]
    assert sc.significant(samples, 2.0).tolist() == [False, False, True]
    with pytest.raises(ValueError, match="samples"):
        sc.significant(samples[:1])
    with pytest.raises(ValueError, match="threshold"):
        sc.significant(samples, -1.0)


def test_normalised_statistics_of_the_reference_have_unit_band_power():
    x = _field((32, 32), n=2)
    da = sc.scattering_covariance(x, J=3, L=4, normalize="self")
    np.testing.assert_allclose(da.where(da.type == "S2", drop=True).values, 1.0)
    s1 = da.where(da.type == "S1", drop=True).values.real
    assert (s1 > 0).all() and (s1 <= 1 + 1e-12).all()  # ⟨|W|⟩ ≤ ⟨|W|²⟩^{1/2}


# --- Gaussian values -----------------------------------------------------------------------


def test_gaussian_fields_have_no_phase_modulus_correlation_and_gaussian_envelopes():
    # two independent ensembles with one spectrum: C01 vanishes (odd in x) and C11 agrees
    # between them; a log-normal ensemble with the same seeds is clearly different
    shape, n = (32, 32), 64

    def spectrum(*k):
        return 1 / (0.1 + sum(kk**2 for kk in k))

    stats = sc.ScatteringCovariance(shape, J=3, L=4, dtype=torch.float64)
    first = gaussian_field(spectrum, shape, n, seed=10)
    second = gaussian_field(spectrum, shape, n, seed=11)
    reference = sc.band_powers(stats(first), stats.labels).mean(dim=0)
    a = sc.normalized(stats(first), stats.labels, reference)
    b = sc.normalized(stats(second), stats.labels, reference)
    kind = stats.labels["type"]
    c01 = torch.cat([a[:, kind == "C01"], b[:, kind == "C01"]])
    z01 = c01.mean(dim=0).abs() / (c01.std(dim=0) / math.sqrt(2 * n))
    assert float(z01.max()) < 5.0  # ~1000 complex |z|: P(max > 5) ≈ 1e-3
    c11 = kind == "C11"
    difference = (a[:, c11].real.mean(0) - b[:, c11].real.mean(0)).abs()
    error = torch.sqrt((a[:, c11].real.var(0) + b[:, c11].real.var(0)) / n)
    assert float((difference / error).max()) < 5.0
    lognormal = sc.normalized(stats(torch.exp(first)), stats.labels, reference)
    z_lognormal = lognormal[:, kind == "C01"].mean(0).abs() / (
        lognormal[:, kind == "C01"].std(0) / math.sqrt(n)
    )
    assert float(z_lognormal.max()) > 10.0


# --- gradients and classic scattering ------------------------------------------------------


def test_gradients_match_finite_differences():
    x = _field((16, 16), n=1, seed=7).requires_grad_(True)
    stats = sc.ScatteringCovariance((16, 16), J=2, L=2, dtype=torch.float64)
    weights = torch.randn(
        stats.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )

    def loss(field):
        return (torch.view_as_real(stats(field)).sum(-1) * weights).sum()

    assert torch.autograd.gradcheck(loss, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_local_first_order_scattering_equals_kymatio_on_a_compact_field():
    # a field with wide zero margins: reflection padding (kymatio) and periodic wrapping
    # (rgfield) see the same zeros. kymatio takes the modulus of x ⋆ ψ_j subsampled by 2^j, an
    # approximation for j ≥ 1 (1 % here), so S1 is compared at j = 0, where both are exact
    from kymatio.numpy import Scattering2D

    M, J, L = 64, 3, 4  # noqa: N806
    inner = _field((24, 24), n=1, seed=8, dtype=torch.float64)[0].numpy()
    x = np.zeros((M, M))
    x[20:44, 20:44] = inner - inner.mean()
    reference = Scattering2D(J=J, shape=(M, M), L=L, max_order=1)(x)
    ours = sc.scattering(torch.tensor(x), J, L, local=True)
    s1_reference = reference[1:].reshape(J, L, M // 2**J, M // 2**J)
    scale = np.abs(s1_reference).max()
    np.testing.assert_allclose(ours["S1"][0].numpy(), s1_reference[0], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(ours["S0"].numpy(), reference[0], rtol=0, atol=1e-6 * scale)
    bank = sc.filter_bank((M, M), J, L)
    direct = np.abs(np.fft.ifft2(np.fft.fft2(x) * bank.psi.numpy())).mean(axis=(-2, -1))
    means = sc.scattering(torch.tensor(x), J, L)["S1"].numpy()
    np.testing.assert_allclose(means, direct * float(bank.phi[0, 0]), rtol=1e-12)


# --- input checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sc.filter_bank((32, 32), 6, 4), "J"),
        (lambda: sc.filter_bank((32, 32), 3, 0), "L"),
        (lambda: sc.filter_bank(32, 3, 4), "L"),
        (lambda: sc.filter_bank((32, 32), 3, 4, kind="haar"), "kind"),
        (lambda: sc.ScatteringCovariance((32, 32), 3)(torch.zeros(1, 16, 16)), "shape"),
        (lambda: sc.ScatteringCovariance((8, 8), 2)(torch.full((8, 8), float("nan"))), "NaN"),
        (lambda: sc.scattering_covariance(torch.zeros(2, 8, 8), 2, reduction="polar"), "reduction"),
    ],
)
def test_bad_input_is_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()
