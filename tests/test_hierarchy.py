import json

import numpy as np
import pytest
import torch

from rgfield import stats
from rgfield.energies import ExponentialModel
from rgfield.energies.quadratic import QuadraticInteractions
from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum
from rgfield.fields.phi4 import Phi4, fit_couplings
from rgfield.hierarchy import HierarchicalModel, match_moments
from rgfield.io import save, to_dataset
from rgfield.scorematching import ScoreMatchingStatistics, fit_closed_form
from rgfield.wavelets import decompose

BETA, M2 = 1.0, 0.5


def free_field(n, size=16, seed=0):
    spectrum = lattice_free_field_spectrum(beta=BETA, m2=M2)
    return gaussian_field(spectrum, (size, size), n, seed=seed, dtype=torch.float64)


def spectrum_mean_and_error(fields):
    p = stats.power_spectrum(fields)
    return p.mean("sample").values, p.std("sample").values / np.sqrt(p.sizes["sample"])


def test_gaussian_free_field_is_reproduced_scale_by_scale():
    # with quadratic features over every shift of each grid the model class contains the
    # exact conditionals of a stationary Gaussian field, so only statistical error remains
    train = free_field(2000, seed=1)
    model = HierarchicalModel(features=["quadratic"], progress=False).fit(train)
    result = model.sample(2000, seed=2, steps=150, warmup=100)
    p_train, e_train = spectrum_mean_and_error(train)
    p_gen, e_gen = spectrum_mean_and_error(result.fields)
    z = (p_gen - p_train) / np.hypot(e_train, e_gen)
    assert np.abs(z).max() < 5, z
    diagnostics = result.diagnostics
    assert list(diagnostics["scale"].values) == ["low", "j=4", "j=3", "j=2", "j=1"]
    # the 1×1 coarsest field is drawn exactly; MALA's warm-up tunes the others to 0.574
    assert diagnostics["exact"].values.tolist() == [1, 0, 0, 0, 0]
    acceptance = diagnostics["acceptance"].values[1:]
    assert np.all(np.abs(acceptance - 0.574) < 0.1), acceptance


def test_block_sampler_reproduces_the_free_field_and_reports_its_blocks():
    # L = 32: the finest grid (16²) takes 8×8 blocks (twice the 9×9 stencil's reach of 4),
    # the coarser ones fall back to MALA
    train = free_field(1000, size=32, seed=3)
    model = HierarchicalModel(features=["quadratic"], progress=False).fit(train)
    result = model.sample(300, seed=4, steps=60, warmup=40, sampler="block")
    p_train, e_train = spectrum_mean_and_error(train)
    p_gen, e_gen = spectrum_mean_and_error(result.fields)
    z = (p_gen - p_train) / np.hypot(e_train, e_gen)
    assert np.abs(z).max() < 5, z
    assert result.attrs["sampler"] == "block"
    acceptance = result.diagnostics["acceptance"].values[1:]
    assert np.all(np.abs(acceptance - 0.574) < 0.1), acceptance
    mixing = model.mixing(train[:20], steps=50, warmup=20, sampler="block")
    assert mixing["block"].values.tolist() == [0, 0, 0, 0, 8]
    assert mixing["gradients_per_step"].values.tolist() == [1, 1, 1, 1, 4]
    with pytest.raises(ValueError, match="sampler must be"):
        model.sample(2, sampler="gibbs")
    with pytest.raises(ValueError, match="adjusted=True"):
        model.sample(2, sampler="block", adjusted=False)


