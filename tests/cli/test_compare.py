"""``rgfield compare REF A B ... --labels ...``: the table, the report, the argument checks."""

import numpy as np
import pytest
import xarray as xr

from rgfield import io
from rgfield.cli import main


@pytest.fixture
def files(tmp_path):
    """A reference (8 fields, no generator), one ensemble of its law and one 3× louder."""
    rng = np.random.default_rng(0)
    io.save(io.to_dataset(rng.standard_normal((8, 16, 16)), "phi"), tmp_path / "ref.nc")
    io.save(io.to_dataset(rng.standard_normal((6, 16, 16)), "phi"), tmp_path / "a.nc")
    np.save(tmp_path / "b.npy", 3 * rng.standard_normal((5, 16, 16)))
    return [str(tmp_path / name) for name in ("ref.nc", "a.nc", "b.npy")]


def test_n_ensembles_with_labels_print_a_table_and_write_one_report(files, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", *files, "--labels", "near", "loud", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6 near, 5 loud against 8 reference fields" in printed
    header, *rows = printed.splitlines()[1:3]
    assert header.split() == ["near", "loud"] and rows[0].split()[0] == "statistics/power_spectrum"
    near, loud = rows[0].split()[1:]
    assert loud.endswith("✗") and not near.endswith("✗")  # flagged: above its threshold
    near, loud = float(near), float(loud.rstrip("✗"))
    assert near < 5 < loud  # the same law, and 9× the spectrum
    assert "verdict: near pass, loud FAIL (" in printed
    assert "observables" not in printed  # no generator: no observables
    assert "report written to" in printed
    text = (out / "report.md").read_text()
    assert "| quantity | entries | near | loud |" in text
    with xr.open_datatree(out / "summary.nc") as tree:
        assert list(tree["ensemble"].values) == ["near", "loud"]
        largest = tree["max_abs_z"].sel(quantity="statistics/power_spectrum").values
        np.testing.assert_allclose(largest, [near, loud], atol=0.006)  # the table's numbers
    assert main(["compare", *files, "--out", str(out)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_default_labels_are_file_names_or_samples(files, capsys):
    assert main(["compare", *files]) == 0
    assert "6 a, 5 b against 8 reference fields" in capsys.readouterr().out
    assert main(["compare", "--reference", files[0], "--samples", files[2]]) == 0
    assert "5 samples against 8 reference fields" in capsys.readouterr().out
    assert main(["compare", files[0], files[1], files[1]]) == 1
    assert "file names (give --labels): labels must differ" in capsys.readouterr().err


def test_a_phi4_reference_adds_its_observables(tmp_path, capsys):
    rng = np.random.default_rng(1)
    attrs = {"generator": "rgfield.fields.phi4.simulate"}
    io.save(io.to_dataset(rng.standard_normal((8, 8, 8)), "phi", attrs), tmp_path / "ref.nc")
    np.save(tmp_path / "gen.npy", rng.standard_normal((8, 8, 8)))
    assert main(["compare", str(tmp_path / "ref.nc"), str(tmp_path / "gen.npy")]) == 0
    printed = capsys.readouterr().out
    assert "observables/phi4 " in printed and "observables/phi4_scaling" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.nc", "b.nc", "c.nc", "--labels", "x"], "--labels: 1 label(s) for 2 ensemble(s)"),
        (["a.nc", "b.nc", "--labels", "x", "x"], "--labels: 2 label(s) for 1 ensemble(s)"),
        (["a.nc", "b.nc", "c.nc", "--labels", "x", "x"], "--labels: labels must differ"),
        (["a.nc"], "FILE: give the reference and at least one ensemble; got 1 file(s)"),
        (["a.nc", "--samples", "b.nc"], "--reference and --samples go together"),
        (["--reference", "a.nc", "b.nc"], "--reference and --samples go together"),
        (["a.nc", "b.nc", "--model", "m.nc"], "--model adds the learned potentials"),
    ],
)
def test_bad_arguments_are_refused_before_reading_any_file(argv, message, capsys):
    assert main(["compare", *argv]) == 1  # none of these files exists: the arguments come first
    err = capsys.readouterr().err
    assert err.startswith("rgfield compare: error: ") and message in err, err


def test_a_missing_file_is_named(files, tmp_path, capsys):
    assert main(["compare", files[0], str(tmp_path / "none.nc")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_train_adds_the_memorisation_row(files, tmp_path, capsys):
    assert main(["compare", *files[:2], "--train", files[2], "--labels", "a"]) == 0
    assert "statistics/memorisation" in capsys.readouterr().out
