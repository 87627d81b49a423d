"""The burn-in rule: bias curves of paired chains and their extrapolation to a batch."""

import math

import numpy as np
import pytest

from rgfield.rg.burnin import BURN_IN_OBSERVABLES, bias_curves, burn_in_steps

OBSERVABLES = len(BURN_IN_OBSERVABLES)


def geometric(amplitude: float, rho: float, steps: int, error: float = 1e-6):
    """Bias curves A ρ^t (t = 0 … steps) for every observable, measured to ``error``."""
    t = np.arange(steps + 1)
    bias = np.tile(amplitude * rho**t, (OBSERVABLES, 1))
    return bias, np.full_like(bias, error)


def first_below(amplitude: float, rho: float, epsilon: float) -> int:
    """The first t with A ρ^t ≤ ε, by counting (independent of the rule's logarithms)."""
    t = 0
    while amplitude * rho**t > epsilon:
        t += 1
    return t


@pytest.mark.parametrize("n", [1, 32, 500, 10_000])
def test_a_measured_geometric_bias_gives_the_first_step_below_the_tolerance(n):
    # the energy's fitted rate (0.6) is slower than τ's: (2·1 − 1)/(2·1 + 1) = 1/3
    bias, error = geometric(5.0, 0.6, 12, error=1e-4)
    expected = max(1, first_below(5.0, 0.6, 0.5 / math.sqrt(n)))
    assert burn_in_steps(bias, error, tau=1.0, n=n) == expected


def test_the_steps_grow_as_log_n_at_the_decay_rate():
    # beyond the measured span the bias is extrapolated: 4× the batch halves the tolerance,
    # log 2 / log(1/ρ) more steps
    bias, error = geometric(3.0, 0.5, 6, error=1e-3)
    steps = [burn_in_steps(bias, error, tau=1.0, n=n) for n in (100, 400, 1600, 6400)]
    assert np.all(np.diff(steps) == 1), steps


def test_a_bias_measured_below_the_tolerance_needs_no_extrapolation():
    # read down to 2e-8: the first step below ε = 0.05 is t = 2, whatever τ says
    bias, error = geometric(2.0, 0.1, 8, error=1e-9)
    assert burn_in_steps(bias, error, tau=3.0, n=100) == 2


def test_beyond_the_read_steps_tau_sets_the_rate_when_no_energy_decay_is_fitted():
    # read at t = 0, 1 only (0.02 is within 3 errors of 0.01): too few steps to fit the
    # energy's rate, so the bias 0.2 at t = 1 decays at τ's ρ = (2·3 − 1)/(2·3 + 1) = 5/7
    bias, error = geometric(2.0, 0.1, 8, error=0.01)
    assert burn_in_steps(bias, error, tau=3.0, n=100) == 1 + first_below(0.2, 5 / 7, 0.05)


def test_an_unresolved_bias_is_bounded_by_three_standard_errors_at_the_start():
    # pure noise: nothing is read, the bound 3 e(0) at t = 0 decays at τ's rate
    rng = np.random.default_rng(0)
    error = np.full((OBSERVABLES, 10), 0.1)
    bias = rng.normal(0, 0.02, error.shape)
    rho = (2 * 2.0 - 1) / (2 * 2.0 + 1)
    assert burn_in_steps(bias, error, tau=2.0, n=64) == first_below(0.3, rho, 0.5 / 8)
    # for 4 fields the tolerance 0.25 is above the bound: one step (the least) is enough
    assert burn_in_steps(bias, error, tau=2.0, n=4) == 1


def test_a_late_excursion_after_the_bias_is_lost_is_not_read():
    # resolved at t = 1, 2, lost at t = 3, a 4-error excursion at t = 9: the rule reads
    # t = 1, 2 only (the chains' correlated late noise is not the start's bias)
    error = np.full((OBSERVABLES, 12), 0.01)
    bias = np.zeros_like(error)
    bias[:, :3] = [0.4, 0.2, 0.1]
    quiet = burn_in_steps(bias, error, tau=1.0, n=100)
    bias[2, 9] = 0.04
    assert burn_in_steps(bias, error, tau=1.0, n=100) == quiet


def test_the_slowest_observable_sets_the_steps():
    bias, error = geometric(1.0, 0.5, 10, error=1e-4)
    bias[2] *= 8  # the mean square starts 8× further: three halvings more
    assert burn_in_steps(bias, error, tau=1.0, n=100) == first_below(8.0, 0.5, 0.05)


def test_bias_curves_of_paired_chains_recover_a_known_offset():
    # chains whose equilibrium mean differs from chain to chain (their coarse fields); the
    # start is offset by δ ρ^t from each chain's own mean, so pairing removes the spread
    rng = np.random.default_rng(1)
    chains, steps, equilibrium_steps = 400, 6, 200
    means = rng.normal(0, 2, (OBSERVABLES, chains, 1))
    equilibrium = means + rng.normal(0, 1, (OBSERVABLES, chains, equilibrium_steps))
    sigma = equilibrium.std(axis=(1, 2))
    offset = 1.5 * 0.5 ** np.arange(steps + 1)
    start = means + offset + rng.normal(0, 1, (OBSERVABLES, chains, steps + 1))
    bias, error = bias_curves(start, equilibrium)
    expected = offset / sigma[:, None]
    assert np.all(np.abs(bias - expected) < 4 * error)
    # the standard error is that of a pairwise difference: about 1/√chains of 1/σ (the
    # per-chain noise, not the spread of the chains' means, which is larger)
    expected_error = np.broadcast_to((1 / np.sqrt(chains)) / sigma[:, None], error.shape)
    np.testing.assert_allclose(error, expected_error, rtol=0.2)
    with pytest.raises(ValueError, match="two chains"):
        bias_curves(start[:, :1], equilibrium[:, :1])


def test_a_growing_bias_asks_for_the_measured_span_again():
    # an energy bias that doubles per step (read at t = 0 … 3): no decay to extrapolate
    error = np.full((OBSERVABLES, 4), 1e-3)
    bias = np.zeros_like(error)
    bias[0] = [0.1, 0.2, 0.4, 0.8]
    assert burn_in_steps(bias, error, tau=1.0, n=100) == 3 + 4


def test_independent_steps_remove_the_bias_in_one():
    # τ_int ≤ ½ (no autocorrelation) and too few read steps to fit a rate: one step past the
    # last read one
    error = np.full((OBSERVABLES, 6), 0.01)
    bias = np.zeros_like(error)
    bias[0, 0] = 1.0
    assert burn_in_steps(bias, error, tau=0.5, n=100) == 1


def test_curves_that_are_not_finite_are_refused():
    bias, error = geometric(1.0, 0.5, 4)
    bias[1, 2] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        burn_in_steps(bias, error, tau=1.0, n=10)
    bias, error = geometric(1.0, 0.5, 4)
    error[0, 0] = np.inf
    with pytest.raises(ValueError, match="must be finite"):
        burn_in_steps(bias, error, tau=1.0, n=10)


def test_a_constant_observable_has_no_bias():
    # e.g. the summed details of a factor whose details sum to zero: σ = 0, nothing to read
    rng = np.random.default_rng(2)
    equilibrium = rng.normal(0, 1, (OBSERVABLES, 50, 30))
    start = rng.normal(0.5, 1, (OBSERVABLES, 50, 5))
    equilibrium[1] = 3.0
    start[1] = 3.0
    bias, error = bias_curves(start, equilibrium)
    assert np.all(bias[1] == 0) and np.all(error[1] == 0)
    assert np.all(bias[0] > 0.2)