def test_energy_recovers_the_free_field_couplings():
    # the factorised energy with fitted free energies must rebuild the microscopic energy
    # E = (β/2) Σ (φ_x − φ_y)² + (m²/2) Σ φ²; the criterion: couplings within 5 %
    model = HierarchicalModel(progress=False).fit(free_field(1000, seed=1))
    test = free_field(200, seed=2)
    energy, grad = model.energy_and_grad(test)
    couplings = fit_couplings(test, grad)
    assert couplings["beta"] == pytest.approx(BETA, rel=0.05)
    assert couplings["c2"] == pytest.approx(M2 / 2, rel=0.05)
    assert abs(couplings["c4"]) < 0.05 * M2 / 2  # no quartic term in a Gaussian field
    # energy differences between fields follow the exact ones (the constant is arbitrary)
    exact = Phi4.gaussian(BETA, M2).energy(test)
    de, dx = energy - energy.mean(), exact - exact.mean()
    assert float((de * dx).sum() / dx.square().sum()) == pytest.approx(1, rel=0.05)
    # the free energies are fitted on every conditional and explain their gradients
    report = model.free_energy_report_
    assert list(report["scale"].values) == ["j=4", "j=3", "j=2", "j=1"]
    assert (report["heldout_residual"].sel(scale=["j=3", "j=2", "j=1"]) < 0.1).all(), report


def test_energy_gradient_matches_finite_differences_and_flags_the_support():
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


def test_moment_matching_reaches_the_gaussian_maximum_likelihood():
    # Φ = ½ Σ y²: p ∝ exp(−θΦ) is N(0, 1/θ) at every site and the maximum-likelihood θ is
    # 1 / mean(y²) in closed form; the chains estimate mean(y²) with relative error
    # √(2 / variables) per independent snapshot, which bounds the error of the final θ
    y = 1.7 * torch.randn(200, 1, 16, 16, generator=torch.Generator().manual_seed(0)).double()
    family = QuadraticInteractions(radius=0).fit(y, None)
    ml = 1 / float(y.square().mean())
    start = ExponentialModel([family], torch.tensor([1.5 * ml], dtype=torch.float64))
    theta, report, _ = match_moments(start, y, None, 12, 40, torch.Generator().manual_seed(1))
    assert float(theta[0]) == pytest.approx(ml, rel=5 * np.sqrt(2 / y.numel()))
    assert report["moment_gap_start"] > 100 * report["moment_gap_end"]


NOISE = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)


def refined_conditional_gaussian(generated: bool):
    """Data y_k = a_k c + s_k ε and the slope and residual variances after moment matching.

    Features ½ Σ X_a X_b (zero shift, X = (y_1, y_2, y_3, c)) make U = ½ yᵀP y + yᵀQ c with
    P_aa = θ_aa, P_ab = θ_ab / 2, Q_a = θ_ac / 2, so the model's slope is −P⁻¹Q and its
    residual covariance P⁻¹. With ``generated`` the chains see other coarse fields
    c̃ = 1.25 c′ (c′ independent of the data), which are returned too.
    """
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(300, 8, 8, generator=gen, dtype=torch.float64)
    slope = torch.tensor([0.8, -0.3, 0.0], dtype=torch.float64)
    eps = torch.randn(300, 3, 8, 8, generator=gen, dtype=torch.float64)
    y = slope.reshape(1, 3, 1, 1) * c.unsqueeze(1) + NOISE.reshape(1, 3, 1, 1) * eps
    other = 1.25 * torch.randn(300, 8, 8, generator=gen, dtype=torch.float64)
    family = QuadraticInteractions(radius=0).fit(y, c)
    a, b = (torch.as_tensor(v) for v in family.pairs[:, :2].T)
    start = ExponentialModel([family], (a == b).double())  # independent unit Gaussians
    theta, _, chains = match_moments(
        start,
        y,
        c,
        20,
        40,
        torch.Generator().manual_seed(1),
        chain_coarse=other if generated else None,
    )
    assert chains.shape == y.shape
    precision = torch.zeros(4, 4, dtype=torch.float64)
    precision[a, b] = torch.where(a == b, theta, theta / 2)
    precision[b, a] = precision[a, b]
    p, q = precision[:3, :3], precision[:3, 3]
    return y, c, other, -torch.linalg.solve(p, q), torch.linalg.inv(p).diagonal()


