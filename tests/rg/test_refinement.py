"""Moment matching (conditional maximum likelihood) against closed-form Gaussian solutions,
and the refined fit of the whole model."""

import numpy as np
import pytest
import torch

from rgfield.energies import ExponentialModel
from rgfield.energies.quadratic import QuadraticInteractions
from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum
from rgfield.rg import HierarchicalModel, match_moments
from rgfield.rg.parameters import REFINE_AUTO, auto_refine
from rgfield.scorematching import ScoreMatchingStatistics, fit_closed_form
from rgfield.wavelets import decompose


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
def test_refined_fit_is_reported_and_saved(tmp_path, free_field, coarse):
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


def test_refinement_iterations_per_scale(tmp_path, free_field):
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


def test_auto_refinement_is_the_documented_recipe(tmp_path, free_field, monkeypatch):
    # docs/rg.md's L = 64 recipe: 10 iterations where the details (or the coarsest field) lie
    # on more than 4 × 4 sites, 30 for the others (finest first)
    assert auto_refine((64, 64), 6) == [10, 10, 10, 30, 30, 30, 30]
    assert auto_refine((32, 32), 5) == [10, 10, 30, 30, 30, 30]
    assert auto_refine((64, 64), 2) == [10, 10, 10]  # a 16² coarsest field
    assert auto_refine((64, 64), 4) == [10, 10, 10, 30, 30]
    assert auto_refine((8, 16), 3) == [30, 30, 30, 30]  # the smaller side decides
    # a fit with refine="auto" takes the schedule (made cheap here: 1 and 0 iterations)
    for key, value in {"fine": 1, "coarse": 0, "sites": 1}.items():
        monkeypatch.setitem(REFINE_AUTO, key, value)
    fields = free_field(100, size=8)  # J = 3: details on 4², 2², 1², a 1×1 coarsest field
    model = HierarchicalModel(refine="auto", refine_steps=20, progress=False).fit(fields, seed=1)
    method = model.fit_report_["method"].to_series()
    assert method.to_dict() == {
        "low": "maximum likelihood",
        "j=3": "score matching",
        "j=2": "score matching + moment matching",
        "j=1": "score matching + moment matching",
    }
    again = HierarchicalModel.load(model.save(tmp_path / "model.nc"), progress=False)
    assert again.refine == "auto"
    with pytest.raises(ValueError, match="refine must be a non-negative integer"):
        HierarchicalModel(refine="always", progress=False).fit(fields)


def test_moment_matching_reports_and_warns_when_its_chains_stop_moving(monkeypatch):
    # a model 10⁴ times stiffer than the data: every step at h = 0.05 (no warm-up) is
    # rejected, and the chains that never move leave the Newton matrix singular: a clear
    # error, not torch's LinAlgError
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(20, 1, 8, 8, generator=gen, dtype=torch.float64)
    family = QuadraticInteractions(radius=0).fit(y, None)
    stiff = ExponentialModel([family], torch.full((family.n_features,), 1e4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"moment matching: .* singular .* acceptance 0\.000"):
        match_moments(stiff, y, None, iterations=1, steps=8, generator=gen, warmup=0)
    fitted = ExponentialModel([family], torch.ones(family.n_features, dtype=torch.float64))
    _, report, _ = match_moments(fitted, y, None, iterations=2, steps=20, generator=gen)
    assert 0.3 < report["refine_acceptance"] <= 1 and report["refine_step_size"] > 0
    # the fit names the scale whose moment-matching chains are stuck
    from rgfield.rg import fitting

    def stuck(*args, **kwargs):
        theta, report, chains = real(*args, **kwargs)
        return theta, {**report, "refine_acceptance": 0.01}, chains

    real = fitting.match_moments
    monkeypatch.setattr(fitting, "match_moments", stuck)
    fields = gaussian_field(
        lattice_free_field_spectrum(beta=1.0, m2=0.5), (8, 8), 60, seed=1, dtype=torch.float64
    )
    with pytest.warns(UserWarning, match=r"scale j=1 \(moment matching\): acceptance 0\.010"):
        HierarchicalModel(progress=False, refine=1, refine_steps=20).fit(fields)
