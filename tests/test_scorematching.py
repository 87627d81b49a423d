import math

import pytest
import torch

from rgfield.energies import QuadraticInteractions
from rgfield.fields.gaussian import gaussian_field
from rgfield.scorematching import ScoreMatchingStatistics, fit_closed_form, fit_sgd

A, B = 2.0, 0.4  # precision (Q y)(u) = A y(u) − B Σ_neighbours y(u ± e), positive for A > 4B


def precision_spectrum(ky, kx):
    return 1.0 / (A - 2 * B * (torch.cos(kx) + torch.cos(ky)))


def expected_theta(labels):
    # ½ yᵀQy = A Φ_(0,0) − 2B (Φ_(0,1) + Φ_(1,0)), with Φ_s = ½ Σ_u y(u) y(u − s)
    table = {"(0,0)": A, "(0,1)": -2 * B, "(1,0)": -2 * B}
    return torch.tensor([table.get(label[label.index("(") :], 0.0) for label in labels])


def statistics(family, y, batch=100):
    stats = ScoreMatchingStatistics.empty(family.n_features)
    for lo in range(0, len(y), batch):
        part = y[lo : lo + batch]
        stats.update(family.gradients(part, None), family.laplacians(part, None))
    return stats


def test_score_matching_recovers_a_known_precision_matrix():
    n_fields, groups = 2000, 20
    y = gaussian_field(precision_spectrum, (16, 16), n_fields, seed=5, dtype=torch.float64)
    y = y.unsqueeze(1)
    family = QuadraticInteractions(radius=1).fit(y, None)
    exact = expected_theta(family.labels).double()
    fit = fit_closed_form(statistics(family, y))
    # standard error from the spread of independent fits on disjoint groups
    size = n_fields // groups
    parts = [
        fit_closed_form(statistics(family, y[g * size : (g + 1) * size])).theta
        for g in range(groups)
    ]
    error = torch.stack(parts).std(0) / math.sqrt(groups)
    assert ((fit.theta - exact).abs() < 5 * error).all(), (fit.theta, exact, error)
    assert fit.condition >= fit.condition_preconditioned >= 1


def test_loss_of_white_noise_is_minus_one_half_per_variable():
    # for a unit Gaussian U = ½‖y‖², ½‖∇U‖² − ΔU = ½‖y‖² − d has mean −d/2
    y = torch.randn(4000, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    family = QuadraticInteractions(radius=0).fit(y, None)
    train, held = statistics(family, y[:3000]), statistics(family, y[3000:])
    fit = fit_closed_form(train, held)
    per_variable_sd = math.sqrt(0.5 / (1000 * 16))  # sd of ½ y² per variable over the held-out
    assert fit.heldout_loss == pytest.approx(-0.5, abs=5 * per_variable_sd)
    assert fit.theta.item() == pytest.approx(1.0, abs=0.02)


def test_ridge_selection_uses_held_out_loss():
    y = gaussian_field(precision_spectrum, (8, 8), 400, seed=1, dtype=torch.float64).unsqueeze(1)
    family = QuadraticInteractions(radius=2).fit(y, None)
    train, held = statistics(family, y[:300]), statistics(family, y[300:])
    fits = {r: fit_closed_form(train, held, r) for r in (1e-8, 10.0)}
    chosen = fit_closed_form(train, held, [1e-8, 10.0])
    best = min(fits, key=lambda r: fits[r].heldout_loss)
    assert chosen.ridge == best
    with pytest.raises(ValueError, match="held-out"):
        fit_closed_form(train, None, [1e-8, 1.0])
    with pytest.raises(ValueError, match="ridge"):
        fit_closed_form(train, held, -1.0)
    with pytest.raises(ValueError, match="no samples"):
        fit_closed_form(ScoreMatchingStatistics.empty(3))


def test_sgd_converges_to_the_closed_form_solution():
    y = gaussian_field(precision_spectrum, (8, 8), 500, seed=2, dtype=torch.float64).unsqueeze(1)
    family = QuadraticInteractions(radius=1).fit(y, None)
    closed = fit_closed_form(statistics(family, y)).theta

    def batches():
        for lo in range(0, 500, 50):
            part = y[lo : lo + 50]
            yield family.gradients(part, None), family.laplacians(part, None)

    theta = fit_sgd(batches, family.n_features, epochs=150, lr=0.05)
    torch.testing.assert_close(theta, closed, rtol=0, atol=0.05 * closed.abs().max().item())
