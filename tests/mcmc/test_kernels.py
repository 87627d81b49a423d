"""Contract tests that every sampler kernel runs (docs/architecture.md, "Sampler kernels").

Kernels: MALA, HMC (a correlated Gaussian in 3 dimensions), BlockMALA (a nearest-neighbour
Gaussian field, as per-cell log-densities) and the φ⁴ Metropolis and Wolff kernels (the
Gaussian free field, whose precision has the same nearest-neighbour form). Each must
(a) reproduce the exact means and second moments within 4 standard errors, the errors from
τ_int of each series; (b) reject proposals of NaN or −∞ log-density, flagging them divergent;
(c) cache the log-density and gradient of its state; (d) reach its own target acceptance in
the warm-up, with one step size or one per chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rgfield.fields.lattice import Metropolis, Wolff
from rgfield.fields.phi4 import Phi4
from rgfield.mcmc import (
    HMC,
    MALA,
    BlockMALA,
    Info,
    Kernel,
    adapt_step_size,
    integrated_autocorrelation_time,
)
from rgfield.mcmc.base import as_numpy, per_chain

Z = 4.0  # |estimate − exact| < Z standard errors

# ------------------------------------------------------------------------------------- targets

MEAN = torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)
PRECISION = torch.tensor([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64)
PAIRS = [(i, j) for i in range(3) for j in range(i, 3)]
VARIANCES = [3 + PAIRS.index((i, i)) for i in range(3)]  # among gaussian_statistics


def gaussian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p = −½ (x − μ)ᵀ P (x − μ) of a correlated Gaussian, and its gradient."""
    r = (x - MEAN) @ PRECISION
    return -0.5 * ((x - MEAN) * r).sum(-1), -r


def gaussian_statistics(x: torch.Tensor) -> torch.Tensor:
    """x_i and (x − μ)_i (x − μ)_j, i ≤ j: exact means μ_i and Σ_ij."""
    d = x - MEAN
    return torch.cat([x, torch.stack([d[:, i] * d[:, j] for i, j in PAIRS], 1)], 1)


def gaussian_exact() -> np.ndarray:
    cov = torch.linalg.inv(PRECISION)
    return np.concatenate([MEAN.numpy(), [float(cov[i, j]) for i, j in PAIRS]])


# A field y on an n × n periodic grid with log p = −½ Σ_p y(p) (Ay)(p), Ay = a y + k Σ_nn y:
# the φ⁴ Gaussian free field E = (β/2) Σ (φ_x − φ_y)² + (m²/2) Σ φ² has a = 4β + m², k = −β.
SIZE, BETA, M2 = 8, 0.5, 0.5
A, K = 4 * BETA + M2, -BETA


