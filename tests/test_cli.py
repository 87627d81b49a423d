import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import rgfield
from rgfield import io
from rgfield.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"rgfield {rgfield.__version__}"
    assert main([]) == 0
    assert "compare" in capsys.readouterr().out


def test_info_reports_versions_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in ("rgfield", "torch", "numba", "kymatio", "cuda"):
        assert any(line.startswith(name) for line in out.splitlines()), name
    kymatio = next(line for line in out.splitlines() if line.startswith("kymatio"))
    assert "unavailable" not in kymatio  # the pinned dependency set imports kymatio


def test_compare_prints_a_table_and_writes_a_report(tmp_path, capsys):
    rng = np.random.default_rng(0)
    io.save(io.to_dataset(rng.standard_normal((8, 16, 16)), "phi"), tmp_path / "ref.nc")
    np.save(tmp_path / "gen.npy", 3 * rng.standard_normal((6, 16, 16)))
    args = ["compare", "--reference", str(tmp_path / "ref.nc")]
    args += ["--samples", str(tmp_path / "gen.npy"), "--out", str(tmp_path / "report")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 samples against 8 reference fields" in out and "power_spectrum" in out
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Power spectrum" in report and "Observables" not in report  # not φ⁴ data
    assert (tmp_path / "report" / "figures" / "power_spectrum.png").stat().st_size > 1000
    with xr.open_dataset(tmp_path / "report" / "summary.nc") as table:
        ratio = float(table.moments_ratio.sel(moment="variance"))
        assert 5 < ratio < 15  # 9× the variance
    assert main(args) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_fit_sample_compare_round_trip(tmp_path, capsys):
    from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum

    fields = gaussian_field(lattice_free_field_spectrum(1.0, 0.5), (8, 8), 200, seed=0)
    io.save(io.to_dataset(fields, "phi"), tmp_path / "train.nc")
    model = tmp_path / "model.nc"
    assert (
        main(["fit", "--data", str(tmp_path / "train.nc"), "--out", str(model), "--no-progress"])
        == 0
    )
    assert "model written" in capsys.readouterr().out
    samples = tmp_path / "samples.nc"
    command = [
        "sample",
        "--model",
        str(model),
        "--n",
        "50",
        "--seed",
        "3",
        "--steps",
        "50",
        "--out",
        str(samples),
        "--no-progress",
    ]
    assert main(command) == 0
    assert "acceptance per scale" in capsys.readouterr().out
    drawn = io.load(samples)
    assert drawn.shape == (50, 8, 8) and drawn.attrs["seed"] == 3
    assert drawn.attrs["sampler"] == "mala"
    assert main(command) == 1  # never overwrites silently
    # 8×8 fields have no grid large enough for blocks: the block sampler falls back to MALA
    blocked = [*command[:-3], "--sampler", "block", "--out", str(tmp_path / "b.nc")]
    assert main([*blocked, "--no-progress"]) == 0
    again = io.load(tmp_path / "b.nc")
    assert again.attrs["sampler"] == "block" and np.array_equal(again.values, drawn.values)
    assert (
        main(
            [
                "compare",
                "--reference",
                str(tmp_path / "train.nc"),
                "--samples",
                str(samples),
                "--model",
                str(model),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "figures" / "potentials.png").exists()


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--samples", "16", "--refine", "1", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"open {out}/report/report.md" in printed
    report = (out / "report" / "report.md").read_text()
    assert "## Observables" in report  # φ⁴ reference: its observables are compared
    assert io.load(out / "samples.nc").shape == (16, 32, 32)
    assert main(["demo", "--out", str(out)]) == 1


def test_user_errors_exit_1_with_one_line(tmp_path, capsys):
    assert main(["compare", "--reference", str(tmp_path / "none.nc"), "--samples", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rgfield compare: error:") and "no such file" in err
    # --refine takes one count or one per model (J + 1 = 4 for 8×8 fields)
    io.save(io.to_dataset(np.zeros((4, 8, 8)) + np.arange(8), "phi"), tmp_path / "d.nc")
    fit = ["fit", "--data", str(tmp_path / "d.nc"), "--out", str(tmp_path / "m.nc")]
    assert main([*fit, "--refine", "1", "2", "--no-progress"]) == 1
    assert "refine must be a non-negative integer or 4 of them" in capsys.readouterr().err
    assert not (tmp_path / "m.nc").exists()


def test_console_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "rgfield", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"rgfield {rgfield.__version__}"
