"""The chain runner: warm-up, frozen steps, the log-density trace and its τ_int."""

import numpy as np
import pytest
import torch

from rgfield.fields.lattice import Metropolis
from rgfield.fields.phi4 import Phi4
from rgfield.mcmc import MALA, run_chains


def standard_normal(x):
    return -0.5 * x.square().sum(1), -x


def test_run_chains_records_the_trace_and_freezes_the_tuned_kernel():
    seen = []
    run = run_chains(
        MALA(standard_normal, 1.0),
        torch.zeros(50, 4, dtype=torch.float64),
        torch.Generator().manual_seed(0),
        warmup=100,
        steps=300,
        callback=lambda state, info, sampling: seen.append(sampling),
    )
    assert run.logdensity.shape == (50, 400) and run.warmup == 100 and run.steps == 300
    assert seen == [False] * 100 + [True] * 300
    np.testing.assert_allclose(run.logdensity[:, -1], standard_normal(run.state.position)[0])
    assert run.kernel.step_size != 1.0  # tuned, then frozen
    assert abs(run.acceptance.mean() - MALA.target_acceptance) < 0.05
    tau = run.autocorrelation().tau
    assert 1 < tau < 20
    assert run.effective_sample_size() == pytest.approx(50 * 300 / (2 * tau))
    with pytest.raises(ValueError, match="steps"):
        run_chains(run.kernel, run.state.position, torch.Generator(), warmup=0, steps=-1)


def test_a_stopping_rule_ends_the_run_at_its_first_yes():
    asked = []

    def enough(t):
        asked.append(t)
        return t == 7

    run = run_chains(
        MALA(standard_normal, 1.0),
        torch.zeros(5, 3, dtype=torch.float64),
        torch.Generator().manual_seed(0),
        warmup=10,
        steps=100,
        enough=enough,
    )
    assert asked == list(range(1, 8))  # asked after each step past the warm-up only
    assert run.steps == 7 and run.logdensity.shape == (5, 17)


def test_run_chains_runs_the_phi4_kernels_with_their_lazy_log_density():
    model = Phi4(0.7)
    start = torch.randn(4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    run = run_chains(
        Metropolis(model, np.ones(4)), start, torch.Generator().manual_seed(2), warmup=20, steps=30
    )
    assert run.kernel.step_size.shape == (4,)
    np.testing.assert_allclose(
        run.logdensity[:, -1], -model.energy(run.state.position).numpy(), rtol=1e-12
    )
    torch.testing.assert_close(
        start, torch.randn(4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    )
