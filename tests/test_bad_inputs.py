"""The catalogue of bad inputs (issue 29): each command-line case exits with status 1 and one
line naming the option, file or value at fault, before any output file exists; each Python
case raises an error naming its argument. The cases of the first-run report are among them."""

import os
import re

import numpy as np
import pytest
import torch

from rgfield import io, morphology, stats, wavelets
from rgfield.cli import main
from rgfield.compare import summary
from rgfield.fields import simulate
from rgfield.fields.phi4 import Phi4, Phi4Config
from rgfield.mcmc import MALA, run_chains
from rgfield.rg import HierarchicalModel, mixing


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Data files of every kind the cases need, and one fitted model."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    good = rng.standard_normal((200, 16, 16))
    with_nan = good[:10].copy()
    with_nan[0, 0, 0] = np.nan
    arrays = {
        "good": good,
        "int16": rng.integers(-3, 3, (40, 16, 16)).astype(np.int16),
        "one": good[0],
        "vector": good[0, 0],
        "odd": rng.standard_normal((10, 15, 15)),
        "nan": with_nan,
        "constant": np.ones((10, 16, 16)),
        "complex": good[:10] + 1j,
        "wide": rng.standard_normal((10, 16, 32)),
    }
    for name, values in arrays.items():
        np.save(root / f"{name}.npy", values)
    (root / "text.txt").write_text("not a field")
    (root / "empty.nc").touch()
    (root / "adir").mkdir()
    model = HierarchicalModel(levels=2, progress=False).fit(good)
    model.save(root / "model.nc")
    return root


CLI_CASES = [
    # (argv, start of the message after "rgfield CMD: error: ")
    (["fit", "--data", "int16.npy", "--levels", "2"], r"data: every value is an integer"),
    (["fit", "--data", "missing.nc"], r"path: no such file missing\.nc"),
    (["fit", "--data", "text.txt"], r"path: text\.txt is not a readable netCDF file"),
    (["fit", "--data", "empty.nc"], r"path: empty\.nc is not a readable netCDF file"),
    (["fit", "--data", "one.npy"], r"data: at least 2 samples are needed; got 1"),
    (["fit", "--data", "vector.npy"], r"vector\.npy: array 'field' has shape \(16,\)"),
    (["fit", "--data", "odd.npy"], r"data: field size \(15, 15\) has an odd side"),
    (["fit", "--data", "nan.npy"], r"nan\.npy: variable 'field' contains 1 NaN or Inf"),
    (["fit", "--data", "constant.npy"], r"data: a scale has no fluctuations"),
    (["fit", "--data", "complex.npy"], r"complex\.npy: variable 'field' has non-numeric dtype"),
    (["fit", "--data", "good.npy", "--levels", "9"], r"levels"),
    (["fit", "--data", "good.npy", "--levels", "-1"], r"levels must be a positive integer"),
    (["fit", "--data", "good.npy", "--wavelet", "foo"], r"wavelet must be one of"),
    (["fit", "--data", "good.npy", "--windows", "0"], r"windows must be a positive integer"),
    (["fit", "--data", "good.npy", "--radius", "-2"], r"radius must be a non-negative integer"),
    (["fit", "--data", "good.npy", "--ridge", "-1"], r"ridge"),
    (["fit", "--data", "good.npy", "--refine", "1", "2"], r"refine"),
    (["fit", "--data", "model.nc"], r"path: model\.nc is a model file .* `rgfield sample --model`"),
    (["sample", "--model", "missing.nc", "--n", "2"], r"path: missing\.nc is not a file"),
    (["sample", "--model", "good.npy", "--n", "2"], r"path: good\.npy is not a netCDF file"),
    (["sample", "--model", "model.nc", "--n", "0"], r"n must be a positive integer; got 0"),
    (["sample", "--model", "model.nc", "--n", "2", "--steps", "-1"], r"steps must be"),
    (["sample", "--model", "model.nc", "--n", "2", "--device", "gpu0"], r"--device: unknown"),
    (["simulate", "phi4", "--size", "0", "--beta", "0.9", "--samples", "2"], r"size must be"),
    (["simulate", "phi4", "--size", "8", "--beta", "-1", "--samples", "2"], r"beta must be"),
    (["simulate", "phi4", "--size", "8", "--beta", "nan", "--samples", "2"], r"beta must be"),
    (["simulate", "phi4", "--size", "8", "--beta", "0.9", "--samples", "0"], r"samples must be"),
    (["simulate", "phi4", "--size", "8", "--beta", "0.9", "--lam", "-1", "--samples", "2"], "lam"),
    (["simulate", "turbulence", "--size", "10", "--samples", "2"], r"forcing_wavenumber must"),
    (["simulate", "cosmic", "--size", "8", "--samples", "1", "--box", "-5"], r"box must be"),
    (["synthesize", "--data", "missing.nc", "--n", "1"], r"path: no such file missing\.nc"),
    (["synthesize", "--data", "good.npy", "--n", "0"], r"n must be a positive integer"),
    (["pathways", "--kind", "phi4", "--size", "7"], r"size must be an integer >= 8; got 7"),
    (["pathways", "--kind", "phi4", "--samples", "0"], r"samples must be an integer >= 2"),
]
WITHOUT_OUT = [
    (["compare", "good.npy"], r"FILE: give the reference and at least one ensemble"),
    (["compare", "good.npy", "wide.npy"], r"ensembles\['wide'\]: fields of shape \(16, 32\)"),
    (["compare", "good.npy", "good.npy", "--labels", "a", "b"], r"--labels: 2 label\(s\)"),
    (["compare", "missing.nc", "good.npy"], r"path: no such file missing\.nc"),
    (["info", "missing.nc"], r"file: no such file missing\.nc"),
    (["info", "text.txt"], r"file: text\.txt is not a readable netCDF file"),
]
OUTPUTS = [  # the output location is refused before any work
    (["--out", "nodir/x.nc"], r"--out: directory nodir does not exist"),
    (["--out", "adir", "--overwrite"], r"--out: adir is a directory; give a file name"),
    (["--out", "model.nc"], r"model\.nc exists; pass --overwrite to replace it"),
]


