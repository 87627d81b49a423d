"""HierarchicalModel: estimator rules, fitting and sampling against exact Gaussian results,
the energy against the microscopic couplings, and errors."""

import copy
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rgfield import io, stats
from rgfield.fields.phi4 import Phi4, fit_couplings
from rgfield.rg import HierarchicalModel, mixing, sampling
from rgfield.rg.scales import coarse_to_fine
from rgfield.wavelets import decompose, estimate_scales


def spectrum_z(reference, samples) -> np.ndarray:
    """z of the mean power spectrum per shell with the combined standard error."""
    means, errors = [], []
    for fields in (reference, samples):
        p = stats.power_spectrum(fields)
        means.append(p.mean("sample").values)
        errors.append(p.std("sample").values / np.sqrt(p.sizes["sample"]))
    return (means[1] - means[0]) / np.hypot(*errors)


def test_constructor_stores_parameters_and_fit_learns_attributes_ending_in_underscore(
    free_field,
):
    # scikit-learn's rules: no validation and no state in the constructor
    model = HierarchicalModel(levels=0, wavelet="haar2", refine=-1)
    assert model.get_params()["levels"] == 0 and model.get_params()["wavelet"] == "haar2"
    assert not [name for name in vars(model) if name.endswith("_")]
    model.set_params(levels=None, wavelet="db4", refine=0, progress=False)
    fields = free_field(40, size=8)
    assert model.fit(fields) is model
    learned = {name for name in vars(model) if name.endswith("_")}
    assert learned == {
        "levels_",
        "size_",
        "scales_",
        "low_",
        "conditionals_",
        "free_energies_",
        "fit_report_",
        "free_energy_report_",
        "starts_",
        "band_",
        "calibration_",
    }
    assert model.levels is None and model.levels_ == 3 and model.size_ == (8, 8)
    # the per-scale normalisation is the wavelets module's
    expected = estimate_scales(decompose(fields, 3, "db4"))
    torch.testing.assert_close(model.scales_.low, expected.low)
    for got, want in zip(model.scales_.details, expected.details, strict=True):
        torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="not a parameter"):
        model.set_params(level=3)


def test_gaussian_free_field_is_reproduced_scale_by_scale(free_field):
    # with quadratic features over every shift of each grid the model class contains the
    # exact conditionals of a stationary Gaussian field, so only statistical error remains
    train = free_field(2000, seed=1)
    model = HierarchicalModel(features=["quadratic"], progress=False).fit(train)
    result = model.sample(2000, seed=2, steps=150, warmup=100, sampler="mala")
    z = spectrum_z(train, result.fields)
    assert np.abs(z).max() < 5, z
    diagnostics = result.diagnostics
    assert list(diagnostics["scale"].values) == ["low", "j=4", "j=3", "j=2", "j=1"]
    # the 1×1 coarsest field is drawn exactly; MALA's warm-up tunes the others to 0.574
    assert diagnostics["exact"].values.tolist() == [1, 0, 0, 0, 0]
    acceptance = diagnostics["acceptance"].values[1:]
    assert np.all(np.abs(acceptance - 0.574) < 0.1), acceptance


def test_automatic_steps_measure_tau_int_on_a_pilot_and_run_ten(free_field, monkeypatch):
    train = free_field(1000, seed=1)
    model = HierarchicalModel(features=["quadratic"], progress=False).fit(train)
    result = model.sample(1000, seed=2, warmup=50, sampler="mala")  # steps="auto", the default
    assert np.abs(spectrum_z(train, result.fields)).max() < 5
    d = result.diagnostics.isel(scale=slice(1, None))  # the 1×1 coarsest field is exact
    tau, steps, pilot_steps = d["tau"].values, d["steps"].values, d["pilot_steps"].values
    assert np.all(np.isfinite(tau) & (tau >= 0.5)), tau
    # the pilot (32 chains) stopped at a check (every 25 MALA steps) where its steps after the
    # warm-up reach 50 τ_int, as estimated then; then all 1000 chains ran 10 τ_int
    assert np.all(pilot_steps % 25 == 0) and np.all(pilot_steps >= 50 * tau), (pilot_steps, tau)
    np.testing.assert_array_equal(steps, np.ceil(10 * tau))
    assert d["mixed"].values.all()
    # gradient evaluations: each run's first (init) and one per MALA step; the pilot's
    # 1 + 50 + pilot steps shared among the 1000 fields
    share = sampling.PILOT_CHAINS / 1000
    gradients = steps + 1 + (51 + pilot_steps) * share
    np.testing.assert_allclose(d["gradients"].values, gradients)
    assert result.attrs["gradients_per_field"] == round(float(gradients.sum()))
    # a pilot that cannot measure τ_int within its most steps: a warning naming the scale
    monkeypatch.setitem(sampling.AUTO_STEPS, "most", 25)
    monkeypatch.setitem(sampling.AUTO_STEPS, "pilot", 1000)
    with pytest.warns(UserWarning, match=r"scale j=\d: the steps='auto' pilot stopped at its"):
        unmixed = model.sample(20, seed=2, warmup=10, sampler="mala")
    assert not unmixed.diagnostics["mixed"].values[1:].any()


