"""DiffusionModel: fit, sample with every sampler, save and load; the command line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from rgfield import io
from rgfield.cli import main
from rgfield.diffusion import SAMPLERS, DiffusionModel, Symmetries

# denoiser calls per batch for N steps (the module docstring of rgfield.diffusion.samplers)
EVALUATIONS = {
    "euler": lambda n: n,
    "heun": lambda n: 2 * n - 1,
    "ddim": lambda n: n,
    "euler_maruyama": lambda n: n,
    "pc": lambda n: 2 * n - 1,
}


@pytest.fixture(scope="module")
def fields() -> xr.DataArray:
    values = torch.randn(24, 8, 8, generator=torch.Generator().manual_seed(0)).cumsum(-1)
    ds = io.to_dataset(values, "field", {"generator": "rgfield.fields.phi4.simulate"})
    return ds["field"].assign_attrs(ds.attrs)  # as io.load returns it


@pytest.fixture(scope="module")
def model(fields) -> DiffusionModel:
    return DiffusionModel(width=4, levels=2, steps=5, batch=4, seed=0, progress=False).fit(fields)


def test_fit_records_what_it_learned(model, fields):
    assert model.size_ == (8, 8) and model.n_parameters_ > 0
    assert model.symmetries_.sign and model.symmetries_.rotations  # φ⁴: by the generator attr
    assert model.history_["loss"].sizes["step"] == 5
    assert model.data_attrs_["samples"] == 24


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_draws_fields_and_counts_its_evaluations(model, sampler):
    ds = model.sample(5, sampler=sampler, steps=4, seed=1, batch=3, progress=False)
    assert ds["field"].shape == (5, 8, 8) and np.isfinite(ds["field"].values).all()
    assert ds.attrs["network_evaluations"] == EVALUATIONS[sampler](4)
    assert ds.attrs["sampler"] == sampler and ds.attrs["seed"] == 1


@pytest.mark.parametrize(("sampler", "churn"), [("heun", 10.0), ("euler", 10.0), ("ddim", None)])
def test_the_ode_samplers_churn_by_default_and_record_it(model, sampler, churn):
    ds = model.sample(2, sampler=sampler, steps=4, seed=1, progress=False)
    assert ds.attrs.get("option_churn") == churn
    ode = model.sample(2, sampler=sampler, steps=4, churn=0.0, seed=1, progress=False)
    if churn:  # the same initial noise, fresh noise in every step: other fields
        assert not np.allclose(ds["field"].values, ode["field"].values)


def test_a_saved_model_loads_back_to_the_same_samples(model, tmp_path):
    path = model.save(tmp_path / "model.nc")
    loaded = DiffusionModel.load(path)
    a = model.sample(3, steps=4, seed=2, progress=False)["field"].values
    b = loaded.sample(3, steps=4, seed=2, progress=False)["field"].values
    np.testing.assert_array_equal(a, b)
    assert loaded.symmetries_ == model.symmetries_ and loaded.process_ == model.process_
    with pytest.raises(FileExistsError):
        model.save(path)


def test_a_model_with_the_wiener_skip_loads_back_to_the_same_samples(fields, tmp_path):
    model = DiffusionModel(
        skip="wiener",
        weighting="edm",
        lr_schedule="constant",
        width=4,
        levels=2,
        steps=3,
        batch=4,
        seed=0,
    )
    model.fit(fields)
    assert np.isfinite(model.history_["loss"].values).all()
    loaded = DiffusionModel.load(model.save(tmp_path / "wiener.nc"))
    assert loaded.skip == "wiener" and loaded.weighting == "edm"
    assert loaded.lr_schedule == "constant"
    torch.testing.assert_close(
        loaded.denoiser_.members[0].power, model.denoiser_.members[0].power, rtol=0, atol=0
    )
    a = model.sample(3, steps=4, seed=2, progress=False)["field"].values
    b = loaded.sample(3, steps=4, seed=2, progress=False)["field"].values
    np.testing.assert_array_equal(a, b)


def test_a_file_from_before_the_loss_options_loads_as_it_was_trained(model, tmp_path):
    """Files written before ``weighting``, ``lr_schedule`` and ``networks`` existed held one
    network trained with EDM's λ at a constant rate: they load so, not with today's defaults,
    and draw the same fields."""
    ds = xr.load_dataset(model.save(tmp_path / "model.nc"))
    spec = json.loads(ds.attrs["specification"])
    for name in ("weighting", "lr_schedule", "networks"):
        del spec["parameters"][name]
    spec["state"] = [name.removeprefix("members.0.") for name in spec["state"]]
    ds.attrs["specification"] = json.dumps(spec)
    loaded = DiffusionModel.load(io.save(ds, tmp_path / "old.nc"))
    assert (loaded.weighting, loaded.lr_schedule, loaded.networks) == ("edm", "constant", 1)
    a = model.sample(3, steps=4, seed=2, progress=False)["field"].values
    b = loaded.sample(3, steps=4, seed=2, progress=False)["field"].values
    np.testing.assert_array_equal(a, b)


def test_a_file_written_by_an_earlier_version_draws_its_fields():
    """A one-network model file written by rgfield at commit 21e174d (before ensembles: no
    ``networks``, state names without ``members.0.``) with the fields that version drew from
    it (3 fields, Heun's ODE over 4 levels, seed 2): today's code loads it and draws them."""
    data = Path(__file__).parent / "data"
    model = DiffusionModel.load(data / "model_21e174d.nc")
    assert model.networks == 1 and model.weighting == "spectral"
    fields = model.sample(3, steps=4, seed=2, churn=0.0, progress=False)["field"].values
    expected = np.load(data / "model_21e174d_samples.npy")
    # float32 sums in another order (another number of threads) move the fields by ~1e-7
    # of their scale per operation; a wrong weight or layout moves them by O(1)
    np.testing.assert_allclose(fields, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_an_ensemble_is_the_mean_of_networks_trained_from_successive_seeds(fields, tmp_path):
    """``networks=2`` with seed 0 denoises as the mean of two one-network models fitted alone
    with seeds 0 and 1, counts both networks' parameters and evaluations, keeps one training
    checkpoint per network, saves and loads back to the same fields, and a file with a bad
    ``networks`` is refused."""
    options = dict(width=4, levels=2, steps=5, batch=4, progress=False)
    pair = DiffusionModel(networks=2, seed=0, **options)
    pair.fit(fields, checkpoint=tmp_path / "training.pt")
    alone = [DiffusionModel(seed=s, **options).fit(fields) for s in (0, 1)]
    assert pair.n_parameters_ == 2 * alone[0].n_parameters_
    noisy = torch.as_tensor(fields.values[:4], dtype=torch.float32)
    for sigma in (0.1, 3.0):
        mean = (alone[0].denoise(noisy, sigma) + alone[1].denoise(noisy, sigma)) / 2
        torch.testing.assert_close(pair.denoise(noisy, sigma), mean)
    # one checkpoint per network: the second network (seed 1) resumes only its own
    first, second = tmp_path / "training.pt", tmp_path / "training.pt.1"
    assert first.exists() and second.exists()
    second.write_bytes(first.read_bytes())
    with pytest.raises(ValueError, match="another training"):
        DiffusionModel(networks=2, seed=0, **options).fit(fields, checkpoint=first)
    loaded = DiffusionModel.load(pair.save(tmp_path / "pair.nc"))
    assert loaded.networks == 2 and loaded.n_parameters_ == pair.n_parameters_
    a = pair.sample(3, steps=4, seed=2, progress=False)
    b = loaded.sample(3, steps=4, seed=2, progress=False)
    np.testing.assert_array_equal(a["field"].values, b["field"].values)
    assert a.attrs["networks"] == 2
    assert a.attrs["network_evaluations"] == 2 * EVALUATIONS["heun"](4)
    ds = xr.load_dataset(tmp_path / "pair.nc")
    spec = json.loads(ds.attrs["specification"])
    spec["parameters"]["networks"] = 0
    ds.attrs["specification"] = json.dumps(spec)
    with pytest.raises(ValueError, match="networks must be a positive integer"):
        DiffusionModel.load(io.save(ds, tmp_path / "bad.nc"))


def test_foreign_and_damaged_files_are_refused(model, fields, tmp_path):
    io.save(fields, tmp_path / "fields.nc")
    with pytest.raises(ValueError, match="not a diffusion model"):
        DiffusionModel.load(tmp_path / "fields.nc")
    ds = xr.load_dataset(model.save(tmp_path / "model.nc"))
    io.save(ds.drop_vars("state_0"), tmp_path / "missing.nc")
    with pytest.raises(ValueError, match="missing"):
        DiffusionModel.load(tmp_path / "missing.nc")
    ds["state_0"] = ds["state_0"].rename({"state_0_0": "other"}).isel(other=slice(0, 1))
    io.save(ds, tmp_path / "shape.nc")
    with pytest.raises(ValueError, match="do not fit"):
        DiffusionModel.load(tmp_path / "shape.nc")
    (tmp_path / "junk.nc").write_bytes(b"\x89HDF junk")
    with pytest.raises(ValueError, match="not a readable netCDF"):
        DiffusionModel.load(tmp_path / "junk.nc")


def test_unfitted_model_and_bad_options_are_refused(model):
    with pytest.raises(ValueError, match="not fitted"):
        DiffusionModel().sample(2)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="nope")
    with pytest.raises(ValueError, match="churn"):
        model.sample(2, sampler="ddim", churn=1.0)
    with pytest.raises(ValueError, match="churn"):
        model.sample(2, churn=-1.0)
    with pytest.raises(ValueError, match="noise"):
        DiffusionModel(noise="pink").fit(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match="skip"):
        DiffusionModel(skip="none").fit(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match="weighting"):
        DiffusionModel(weighting="uniform").fit(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match="2D fields"):
        DiffusionModel().fit(torch.randn(4, 8))
    for networks in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="networks"):
            DiffusionModel(networks=networks).fit(torch.randn(4, 8, 8))


def test_command_line_trains_samples_and_refuses_a_non_model(fields, tmp_path, capsys):
    data = io.save(fields, tmp_path / "data.nc")
    model_path, out = tmp_path / "model.nc", tmp_path / "gen.nc"
    assert (
        main(
            [
                "diffusion",
                "train",
                str(data),
                "--out",
                str(model_path),
                "--width",
                "4",
                "--levels",
                "2",
                "--train-steps",
                "3",
                "--batch",
                "4",
                "--noise",
                "spectrum",
                "--skip",
                "wiener",
                "--seed",
                "0",
                "--no-augmentation",
                "--networks",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    trained = DiffusionModel.load(model_path)
    assert trained.symmetries_ == Symmetries(shifts=False) and trained.networks == 2
    assert (
        main(
            [
                "diffusion",
                "sample",
                str(model_path),
                "--samples",
                "3",
                "--steps",
                "3",
                "--sampler",
                "ddim",
                "--eta",
                "1",
                "--out",
                str(out),
                "--seed",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    generated = io.load(out)
    assert generated.shape == (3, 8, 8) and generated.attrs["option_eta"] == 1.0
    assert generated.attrs["skip"] == "wiener" and generated.attrs["noise"] == "spectrum"
    assert "network evaluations" in capsys.readouterr().out
    assert (
        main(["diffusion", "sample", str(data), "--samples", "2", "--out", str(tmp_path / "x.nc")])
        == 1
    )
    assert "not a diffusion model" in capsys.readouterr().err
    assert (
        main(
            [
                "diffusion",
                "train",
                str(data),
                "--out",
                str(tmp_path / "y.nc"),
                "--schedule",
                "cosine",
            ]
        )
        == 1
    )
    assert "--schedule applies to --process vp" in capsys.readouterr().err


def test_an_ensemble_records_the_churn_it_resolved(model):
    """A job without ``churn`` describes itself with the default it runs, and an explicit
    ``churn=0`` is another job (a resumed directory never mixes the two)."""
    from rgfield import ensembles

    implicit = ensembles.DiffusionSampling(model, {"steps": 3})
    explicit = ensembles.DiffusionSampling(model, {"steps": 3, "churn": 10.0})
    ode = ensembles.DiffusionSampling(model, {"steps": 3, "churn": 0.0})
    assert implicit.describe() == explicit.describe() != ode.describe()
    np.testing.assert_array_equal(
        ode.run(2, 1)["field"].values,
        model.sample(2, steps=3, churn=0.0, seed=1, progress=False)["field"].values,
    )


def test_sampling_into_an_ensemble_directory_matches_and_resumes(model, tmp_path):
    """``rgfield.ensembles.generate`` of the diffusion job: blocks seeded by (seed, block), a
    rerun of the same command is a resume (nothing redrawn)."""
    from rgfield import ensembles
    from rgfield.ensembles.tasks import one_thread

    job = ensembles.DiffusionSampling(model, {"steps": 3, "sampler": "euler"})
    out = tmp_path / "ensemble"
    first = ensembles.generate(job, 5, out, seed=4, block=2, progress=False)
    again = ensembles.generate(job, 5, out, seed=4, block=2, progress=False)
    np.testing.assert_array_equal(first["field"].values, again["field"].values)
    assert first["field"].shape == (5, 8, 8)
    with one_thread():  # as generate runs every block: the same arithmetic, the same bits
        direct = model.sample(2, steps=3, sampler="euler", seed=ensembles.block_seed(4, 0))
    np.testing.assert_array_equal(first["field"].values[:2], direct["field"].values)
    with pytest.raises(ValueError, match="set per block"):
        ensembles.DiffusionSampling(model, {"seed": 1})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_and_sampling_run_on_a_cuda_device(fields):
    model = DiffusionModel(
        width=4, levels=2, steps=3, batch=4, seed=0, device="cuda", progress=False
    ).fit(fields)
    assert next(model.denoiser_.parameters()).is_cuda
    for sampler in SAMPLERS:
        ds = model.sample(3, sampler=sampler, steps=3, seed=1, progress=False)
        assert np.isfinite(ds["field"].values).all()


class ZeroNetwork(torch.nn.Module):
    """F ≡ 0 (with one parameter, so that the model has a device)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, c_noise):
        return torch.zeros_like(x)


