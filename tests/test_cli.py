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


def test_compare_prints_a_table_and_writes_it(tmp_path, capsys):
    rng = np.random.default_rng(0)
    io.save(io.to_dataset(rng.standard_normal((8, 16, 16)), "phi"), tmp_path / "ref.nc")
    np.save(tmp_path / "gen.npy", 3 * rng.standard_normal((6, 16, 16)))
    args = [
        "compare",
        "--reference",
        str(tmp_path / "ref.nc"),
        "--samples",
        str(tmp_path / "gen.npy"),
        "--out",
        str(tmp_path / "table.nc"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 samples against 8 reference fields" in out and "power_spectrum" in out
    with xr.open_dataset(tmp_path / "table.nc") as table:
        assert float(table.moments.sel(moment="variance")) > 5  # 9× the variance
    assert main(args) == 1
    assert "exists; pass overwrite=True" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_user_errors_exit_1_with_one_line(tmp_path, capsys):
    assert main(["compare", "--reference", str(tmp_path / "none.nc"), "--samples", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rgfield compare: error:") and "no such file" in err


def test_console_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "rgfield", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"rgfield {rgfield.__version__}"