@pytest.fixture(scope="module")
def free_model_32(free_field):
    """1,000 free fields of 32² and the quadratic model fitted to them (for the samplers)."""
    train = free_field(1000, size=32, seed=3)
    return train, HierarchicalModel(features=["quadratic"], progress=False).fit(train)


def test_block_sampler_reproduces_the_free_field_and_reports_its_blocks(free_model_32):
    # L = 32: the finest grid (16²) takes 8×8 blocks (twice the 9×9 stencil's reach of 4),
    # the coarser ones fall back to MALA
    train, model = free_model_32
    result = model.sample(300, seed=4, steps=60, warmup=40, sampler="block")
    z = spectrum_z(train, result.fields)
    assert np.abs(z).max() < 5, z
    assert result.attrs["sampler"] == "block"
    acceptance = result.diagnostics["acceptance"].values[1:]
    assert np.all(np.abs(acceptance - 0.574) < 0.1), acceptance
    study = mixing(model, train[:20], steps=50, warmup=20, sampler="block")
    assert study["block"].values.tolist() == [0, 0, 0, 0, 8]
    assert study["gradients_per_step"].values.tolist() == [1, 1, 1, 1, 4]
    # cost per field: the 1×1 coarsest field exact, j = 5 … 2 by MALA, j = 1 by block sweeps
    # (four evaluations each), every run with one more to start
    assert result.attrs["gradients_per_field"] == 4 * 101 + (4 * 100 + 1)
    assert result.attrs["seconds_per_field"] > 0
    with pytest.raises(ValueError, match="sampler must be"):
        model.sample(2, sampler="gibbs")
    with pytest.raises(ValueError, match="adjusted=True"):
        model.sample(2, sampler="block", adjusted=False)


def test_hmc_sampler_reproduces_the_free_field_with_a_tuning_pilot(free_model_32):
    # 200 fields with steps="auto": a pilot of 32 chains tunes each scale's step and measures
    # τ_int, then all 200 run 10 τ_int HMC trajectories of duration HMC_LENGTH
    train, model = free_model_32
    result = model.sample(200, seed=4, warmup=40, step_size=0.3, sampler="hmc")
    z = spectrum_z(train, result.fields)
    assert np.abs(z).max() < 5, z
    d = result.diagnostics.isel(scale=slice(1, None))
    assert np.all(np.abs(d["acceptance"].values - 0.8) < 0.1), d["acceptance"].values
    assert d["mixed"].values.all()
    np.testing.assert_array_equal(d["steps"].values, np.ceil(10 * d["tau"].values))
    # a trajectory makes ⌈length / h⌉ leapfrog steps, one gradient evaluation each
    leapfrogs = np.ceil(sampling.HMC_LENGTH / d["step_size"].values)
    assert np.all(d["gradients"].values >= d["steps"].values * leapfrogs)
    study = mixing(model, train[:20], steps=30, warmup=20, sampler="hmc")
    np.testing.assert_array_equal(
        study["gradients_per_step"].values,
        np.ceil(sampling.HMC_LENGTH / study["step_size"].values),
    )
    with pytest.raises(ValueError, match="adjusted=True"):
        model.sample(2, sampler="hmc", adjusted=False)


