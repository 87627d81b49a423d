"""The UNet's symmetries and the EDM preconditioning's exact limit."""

import numpy as np
import pytest
import torch
from torch import nn

from rgfield.diffusion import Ensemble, Preconditioned, UNet


def test_unet_is_periodic_translation_equivariant():
    """Circular padding: shifting the input by a multiple of the coarsest cell (4 pixels for 3
    levels), also across the border, shifts the output the same way."""
    torch.manual_seed(0)
    denoiser = Preconditioned(UNet(width=8, levels=3)).eval()
    x = torch.randn(2, 16, 16)
    with torch.no_grad():
        shifted = denoiser(torch.roll(x, (4, -8), (-2, -1)), 0.5)
        expected = torch.roll(denoiser(x, 0.5), (4, -8), (-2, -1))
    np.testing.assert_allclose(shifted.numpy(), expected.numpy(), atol=1e-5)


def test_bias_free_unet_is_homogeneous_and_blind():
    """No additive constant: D(a x, σ) = a D(x, σ) for a > 0; the network ignores σ."""
    torch.manual_seed(0)
    network = UNet(width=8, levels=2, bias=False)
    assert not any("bias" in name for name, _ in network.named_parameters())
    network.train()
    network(torch.randn(8, 1, 8, 8), torch.zeros(8))  # running statistics away from 1
    network.eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(
            network(2.5 * x, torch.zeros(3)).numpy(),
            2.5 * network(x, torch.zeros(3)).numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_array_equal(
            network(x, torch.zeros(3)).numpy(), network(x, torch.full((3,), 2.0)).numpy()
        )


class Zero(nn.Module):
    def forward(self, x, c_noise):
        return torch.zeros_like(x)


@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_preconditioning_with_a_zero_network_is_the_white_gaussian_wiener_filter(sigma_data):
    """F ≡ 0 gives D = σ_d²/(σ² + σ_d²) x, the posterior mean of white N(0, σ_d²) data."""
    x = torch.randn(4, 8, 8, dtype=torch.float64)
    sigma = torch.tensor([0.1, 1.0, 3.0, 30.0], dtype=torch.float64)
    got = Preconditioned(Zero(), sigma_data)(x, sigma)
    expected = sigma_data**2 / (sigma**2 + sigma_data**2)[:, None, None] * x
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)


def test_with_a_spectrum_and_a_zero_network_the_denoiser_is_the_wiener_oracle():
    """F ≡ 0 with the Wiener skip is the posterior mean of the Gaussian field of spectrum P
    (rgfield.diffusion.WienerDenoiser), and c_out² is that filter's mean squared error, so
    the loss weight 1/c_out² gives the optimal Gaussian denoiser a loss of exactly 1."""
    from rgfield.diffusion import WienerDenoiser

    k = torch.fft.fftfreq(8, dtype=torch.float64)
    power = 1 / (0.05 + k[:, None] ** 2 + k[None, :] ** 2)
    oracle, denoiser = WienerDenoiser(power), Preconditioned(Zero(), power=power)
    x = torch.randn(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for sigma in (0.01, 0.3, 3.0, 80.0):
        np.testing.assert_allclose(denoiser(x, sigma).numpy(), oracle(x, sigma).numpy(), 1e-12)
        weight = denoiser.loss_weight(torch.tensor([sigma], dtype=torch.float64))
        np.testing.assert_allclose(float(weight) * oracle.mse(sigma), 1.0, rtol=1e-12)


def test_a_flat_spectrum_is_the_scalar_preconditioning():
    """P_k ≡ σ_d² reduces the Wiener skip, c_out and c_in to EDM's scalar coefficients, for a
    network that is not zero (a fixed circular convolution that reads c_noise)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular").double()

    class Linear(nn.Module):
        def forward(self, x, c_noise):
            return conv(x) * (1 + c_noise[:, None, None, None])

    x = torch.randn(4, 8, 8, dtype=torch.float64)
    sigma = torch.tensor([0.1, 1.0, 3.0, 30.0], dtype=torch.float64)
    flat = torch.full((8, 8), 0.25, dtype=torch.float64)
    with torch.no_grad():
        scalar = Preconditioned(Linear(), sigma_data=0.5)(x, sigma)
        spectral = Preconditioned(Linear(), power=flat)(x, sigma)
    np.testing.assert_allclose(spectral.numpy(), scalar.numpy(), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="power"):
        Preconditioned(Zero(), power=torch.zeros(8, 8))


def test_unet_refuses_bad_sizes_and_options():
    with pytest.raises(ValueError, match="divisible"):
        UNet(width=4, levels=3)(torch.zeros(1, 1, 10, 10), torch.zeros(1))
    with pytest.raises(ValueError, match="width"):
        UNet(width=0)


def test_an_ensemble_averages_its_members():
    """D = (D_1 + D_2 + D_3)/3 for three differently initialised preconditioned UNets."""
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(Preconditioned(UNet(width=4, levels=2)).eval())
    x = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = sum(m(x, 0.7) for m in members) / 3
        torch.testing.assert_close(Ensemble(members)(x, 0.7), expected)
    with pytest.raises(ValueError, match="members"):
        Ensemble([])