def refused(argv: list[str], files, capsys) -> str:
    """The one line a refused command prints (its status checked), after "error: "."""
    cwd = os.getcwd()
    os.chdir(files)
    try:
        status = main([*argv, "--no-progress"] if argv[0] not in ("compare", "info") else argv)
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.count("\n") == 1 and err.startswith(f"rgfield {argv[0]}: error: "), err
    return err.split("error: ", 1)[1]


@pytest.mark.parametrize(
    ("argv", "message"), CLI_CASES, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else ""
)
def test_a_bad_command_line_gets_one_line_naming_what_is_wrong(argv, message, files, capsys):
    before = set(files.iterdir())
    assert re.match(message, refused([*argv, "--out", "x.nc"], files, capsys))
    assert set(files.iterdir()) == before  # nothing written, not even a temporary file


@pytest.mark.parametrize(
    ("argv", "message"), WITHOUT_OUT, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else ""
)
def test_bad_files_for_compare_and_info_get_one_line(argv, message, files, capsys):
    assert re.match(message, refused(argv, files, capsys))


@pytest.mark.parametrize(
    ("out", "message"), OUTPUTS, ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else ""
)
@pytest.mark.parametrize(
    "command",
    [["fit", "--data", "good.npy"], ["sample", "--model", "model.nc", "--n", "2"]],
    ids=["fit", "sample"],
)
def test_bad_output_locations_are_refused_before_any_work(command, out, message, files, capsys):
    assert re.match(message, refused([*command, *out], files, capsys))