def test_a_calibrated_model_draws_without_a_pilot_and_keeps_the_law(
    free_model_32, tmp_path, monkeypatch
):
    # calibrate() runs the pilot once, from the training fields' details, and measures the
    # burn-in from the Gaussian start; draws then run every chain the burn-in of their batch
    # at the stored step, with no warm-up and no pilot
    train, fitted = free_model_32
    model = copy.deepcopy(fitted)
    assert model.calibration_ == {}
    assert model.calibrate(train[:100], seed=5) is model
    calibration = model.calibration_
    assert list(calibration) == ["j=5", "j=4", "j=3", "j=2", "j=1"]  # the 1×1 field is exact
    assert {c.sampler for c in calibration.values()} == {"hmc"}
    # each scale's burn-in curves: 4 observables, from the start on
    for c in calibration.values():
        assert len(c.bias) == len(c.bias_error) == 4 and len(c.bias[0]) >= 2
    result = model.sample(200, seed=4)
    assert np.abs(spectrum_z(train, result.fields)).max() < 5
    d = result.diagnostics.isel(scale=slice(1, None))
    tau = np.array([c.tau for c in calibration.values()])
    np.testing.assert_array_equal(d["tau"].values, tau)
    burn_in = [c.burn_in(200) for c in calibration.values()]
    np.testing.assert_array_equal(d["steps"].values, burn_in)
    np.testing.assert_array_equal(d["pilot_steps"].values, 0)
    np.testing.assert_array_equal(d["warmup"].values, 0)
    np.testing.assert_array_equal(
        d["step_size"].values, [c.step_size for c in calibration.values()]
    )
    # the step tuned at equilibrium keeps the draws' acceptance at HMC's target
    assert np.all(np.abs(d["acceptance"].values - 0.8) < 0.1), d["acceptance"].values
    # every gradient evaluation is the chains' own: none for a pilot or a warm-up
    leapfrogs = np.minimum(
        sampling.HMC_MAX_LEAPFROGS, np.ceil(sampling.HMC_LENGTH / d["step_size"].values)
    )
    np.testing.assert_array_equal(d["gradients"].values, d["steps"].values * leapfrogs + 1)
    piloted = fitted.sample(200, seed=4)
    assert result.attrs["gradients_per_field"] < piloted.attrs["gradients_per_field"]
    # another sampler, or a fixed number of steps, is not calibrated: its own pilot or warm-up
    other = model.sample(40, seed=4, sampler="mala").diagnostics["pilot_steps"].values[1:]
    assert np.all(other > 0)
    fixed = model.sample(40, seed=4, steps=5, warmup=3).diagnostics
    assert fixed["warmup"].values[1:].tolist() == [3] * 5
    # on the CPU the chains run in groups of at most CHAIN_GROUP variables, whatever the
    # batch: groups of 50 chains at j = 1 (768 variables each) draw the same law
    made = []
    chain_groups = sampling.chain_groups
    with monkeypatch.context() as patch:
        patch.setattr(sampling, "CHAIN_GROUP", 50 * 3 * 16 * 16)
        patch.setattr(
            sampling, "chain_groups", lambda *args: made.append(chain_groups(*args)) or made[-1]
        )
        grouped = model.sample(200, seed=6)
    assert [len(groups) for groups in made] == [1, 1, 1, 1, 4]  # j = 5 … 1
    assert np.abs(spectrum_z(train, grouped.fields)).max() < 5
    g = grouped.diagnostics.isel(scale=slice(1, None))
    np.testing.assert_array_equal(g["steps"].values, burn_in)
    np.testing.assert_array_equal(g["gradients"].values, d["gradients"].values)
    assert np.all(np.abs(g["acceptance"].values - 0.8) < 0.1), g["acceptance"].values
    # the calibration is part of the model file, and a new fit clears it
    again = HierarchicalModel.load(model.save(tmp_path / "calibrated.nc"), progress=False)
    assert again.calibration_ == calibration
    torch.testing.assert_close(again.sample(20, seed=9).fields, model.sample(20, seed=9).fields)
    assert model.fit(train[:200]).calibration_ == {}
    with pytest.raises(ValueError, match="sampler must be one of"):
        model.calibrate(train[:10], sampler="gibbs")
    with pytest.raises(ValueError, match="seed must be an integer"):
        model.calibrate(train[:10], seed=0.5)
    with pytest.raises(ValueError, match="data: at least 2 fields"):
        model.calibrate(train[:1])


DATA = Path(__file__).parents[2] / "data"


