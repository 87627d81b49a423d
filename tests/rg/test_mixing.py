"""The mixing study of a fitted model."""

import pytest

from rgfield.rg import HierarchicalModel, mixing


def test_mixing_reports_tau_per_mala_scale(free_field):
    fields = free_field(100, size=8)
    model = HierarchicalModel(progress=False).fit(fields)
    study = mixing(model, fields, steps=300, warmup=50)
    assert list(study["scale"].values) == ["j=3", "j=2", "j=1"]
    # renormalised conditionals are well conditioned: MALA decorrelates in a few tens of steps
    assert (study["tau_energy"] < 30).all() and (study["tau_sum"] < 30).all(), study
    # a sanity bound only: chains started at the data stay near the data's fluctuations
    assert ((study["variance_ratio"] > 0.5) & (study["variance_ratio"] < 2)).all(), study
    with pytest.raises(ValueError, match="steps"):
        mixing(model, fields, steps=3)
    with pytest.raises(ValueError, match="fields must be"):
        mixing(model, free_field(10, size=16))
    with pytest.raises(ValueError, match="not fitted"):
        mixing(HierarchicalModel(), fields)


def test_stuck_chains_give_nan_tau_and_a_warning_naming_the_scale(free_field):
    # steps of 1e8 leave every chain where it started (a degenerate fit looks the same):
    # the study reports NaN τ_int instead of raising on the constant traces
    fields = free_field(100, size=8)
    model = HierarchicalModel(progress=False).fit(fields)
    with pytest.warns(UserWarning, match=r"scale j=1: acceptance 0\.000.*τ_int is undefined"):
        study = mixing(model, fields[:8], steps=10, warmup=0, step_size=1e8)
    assert (study["acceptance"] == 0).all()
    assert study["tau_energy"].isnull().all() and study["tau_sum"].isnull().all()