@pytest.mark.parametrize("churn", [0.0, None])
@pytest.mark.parametrize(("noise", "skip"), [("spectrum", "scalar"), ("white", "wiener")])
def test_a_zero_network_generates_the_training_spectrum(noise, skip, churn):
    """The Gaussian limit of the whole pathway (whitening, preconditioning, Heun, colouring):
    with noise coloured by the spectrum, or with the Wiener skip, and F ≡ 0, the model is the
    Gaussian field of the training fields' mean periodogram, so its samples have the training
    fields' shell spectrum exactly, up to the statistical error (and Heun's 0.1 % at 128
    levels), with the deterministic Heun and with the default churn alike."""
    from rgfield.stats import power_spectrum

    train = torch.randn(64, 16, 16, generator=torch.Generator().manual_seed(0)).cumsum(-1)
    model = DiffusionModel(
        noise=noise, skip=skip, width=4, levels=2, steps=1, seed=0, progress=False
    )
    model.fit(train)
    model.denoiser_.members[0].network = ZeroNetwork()
    generated = model.sample(512, steps=128, churn=churn, seed=1, progress=False)
    spectra = power_spectrum(generated["field"]).values
    expected = power_spectrum(train).values.mean(0)
    z = (spectra.mean(0) - expected) / (spectra.std(0) / np.sqrt(len(spectra)))
    assert np.abs(z).max() < 3, np.round(z, 2)
