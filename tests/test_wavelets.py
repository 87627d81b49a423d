import warnings

import numpy as np
import pytest
import pywt
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from rgfield import wavelets as W

BACKENDS = ["numba", "torch"]


def pywt_pyramid(x: np.ndarray, wavelet: str, levels: int, ndim: int):
    with warnings.catch_warnings():  # pywt warns when filters are longer than coarse signals
        warnings.simplefilter("ignore", UserWarning)
        return pywt.wavedecn(
            x, wavelet, mode="periodization", level=levels, axes=tuple(range(-ndim, 0))
        )


def assert_equals_pywt(pyr: W.Pyramid, ref, atol=1e-10):
    np.testing.assert_allclose(pyr.low.numpy(), ref[0], rtol=0, atol=atol)
    for j in range(pyr.levels):
        level = ref[-1 - j]  # pywt: coarsest first
        for c, label in enumerate(W.detail_labels(pyr.ndim)):
            np.testing.assert_allclose(
                pyr.details[j][..., c, *([slice(None)] * pyr.ndim)].numpy(),
                level[label],
                rtol=0,
                atol=atol,
            )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("ndim", "shape", "wavelet", "levels"),
    [
        (1, (5, 64), "db1", 6),
        (1, (3, 32), "sym9", 2),
        (2, (2, 32, 64), "db4", 3),
        (2, (16, 16), "db10", 4),  # filters of 20 taps wrap several times around 1×1 fields
        (2, (3, 32, 32), "sym5", 2),
        (3, (2, 8, 16, 8), "db2", 2),
        (3, (16, 16, 16), "sym4", 3),
    ],
)
def test_decompose_equals_pywavelets(backend, ndim, shape, wavelet, levels):
    x = np.random.default_rng(0).standard_normal(shape)
    pyr = W.decompose(x, levels, wavelet, ndim, backend=backend)
    assert_equals_pywt(pyr, pywt_pyramid(x, wavelet, levels, ndim))
    assert pyr.low.dtype == torch.float64


@pytest.mark.parametrize("backend", BACKENDS)
def test_2d_matches_wavedec2_and_waverec2(backend):
    x = np.random.default_rng(1).standard_normal((4, 64, 64))
    ref = pywt.wavedec2(x, "db4", mode="periodization", level=3)
    pyr = W.decompose(x, 3, backend=backend)
    np.testing.assert_allclose(pyr.low.numpy(), ref[0], atol=1e-10, rtol=0)
    for j, (ch, cv, cd) in enumerate(reversed(ref[1:])):
        np.testing.assert_allclose(pyr.details[j].numpy(), np.stack([ch, cv, cd], 1), atol=1e-10)
    back = pywt.waverec2(ref, "db4", mode="periodization")
    np.testing.assert_allclose(W.reconstruct(pyr, backend=backend).numpy(), back, atol=1e-10)


@pytest.mark.parametrize("wavelet", W.WAVELETS)
def test_every_wavelet_reconstructs_and_matches_pywt_2d(wavelet):
    x = np.random.default_rng(2).standard_normal((2, 32, 32))
    pyr = W.decompose(x, 2, wavelet)
    assert_equals_pywt(pyr, pywt_pyramid(x, wavelet, 2, 2))
    np.testing.assert_allclose(W.reconstruct(pyr).numpy(), x, atol=1e-10, rtol=0)


@pytest.mark.parametrize("wavelet", W.WAVELETS)
def test_polyphase_tables_need_half_the_filter_length(wavelet):
    # the phase of the sample pairs is chosen so that a filter of length L needs L/2 shifts
    # (rounded up to an even count, as the kernels take taps in pairs), not L/2 + 1
    half = len(pywt.Wavelet(wavelet).dec_lo) // 2
    tables = W._polyphase_taps(wavelet)
    assert tables.analysis.shape == tables.synthesis.shape == (2, 2, half + half % 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_perfect_reconstruction_and_norm(backend, dtype, ndim):
    shape = (2, 3) + (16,) * ndim  # two leading batch dimensions
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    pyr = W.decompose(x, 3, "sym4", ndim, backend=backend)
    # float64: PyWavelets' sym4 taps are orthonormal only to ~5e-13 (Σh² − 1), so its own
    # round trip errs by ~3e-12 too; 1e-10 is the bound.
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    y = W.reconstruct(pyr, backend=backend)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y, x, atol=tol, rtol=0)
    energy = pyr.low.square().sum(tuple(range(2, 2 + ndim)))
    energy = energy + sum(d.square().sum(tuple(range(2, 3 + ndim))) for d in pyr.details)
    torch.testing.assert_close(energy, x.square().sum(tuple(range(2, 2 + ndim))), rtol=tol, atol=0)


