"""Observables chosen by the reference's generator, and their values against hand computations."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr

from rgfield import stats
from rgfield.compare import OBSERVABLES, markdown, summary
from rgfield.compare.observables import observables_for
from rgfield.wavelets import decompose


def ensemble(fields, generator=None, name="phi"):
    attrs = {} if generator is None else {"generator": generator}
    return xr.DataArray(np.asarray(fields), dims=("sample", "y", "x"), name=name, attrs=attrs)


def names(reference):
    return [s.name for s in observables_for(reference)]


def test_the_generator_attr_chooses_the_observables():
    fields = np.zeros((2, 8, 8))
    assert names(ensemble(fields, "rgfield.fields.phi4.simulate")) == ["phi4", "phi4_scaling"]
    turbulence = "rgfield.fields.turbulence.simulate"
    assert names(ensemble(fields, turbulence, "vorticity")) == ["turbulence"]
    assert names(ensemble(fields, turbulence, "u")) == []  # a velocity component: not vorticity
    assert names(ensemble(fields, "rgfield.fields.cosmic.simulate", "delta")) == ["cosmic"]
    assert names(ensemble(fields, "rgfield.fields.gaussian.simulate")) == []
    assert names(ensemble(fields)) == [] and names(fields) == []


def test_phi4_gets_its_table_and_ising_line_and_other_data_nothing_of_it(free_field):
    fields = free_field(24, size=8)
    phi4 = summary(ensemble(fields, "rgfield.fields.phi4.simulate"), fields[:12])
    text = markdown(phi4)
    assert "## Observables: φ⁴ lattice field (blocked jackknife)" in text
    assert "| binder_cumulant |" in text and "2D Ising criticality" in text
    assert phi4["observables/phi4_scaling"].attrs["expected"] == pytest.approx(2 ** (7 / 8))
    gaussian = summary(ensemble(fields, "rgfield.fields.gaussian.simulate"), fields[:12])
    text = markdown(gaussian)
    assert "observables" not in gaussian.children
    assert "Observables" not in text and "Ising" not in text and "φ⁴" not in text
    # observables can also be asked for by name, whatever the generator
    assert "observables/cosmic" in summary(fields, fields[:12], observables="cosmic")["quantity"]


def test_phi4_observables_and_growth_match_direct_computations(free_field):
    fields = free_field(40, size=16)
    s = summary(ensemble(fields, "phi4"), fields[:20])
    direct = stats.phi4_observables(fields)
    np.testing.assert_allclose(s["observables/phi4"].reference.values, direct.value.values)
    np.testing.assert_allclose(s["observables/phi4"].reference_error.values, direct.error.values)
    # growth of the pooled standard deviation of the coarse field per level, written out
    pyramid = decompose(fields, 4)
    std = [pyramid.coarse(j).std(unbiased=False).item() for j in range(5)]
    growth = s["observables/phi4_scaling"].reference
    np.testing.assert_allclose(growth.values, np.array(std[1:]) / np.array(std[:-1]), rtol=1e-10)
    assert list(growth.step.values) == [1, 2, 3, 4]


def test_turbulence_energy_enstrophy_and_flatness_of_known_fields():
    # ω = cos(3x + a) + cos(3y + b) on [0, 2π)²: ψ = ω/9, E = ½⟨|∇ψ|²⟩ = 2 · ¼ / 9 = 1/18,
    # Z = ½⟨ω²⟩ = ½; increments along each axis are a sinusoid's: ⟨s⁴⟩/⟨s²⟩² = (3/8)/(1/4)
    n = 16
    x = 2 * np.pi * np.arange(n) / n
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, (6, 2))
    omega = np.stack([np.cos(3 * x[None, :] + a) + np.cos(3 * x[:, None] + b) for a, b in phases])
    s = summary(ensemble(omega, "rgfield.fields.turbulence.simulate", "vorticity"), omega[:3] * 2)
    table = s["observables/turbulence"].to_dataset()
    np.testing.assert_allclose(
        table.reference.sel(observable=["energy", "enstrophy", "flatness"]), [1 / 18, 0.5, 1.5]
    )
    # twice the vorticity: 4× the energy and enstrophy, the same flatness
    np.testing.assert_allclose(table.ratio.sel(ensemble="samples"), [4, 4, 1])


def test_cosmic_moments_are_those_of_the_pooled_pixels():
    rng = np.random.default_rng(1)
    delta = np.exp(rng.standard_normal((12, 8, 8)) * 0.5) - 1
    s = summary(ensemble(delta, "rgfield.fields.cosmic.simulate", "delta"), delta[:6])
    reference = s["observables/cosmic"].reference
    pooled = delta.reshape(-1)
    variance, skewness = pooled.var(), scipy.stats.skew(pooled)
    np.testing.assert_allclose(
        reference.values, [variance, skewness, skewness / math.sqrt(variance)], rtol=1e-10
    )
    assert float(s["observables/cosmic"].reference_error.sel(observable="skewness")) > 0


def test_every_registered_set_returns_values_and_errors_along_one_dim(free_field):
    fields = torch.as_tensor(free_field(6, size=8))
    computed = {
        "coarse_field_variance": stats.coarse_field_variance(fields, 3),
        "structure_functions": stats.structure_functions(fields),
    }
    for observables in OBSERVABLES.values():
        table = observables.function(fields, computed)
        assert set(table.data_vars) == {"value", "error"}, observables.name
        assert len(table["value"].dims) == 1 and (table["error"] >= 0).all(), observables.name
