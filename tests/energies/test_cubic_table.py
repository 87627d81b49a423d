"""The compiled cubic-table pass against the torch path and against the cubic it tabulates."""

import numpy as np
import pytest
import torch

from rgfield.energies import cubic_table


def _table_of_cubic(lo: float, hi: float, cells: int) -> torch.Tensor:
    """Hermite cells of v(x) = x³ − 2x, which they reproduce exactly (a cubic)."""
    nodes = torch.linspace(lo, hi, cells + 1, dtype=torch.float64)
    v, dv = nodes**3 - 2 * nodes, 3 * nodes**2 - 2
    h = (hi - lo) / cells
    v0, v1, s0, s1 = v[:-1], v[1:], h * dv[:-1], h * dv[1:]
    return torch.stack([v0, s0, 3 * (v1 - v0) - 2 * s0 - s1, 2 * (v0 - v1) + s0 + s1], 1)


@pytest.mark.parametrize("pool", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_pass_equals_torch_and_the_cubic(pool, dtype):
    lo, hi = -1.5, 2.0
    table = _table_of_cubic(lo, hi, 37).to(dtype)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(5, 6, 8, generator=g, dtype=torch.float64) * 3.2 - 1.4).to(dtype)
    x[0, 0, 0], x[1, 2, 3], x[2, 4, 5], x[3, 1, 1] = lo, hi, hi + 0.1, lo - 3.0
    x[4, 5, 7] = float("nan")
    density, slope = cubic_table.evaluate(x, table, lo, hi, pool, backend="numba")
    reference = cubic_table.evaluate(x, table, lo, hi, pool, backend="torch")
    tol = {torch.float64: 1e-12, torch.float32: 2e-5}[dtype]
    torch.testing.assert_close(density, reference[0], rtol=tol, atol=tol, equal_nan=True)
    torch.testing.assert_close(slope, reference[1], rtol=tol, atol=tol, equal_nan=True)
    # independent: the cubic and its derivative inside the support, +∞ outside, NaN slope at NaN
    inside = (x >= lo) & (x <= hi)
    xd = x.double()
    values = torch.where(inside, xd**3 - 2 * xd, torch.inf)
    expected = values.reshape(5, 6 // pool, pool, 8 // pool, pool).sum((2, 4))
    torch.testing.assert_close(density.double(), expected, rtol=10 * tol, atol=10 * tol)
    torch.testing.assert_close(
        slope.double()[inside], (3 * xd**2 - 2)[inside], rtol=10 * tol, atol=10 * tol
    )
    assert np.isnan(slope[4, 5, 7].item())


def test_limits_not_exact_in_single_precision_give_the_same_support_on_both_paths():
    # the compiled pass compares x with the limits in x's precision, as torch does
    lo, hi = -0.1, 0.3
    table = _table_of_cubic(lo, hi, 8).float()
    edges = torch.tensor([lo, hi, float("inf"), -float("inf")], dtype=torch.float32)
    x = edges.reshape(1, 2, 2)
    density, slope = cubic_table.evaluate(x, table, lo, hi, backend="numba")
    reference = cubic_table.evaluate(x, table, lo, hi, backend="torch")
    torch.testing.assert_close(density, reference[0])
    torch.testing.assert_close(slope, reference[1])
    assert density.flatten()[:2].isfinite().all() and density.flatten()[2:].isinf().all()


def test_cpu_fields_outside_autograd_take_the_compiled_pass(monkeypatch):
    calls = []
    compiled = cubic_table._evaluate_numba
    monkeypatch.setattr(
        cubic_table, "_evaluate_numba", lambda *args: calls.append(1) or compiled(*args)
    )
    table = _table_of_cubic(0.0, 1.0, 4)
    cubic_table.evaluate(torch.full((1, 2, 2), 0.5, dtype=torch.float64), table, 0.0, 1.0)
    assert calls == [1]


def test_bad_arguments_are_refused():
    table = _table_of_cubic(0.0, 1.0, 4)
    x = torch.zeros(1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="backend"):
        cubic_table.evaluate(x, table, 0.0, 1.0, 1, "c")
    with pytest.raises(ValueError, match="multiples of pool = 2"):
        cubic_table.evaluate(torch.zeros(1, 5, 4, dtype=torch.float64), table, 0.0, 1.0, 2)
    with pytest.raises(ValueError, match=r"\(B, N, M\)"):
        cubic_table.evaluate(torch.zeros(2, 2, dtype=torch.float64), table, 0.0, 1.0)


def test_fields_that_autograd_follows_take_the_differentiable_path():
    # the microscopic energy differentiates the potential through x: the slope must be its
    # gradient there too (the compiled pass is outside autograd)
    lo, hi = -1.0, 1.0
    table = _table_of_cubic(lo, hi, 16)
    x = torch.linspace(-0.9, 0.9, 16, dtype=torch.float64).reshape(1, 4, 4).requires_grad_()
    density, slope = cubic_table.evaluate(x, table, lo, hi, pool=2)
    (grad,) = torch.autograd.grad(density.sum(), x)
    torch.testing.assert_close(grad, slope.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, 3 * x.detach() ** 2 - 2, rtol=1e-9, atol=1e-9)


def _bond_energy(x: torch.Tensor, lo: float, hi: float, at: str) -> torch.Tensor:
    """Per pixel ½ Σ_e W d² of the bonds (p, p + e), W from Z(v) = v³ − 2v at clamped values,
    in plain torch operations (independent of the table and of the compiled pass)."""

    def z(v):
        v = v.clamp(lo, hi)
        return v**3 - 2 * v

    density = torch.zeros_like(x)
    for e in ((1, 0), (0, 1)):
        far = x.roll((-e[0], -e[1]), (-2, -1))
        weight = z(0.5 * (x + far)) if at == "midpoints" else 0.5 * (z(x) + z(far))
        density = density + 0.5 * weight * (far - x).square()
    return density


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("at", ["midpoints", "sites"])
def test_bond_pass_equals_the_bond_sum_and_its_autograd_gradient(at, backend):
    # values beyond the support on both sides: Z constant there, its slope zero
    lo, hi = -1.5, 2.0
    table = _table_of_cubic(lo, hi, 37)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 6, 8, generator=g, dtype=torch.float64) * 4.4 - 2.0
    density, grad = cubic_table.evaluate_bonds(x, table, lo, hi, backend=backend, at=at)
    followed = x.clone().requires_grad_(True)
    expected = _bond_energy(followed, lo, hi, at)
    (expected_grad,) = torch.autograd.grad(expected.sum(), followed)
    torch.testing.assert_close(density, expected.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-10)


def test_bond_weights_other_than_midpoints_or_sites_are_refused():
    table = _table_of_cubic(0.0, 1.0, 4)
    with pytest.raises(ValueError, match="at must be one of"):
        cubic_table.evaluate_bonds(torch.zeros(1, 2, 2, dtype=torch.float64), table, 0, 1, at="x")