def test_backends_agree_in_float32():
    x = torch.randn(3, 64, 32)
    a = W.decompose(x, 4, backend="numba")
    b = W.decompose(x, 4, backend="torch")
    torch.testing.assert_close(a.low, b.low, atol=1e-5, rtol=0)
    for da, db in zip(a.details, b.details, strict=True):
        torch.testing.assert_close(da, db, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_gradient_of_pyramid_energy_is_2x(backend, ndim):
    x = torch.randn((2,) + (8,) * ndim, dtype=torch.float64, requires_grad=True)
    pyr = W.decompose(x, 2, "db3", ndim, backend=backend)
    energy = pyr.low.square().sum() + sum(d.square().sum() for d in pyr.details)
    (grad,) = torch.autograd.grad(energy, x)
    torch.testing.assert_close(grad, 2 * x.detach(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_and_merge_pass_gradcheck(backend):
    x = torch.randn(2, 8, 8, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    d = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: W.split(v, "db2", backend=backend), (x,))
    assert torch.autograd.gradcheck(lambda a, b: W.merge(a, b, "db2", backend=backend), (c, d))
    assert torch.autograd.gradgradcheck(lambda v: W.split(v, "db2", backend=backend), (x,))


def test_split_merge_single_step_shapes_and_inputs():
    x = np.random.default_rng(4).standard_normal((5, 16, 32)).astype(np.float32)
    coarse, details = W.split(x)
    assert coarse.shape == (5, 8, 16) and details.shape == (5, 3, 8, 16)
    assert coarse.dtype == torch.float32
    da = xr.DataArray(x, dims=("sample", "y", "x"))
    torch.testing.assert_close(W.split(da)[1], details)
    torch.testing.assert_close(W.merge(coarse, details), torch.from_numpy(x), atol=1e-5, rtol=0)
    c1, d1 = W.split(x[0, 0], ndim=1)
    assert c1.shape == (16,) and d1.shape == (1, 16)


def test_pyramid_coarse_fields_match_shallower_decompositions():
    x = torch.randn(2, 32, 32, dtype=torch.float64)
    pyr = W.decompose(x, 4)
    torch.testing.assert_close(pyr.coarse(0), x, atol=1e-12, rtol=0)
    for j in (1, 2, 4):
        torch.testing.assert_close(pyr.coarse(j), W.decompose(x, j).low, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="level"):
        pyr.coarse(5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_normalisation_gives_unit_scales_and_inverts(per_channel):
    gen = torch.Generator().manual_seed(5)
    x = torch.cumsum(torch.randn(8, 32, 32, generator=gen, dtype=torch.float64), -1)  # red field
    pyr = W.decompose(x, 3)
    scales = W.estimate_scales(pyr, per_channel=per_channel)
    normed = pyr.normalize(scales)
    dims = (0, 2, 3) if per_channel else None
    for d in normed.details:
        rms = d.square().mean(dims).sqrt() if dims else d.square().mean().sqrt()
        torch.testing.assert_close(rms, torch.ones_like(rms))
    torch.testing.assert_close(normed.low.square().mean().sqrt(), torch.tensor(1.0, dtype=x.dtype))
    assert scales.details[0].shape == ((3, 1, 1) if per_channel else ())
    back = normed.denormalize(scales)
    torch.testing.assert_close(W.reconstruct(back), x, atol=1e-10, rtol=0)
    # a red spectrum puts more energy in coarser details
    assert scales.details[2].max() > scales.details[0].max()


def test_normalising_a_constant_scale_is_an_error():
    pyr = W.decompose(torch.ones(2, 8, 8), 1)
    with pytest.raises(ValueError, match="constant"):
        W.estimate_scales(pyr)


def test_validation_errors_name_the_argument():
    x = torch.randn(2, 24, 32)
    with pytest.raises(ValueError, match="not divisible by 16"):
        W.decompose(x, 4)
    with pytest.raises(ValueError, match="not divisible by 2"):
        W.split(torch.randn(3, 7))
    with pytest.raises(ValueError, match="wavelet must be one of"):
        W.decompose(x, 1, "coif3")
    with pytest.raises(ValueError, match="levels"):
        W.decompose(x, 0)
    with pytest.raises(ValueError, match="ndim"):
        W.split(x, ndim=4)
    with pytest.raises(ValueError, match="backend"):
        W.split(x, backend="cuda")
    with pytest.raises(ValueError, match="backend='numba' runs on CPU tensors"):
        W.split(torch.empty(2, 8, 8, device="meta"), backend="numba")
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        W.split(torch.randn(8, 8), ndim=3)
    with pytest.raises(ValueError, match="do not form one RG step"):
        W.merge(torch.randn(2, 4, 4), torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="float16 is not supported"):
        W.split(torch.randn(2, 8, 8).half())
    with pytest.raises(ValueError, match="expected a numpy array"):
        W.split("field")
    with pytest.raises(ValueError, match="levels"):
        W.decompose(x, 1).normalize(W.PyramidScales(torch.tensor(1.0), []))


def test_follows_input_device_without_a_gpu():
    x = torch.randn(2, 16, 16, device="cpu")
    for backend in BACKENDS:
        pyr = W.decompose(x, 2, backend=backend)
        assert pyr.low.device == x.device and W.reconstruct(pyr).device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(4, 64, 64, dtype=torch.float64)
    pyr = W.decompose(x.cuda(), 3)
    assert pyr.low.is_cuda
    torch.testing.assert_close(pyr.low.cpu(), W.decompose(x, 3).low, atol=1e-10, rtol=0)
    torch.testing.assert_close(W.reconstruct(pyr).cpu(), x, atol=1e-10, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    ndim=st.integers(1, 3),
    levels=st.integers(1, 3),
    extra=st.lists(st.integers(1, 3), min_size=3, max_size=3),
    wavelet=st.sampled_from(W.WAVELETS),
    batch=st.integers(1, 3),
)
def test_reconstruction_property(ndim, levels, extra, wavelet, batch):
    shape = (batch,) + tuple(2**levels * e for e in extra[:ndim])
    x = torch.randn(shape, dtype=torch.float64)
    pyr = W.decompose(x, levels, wavelet, ndim)
    torch.testing.assert_close(W.reconstruct(pyr), x, atol=1e-10, rtol=0)


@pytest.mark.parametrize(("backend", "ndim"), [("numba", 1), ("numba", 3), ("torch", 2)])
def test_split_outputs_are_separate_contiguous_tensors(backend, ndim):
    x = torch.randn((2,) + (8,) * ndim, dtype=torch.float64, requires_grad=True)
    coarse, details = W.split(x, ndim=ndim, backend=backend)
    assert coarse.is_contiguous() and details.is_contiguous()
    assert coarse.untyped_storage().data_ptr() != details.untyped_storage().data_ptr()
    (coarse * 2).sum().backward()  # gradient through one output only


def test_scales_of_a_field_with_a_large_mean_are_accepted():
    # float32, 3D, J = 3: the coarse field's scale is ~10·2^4.5 while fine details are ~0.01
    x = 10 + 0.01 * torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(6))
    scales = W.estimate_scales(W.decompose(x, 3, ndim=3))
    assert 0.005 < float(scales.details[0]) < 0.02


def test_integer_arguments_must_be_integers():
    x = torch.randn(2, 8, 8)
    with pytest.raises(ValueError, match="ndim"):
        W.split(x, ndim=2.0)
    with pytest.raises(ValueError, match="levels"):
        W.decompose(x, True)
    with pytest.raises(ValueError, match="level"):
        W.decompose(x, 2).coarse(1.5)
    with pytest.raises(ValueError, match="empty"):
        W.decompose(torch.zeros(0, 8, 8), 1)


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_decompose_refuses_nan_and_inf(bad):
    x = np.random.default_rng(0).standard_normal((2, 16, 16))
    x[0, 3, 4] = bad
    with pytest.raises(ValueError, match=r"x contains 1 NaN or Inf values"):
        W.decompose(x, 2)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("wavelet", ["db1", "db4", "sym8"])
def test_a_bad_value_anywhere_is_found_through_the_coarsest_field(wavelet, backend):
    # decompose tests the sum of the coarsest field only: every pixel must reach it
    clean = torch.randn(1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for k in range(64):
        x = clean.clone()
        x.view(-1)[k] = np.inf if k % 2 else np.nan
        with pytest.raises(ValueError, match=r"x contains 1 NaN or Inf values"):
            W.decompose(x, 3, wavelet, backend=backend)