@pytest.mark.parametrize(
    "n, variables", [(500, 12_288), (7, 1), (1, 3), (300, 2**19), (5, 209_715)]
)
def test_chain_groups_cover_the_batch_in_near_equal_groups_within_the_limit(n, variables):
    groups = sampling.chain_groups(n, variables, torch.device("cpu"))
    chains = np.concatenate([np.arange(n)[g] for g in groups])
    np.testing.assert_array_equal(chains, np.arange(n))
    sizes = [len(range(n)[g]) for g in groups]
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) * variables <= max(sampling.CHAIN_GROUP, variables)
    assert sampling.chain_groups(n, variables, torch.device("meta")) == [slice(0, n)]


def test_the_measured_burn_in_draws_the_law_of_longer_chains():
    # φ⁴ at β_c, L = 32 (the shipped Wolff fields): a calibrated draw runs each scale's
    # burn-in measured for its batch from the Gaussian start. Its fields must have the power
    # spectrum of chains run 2.5× as long (independent seeds; 16 shells, each within 4
    # combined standard errors), and one trajectory per scale must not (the check can fail).
    fields = torch.as_tensor(np.asarray(io.load(DATA / "phi4_L32_beta0.9244.nc").values))
    model = HierarchicalModel(progress=False).fit(fields[:400]).calibrate(fields[:128])
    n = 400
    drawn = model.sample(n, seed=1)
    burn_in = [c.burn_in(n) for c in model.calibration_.values()]
    np.testing.assert_array_equal(drawn.diagnostics["steps"].values[1:], burn_in)

    def running(taus: list[float]) -> HierarchicalModel:
        # without bias curves a calibrated draw runs 10 τ_int steps per scale
        other = copy.deepcopy(model)
        other.calibration_ = {
            name: replace(c, bias=(), bias_error=(), tau=tau)
            for (name, c), tau in zip(model.calibration_.items(), taus, strict=True)
        }
        return other

    longer = running([0.25 * b for b in burn_in]).sample(n, seed=2)
    assert np.all(longer.diagnostics["steps"].values[1:] == np.ceil(2.5 * np.array(burn_in)))
    assert np.abs(spectrum_z(longer.fields, drawn.fields)).max() < 4
    one = running([0.1] * len(burn_in)).sample(n, seed=3)
    assert np.all(one.diagnostics["steps"].values[1:] == 1)
    assert np.abs(spectrum_z(longer.fields, one.fields)).max() > 4


def test_energy_recovers_the_free_field_couplings(free_field):
    # the factorised energy with fitted free energies must rebuild the microscopic energy
    # E = (β/2) Σ (φ_x − φ_y)² + (m²/2) Σ φ²: couplings within 5 %
    model = HierarchicalModel(progress=False).fit(free_field(1000, seed=1))
    test = free_field(200, seed=2)
    energy, grad = model.energy_and_grad(test)
    couplings = fit_couplings(test, grad)
    beta, m2 = free_field.beta, free_field.m2
    assert couplings["beta"] == pytest.approx(beta, rel=0.05)
    assert couplings["c2"] == pytest.approx(m2 / 2, rel=0.05)
    assert abs(couplings["c4"]) < 0.05 * m2 / 2  # no quartic term in a Gaussian field
    # energy differences between fields follow the exact ones (the constant is arbitrary)
    exact = Phi4.gaussian(beta, m2).energy(test)
    de, dx = energy - energy.mean(), exact - exact.mean()
    assert float((de * dx).sum() / dx.square().sum()) == pytest.approx(1, rel=0.05)
    # scikit-learn's score_samples: the log-likelihood up to one constant, so differences
    # between fields are −(differences of the exact energy)
    scores = model.score_samples(test)
    ds = scores - scores.mean()
    assert float(-(ds * dx).sum() / dx.square().sum()) == pytest.approx(1, rel=0.05)
    assert model.score(test) == pytest.approx(float(scores.mean()))
    # the free energies are fitted on every conditional and explain their gradients
    report = model.free_energy_report_
    assert list(report["scale"].values) == ["j=4", "j=3", "j=2", "j=1"]
    assert (report["heldout_residual"].sel(scale=["j=3", "j=2", "j=1"]) < 0.1).all(), report