def test_moment_matching_reaches_the_conditional_gaussian_maximum_likelihood():
    # the conditional maximum likelihood is the linear regression of y on c
    y, c, _, fitted_slope, fitted_variance = refined_conditional_gaussian(generated=False)
    ys, cs = y.transpose(0, 1).reshape(3, -1), c.reshape(-1)
    regression = ys @ cs / (cs @ cs)
    residual = ys - regression[:, None] * cs
    n = cs.numel()
    error = (fitted_slope - regression).abs()
    assert (error < 5 * NOISE / np.sqrt(n)).all(), error  # standard error of a slope
    torch.testing.assert_close(
        fitted_variance, residual.square().mean(1), rtol=5 * np.sqrt(2 / n), atol=0
    )


def test_moment_matching_on_generated_coarse_fields_matches_the_marginal_moments():
    # The chains see c̃ = 1.25 c′: a coarser model that over-disperses. The features are
    # y_a y_b and y_a c̃ (c̃² is no feature), so the fixed point matches E[y c̃] and E[y yᵀ]
    # of the generated pairs to the data's: the slope is μ = mean(y c) / mean(c̃²) and the
    # residual covariance mean(y yᵀ) − μ μᵀ mean(c̃²), not the regression of the data pairs
    y, c, other, fitted_slope, fitted_variance = refined_conditional_gaussian(generated=True)
    ys, cs = y.transpose(0, 1).reshape(3, -1), c.reshape(-1)
    power = other.square().mean()
    expected_slope = ys @ cs / cs.numel() / power
    expected_variance = ys.square().mean(1) - expected_slope.square() * power
    n = cs.numel()
    error = (fitted_slope - expected_slope).abs()
    assert (error < 5 * NOISE / np.sqrt(n)).all(), error
    assert abs(expected_slope[0] - 0.8) > 20 * NOISE[0] / np.sqrt(n)  # not the regression
    torch.testing.assert_close(fitted_variance, expected_variance, rtol=5 * np.sqrt(2 / n), atol=0)


def test_moment_matching_stays_at_a_maximum_likelihood_with_many_features():
    # A Gaussian conditional fitted by score matching is already near its maximum likelihood
    # (the model is well specified). With 369 features and 200 chains × 10 kept states the
    # Fisher matrix is estimated from barely more states than features, so its Newton steps
    # amplify the Monte Carlo noise unless regularised: with a ridge of 1e-3 × diag the gap
    # statistic (O(1) at the noise level) grew from 1 to ~2000 here and θ moved 45-fold.
    x = gaussian_field(
        lattice_free_field_spectrum(1.0, 0.1), (16, 16), n=200, seed=0, dtype=torch.float64
    )
    pyramid = decompose(x, 1, "db4")
    y, c = pyramid.details[0], pyramid.low
    family = QuadraticInteractions(radius=3).fit(y, c)
    sums = ScoreMatchingStatistics.empty(family.n_features)
    sums.update(family.gradients(y, c), family.laplacians(y, c))
    theta = fit_closed_form(sums, None, 1e-6).theta
    start = ExponentialModel([family], theta)
    refined, report, _ = match_moments(start, y, c, 10, 40, torch.Generator().manual_seed(1))
    assert report["moment_gap_end"] < 10
    assert float((refined - theta).norm() / theta.norm()) < 0.3


@pytest.mark.parametrize("coarse", ["data", "generated"])
def test_refined_fit_is_reported_and_saved(tmp_path, coarse):
    fields = free_field(100, size=8)
    options = {"refine": 2, "refine_steps": 20, "refine_coarse": coarse, "progress": False}
    model = HierarchicalModel(**options).fit(fields, seed=3)
    report = model.fit_report_
    mala = [s for s in report["scale"].values if s != "low"]
    assert (report["method"].sel(scale=mala) == "score matching + moment matching").all()
    assert np.isfinite(report["moment_gap_end"].sel(scale=mala)).all()
    again = HierarchicalModel.load(model.save(tmp_path / "model.nc"), progress=False)
    assert (again.refine, again.refine_steps, again.refine_coarse) == (2, 20, coarse)
    # the refinement's chains are seeded: the same seed gives the same parameters
    twin = HierarchicalModel(**options).fit(fields, seed=3)
    torch.testing.assert_close(twin.conditionals_[0].theta, model.conditionals_[0].theta)


