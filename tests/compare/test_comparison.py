"""summary(): the one z definition, N labelled ensembles, same-law and different ensembles, and
the errors on bad input."""

import math

import numpy as np
import pytest
import torch
import xarray as xr

from rgfield.compare import held, markdown, summary, z_score


def constant_fields(values, size=4):
    """Fields each constant at one of ``values``: their per-field mean is that value."""
    return torch.tensor(values, dtype=torch.float64)[:, None, None].expand(-1, size, size)


def test_z_is_the_difference_over_the_combined_standard_error():
    # reference per-field means 1, 2, 3: mean 2, sample sd 1, standard error 1/√3;
    # generated 4, 6: mean 5, sd √2, standard error 1; z = 3 / √(1/3 + 1) = 3√3/2
    s = summary(constant_fields([1.0, 2.0, 3.0]), constant_fields([4.0, 6.0]), statistics="moments")
    mean = s["statistics/moments"].to_dataset().sel(moment="mean", ensemble="samples")
    assert float(mean.reference) == pytest.approx(2.0)
    assert float(mean.reference_error) == pytest.approx(1 / math.sqrt(3))
    assert float(mean.estimate) == pytest.approx(5.0)
    assert float(mean.error) == pytest.approx(1.0)
    assert float(mean.ratio) == pytest.approx(2.5)
    assert float(mean.z) == pytest.approx(3 * math.sqrt(3) / 2)
    # the function itself, on numpy and xarray, and NaN where there is no error at all
    assert z_score(2.0, 0.6, 2.8, 0.8) == pytest.approx(0.8)
    z = z_score(xr.DataArray([1.0, 1.0]), xr.DataArray([0.3, 0.0]), 2.0, xr.DataArray([0.4, 0.0]))
    assert float(z[0]) == pytest.approx(2.0) and np.isnan(float(z[1]))
    np.testing.assert_array_equal(
        np.isnan(z_score(np.zeros(2), 0.0, 1.0, np.array([0, 1]))), [1, 0]
    )


def test_three_labelled_ensembles_share_one_summary(free_field):
    ref = free_field(32)
    ensembles = {
        "a": free_field(32, seed=1),
        "b": free_field(20, seed=2),
        "c": free_field(8, seed=3),
    }
    s = summary(ref, ensembles)
    assert list(s["ensemble"].values) == ["a", "b", "c"]
    assert list(s["samples"].values) == [32, 20, 8] and s.attrs["reference_samples"] == 32
    assert s["max_abs_z"].dims == ("quantity", "ensemble") and s["max_abs_z"].shape[1] == 3
    assert "statistics/power_spectrum" in s["quantity"].values
    ps = s["statistics/power_spectrum"].to_dataset()
    assert ps["z"].dims == ("ensemble", "k") and ps["reference"].dims == ("k",)
    assert list(s["pixels"]["ks_vs_reference"]["ensemble"].values) == ["a", "b", "c"]
    # each ensemble's numbers are those it gets alone: nothing depends on the others
    alone = summary(ref, {"b": ensembles["b"]})["statistics/power_spectrum"].to_dataset()
    xr.testing.assert_allclose(alone.z.sel(ensemble="b"), ps.z.sel(ensemble="b"))


def test_a_same_law_ensemble_has_small_z_and_a_shifted_or_scaled_one_large(free_field):
    ref, same = free_field(64, seed=101), free_field(64, seed=1)
    s = summary(ref, {"same": same, "shifted": same + 0.3, "scaled": 1.2 * same})
    largest = s["max_abs_z"]
    # under one law every z is about N(0, 1); the largest of ≲ 600 entries stays below 4.5
    assert float(largest.sel(ensemble="same").max()) < 4.5
    z = s["statistics/power_spectrum"].z.sel(ensemble="same")
    assert 0.3 < float(np.sqrt((z**2).mean())) < 2
    # a shift by 0.3 (the fields' sd is about 0.6) moves the mean, not the spectrum at k > 0
    assert float(largest.sel(quantity="statistics/moments", ensemble="shifted")) > 10
    assert float(largest.sel(quantity="statistics/power_spectrum", ensemble="shifted")) < 4.5
    # 1.2× the field: 1.44× the spectrum, far beyond the errors
    assert float(largest.sel(quantity="statistics/power_spectrum", ensemble="scaled")) > 5
    ratio = s["statistics/power_spectrum"].ratio
    np.testing.assert_allclose(ratio.sel(ensemble="scaled") / ratio.sel(ensemble="same"), 1.44)


def test_a_single_array_is_labelled_samples(free_field):
    s = summary(free_field(4, size=8), free_field(3, size=8, seed=1), statistics="moments")
    assert list(s["ensemble"].values) == ["samples"]