def test_energy_is_the_sum_over_factors_of_the_coarse_to_fine_iterator(free_field):
    # E(x) = U_low(x_J/γ_low) + Σ_j [Ū_j(x̄_j/γ_j | x_j/γ_j) + F_j(x_j/γ_j)], written out by
    # hand from the pyramid, against the model's own loop
    fields = free_field(40, size=8)
    model = HierarchicalModel(progress=False).fit(fields)
    x = fields[:5]
    pyramid = decompose(x, 3, "db4")
    low = float(model.scales_.low)
    total = model.low_.energy(pyramid.low.unsqueeze(1) / low)
    for j in range(1, 4):
        g = float(model.scales_.details[j - 1])
        c = pyramid.coarse(j) / g
        total = total + model.conditionals_[j - 1].energy(pyramid.details[j - 1] / g, c)
        total = total + model.free_energies_[j - 1].energy(c.unsqueeze(1))
    torch.testing.assert_close(model.energy(x), total, rtol=1e-12, atol=1e-9)
    assert [s.name for s in coarse_to_fine(model.scales_)] == ["low", "j=3", "j=2", "j=1"]


def test_energy_gradient_matches_finite_differences_and_flags_the_support(free_field):
    fields = free_field(60, size=8)
    model = HierarchicalModel(progress=False).fit(fields)
    x = fields[:3]
    energy, grad = model.energy_and_grad(x)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = 1e-5
    slope = (model.energy(x + eps * v) - model.energy(x - eps * v)) / (2 * eps)
    torch.testing.assert_close(slope, (grad * v).sum((1, 2)), rtol=1e-6, atol=1e-6)
    # float32 fields are evaluated in float64
    assert model.energy(x.float()).dtype == torch.float64
    # beyond a potential's support the energy is +∞ and its gradient undefined
    outside = x.clone()
    outside[0, 0, 0] = 100.0
    energy, grad = model.energy_and_grad(outside)
    assert torch.isinf(energy[0]) and torch.isnan(grad[0]).all()
    assert torch.isfinite(energy[1:]).all() and torch.isfinite(grad[1:]).all()
    with pytest.raises(ValueError, match="not fitted"):
        HierarchicalModel().energy_and_grad(x)


@pytest.mark.parametrize("weight, spread", [(0.7, 0.5), (0.5, 0.06)])
def test_one_variable_coarsest_model_is_fitted_by_maximum_likelihood(weight, spread):
    # a bimodal coarse field: score matching cannot weigh the modes, the maximum-likelihood
    # refinement must reproduce their weights — also when the modes are narrow (spread 2 % of
    # their separation from 0, as for the ordered phase's coarsest field), where Newton steps
    # from the score-matching θ had stalled with one mode empty
    gen = torch.Generator().manual_seed(0)
    n = 4000
    sign = torch.where(torch.rand(n, generator=gen) < weight, 1.0, -1.0).double()
    level = sign * 3 + spread * torch.randn(n, generator=gen, dtype=torch.float64)
    fields = level[:, None, None] + 0.1 * torch.randn(n, 4, 4, generator=gen, dtype=torch.float64)
    model = HierarchicalModel(progress=False).fit(fields)
    assert model.fit_report_["method"].sel(scale="low").item() == "maximum likelihood"
    drawn = model.sample(n, seed=1, steps=10, warmup=10).fields.mean((1, 2))
    positive = (drawn > 0).double().mean().item()
    assert abs(positive - weight) < 5 * np.sqrt(weight * (1 - weight) / n) * np.sqrt(2)


@pytest.mark.parametrize("features", [("quadratic",), ("quadratic", "scatcov")])
def test_the_coarsest_factor_carries_the_fields_mean_whatever_the_families(free_field, features):
    # the quadratic and scattering families are even in y: the mean of the fields (here 3,
    # with a spread of 0.5 over fields) must come from the coarsest factor's own potential
    gen = torch.Generator().manual_seed(4)
    n = 400
    offset = 3.0 + 0.5 * torch.randn(n, 1, 1, generator=gen, dtype=torch.float64)
    model = HierarchicalModel(features=features, progress=False).fit(free_field(n, 16) + offset)
    assert model.low_.features[0].name == "potential"
    assert [f.name for f in model.conditionals_[0].features] == list(features)
    means = model.sample(n, seed=2, steps=0, warmup=0).fields.mean((1, 2))
    spread = np.sqrt(0.25 + free_field(n, 16, seed=9).mean((1, 2)).var().item())
    # errors of the draws and of the training set's own mean and spread
    assert abs(means.mean().item() - 3.0) < 4 * spread * np.sqrt(2 / n)
    assert abs(means.std().item() / spread - 1) < 4 * np.sqrt(1 / n)