def local_gaussian(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell log-densities −½ y (Ay) (chains, n, n) and ∇ log p = −Ay, y (chains, 1, n, n)."""
    ay = A * y + K * sum(torch.roll(y, s, d) for s in (1, -1) for d in (-2, -1))
    return -0.5 * (y * ay).sum(1), -ay


def field_statistics(y: torch.Tensor) -> torch.Tensor:
    """Site averages of y, y² and y(p) y(p + e_x), per chain."""
    y = y.reshape(y.shape[0], SIZE, SIZE)
    return torch.stack(
        [y.mean((1, 2)), y.square().mean((1, 2)), (y * torch.roll(y, 1, -1)).mean((1, 2))], 1
    )


def field_exact() -> np.ndarray:
    """From the Fourier eigenvalues a + 2k (cos q_y + cos q_x) of A."""
    q = 2 * np.pi * np.fft.fftfreq(SIZE)
    eigen = A + 2 * K * (np.cos(q)[:, None] + np.cos(q)[None, :])
    return np.array([0.0, (1 / eigen).mean(), (np.cos(q)[None, :] / eigen).mean()])


@dataclass(frozen=True)
class Case:
    """A kernel on its target: ``make(step_size)`` builds it; moments are checked on
    ``statistics`` of the positions against ``exact``; ``variances`` marks the variances."""

    make: Callable[..., Kernel]
    start: Callable[[int], torch.Tensor]
    statistics: Callable[[torch.Tensor], torch.Tensor]
    exact: Callable[[], np.ndarray]
    variances: list[int]
    logdensity_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def vector_start(chains: int) -> torch.Tensor:
    return MEAN.repeat(chains, 1)


def field_start(chains: int) -> torch.Tensor:
    return torch.zeros(chains, 1, SIZE, SIZE, dtype=torch.float64)


def lattice_start(chains: int) -> torch.Tensor:
    return torch.zeros(chains, SIZE, SIZE, dtype=torch.float64)


FREE_FIELD = Phi4.gaussian(BETA, M2)
CASES = {
    "mala": Case(
        lambda h: MALA(gaussian, h),
        vector_start,
        gaussian_statistics,
        gaussian_exact,
        VARIANCES,
        gaussian,
    ),
    "hmc": Case(
        lambda h: HMC(gaussian, h, n_leapfrog=4),
        vector_start,
        gaussian_statistics,
        gaussian_exact,
        VARIANCES,
        gaussian,
    ),
    "hmc-length": Case(  # trajectories of a fixed duration, the step jittered per chain
        lambda h: HMC(gaussian, h, length=1.5, jitter=0.5),
        vector_start,
        gaussian_statistics,
        gaussian_exact,
        VARIANCES,
        gaussian,
    ),
    "block": Case(
        lambda h: BlockMALA(local_gaussian, h, block=2),
        field_start,
        field_statistics,
        field_exact,
        [1],
        local_gaussian,
    ),
    "phi4-metropolis": Case(
        lambda h: Metropolis(FREE_FIELD, h),
        lattice_start,
        field_statistics,
        field_exact,
        [1],
        FREE_FIELD.logdensity_and_grad,
    ),
    "phi4-wolff": Case(
        lambda h: Wolff(FREE_FIELD, h),
        lattice_start,
        field_statistics,
        field_exact,
        [1],
        FREE_FIELD.logdensity_and_grad,
    ),
}
TORCH_KERNELS = ["mala", "hmc", "block"]  # built from any log-density function


# ---------------------------------------------------------------------------- (a) moments

WARMUP, STEPS = 100, 400  # 64 chains


def sample(kernel: Kernel, start: torch.Tensor, statistics, warmup: int, steps: int, adapt: bool):
    """Statistics of every chain after every step following the warm-up (which tunes the
    kernel if ``adapt``): (chains, steps, k)."""
    generator = torch.Generator().manual_seed(1)
    state = kernel.init(start)
    if adapt:
        kernel, state, _ = adapt_step_size(kernel, state, generator, warmup)
    else:
        for _ in range(warmup):
            state, _ = kernel.step(state, generator)
    series = []
    for _ in range(steps):
        state, _ = kernel.step(state, generator)
        series.append(statistics(state.position))
    return torch.stack(series, 1).numpy()


def z_scores(series: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """(mean − exact) / standard error per statistic, the error √(2 τ_int var / N)."""
    z = []
    for k in range(series.shape[-1]):
        s = series[..., k]
        tau = integrated_autocorrelation_time(s).tau
        z.append((s.mean() - exact[k]) / (s.std() * math.sqrt(2 * tau / s.size)))
    return np.array(z)


def moments_z(name: str, kernel: Kernel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """z-scores of the case's statistics, and those against variances 10 % too large;
    the case's own kernel is tuned in the warm-up, a given one is run as it is."""
    case = CASES[name]
    adapt = kernel is None
    kernel = case.make(0.3) if kernel is None else kernel
    series = sample(kernel, case.start(64), case.statistics, WARMUP, STEPS, adapt)
    wrong = case.exact().copy()
    wrong[case.variances] *= 1.1
    return z_scores(series, case.exact()), z_scores(series, wrong)


@pytest.mark.parametrize("name", CASES)
def test_kernels_reproduce_the_exact_moments(name):
    z, z_wrong = moments_z(name)
    assert np.abs(z).max() < Z, z
    # and the errors are small enough for the check to fail on a 10 % error of a variance
    assert np.abs(z_wrong[CASES[name].variances]).min() > Z, z_wrong


def test_the_moment_check_catches_a_wrong_acceptance_ratio():
    # the unadjusted Langevin algorithm takes every acceptance ratio as 1: at a step where
    # MALA accepts about 60 %, its stationary law is visibly not the target
    z, _ = moments_z("mala", MALA(gaussian, 0.5, adjusted=False))
    assert np.abs(z).max() > 2 * Z, z

    # block tests on densities reported one cell off: each block's test misses part of the
    # change it makes
    def shifted(y):
        density, grad = local_gaussian(y)
        return torch.roll(density, 1, -1), grad

    z, _ = moments_z("block", BlockMALA(shifted, 0.5, block=2))
    assert np.abs(z).max() > 2 * Z, z


# -------------------------------------------------------------------- (b) divergent proposals


def walled(logdensity_and_grad, low: float, high: float):
    """The same log-density, −∞ where the first coordinate exceeds ``high`` and NaN where it is
    below ``low`` (per cell for per-cell log-densities)."""

    def fn(x):
        logdensity, grad = logdensity_and_grad(x)
        first = x[:, 0]  # (chains,) for vectors, (chains, n, n) for per-cell log-densities
        logdensity = torch.where(first > high, -torch.inf, logdensity)
        return torch.where(first < low, torch.nan, logdensity), grad

    return fn


@pytest.mark.parametrize(
    "name, make",
    [
        ("mala", lambda fn: MALA(fn, 0.5)),
        ("hmc", lambda fn: HMC(fn, 0.3, n_leapfrog=4)),
        ("block", lambda fn: BlockMALA(fn, 0.1, block=2)),
    ],
    ids=["mala", "hmc", "block"],
)
def test_proposals_of_nan_or_infinite_log_density_are_rejected(name, make):
    case = CASES[name]
    start = case.start(200)
    # walls about one standard deviation from the start (wider for fields: 64 cells per chain)
    width = 2.0 if name == "block" else 1.0
    low, high = float(start[0, 0].min()) - 0.7 * width, float(start[0, 0].max()) + 0.4 * width
    kernel = make(walled(case.logdensity_and_grad, low, high))
    state = kernel.init(start)
    generator = torch.Generator().manual_seed(2)
    divergent, accepted = [], []
    for _ in range(30):
        new, info = kernel.step(state, generator)
        first = new.position[:, 0]
        assert ((first >= low) & (first <= high)).all()
        assert torch.isfinite(new.logdensity).all()
        if name != "block":  # one test per chain: a divergent proposal leaves the chain put
            assert torch.equal(new.position[info.divergent], state.position[info.divergent])
            assert (info.accepted[info.divergent] == 0).all()
        divergent.append(info.divergent.double().mean())
        accepted.append(info.accepted.mean())
        state = new
    divergent = float(torch.stack(divergent).mean())
    assert divergent > 0.05  # the walls were hit
    assert float(torch.stack(accepted).mean()) > 0.2  # and the other proposals went on
    if name != "block":  # (64 block tests per sweep: some of a chain's hit a wall)
        assert divergent < 0.95


# ------------------------------------------------------------------------------ (c) the cache


@pytest.mark.parametrize("name", CASES)
def test_states_cache_the_log_density_and_gradient(name):
    case = CASES[name]
    kernel = case.make(0.3)
    start = case.start(5) + 0.3 * torch.randn(
        case.start(5).shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    state = kernel.init(start)
    generator = torch.Generator().manual_seed(4)
    for step in range(4):
        logdensity, grad = case.logdensity_and_grad(state.position)
        torch.testing.assert_close(state.logdensity, per_chain(logdensity), rtol=1e-12, atol=1e-12)
        if state.grad is not None:  # the φ⁴ kernels use no gradient and keep none
            torch.testing.assert_close(state.grad, grad, rtol=1e-12, atol=1e-12)
        if step == 0:
            torch.testing.assert_close(state.position, start)
        before = state.position.clone()
        moved, info = kernel.step(state, generator)
        # a step never writes into its input (HMC updates its trajectory's own copy in place)
        assert torch.equal(state.position, before)
        state = moved
        assert isinstance(info, Info)
        for value in (info.acceptance_rate, info.accepted, info.divergent):
            assert value.shape == (5,)
    assert kernel.target_acceptance in (0.5, 0.574, 0.8)


# ----------------------------------------------------------------------------- (d) warm-up


@pytest.mark.parametrize("per_chain_steps", [False, True], ids=["one step", "per chain"])
@pytest.mark.parametrize("name", CASES)
def test_the_warmup_reaches_each_kernels_target_acceptance(name, per_chain_steps):
    case = CASES[name]
    chains = 32
    kernel = case.make(np.full(chains, 2.0) if per_chain_steps else 2.0)
    generator = torch.Generator().manual_seed(5)
    kernel, state, _ = adapt_step_size(kernel, kernel.init(case.start(chains)), generator, 300)
    assert np.ndim(kernel.step_size) == per_chain_steps
    accepted = []
    for _ in range(200):
        state, info = kernel.step(state, generator)
        accepted.append(as_numpy(info.accepted))
    accepted = np.mean(accepted, 0)
    # 32 chains × 200 steps: the mean's statistical error is below 0.01
    assert abs(accepted.mean() - kernel.target_acceptance) < 0.04
    if per_chain_steps:  # each chain near the target, up to its own 200-step noise (≈ 0.03)
        # and the noise of its own step size
        assert np.sqrt(np.mean((accepted - kernel.target_acceptance) ** 2)) < 0.1


def test_kernels_check_their_arguments():
    with pytest.raises(ValueError, match="step_size"):
        MALA(gaussian, -1.0)
    with pytest.raises(ValueError, match="step_size"):
        HMC(gaussian, np.array([0.1, 0.0]))
    with pytest.raises(ValueError, match="n_leapfrog"):
        HMC(gaussian, 0.1, n_leapfrog=0)
    with pytest.raises(ValueError, match="length"):
        HMC(gaussian, 0.1, length=0.0)
    with pytest.raises(ValueError, match="jitter"):
        HMC(gaussian, 0.1, length=1.0, jitter=1.0)
    with pytest.raises(ValueError, match="block"):
        BlockMALA(local_gaussian, 0.5, block=3)
    with pytest.raises(ValueError, match="multiple of 2 × block"):
        BlockMALA(local_gaussian, 0.5, block=4).init(torch.zeros(2, 1, 12, 12))
    with pytest.raises(ValueError, match="per-cell"):
        BlockMALA(gaussian_field_total, 0.5, block=2).init(field_start(2))
    kernel = MALA(gaussian, np.ones(3))  # one step size per chain, for 3 chains
    with pytest.raises(ValueError, match="one per chain"):
        kernel.step(kernel.init(vector_start(2)), torch.Generator())
    with pytest.raises(ValueError, match="target"):
        adapt_step_size(kernel, kernel.init(vector_start(3)), torch.Generator(), 10, target=1.5)


def gaussian_field_total(y):
    density, grad = local_gaussian(y)
    return density.sum((-2, -1)), grad


def standard_normal(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return -0.5 * x.square().sum(-1), -x


def test_hmc_trajectories_follow_the_step_and_jitter_breaks_a_resonance():
    # a trajectory of duration θ turns a unit Gaussian's (x, q) by the angle θ, so that
    # corr(x², x'²) = cos²θ: 1 at θ = π (x → −x, x² never changes), and its mean over
    # θ uniform in [π/2, π], ½, with the jitter
    kernel = HMC(standard_normal, 0.01 * math.pi, length=math.pi)
    assert kernel.leapfrogs() == 100
    assert HMC(standard_normal, 0.1, length=1.0, n_leapfrog=3).leapfrogs() == 10
    assert HMC(standard_normal, 0.1, n_leapfrog=3).leapfrogs() == 3
    lag1 = []
    for jitter in (0.0, 0.5):
        generator = torch.Generator().manual_seed(0)
        hmc = HMC(standard_normal, 0.01 * math.pi, length=math.pi, jitter=jitter)
        state = hmc.init(torch.randn(4000, 1, generator=generator, dtype=torch.float64))
        before = state.position.square().flatten()
        state, _ = hmc.step(state, generator)
        after = state.position.square().flatten()
        lag1.append(float(torch.corrcoef(torch.stack([before, after]))[0, 1]))
    # 4000 pairs of χ² variables: the correlation's standard error is about 0.012 (five seeds
    # gave 0.473–0.503)
    assert lag1[0] > 0.99 and abs(lag1[1] - 0.5) < 0.05, lag1