def test_bad_inputs_are_refused_naming_the_argument(free_field):
    ref = free_field(4, size=8)
    with pytest.raises(ValueError, match=r"ensembles\['a'\]: fields of shape \(8, 16\)"):
        summary(ref, {"a": torch.zeros(4, 8, 16)})
    with pytest.raises(ValueError, match=r"ensembles\['a'\]: needs .* at least 2 samples"):
        summary(ref, {"a": ref[:1]})
    with pytest.raises(ValueError, match="reference: needs .* at least 2 samples"):
        summary(ref[:1], ref)
    with pytest.raises(ValueError, match="labels must be non-empty strings other than"):
        summary(ref, {"reference": ref})
    with pytest.raises(ValueError, match="labels must be"):
        summary(ref, {3: ref})
    with pytest.raises(ValueError, match="at least one ensemble"):
        summary(ref, {})
    with pytest.raises(ValueError, match="not a Dataset"):
        summary(ref, xr.Dataset({"phi": (("sample", "y", "x"), ref.numpy())}))
    with pytest.raises(ValueError, match=r"ensembles\['a'\]: contains NaN"):
        summary(ref, {"a": ref * float("nan")})
    with pytest.raises(ValueError, match="statistics: unknown .*registered"):
        summary(ref, ref, statistics="spectrum")
    with pytest.raises(ValueError, match="observables: unknown"):
        summary(ref, ref, observables=["ising"])
    odd = torch.zeros(4, 9, 9, dtype=torch.float64) + torch.arange(9.0)
    with pytest.raises(ValueError, match="'coarse_field_variance' does not apply"):
        summary(odd, odd, statistics="coarse_field_variance")
    assert "statistics/coarse_field_variance" not in summary(odd, odd)["quantity"].values


def test_a_summary_of_chosen_statistics_only(free_field):
    ref = free_field(4, size=8)
    s = summary(ref, ref + 1, statistics=(), observables="cosmic")
    assert held(s, "statistics") == [] and held(s, "observables") == ["cosmic"]
    assert list(s["quantity"].values) == ["observables/cosmic"]
    text = markdown(s)
    assert "## Observables: cosmic web" in text and "## Power spectrum" not in text


def test_z_threshold_is_sidaks_level_of_the_largest_of_m_normal_z():
    from scipy.stats import norm
    from scipy.stats import t as student_t

    from rgfield.compare import z_threshold

    assert z_threshold(1) == pytest.approx(norm.isf(0.005))  # two-sided 1 %
    for m in (4, 100):
        t = z_threshold(m, level=0.05)
        assert 1 - (1 - 2 * norm.sf(t)) ** m == pytest.approx(0.05)  # P(max |z| > t) = level
        t = z_threshold(m, level=0.05, dof=5)
        assert 1 - (1 - 2 * student_t.sf(t, 5)) ** m == pytest.approx(0.05)


def test_the_summary_and_report_flag_what_fails_and_pass_what_agrees(free_field):
    ref, same = free_field(64, seed=101), free_field(64, seed=1)
    s = summary(ref, {"same": same, "scaled": 1.2 * same})
    failed = s["failed"]
    assert not failed.sel(ensemble="same").any()
    assert bool(failed.sel(quantity="statistics/power_spectrum", ensemble="scaled"))
    text = markdown(s)
    assert "- same: pass" in text
    assert "- scaled: **FAIL** on " in text and "statistics/power_spectrum" in text
    assert "✗**" in text  # the failing rows of the tables are marked
    total = s.sizes["quantity"] + 1
    failures = int(s["failed"].sel(ensemble="scaled").sum()) + int(
        s["pixels"].to_dataset()["ks_failed"].sel(ensemble="scaled")
    )
    assert (
        f"Ranking, fewest failed checks first: same (0 of {total} failed),"
        f" scaled ({failures} of {total} failed)." in text
    )
    reversed_order = markdown(summary(ref, {"scaled": 1.2 * same, "same": same}))
    assert "first: same (0 of" in reversed_order


def test_training_fields_add_the_memorisation_statistic(free_field):
    """Copies of training fields (shifted) fail the memorisation test; fresh fields of the same
    law pass it against held-out fields."""
    train, held_out = free_field(24, size=16, seed=0), free_field(24, size=16, seed=1)
    copies = torch.roll(train[:20], (3, 5), (1, 2))
    s = summary(
        held_out,
        {"fresh": free_field(20, size=16, seed=2), "copies": copies},
        statistics=["moments"],
        train=train,
    )
    node = s["statistics/memorisation"].to_dataset()
    assert float(node["estimate"].sel(ensemble="copies")) < 1e-6
    assert 0.5 < float(node["reference"]) < 1
    failed = s["failed"].sel(quantity="statistics/memorisation")
    assert bool(failed.sel(ensemble="copies")) and not bool(failed.sel(ensemble="fresh"))
    with pytest.raises(ValueError, match="train: fields of shape"):
        summary(held_out, copies, train=train[:, :8])