def test_a_family_with_a_min_level_enters_only_the_coarser_factors(free_field, tmp_path):
    features = {"potential": {"windows": 6, "min_level": 2}, "quadratic": {}}
    model = HierarchicalModel(features=features, progress=False).fit(free_field(40, size=8))
    names = [[f.name for f in m.features] for m in model.conditionals_]  # j = 1, 2, 3
    assert names == [["quadratic"], ["potential", "quadratic"], ["potential", "quadratic"]]
    assert [f.name for f in model.low_.features] == ["potential", "quadratic"]
    assert model.low_.features[0].windows == 6
    free = [[f.name for f in m.features] for m in model.free_energies_]
    assert free == names  # F_j has the families of conditional j
    again = HierarchicalModel.load(model.save(tmp_path / "m.nc"))
    assert again.get_params()["features"] == features


def test_sample_result_is_an_ensemble_dataset(free_field):
    model = HierarchicalModel(progress=False).fit(free_field(100, size=8))
    result = model.sample(3, seed=1, steps=5, warmup=5)
    ds = result.to_dataset()
    assert ds["field"].dims == ("sample", "y", "x") and ds.attrs["seed"] == 1
    assert ds.attrs["generator"] == "rgfield.rg.HierarchicalModel.sample"


def test_refitting_adapts_the_levels_to_the_new_data(free_field):
    model = HierarchicalModel(progress=False).fit(free_field(30, size=8))
    assert model.levels_ == 3
    model.fit(free_field(30, size=16))
    assert model.levels_ == 4 and model.low_shape == (1, 1)


def test_potentials_use_the_models_wavelet(free_field):
    # the potential lives on merge(coarse, details): it must merge with the model's wavelet
    model = HierarchicalModel(wavelet="db2", progress=False).fit(free_field(30, size=8))
    families = [f for m in model.conditionals_ for f in m.features if f.name == "potential"]
    assert families and all(f.wavelet == "db2" for f in families)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"features": ["nope"]}, "unknown feature family 'nope'"),
        ({"features": {"potential": {"min_level": 0}}}, "potential's min_level"),
        ({"features": {"quadratic": {}, "potential": {"min_level": 4}}}, "from 1 to the 3"),
        ({"features": {"quadratic": {}, "potential": {"min_level": True}}}, "min_level"),
        ({"features": {"quadratic": {}, "potential": {"min_level": 2.5}}}, "min_level"),
        ({"features": {"potential": {"min_level": 2}}}, "the finest conditional"),
        ({"levels": 0}, "levels"),
        ({"levels": 4}, "at most 3 RG steps"),
        ({"wavelet": "haar2"}, "wavelet"),
        ({"refine": -1}, "refine must"),
        ({"refine": [3, 1.5]}, "refine must"),
        ({"refine_steps": 1}, "refine_steps"),
        ({"refine_coarse": "model"}, "refine_coarse"),
        ({"ridge": -1.0}, "ridge"),
        ({"heldout": 1.0}, "heldout"),
        ({"refine": [0, 2, 1, 3], "refine_coarse": "generated"}, "refine: refine_coarse="),
    ],
)
def test_parameters_are_checked_when_the_fit_starts(free_field, params, message):
    model = HierarchicalModel(progress=False, **params)  # stores, never raises
    with pytest.raises(ValueError, match=message):
        model.fit(free_field(20, size=8))


def test_bad_input_gives_clear_errors(free_field):
    fields = free_field(20, size=8)
    with pytest.raises(ValueError, match="seed"):
        HierarchicalModel(progress=False).fit(fields, seed=0.5)
    with pytest.raises(ValueError, match="shape"):
        HierarchicalModel().fit(fields[0])
    bad = fields.clone()
    bad[3, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        HierarchicalModel().fit(bad)
    with pytest.raises(ValueError, match="odd"):
        HierarchicalModel(progress=False).fit(torch.randn(4, 7, 7))
    with pytest.raises(ValueError, match="no fluctuations"):
        HierarchicalModel(progress=False).fit(torch.ones(4, 8, 8))
    # integer-valued data (the first-run report: a held-out loss of −4.7e30, then exit 0)
    counts = np.random.default_rng(0).integers(-3, 3, (40, 16, 16)).astype(np.int16)
    with pytest.raises(ValueError, match=r"every value is an integer \(6 distinct: -3, -2"):
        HierarchicalModel(progress=False, levels=2).fit(counts)
    with pytest.raises(ValueError, match="not fitted"):
        HierarchicalModel().sample(2)
    model = HierarchicalModel(progress=False).fit(fields)
    with pytest.raises(ValueError, match="steps"):
        model.sample(2, steps=[1, 2])
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)
    with pytest.raises(ValueError, match="x: fields must be"):
        model.energy(free_field(2, size=16))


