"""Validation reports: the pixel KS null level, the files written, atomicity and the overwrite
rules."""

import pytest
import xarray as xr

from rgfield.compare import report as report_module
from rgfield.compare import summary, write_report


def test_pixel_ks_is_judged_against_random_halvings_of_the_reference(free_field):
    reference = free_field(200, seed=0)
    same = summary(reference, free_field(200, seed=1))["pixels"].sel(ensemble="samples")
    shifted = summary(reference, free_field(200, seed=1) + 0.2)["pixels"].sel(ensemble="samples")
    # an independent set of the same law is a draw of the null: its statistic is a typical
    # halving's (p-value ≥ 0.05 except in 5 % of seeds); a shifted set is beyond all 20
    assert float(same.ks_halves_at_or_above) >= 0.05
    assert float(shifted.ks_halves_at_or_above) == 0
    assert float(shifted.ks_vs_reference) > 3 * float(shifted.ks_reference_halves)


def test_report_never_replaces_a_foreign_directory(tmp_path, free_field):
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


def test_report_of_three_labelled_ensembles(tmp_path, free_field):
    ref = free_field(16, size=8)
    ensembles = {"rg": free_field(16, size=8, seed=1), "diffusion": 2 * free_field(12, size=8)}
    ensembles["white"] = free_field(10, size=8, seed=3)
    out = write_report(ref, ensembles, tmp_path / "report")
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.md", "summary.nc"]
    text = (out / "report.md").read_text()
    assert "| quantity | entries | rg | diffusion | white |" in text
    assert "| k | reference | rg | ratio (rg) | z (rg) | diffusion |" in text
    assert "Ising" not in text and "Observables" not in text  # no generator: no observables
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"power_spectrum.png", "pixel_histogram.png", "wavelet_histograms.png"} <= figures
    assert {"fields.png", "minkowski.png", "peaks.png", "bispectrum.png"} <= figures
    assert "![fields.png](figures/fields.png)" in text
    assert not any(name.startswith("observables") for name in figures)
    with xr.open_datatree(out / "summary.nc") as tree:
        assert list(tree["ensemble"].values) == ["rg", "diffusion", "white"]
        assert list(tree["samples"].values) == [16, 12, 10]
        ratio = tree["statistics/moments"].ratio.sel(moment="variance", ensemble="diffusion")
        assert 2.5 < float(ratio) < 6  # 4× the variance
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary directory left


def test_the_output_path_is_checked_before_any_work(tmp_path, free_field, monkeypatch):
    ref = free_field(4, size=8)
    (tmp_path / "report").mkdir()

    def no_work(*args, **kwargs):
        raise AssertionError("statistics computed before the output path was checked")

    monkeypatch.setattr(report_module, "summarise", no_work)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_report(ref, ref, tmp_path / "report")
    with pytest.raises(ValueError, match="does not exist"):
        write_report(ref, ref, tmp_path / "missing" / "report")


def test_an_interrupted_report_leaves_the_previous_one_intact(tmp_path, free_field, monkeypatch):
    ref, chosen = free_field(4, size=8), {"statistics": "power_spectrum"}
    out = write_report(ref, {"a": ref + 1}, tmp_path / "report", **chosen)
    before = (out / "report.md").read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "markdown", interrupted)  # after figures and summary.nc
    with pytest.raises(KeyboardInterrupt):
        write_report(ref, {"b": ref + 2}, out, overwrite=True, **chosen)
    assert (out / "report.md").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_bispectrum_and_scattering_figures_of_16_pixel_fields(free_field):
    from rgfield.compare import plots, summary

    s = summary(free_field(12, size=16), {"other": free_field(12, size=16, seed=1)})
    drawn = plots.figures(s)
    assert {"bispectrum.png", "scattering_spectra.png"} <= set(drawn)
    panels = [ax.get_title() for ax in drawn["scattering_spectra.png"].axes]
    assert {"S1", "S2", "C01", "C11"} <= set(panels)
    titles = [ax.get_title() for ax in drawn["bispectrum.png"].axes]
    assert titles == ["equilateral (k, k, k)", "squeezed (2, k, k)"]
