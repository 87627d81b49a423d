import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import rgfield
from rgfield import io
from rgfield.cli import Terminated, main


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
    torch_line = next(line for line in out.splitlines() if line.startswith("torch"))
    assert torch_line.split()[-1] == torch.__version__


def test_info_shows_an_absent_optional_package_as_not_installed(monkeypatch, capsys):
    from importlib import metadata

    from rgfield.cli import info

    installed = metadata.version

    def version(name):
        if name == "kymatio":  # a test-only dependency: absent from a user's installation
            raise metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(info.metadata, "version", version)
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("kymatio")).split()[1:] == [
        "not",
        "installed",
    ]


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
    with xr.open_datatree(tmp_path / "report" / "summary.nc") as tree:
        moments = tree["statistics/moments"]
        ratio = float(moments.ratio.sel(moment="variance", ensemble="samples"))
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
    printed = capsys.readouterr().out
    assert "model written" in printed
    # without --levels the model goes down to 1×1: 3 conditionals for 8×8 fields, and the
    # summary gives the number learned (it printed "fitted None conditionals")
    from rgfield.rg import HierarchicalModel

    assert HierarchicalModel.load(model, progress=False).levels_ == 3
    assert "fitted 3 conditionals and the coarsest field on 200 fields of 8×8" in printed
    assert "moment_gap_end" not in printed  # no column of NaN without refinement
    # the sampler is calibrated on the training fields and the file keeps it
    assert "hmc calibrated (step/τ_int/steps of a 500-field draw per scale): j=3" in printed
    assert list(HierarchicalModel.load(model, progress=False).calibration_) == ["j=3", "j=2", "j=1"]
    plain = ["fit", "--data", str(tmp_path / "train.nc"), "--no-calibrate", "--no-progress"]
    assert main([*plain, "--out", str(tmp_path / "plain.nc")]) == 0
    assert "sampler not calibrated" in capsys.readouterr().out
    assert HierarchicalModel.load(tmp_path / "plain.nc", progress=False).calibration_ == {}
    # rgfield info FILE describes a model and an ensemble; a model given as data says so
    assert main(["info", str(model)]) == 0
    described = capsys.readouterr().out
    assert "fitted on fields of 8 × 8: 3 conditionals" in described
    fitted = HierarchicalModel.load(model, progress=False)
    count = sum(
        m.theta.numel() for m in [fitted.low_, *fitted.conditionals_, *fitted.free_energies_]
    )
    assert f"{count} parameters in all" in described
    assert "hmc calibrated (step/τ_int/steps of a 500-field draw per scale): j=3" in described
    assert main(["info", str(tmp_path / "train.nc")]) == 0
    assert "ensemble of 200 fields of 8 × 8 (float32)" in capsys.readouterr().out
    refused = ["fit", "--data", str(model), "--out", str(tmp_path / "m2.nc"), "--no-progress"]
    assert main(refused) == 1
    assert "is a model file" in capsys.readouterr().err
    assert not (tmp_path / "m2.nc").exists()
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
        "--sampler",
        "mala",
        "--out",
        str(samples),
        "--no-progress",
    ]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "acceptance per scale" in out
    # j = 3, 2, 1 by MALA (the 1×1 coarsest field exactly), 1 + 200 warm-up + 50 steps each
    assert "753 gradient evaluations per field" in out
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
    assert main([*args, "--pathway-samples", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"open {out}/report/report.md" in printed
    report = (out / "report" / "report.md").read_text()
    assert "## Observables" in report  # φ⁴ reference: its observables are compared
    assert io.load(out / "samples.nc").shape == (16, 32, 32)
    # step 4: the pathways on the shipped turbulence, against its held-out fields
    assert "4/4 generative pathways on forced 2D turbulence" in printed
    assert "| 1 | " in printed and "| rg |" in printed.replace("| 1 | rg |", "| rg |")
    turbulence = (out / "pathways" / "report" / "report.md").read_text()
    assert "φ⁴" not in turbulence and "## Observables: 2D turbulence" in turbulence
    assert "figures/minkowski.png" in turbulence and "figures/bispectrum.png" in turbulence
    assert io.load(out / "pathways" / "ensembles" / "microcanonical.nc").shape == (4, 32, 32)
    assert main(["demo", "--out", str(out)]) == 1
    assert main([*args, "--pathway-samples", "1"]) == 1


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
    with pytest.raises(SystemExit):  # a count or "auto"
        main([*fit, "--refine", "often", "--no-progress"])
    assert "argument --refine: invalid count_or_auto value: 'often'" in capsys.readouterr().err


def test_fit_presets_are_recipes_that_options_override():
    from rgfield.cli import build_parser
    from rgfield.cli.fit import build_model

    def params(*options, generator=""):
        args = build_parser().parse_args(["fit", "--data", "d.nc", "--out", "m.nc", *options])
        return build_model(args, generator).get_params()

    assert params()["refine"] == 0 and params()["refine_coarse"] == "data"
    accurate = params("--preset", "accurate")
    assert accurate["refine"] == "auto" and accurate["refine_coarse"] == "generated"
    mixed = params("--preset", "accurate", "--refine", "5")
    assert mixed["refine"] == 5 and mixed["refine_coarse"] == "generated"
    assert params("--refine", "1", "2")["refine"] == [1, 2]
    # φ⁴'s accurate recipe adds the stiffness; its fast one and other kinds' do not
    phi4 = "rgfield.fields.phi4.simulate"
    assert list(params("--preset", "accurate", generator=phi4)["features"]) == [
        "potential",
        "quadratic",
        "stiffness",
    ]
    assert list(params(generator=phi4)["features"]) == ["potential", "quadratic"]
    assert list(accurate["features"]) == ["potential", "quadratic"]
    assert list(
        params("--preset", "accurate", "--features", "quadratic", generator=phi4)["features"]
    ) == ["quadratic"]


def test_fit_features_by_name_or_by_the_datas_kind(capsys):
    from rgfield.cli import build_parser
    from rgfield.cli.fit import build_model

    def params(*options, generator=""):
        args = build_parser().parse_args(["fit", "--data", "d.nc", "--out", "m.nc", *options])
        return build_model(args, generator).get_params()

    def families(*options, generator=""):
        return params(*options, generator=generator)["features"]

    assert families() == {"potential": {"windows": 20}, "quadratic": {"radius": None}}
    assert params()["min_curvature"] is None
    cosmic = "rgfield.fields.cosmic.simulate"
    assert families(generator=cosmic) == {
        "potential": {"windows": 20, "min_level": 2},
        "quadratic": {"radius": None},
        "scatcov": {},
    }
    assert params(generator=cosmic)["min_curvature"] == 0.1
    assert params("--min-curvature", "0", generator=cosmic)["min_curvature"] is None
    forced = "rgfield.fields.turbulence.simulate"  # φ⁴'s families and the Gaussian, floored
    assert families(generator=forced) == {
        "potential": {"windows": 20},
        "gaussian": {},
        "quadratic": {"radius": None},
    }
    assert params(generator=forced)["min_curvature"] == 0.1
    # a fit from chunks is score matching only: the kind's floor is left out, with a note;
    # one asked for explicitly is kept (and refused by the streaming fit, which says why)
    args = build_parser().parse_args(["fit", "--data", "d", "--out", "m.nc", "--workers", "2"])
    assert build_model(args, forced, streamed=True).min_curvature is None
    assert "curvature floor 0.1 of this kind of data is left out" in capsys.readouterr().err
    args.min_curvature = 0.2
    assert build_model(args, forced, streamed=True).min_curvature == 0.2
    assert params("--min-curvature", "0.5")["min_curvature"] == 0.5
    assert families("--features", "scatcov,potential", "--windows", "8") == {
        "scatcov": {},
        "potential": {"windows": 8},
    }
    with pytest.raises(SystemExit):
        families("--features", "potential,quadratic,potential@2")  # a family named twice
    assert families("--features", "potential@2,quadratic", "--windows", "8") == {
        "potential": {"windows": 8, "min_level": 2},
        "quadratic": {"radius": None},
    }
    for bad in ("quadratic,vortices", "potential@0", "potential@x", "potential@", "potential@²"):
        with pytest.raises(SystemExit):
            families("--features", bad)
        assert "expected comma-separated feature families among" in capsys.readouterr().err


def test_console_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "rgfield", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"rgfield {rgfield.__version__}"


# --- start-up: lazy imports ------------------------------------------------------------------

HEAVY = {"torch", "numba", "xarray", "matplotlib"}


def imported(*args: str) -> set[str]:
    """Top-level packages imported by ``python -X importtime ARGS`` (which must succeed)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, check=True
    )
    rows = [line.rsplit("|", 1)[-1] for line in done.stderr.splitlines()]
    return {row.strip().split(".")[0] for row in rows if row.strip()}


def test_importing_the_cli_imports_no_heavy_package():
    modules = imported("-c", "import rgfield.cli")
    assert "rgfield" in modules  # the import-time report was read
    assert not modules & HEAVY, modules & HEAVY


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["simulate", "phi4", "--help"], ["fit", "--help"]]
)
def test_help_and_version_import_no_heavy_package(argv):
    modules = imported("-m", "rgfield", *argv)
    assert "argparse" in modules
    assert not modules & HEAVY, modules & HEAVY


def test_the_cli_lists_the_phi4_samplers():
    from rgfield.cli.simulate import PHI4_SAMPLERS
    from rgfield.fields.phi4 import SAMPLERS

    assert tuple(SAMPLERS) == PHI4_SAMPLERS


# --- output paths and devices: checked before any work ---------------------------------------

# each command with an --out option, with an input that does not exist: the output check must
# come first, or the error would be about the input (or, for demo, come after a long fit)
OUTPUT_COMMANDS = {
    "fit": (["fit", "--data", "none.nc"], "file"),
    "sample": (["sample", "--model", "none.nc", "--n", "2"], "file"),
    "synthesize": (["synthesize", "--data", "none.nc", "--n", "1"], "file"),
    "simulate": (["simulate", "cosmic", "--size", "8", "--samples", "1"], "file"),
    "demo": (["demo"], "directory"),
    "pathways": (["pathways", "--kind", "phi4"], "directory"),
    "compare": (["compare", "--reference", "none.nc", "--samples", "none.nc"], "directory"),
    "diffusion": (["diffusion", "train", "none.nc"], "file"),
}


def test_every_command_that_writes_is_covered():
    from rgfield.cli import COMMANDS

    assert set(OUTPUT_COMMANDS) == set(COMMANDS) - {"info"}


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_unusable_outputs_are_refused_before_any_work(command, tmp_path, capsys):
    argv, kind = OUTPUT_COMMANDS[command]
    prefix = f"rgfield {command}: error: "

    def refused(out, *extra) -> str:
        start = time.perf_counter()
        assert main([*argv, "--out", str(out), *extra]) == 1
        assert time.perf_counter() - start < 5  # no fit, no simulation
        err = capsys.readouterr().err
        assert err.startswith(prefix) and err.count("\n") == 1, err
        return err[len(prefix) :]

    missing = tmp_path / "nodir" / "out"
    assert refused(missing) == f"--out: directory {missing.parent} does not exist\n"
    existing = tmp_path / "existing"
    if kind == "file":
        existing.write_text("")
        assert "is a directory; give a file name" in refused(tmp_path, "--overwrite")
    else:
        existing.mkdir()
        (tmp_path / "a_file").write_text("")
        assert "is a file; give a directory" in refused(tmp_path / "a_file", "--overwrite")
    assert refused(existing) == f"{existing} exists; pass --overwrite to replace it\n"
    assert not missing.parent.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_output_directory_is_refused_before_any_work(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    argv = ["simulate", "cosmic", "--size", "8", "--samples", "1", "--out", str(locked / "w.nc")]
    assert main(argv) == 1
    assert f"--out: directory {locked} is not writable" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["simulate", "synthesize", "sample"])
def test_unknown_or_absent_devices_get_one_line_naming_the_option(command, tmp_path, capsys):
    argv = {
        "simulate": ["simulate", "cosmic", "--size", "8", "--samples", "1"],
        "synthesize": ["synthesize", "--data", "none.nc", "--n", "1"],
        "sample": ["sample", "--model", "none.nc", "--n", "1"],
    }[command]
    argv += ["--out", str(tmp_path / "x.nc")]
    assert main([*argv, "--device", "gpu0"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"rgfield {command}: error: --device: unknown device 'gpu0'; expected cpu, cuda,"
        " cuda:N or mps\n"
    )
    if not torch.cuda.is_available():
        assert main([*argv, "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"rgfield {command}: error: --device: 'cuda' needs CUDA, which is not available here\n"
        )
    assert list(tmp_path.iterdir()) == []


# --- interruptions ----------------------------------------------------------------------------

SIMULATE_COSMIC = ["simulate", "cosmic", "--size", "8", "--samples", "1", "--box", "64"]


@pytest.mark.parametrize(
    ("stop", "status"), [(KeyboardInterrupt, 130), (lambda: Terminated(15), 143)]
)
def test_an_interrupted_save_leaves_no_file(stop, status, tmp_path, monkeypatch, capsys):
    written = []
    original = xr.Dataset.to_netcdf

    def write_then_stop(self, path, *args, **kwargs):
        original(self, path, *args, **kwargs)
        written.append(Path(path))
        raise stop()

    monkeypatch.setattr(xr.Dataset, "to_netcdf", write_then_stop)
    argv = [*SIMULATE_COSMIC, "--seed", "0", "--out", str(tmp_path / "web.nc"), "--no-progress"]
    assert main(argv) == status
    assert written and written[0].parent == tmp_path  # a temporary file had been written...
    assert list(tmp_path.iterdir()) == []  # ...and was removed
    err = capsys.readouterr().err
    assert err == "rgfield simulate: interrupted; nothing written\n"


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def long_step(command: str) -> tuple[object, str]:
    """Where a command's long step lives, as (object, attribute) to patch."""
    import rgfield.compare
    from rgfield.rg import HierarchicalModel

    return {
        "fit": (HierarchicalModel, "fit"),
        "sample": (HierarchicalModel, "sample"),
        "compare": (rgfield.compare, "summary"),
    }[command]


@pytest.mark.parametrize("command", ["compare", "fit", "sample"])
def test_ctrl_c_in_a_long_step_ends_with_one_line_and_status_130(
    command, tmp_path, monkeypatch, capsys
):
    from rgfield.fields.gaussian import gaussian_field, lattice_free_field_spectrum
    from rgfield.rg import HierarchicalModel

    fields = gaussian_field(lattice_free_field_spectrum(1.0, 0.5), (8, 8), 50, seed=0)
    data = tmp_path / "train.nc"
    io.save(io.to_dataset(fields, "phi"), data)
    HierarchicalModel(progress=False).fit(fields).save(tmp_path / "model.nc")
    inputs = set(tmp_path.iterdir())
    argv = {
        "fit": ["fit", "--data", str(data), "--no-progress"],
        "sample": ["sample", "--model", str(tmp_path / "model.nc"), "--n", "2", "--no-progress"],
        "compare": ["compare", "--reference", str(data), "--samples", str(data)],
    }[command]
    monkeypatch.setattr(*long_step(command), _interrupt)
    assert main([*argv, "--out", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err == f"rgfield {command}: interrupted; nothing written\n"
    assert set(tmp_path.iterdir()) == inputs


def test_an_interruption_names_the_files_already_written(tmp_path, monkeypatch, capsys):
    from rgfield.cli import demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "old.txt").write_text("kept as it was")

    def run(args):
        (Path(args.out) / "model.nc").write_text("written before Ctrl-C")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run", run)
    assert main(["demo", "--out", str(out), "--overwrite"]) == 130
    assert capsys.readouterr().err == f"rgfield demo: interrupted; kept {out / 'model.nc'}\n"


def start_and_signal(argv: list[str], signum: int, marker: str) -> tuple[int, str]:
    """Run ``python -m rgfield ARGV``, send ``signum`` once ``marker`` appears on its stderr,
    and return its exit status and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rgfield", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # as from a terminal: SIGINT at its default, which Python turns into KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen, deadline = b"", time.monotonic() + 300
    try:
        while marker.encode() not in seen:
            ready, _, _ = select.select([process.stderr], [], [], 5)
            if ready:
                chunk = os.read(process.stderr.fileno(), 4096)
                assert chunk, f"the command ended before {marker!r}: {seen.decode()}"
                seen += chunk
            assert time.monotonic() < deadline, f"no {marker!r} after 300 s"
        time.sleep(0.5)  # well inside the work
        process.send_signal(signum)
        _, rest = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, (seen + rest).decode()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_simulation_ends_with_one_line(signum, status, tmp_path):
    # 64² turbulence with weak drag: the spin-up alone takes far longer than the wait above
    out = tmp_path / "vorticity.nc"
    argv = ["simulate", "turbulence", "--size", "64", "--samples", "4", "--drag", "0.02"]
    returncode, err = start_and_signal([*argv, "--seed", "1", "--out", str(out)], signum, "spin-up")
    assert returncode == status, err
    assert "Traceback" not in err
    messages = [line for line in err.splitlines() if line.startswith("rgfield")]
    assert messages == ["rgfield simulate: interrupted; nothing written"]
    assert err.rstrip().endswith(messages[0])
    assert list(tmp_path.iterdir()) == []  # neither the file nor a hidden temporary file


def test_fit_help_gives_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default 20)", "(default 1e-6)", "(default db4)", "min(4, n // 2)"):
        assert default in text


def test_a_phi4_run_too_short_for_tau_int_says_why(tmp_path, capsys):
    argv = ["simulate", "phi4", "--beta", "0.5", "--size", "8", "--samples", "4", "--chains", "2"]
    fixed = ["--seed", "1", "--thermalization", "20", "--spacing", "2", "--no-progress"]
    assert main([*argv, *fixed, "--out", str(tmp_path / "p.nc")]) == 0
    printed = capsys.readouterr().out
    assert "tau_int over the saved samples: not measured" in printed
    assert "ask for at least 8 samples or fewer chains" in printed
    assert "nan" not in printed


# --- decaying turbulence --------------------------------------------------------------------


def test_simulate_turbulence_decaying_writes_what_the_python_call_draws(tmp_path):
    from rgfield.fields.decaying_turbulence import DecayingConfig, decaying_flow, simulate

    out = tmp_path / "decaying.nc"
    argv = ["simulate", "turbulence", "--decaying", "--size", "16", "--samples", "3"]
    argv += ["--duration", "0.5", "--seed", "0", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    written = io.load(out)
    assert written.attrs["generator"] == "rgfield.fields.decaying_turbulence.simulate"
    assert written.shape == (3, 16, 16) and written.attrs["duration"] == 0.5
    drawn = simulate(DecayingConfig(decaying_flow(16), duration=0.5), 3, seed=0, progress=False)
    np.testing.assert_array_equal(written.values, drawn.vorticity.values)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--decaying", "--drag", "0.2"], "--drag"),
        (["--decaying", "--velocity"], "--velocity"),
        (["--duration", "3"], "--duration"),
    ],
)
def test_simulate_turbulence_refuses_the_options_of_the_other_kind_of_flow(
    extra, named, tmp_path, capsys
):
    argv = ["simulate", "turbulence", "--size", "16", "--samples", "2", *extra]
    assert main([*argv, "--out", str(tmp_path / "x.nc")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"rgfield simulate: error: {named}: not an option of") and (
        err.count("\n") == 1
    )
    assert list(tmp_path.iterdir()) == []