def test_a_scale_whose_chains_do_not_move_is_reported(free_field):
    model = HierarchicalModel(progress=False, levels=2).fit(free_field(40, size=16))
    # no warm-up to shrink a step 2000 times too large: the chains reject nearly everything
    with pytest.warns(UserWarning, match=r"scale j=1: acceptance 0\.0\d\d after the warm-up"):
        model.sample(8, seed=0, steps=20, warmup=0, step_size=100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.sample(8, seed=0, steps=20, warmup=50)  # the default step, tuned: no warning


def test_coarse_fields_outside_the_fitted_range_stop_the_draw_with_the_scale(free_field):
    # a run-away coarser scale hands the finer one coarse fields far outside the data: there
    # the potential's support excludes every start, zero details included, and the chains
    # cannot move into it; the draw stops naming the scale instead of returning fields that
    # are not the model's (and τ_int, measured on the chains that are inside, does not fail)
    model = HierarchicalModel(progress=False, levels=2, refine=0).fit(free_field(40, size=16))
    finest = coarse_to_fine(model.scales_)[-1]
    x = decompose(free_field(4, size=16, seed=1), 1, model.wavelet).low
    generator = torch.Generator().manual_seed(0)
    args = (generator, 5, 5, 0.2, "hmc", True, model.starts_[finest.name])
    y, _ = sampling.draw_scale(
        finest, model.factor(finest), x, finest.shape(4, x.shape[-2:]), *args
    )
    assert torch.isfinite(model.factor(finest).energy(y, finest.condition(x))).all()
    far = 50 * x
    for steps in (5, "auto"):
        with pytest.raises(
            ValueError, match=r"scale j=1: 4 of 4 chains end where the energy is not fin"
        ):
            sampling.draw_scale(
                finest,
                model.factor(finest),
                far,
                finest.shape(4, x.shape[-2:]),
                generator,
                5,
                steps,
                0.2,
                "hmc",
                True,
                model.starts_[finest.name],
            )
    series = torch.randn(3, 40, generator=generator, dtype=torch.float64)
    outside = torch.cat([series, torch.full((1, 40), float("inf"))])
    assert sampling.tau_or_nan(outside) == sampling.tau_or_nan(series)


def test_a_scale_with_a_non_finite_loss_stops_the_fit():
    from rgfield.rg.fitting import check_losses

    finite = {"method": "score matching", "train_loss": -1.5, "heldout_loss": -1.4}
    check_losses("j=1", finite, held_out=True)
    check_losses("j=1", {**finite, "heldout_loss": float("nan")}, held_out=False)
    for bad in ({"train_loss": float("nan")}, {"heldout_loss": float("-inf")}):
        with pytest.raises(ValueError, match=r"scale j=1: the score-matching loss is not finite"):
            check_losses("j=1", {**finite, **bad}, held_out=True)


def test_losses_beyond_any_smooth_density_and_overfitting_are_reported():
    from rgfield.rg.fitting import FISHER_LIMIT, check_losses

    # −J ≤ I/2: a loss below −FISHER_LIMIT means structure finer than 1/√(2 · 1000) of the rms
    deep = {"method": "score matching", "train_loss": -2e3, "heldout_loss": -1.9e3}
    with pytest.warns(UserWarning, match=r"scale j=2: .* less than 1\.6 % of their rms"):
        check_losses("j=2", deep, held_out=True)
    with pytest.warns(UserWarning, match="quantised or degenerate"):
        check_losses("j=2", {**deep, "train_loss": -1.0}, held_out=True)  # held-out alone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_losses("j=2", {**deep, "train_loss": -0.9 * FISHER_LIMIT, "heldout_loss": -1}, True)
        # a one-variable factor fitted by maximum likelihood is drawn exactly: not judged
        check_losses("low", {**deep, "method": "maximum likelihood"}, held_out=True)
    overfit = {"method": "score matching", "train_loss": -1.1, "heldout_loss": 0.4}
    with pytest.warns(UserWarning, match=r"scale j=3: the held-out score-matching loss is \+0\.4"):
        check_losses("j=3", {**overfit, "heldout_loss_se": 0.1}, held_out=True)  # z = 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_losses("j=3", {**overfit, "heldout_loss_se": 0.2}, held_out=True)  # z = 2: noise
    # end to end: integer values blurred by noise of 1e-4 escape the integer check
    rng = np.random.default_rng(0)
    near_integers = rng.integers(-3, 3, (40, 16, 16)) + 1e-4 * rng.standard_normal((40, 16, 16))
    with pytest.warns(UserWarning, match=r"scale j=1: the score-matching loss is -\d"):
        HierarchicalModel(progress=False, levels=2, refine=0).fit(near_integers)
    # a band-limited field (no power beyond 2/3 of the Nyquist wavenumber, as a dealiased
    # simulation) has finest details on an affine subspace: fitted there, an ordinary loss
    spectrum = np.fft.fft2(rng.standard_normal((60, 16, 16)))
    k = np.abs(np.fft.fftfreq(16, 1 / 16))
    spectrum[:, (k[:, None] > 16 / 3) | (k[None, :] > 16 / 3)] = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = HierarchicalModel(progress=False, levels=2, refine=0).fit(
            np.fft.ifft2(spectrum).real
        )
    assert not [w for w in caught if "quantised or degenerate" in str(w.message)]
    assert -10 < float(model.fit_report_.train_loss.sel(scale="j=1")) < 0


def test_an_unnormalisable_fit_stops_with_the_scale_and_its_curvature(free_field, monkeypatch):
    import dataclasses

    from rgfield.rg import fitting

    fields = free_field(100, size=8)
    model = HierarchicalModel(features=["quadratic"], progress=False, refine=0).fit(fields)
    assert all(model.factor(s).normalisable() for s in coarse_to_fine(model.scales_))

    def inverted(*args, **kwargs):  # a fit whose quadratic form opens downwards
        fit = fitting_closed_form(*args, **kwargs)
        return dataclasses.replace(fit, theta=-fit.theta)

    fitting_closed_form = fitting.fit_closed_form
    monkeypatch.setattr(fitting, "fit_closed_form", inverted)
    for refine in (0, 1):  # refused before any moment-matching chain runs
        with pytest.raises(ValueError, match=r"scale j=3: .*not normalisable.* curvature -\d"):
            HierarchicalModel(features=["quadratic"], progress=False, refine=refine).fit(fields)
    # with the potential the support is bounded: any θ gives a density
    HierarchicalModel(progress=False, refine=0).fit(fields)


def test_per_sample_losses_average_to_the_score_matching_loss(free_field):
    from rgfield.rg.scorematching import accumulate, sample_losses

    model = HierarchicalModel(progress=False, refine=0).fit(free_field(200, size=16))
    pyramid = decompose(free_field(30, size=16, seed=5), model.levels_, model.wavelet)
    for scale in coarse_to_fine(model.scales_):
        y, c = scale.variables(pyramid)
        factor = model.factor(scale)
        statistics = accumulate(factor.features, y, c, batch=7)
        losses = sample_losses(factor, y, c, batch=7)
        assert losses.shape == (30,)
        assert float(losses.mean()) == pytest.approx(statistics.loss(factor.theta), rel=1e-8)
    se = model.fit_report_["heldout_loss_se"].values
    assert np.all(np.isfinite(se) & (se > 0)), se


def test_automatic_steps_stop_when_no_chain_has_moved():
    # chains stuck at their start (acceptance 0, a degenerate fit): τ_int is undefined, and the
    # rule stops at its first check instead of raising (the caller then warns of stuck chains)
    rule = sampling.MixingRule(multiple=50, check=5)
    stuck = SimpleNamespace(logdensity=torch.full((3,), -2.0), position=torch.ones(3, 1, 2, 2))
    for _ in range(5):
        rule.observe(stuck, None, True)
    assert rule(5) and np.isnan(rule.tau)
    # one trace moving is enough to measure τ_int from it
    moving = sampling.MixingRule(multiple=15, check=5)
    generator = torch.Generator().manual_seed(0)
    for _ in range(25):
        y = torch.randn(3, 1, 2, 2, generator=generator, dtype=torch.float64)
        moving.observe(SimpleNamespace(logdensity=torch.full((3,), -2.0), position=y), None, True)
    assert moving(25) and 0.5 <= moving.tau < 2  # white noise: τ_int = ½
    # warm-up steps are not recorded: τ_int is that of the chains at their tuned step
    warm = sampling.MixingRule(multiple=15, check=5)
    warm.observe(stuck, None, False)
    assert len(warm.energy) == 0
