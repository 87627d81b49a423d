"""Validation reports: the pixel KS null level and the overwrite rules."""

import pytest


def test_pixel_ks_is_judged_against_random_halvings_of_the_reference(free_field):
    from rgfield.report import summary

    reference = free_field(200, seed=0)
    same = summary(reference, free_field(200, seed=1))["pixels"]
    shifted = summary(reference, free_field(200, seed=1) + 0.2)["pixels"]
    # an independent set of the same law is a draw of the null: its statistic is a typical
    # halving's (p-value ≥ 0.05 except in 5 % of seeds); a shifted set is beyond all 20
    assert float(same.ks_halves_at_or_above) >= 0.05
    assert float(shifted.ks_halves_at_or_above) == 0
    assert float(shifted.ks_samples_vs_reference) > 3 * float(shifted.ks_reference_halves)


def test_report_never_replaces_a_foreign_directory(tmp_path, free_field):
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