def test_refinement_iterations_per_scale(tmp_path):
    # one count per model, finest conditional first and the coarsest field last; a scale
    # given 0 keeps its score-matching fit
    fields = free_field(100, size=8)  # J = 3: conditionals on 4², 2², 1² details, 1×1 low
    model = HierarchicalModel(refine=[0, 2, 1, 3], refine_steps=20, progress=False)
    model.fit(fields, seed=3)
    method = model.fit_report_["method"]
    assert method.sel(scale="j=1").item() == "score matching"
    assert method.sel(scale="j=2").item() == "score matching + moment matching"
    assert method.sel(scale="low").item() == "maximum likelihood"
    again = HierarchicalModel.load(model.save(tmp_path / "model.nc"), progress=False)
    assert again.refine == [0, 2, 1, 3]
    with pytest.raises(ValueError, match="refine must be a non-negative integer or 4 of them"):
        HierarchicalModel(refine=[1, 2], progress=False).fit(fields)
    with pytest.raises(ValueError, match="refine: refine_coarse='generated'"):
        HierarchicalModel(refine=[0, 2, 1, 3], refine_coarse="generated")


def test_save_load_sample_gives_identical_fields(tmp_path):
    model = HierarchicalModel(progress=False).fit(free_field(200, size=8))
    path = model.save(tmp_path / "model.nc")
    again = HierarchicalModel.load(path, progress=False)
    a = model.sample(5, seed=7, steps=20, warmup=10).fields
    b = again.sample(5, seed=7, steps=20, warmup=10).fields
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(again.energy(a), model.energy(a), rtol=0, atol=0)
    assert again.free_energy_report_.equals(model.free_energy_report_)
    assert not torch.equal(a, model.sample(5, seed=8, steps=20, warmup=10).fields)
    with pytest.raises(FileExistsError):
        model.save(path)
    xr_report = again.fit_report_
    assert set(xr_report["features"].values) == set(model.fit_report_["features"].values)


def test_mixing_reports_tau_per_mala_scale():
    fields = free_field(100, size=8)
    model = HierarchicalModel(progress=False).fit(fields)
    mixing = model.mixing(fields, steps=300, warmup=50)
    assert list(mixing["scale"].values) == ["j=3", "j=2", "j=1"]
    # renormalised conditionals are well conditioned: MALA decorrelates in a few tens of steps
    assert (mixing["tau_energy"] < 30).all() and (mixing["tau_sum"] < 30).all(), mixing
    # a sanity bound only: chains started at the data stay near the data's fluctuations
    assert ((mixing["variance_ratio"] > 0.5) & (mixing["variance_ratio"] < 2)).all(), mixing
    with pytest.raises(ValueError, match="steps"):
        model.mixing(fields, steps=3)
    with pytest.raises(ValueError, match="fields must be"):
        model.mixing(free_field(10, size=16))


def test_sample_result_is_an_ensemble_dataset(tmp_path):
    model = HierarchicalModel(progress=False).fit(free_field(100, size=8))
    result = model.sample(3, seed=1, steps=5, warmup=5)
    ds = result.to_dataset()
    assert ds["field"].dims == ("sample", "y", "x") and ds.attrs["seed"] == 1
    save(ds, tmp_path / "samples.nc")


def test_refitting_adapts_the_levels_to_the_new_data():
    model = HierarchicalModel(progress=False).fit(free_field(30, size=8))
    assert model.levels_ == 3
    model.fit(free_field(30, size=16))
    assert model.levels_ == 4 and model.low_shape == (1, 1)


