import numpy as np
import pytest
import torch

from rgfield.fields.turbulence import (
    BudgetSeries,
    Turbulence2D,
    TurbulenceConfig,
    energy_spectrum,
    fluxes,
    integrate,
    simulate,
)

N = 32


def grid(n=N):
    x = torch.arange(n, dtype=torch.float64) * 2 * np.pi / n
    return torch.meshgrid(x, x, indexing="ij")  # (y, x)


def spectral(omega):
    return torch.fft.rfft2(omega)


def physical(w_hat, n=N):
    return torch.fft.irfft2(w_hat, s=(n, n))


def test_advection_matches_the_analytic_product():
    # ω = sin x + cos 2y: ψ = sin x + cos(2y)/4, u = ∂_yψ = −sin(2y)/2, v = −∂_xψ = −cos x,
    # so u·∇ω = u cos x − 2 v sin 2y = 1.5 cos x sin 2y
    y, x = grid()
    flow = Turbulence2D(size=N, forcing="none")
    omega = torch.sin(x) + torch.cos(2 * y)
    advected = physical(flow.advection(spectral(omega)))
    torch.testing.assert_close(advected, -1.5 * torch.cos(x) * torch.sin(2 * y), rtol=0, atol=1e-12)


def test_modes_of_one_wavenumber_decay_exactly():
    # any superposition of modes with the same |k| has ω ∝ ψ, so u·∇ω = 0 although each
    # pairwise product is not: the flow decays as exp(−(ν k² + ν_h k^{2p} + μ + α/k²) t) exactly
    y, x = grid()
    omega = torch.cos(5 * x) + torch.sin(3 * x + 4 * y) + 0.7 * torch.cos(4 * x - 3 * y)
    flow = Turbulence2D(
        size=N, viscosity=0.01, hyperviscosity=1e-7, drag=0.05, hypodrag=2.0, forcing="none"
    )
    w_hat, _ = integrate(flow, spectral(omega)[None], 2.0, dt_max=0.01)
    rate = 0.01 * 25 + 1e-7 * 25**4 + 0.05 + 2.0 / 25
    torch.testing.assert_close(physical(w_hat[0]), omega * np.exp(-rate * 2.0), rtol=0, atol=1e-11)