def _api_cases(files):
    good = np.load(files / "good.npy")
    bad = np.load(files / "nan.npy")
    model = HierarchicalModel.load(files / "model.nc", progress=False)

    def fit(data=good, **params):
        return HierarchicalModel(progress=False, **params).fit(data)

    return [
        (lambda: fit(levels=-1), r"levels must be a positive integer or None; got -1"),
        (lambda: fit(levels=1.5), r"levels must be a positive integer or None; got 1\.5"),
        (lambda: fit(wavelet="foo"), r"wavelet must be one of"),
        (lambda: fit(features=["x"]), r"features: unknown feature family 'x'"),
        (lambda: fit(heldout=1.5), r"heldout must be in \[0, 1\); got 1\.5"),
        (lambda: fit([[1.0, 2.0], [3.0, 4.0]]), r"data must have shape \(samples, L, L\)"),
        (lambda: fit("data.nc"), r"expected a numpy array, torch tensor or xarray DataArray"),
        (lambda: fit(bad), r"data contains NaN or Inf"),
        (lambda: model.sample(2, seed=1.5), r"seed must be an integer or None; got 1\.5"),
        (lambda: model.sample(2.0), r"n must be a positive integer; got 2\.0"),
        (lambda: model.sample(2, step_size=float("nan")), r"step_size must be a positive"),
        (lambda: model.sample(2, device="gpu0"), r"device: unknown device 'gpu0'"),
        (lambda: model.energy(bad), r"x contains NaN or Inf"),
        (lambda: model.score_samples(good[:, :8, :8]), r"x: fields must be \(16, 16\)"),
        (lambda: mixing(model, good, steps=5), r"steps \(>= 10\) and warmup"),
        (lambda: model.save(files / "model.nc"), r".*model\.nc exists; pass overwrite=True"),
        (lambda: HierarchicalModel.load(files / "good.npy"), r"path: .*good\.npy is not"),
        (lambda: wavelets.decompose(torch.as_tensor(bad), 2), r"x contains 1 NaN or Inf"),
        (lambda: wavelets.decompose(torch.as_tensor(good), 9), r"x: spatial size 16"),
        (lambda: stats.power_spectrum(bad), r"fields contains 1 NaN or Inf values"),
        (lambda: stats.structure_functions(good, lags=[0]), r"lags must be increasing"),
        (lambda: morphology.minkowski_functionals(bad, [0.0]), r"fields contains 1 NaN"),
        (lambda: morphology.minkowski_functionals(good, []), r"thresholds must be a 1-D"),
        (lambda: morphology.peak_counts(bad), r"fields contains 1 NaN or Inf values"),
        (lambda: io.save(io.to_dataset(torch.as_tensor(bad)), files / "i.nc"), r".*i\.nc: var"),
        (lambda: io.load(files), r"path: .* is a directory; a zarr store's name ends in"),
        (lambda: Phi4Config(Phi4(0.9), -4), r"size must be an integer >= 4; got -4"),
        (lambda: Phi4(0.0), r"beta must be a positive number; got 0\.0"),
        (lambda: simulate(Phi4Config(Phi4(0.9), 8), 0, progress=False), r"samples must be"),
        (lambda: MALA(lambda x: (x.sum(), x), -1.0), r"step_size must be a positive number"),
        (
            lambda: run_chains(
                MALA(lambda x: (-x.square().sum(1) / 2, -x), 0.1),
                torch.zeros(2, 3),
                torch.Generator(),
                warmup=0,
                steps=-1,
            ),
            r"steps must be a non-negative integer; got -1",
        ),
        (lambda: summary(good, {"a": good[:, :8, :8]}), r"ensembles\['a'\]: fields of shape"),
    ]


def test_bad_arguments_of_the_python_api_raise_errors_naming_them(files):
    cases = _api_cases(files)
    for call, message in cases:
        with pytest.raises((ValueError, FileExistsError, FileNotFoundError), match=message):
            call()
    assert not (files / "i.nc").exists()
    assert len(cases) + len(CLI_CASES) + len(WITHOUT_OUT) + 2 * len(OUTPUTS) >= 44