def test_potentials_use_the_models_wavelet():
    # the potential lives on merge(coarse, details): it must merge with the model's wavelet
    model = HierarchicalModel(wavelet="db2", progress=False).fit(free_field(30, size=8))
    families = [f for m in model.conditionals_ for f in m.features if f.name == "potential"]
    assert families and all(f.wavelet == "db2" for f in families)


def test_pixel_ks_is_judged_against_random_halvings_of_the_reference():
    from rgfield.report import summary

    reference = free_field(200, seed=0)
    same = summary(reference, free_field(200, seed=1))["pixels"]
    shifted = summary(reference, free_field(200, seed=1) + 0.2)["pixels"]
    # an independent set of the same law is a draw of the null: its statistic is a typical
    # halving's (p-value ≥ 0.05 except in 5 % of seeds); a shifted set is beyond all 20
    assert float(same.ks_halves_at_or_above) >= 0.05
    assert float(shifted.ks_halves_at_or_above) == 0
    assert float(shifted.ks_samples_vs_reference) > 3 * float(shifted.ks_reference_halves)


def test_report_never_replaces_a_foreign_directory(tmp_path):
    from rgfield.report import write_report

    ref, gen = free_field(8, size=8), free_field(8, size=8, seed=1)
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep")
    with pytest.raises(ValueError, match="not an rgfield report"):
        write_report(ref, gen, mine, overwrite=True)
    assert (mine / "precious.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="names a file"):
        write_report(ref, gen, tmp_path / "table.nc")
    report = write_report(ref, gen, tmp_path / "report")
    assert write_report(ref, gen, report, overwrite=True) == report


def test_bad_input_gives_clear_errors(tmp_path):
    fields = free_field(20, size=8)
    with pytest.raises(ValueError, match="unknown feature family 'nope'"):
        HierarchicalModel(features=["nope"])
    with pytest.raises(ValueError, match="levels"):
        HierarchicalModel(levels=0)
    with pytest.raises(ValueError, match="wavelet"):
        HierarchicalModel(wavelet="haar2")
    with pytest.raises(ValueError, match="refine must"):
        HierarchicalModel(refine=-1)
    with pytest.raises(ValueError, match="refine must"):
        HierarchicalModel(refine=[3, 1.5])
    with pytest.raises(ValueError, match="refine_steps"):
        HierarchicalModel(refine_steps=1)
    with pytest.raises(ValueError, match="refine_coarse"):
        HierarchicalModel(refine_coarse="model")
    with pytest.raises(ValueError, match="seed"):
        HierarchicalModel(progress=False).fit(fields, seed=0.5)
    with pytest.raises(ValueError, match="shape"):
        HierarchicalModel().fit(fields[0])
    bad = fields.clone()
    bad[3, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        HierarchicalModel().fit(bad)
    with pytest.raises(ValueError, match="not divisible"):
        HierarchicalModel(levels=4, progress=False).fit(fields)
    with pytest.raises(ValueError, match="odd"):
        HierarchicalModel(progress=False).fit(torch.randn(4, 7, 7))
    with pytest.raises(ValueError, match="not fitted"):
        HierarchicalModel().sample(2)
    model = HierarchicalModel(progress=False).fit(fields)
    with pytest.raises(ValueError, match="steps"):
        model.sample(2, steps=[1, 2])
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)
    with pytest.raises(ValueError, match="x: fields must be"):
        model.energy(free_field(2, size=16))
    ds = model.to_dataset()
    spec = json.loads(ds.attrs["specification"])
    spec["families"] = {k: v for k, v in spec["families"].items() if not k.startswith("free")}
    ds.attrs["specification"] = json.dumps(spec)
    with pytest.raises(ValueError, match="without free energies"):
        HierarchicalModel.load(save(ds, tmp_path / "old-model.nc"))
    not_a_model = save(to_dataset(fields), tmp_path / "fields.nc")
    with pytest.raises(ValueError, match="not a model"):
        HierarchicalModel.load(not_a_model)
