"""The RG sampler on a chosen torch device: the CPU path unchanged, a CUDA path that agrees with
it (energies to rounding, samples in law), and clear errors for unknown devices."""

import numpy as np
import pytest
import torch

from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum
from rgfield.rg import HierarchicalModel, mixing
from rgfield.rg.scales import coarse_to_fine
from rgfield.wavelets import decompose

from .test_model import spectrum_z

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def fitted():
    """A model with both default families (potential, quadratic) on 600 free fields of 16²."""
    spectrum = lattice_free_field_spectrum(beta=1.0, m2=0.5)
    train = gaussian_field(spectrum, (16, 16), 600, seed=11, dtype=torch.float64)
    return HierarchicalModel(progress=False).fit(train), train


def test_cpu_device_is_the_default_path(fitted):
    model, _ = fitted
    default = model.sample(20, seed=3, steps=5, warmup=5)
    explicit = model.sample(20, seed=3, steps=5, warmup=5, device="cpu")
    assert torch.equal(default.fields, explicit.fields)
    assert explicit.attrs["device"] == "cpu"
    with pytest.raises(ValueError, match="device: unknown device 'gpu0'"):
        model.sample(2, device="gpu0")
    with pytest.raises(ValueError, match="device: unknown device 'gpu0'"):
        mixing(model, fitted[1][:4], steps=10, warmup=0, device="gpu0")


@needs_cuda
def test_cuda_energies_match_the_cpu(fitted):
    model, train = fitted
    pyramid = decompose(train[:50], model.levels_, model.wavelet)
    for scale in coarse_to_fine(model.scales_):
        y, c = scale.variables(pyramid)
        cpu = model.factor(scale).energy_and_grad(y, c)
        on_gpu = model.factor(scale).to("cuda")
        assert on_gpu.theta.is_cuda
        cuda = on_gpu.energy_and_grad(y.cuda(), None if c is None else c.cuda())
        for want, got in zip(cpu, cuda, strict=True):
            assert got.is_cuda
            torch.testing.assert_close(got.cpu(), want, rtol=1e-9, atol=1e-9)


@needs_cuda
def test_cuda_samples_have_the_law_of_the_cpu_samples(fitted):
    # the same chains in law: the spectra of 1000 fields from each device agree within the
    # statistical error, and both reproduce the training fields' spectrum
    model, train = fitted
    cpu = model.sample(1000, seed=5, steps=120, warmup=80)
    cuda = model.sample(1000, seed=5, steps=120, warmup=80, device="cuda")
    assert cuda.fields.is_cuda and cuda.attrs["device"] == "cuda"
    fields = cuda.fields.cpu()
    assert np.abs(spectrum_z(cpu.fields, fields)).max() < 5
    assert np.abs(spectrum_z(train, fields)).max() < 5
    acceptance = cuda.diagnostics["acceptance"].values[1:]
    assert np.all(np.abs(acceptance - 0.574) < 0.1), acceptance
    assert cuda.to_dataset()["field"].shape == (1000, 16, 16)
    study = mixing(model, train[:64], steps=50, warmup=20, device="cuda")
    assert np.all(study["seconds_per_step"].values > 0)
    assert np.all(np.isfinite(study["tau_energy"].values))