def test_laminar_kolmogorov_flow_is_reached_exactly_and_stays():
    # f = −F k_f cos(k_f y) drives ω = A cos(k_f y) with A = −F k_f / (ν k_f² + μ); from rest
    # a y-only flow is not advected, so ω(t) = (1 − e^{−(ν k_f² + μ) t}) A cos(k_f y)
    y, _ = grid()
    flow = Turbulence2D(
        size=N, viscosity=0.05, drag=0.1, forcing="kolmogorov", forcing_wavenumber=2, strength=0.3
    )
    rate = 0.05 * 4 + 0.1
    steady = -0.3 * 2 / rate * torch.cos(2 * y)
    w_hat, _ = integrate(flow, torch.zeros(1, N, N // 2 + 1, dtype=torch.complex128), 3.0)
    torch.testing.assert_close(
        physical(w_hat[0]), steady * (1 - np.exp(-3 * rate)), atol=1e-9, rtol=0
    )
    w_hat, _ = integrate(flow, spectral(steady)[None], 5.0)
    torch.testing.assert_close(physical(w_hat[0]), steady, atol=1e-9, rtol=0)
    # the steady state's budget balances: injection ⟨ψ f⟩ = dissipation
    assert float(flow.injection(spectral(steady)[None])) == pytest.approx(
        float(flow.dissipation(spectral(steady)[None])), rel=1e-12
    )


def test_advection_conserves_energy_and_enstrophy():
    # the 2/3-rule products are exact on the kept modes, so the fluxes vanish beyond them
    omega = torch.randn(3, N, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    flow = Turbulence2D(size=N, forcing="none")
    pi = fluxes(flow, omega)
    scale = np.abs(pi.values).max()
    assert scale > 0
    np.testing.assert_allclose(pi.isel(k=-1).values, 0, atol=1e-12 * scale)


def test_energy_budget_is_closed_by_the_time_stepping():
    # E(t1) − E(t0) = ∫ (injection − dissipation) dt for a deterministic turbulent flow
    flow = Turbulence2D(
        size=N, viscosity=0.01, drag=0.05, forcing="kolmogorov", forcing_wavenumber=2, strength=1.0
    )
    w0 = spectral(
        torch.randn(1, N, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )
    w_hat, _ = integrate(
        flow, w0 * flow.grid()["keep"], 2.0, dt_max=0.002
    )  # into the turbulent regime
    series = BudgetSeries()
    series.record(flow, 0.0, w_hat)
    integrate(flow, w_hat, 1.0, dt_max=0.002, interval=0.002, series=series)
    e = series.array("energy")[0]
    balance = series.array("injection")[0] - series.array("dissipation")[0]
    integral = np.trapezoid(balance, series.time)
    assert abs(e[-1] - e[0]) > 1e-3 * e[0]  # the energy does change
    assert e[-1] - e[0] == pytest.approx(integral, rel=1e-3)


def test_ring_forcing_injects_its_rate_and_spectrum_shells_sum_to_the_energy():
    flow = Turbulence2D(
        size=N, forcing="ring", forcing_wavenumber=4, strength=0.5, drag=0.0, viscosity=0.0
    )
    g = flow.grid()
    gen = torch.Generator().manual_seed(0)
    # E[ΔE] of one increment √dt ξ̂ is ε dt: average over 4000 independent increments,
    # whose energies are sums of squared Gaussians (relative s.e. ≈ √(2 / (4000 · modes)))
    increments = flow.ring_increment((4000,), g, torch.float64, gen)
    mean = float(flow.energy(increments).mean())
    modes = int((g["ring"] * g["weight"]).sum())
    assert mean == pytest.approx(0.5, rel=5 * np.sqrt(2 / (4000 * modes)))
    omega = physical(increments[:3])
    spectrum = energy_spectrum(flow, omega)
    total = spectrum.sel(quantity="energy").sum("k").values
    np.testing.assert_allclose(total, flow.energy(increments[:3]).numpy(), rtol=1e-12)


def test_simulate_reaches_stationarity_with_balanced_budget():
    flow = Turbulence2D(
        size=N, viscosity=5e-3, drag=0.2, forcing="ring", forcing_wavenumber=4, strength=0.2
    )
    ds = simulate(TurbulenceConfig(flow, flows=8), 80, seed=0, progress=False)
    assert ds["vorticity"].dims == ("sample", "y", "x") and ds.sizes["sample"] == 80
    assert ds.attrs["stationary"] == 1 and ds.attrs["spacing"] > 0
    stationary = ds.time > ds.attrs["spin_up_time"]
    dissipation = ds["dissipation"].where(stationary, drop=True).values
    # block means over spans of 2 τ (independent) give the standard error of the mean
    tau = max(ds.attrs["tau_energy"], ds.attrs["tau_enstrophy"])
    per_block = max(1, int(2 * tau / (ds.attrs["block_time"] / 100)))
    blocks = dissipation[: len(dissipation) // per_block * per_block].reshape(-1, per_block).mean(1)
    error = blocks.std(ddof=1) / np.sqrt(len(blocks))
    # injection (0.2 exactly on average) balances dissipation within the statistical error,
    # and that error is small enough to show the 5 %
    assert abs(dissipation.mean() - 0.2) < 4 * error, (dissipation.mean(), error)
    assert 4 * error < 0.05 * 0.2, error


def test_bad_parameters_give_clear_errors():
    with pytest.raises(ValueError, match="size"):
        Turbulence2D(size=31)
    with pytest.raises(ValueError, match="forcing must"):
        Turbulence2D(forcing="random")
    with pytest.raises(ValueError, match="forcing_wavenumber"):
        Turbulence2D(size=32, forcing_wavenumber=12)
    with pytest.raises(ValueError, match="viscosity"):
        Turbulence2D(viscosity=-1)
    with pytest.raises(ValueError, match="generator"):
        flow = Turbulence2D(size=16, forcing_wavenumber=2)
        flow.step(torch.zeros(1, 16, 9, dtype=torch.complex128), 0.01)
    with pytest.raises(ValueError, match="omega must have shape"):
        energy_spectrum(Turbulence2D(size=16, forcing_wavenumber=2), torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="block_time"):
        TurbulenceConfig(Turbulence2D(size=16, forcing_wavenumber=2, drag=0))
    flow = Turbulence2D(size=16, forcing_wavenumber=2)
    for bad, match in [
        ({"flows": 0}, "flows"),
        ({"spacing": -1.0}, "spacing"),
        ({"dtype": "float16"}, "dtype"),
        ({"cfl": 0}, "cfl"),
    ]:
        with pytest.raises(ValueError, match=match):
            TurbulenceConfig(flow, **bad)
    with pytest.raises(ValueError, match="config must be a TurbulenceConfig"):
        simulate(flow, 2)
    with pytest.raises(ValueError, match="samples"):
        simulate(TurbulenceConfig(flow), 0)


def test_cli_simulate_turbulence_writes_a_loadable_ensemble(tmp_path, capsys):
    from rgfield import io
    from rgfield.cli import main

    out = tmp_path / "turbulence.nc"
    args = ["simulate", "turbulence", "--size", "16", "--kf", "2", "--drag", "0.5"]
    args += ["--samples", "4", "--seed", "5", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    da = io.load(out)
    assert da.name == "vorticity" and da.sizes == {"sample": 4, "y": 16, "x": 16}
    assert da.attrs["seed"] == 5 and da.attrs["forcing"] == "ring" and da.attrs["drag"] == 0.5
    assert "spin-up" in capsys.readouterr().out
    # with --velocity, u and v are stored; their curl ∂ₓv − ∂ᵧu is the vorticity, div = 0
    assert main([*args, "--velocity", "--overwrite"]) == 0
    omega, u, v = (io.load(out, name).values.astype(np.float64) for name in ("vorticity", "u", "v"))
    k = np.fft.fftfreq(16, 1 / 16)
    ky, kx = k[:, None], k[None, :]

    def derivative(f, kk):
        return np.fft.ifft2(1j * kk * np.fft.fft2(f)).real

    np.testing.assert_allclose(derivative(v, kx) - derivative(u, ky), omega, atol=1e-4)
    np.testing.assert_allclose(derivative(u, kx) + derivative(v, ky), 0, atol=1e-4)


def test_shipped_turbulence_ensemble_loads_with_its_provenance():
    from pathlib import Path

    from rgfield import io

    da = io.load(Path(__file__).parents[2] / "data" / "turbulence_N128.nc")
    assert da.name == "vorticity" and da.sizes == {"sample": 64, "y": 128, "x": 128}
    assert da.attrs["generator"] == "rgfield.fields.turbulence.simulate"
    assert da.attrs["stationary"] == 1 and da.attrs["seed"] == 1
