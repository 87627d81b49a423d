"""Model files: round trips, the previous format, clear errors, and a feature family added
from outside the package (registered, fitted, sampled, saved and loaded with no edit of the
model class)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rgfield.energies import FEATURES, FeatureFamily, register_feature
from rgfield.io import save, to_dataset
from rgfield.rg import HierarchicalModel

DATA = Path(__file__).parent / "data"


def test_save_load_sample_gives_identical_fields(tmp_path, free_field):
    model = HierarchicalModel(progress=False).fit(free_field(200, size=8))
    path = model.save(tmp_path / "model.nc")
    again = HierarchicalModel.load(path, progress=False)
    assert again.get_params() == {**model.get_params(), "features": model.feature_spec()}
    a = model.sample(5, seed=7, steps=20, warmup=10).fields
    b = again.sample(5, seed=7, steps=20, warmup=10).fields
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(again.energy(a), model.energy(a), rtol=0, atol=0)
    assert again.free_energy_report_.equals(model.free_energy_report_)
    assert not torch.equal(a, model.sample(5, seed=8, steps=20, warmup=10).fields)
    with pytest.raises(FileExistsError):
        model.save(path)
    assert set(again.fit_report_["features"].values) == set(model.fit_report_["features"].values)
    assert again.starts_.keys() == model.starts_.keys() and a.shape == (5, 8, 8)
    ds = model.to_dataset()
    assert ds.attrs["format_version"] == 6 and ds.attrs["model"] == "rgfield.rg.HierarchicalModel"


def test_a_model_file_of_the_previous_format_loads_and_samples_as_it_did():
    # written by rgfield e48e537 (tests/rg/data/make_model_v1.py) with the samples it drew
    model = HierarchicalModel.load(DATA / "model_v1.nc", progress=False)
    assert (model.levels_, model.size_, model.refine) == (3, (8, 8), 1)
    with pytest.warns(UserWarning, match="no Gaussian starts"):
        drawn = model.sample(4, seed=7, steps=20, warmup=10, sampler="mala").fields.numpy()
    # the same chains: every proposal and Metropolis decision as then. Only the last bits may
    # differ on another processor or library build (numba compiles for the host's instruction
    # set; 1.9e-15 seen on 2026-12-04); one different decision would move a field by O(0.1)
    expected = np.load(DATA / "model_v1_samples_seed7.npy")
    np.testing.assert_allclose(drawn, expected, rtol=0, atol=1e-12)


@pytest.fixture
def model_dataset(free_field):
    return HierarchicalModel(progress=False).fit(free_field(40, size=8)).to_dataset()


def test_a_missing_variable_is_named(tmp_path, model_dataset):
    path = save(model_dataset.drop_vars("theta_j2"), tmp_path / "model.nc")
    with pytest.raises(ValueError, match=r"lacks variables \['theta_j2'\]"):
        HierarchicalModel.load(path)
    path = save(model_dataset.drop_vars("gamma"), tmp_path / "model2.nc")
    with pytest.raises(ValueError, match=r"lacks variables \['gamma'\]"):
        HierarchicalModel.load(path)


def test_a_foreign_variable_is_named(tmp_path, model_dataset):
    ds = model_dataset.assign(phi=("sample", np.zeros(3)))
    with pytest.raises(ValueError, match=r"variables \['phi'\] are no part of an rgfield model"):
        HierarchicalModel.load(save(ds, tmp_path / "model.nc"))


def test_a_broken_start_is_named(tmp_path, model_dataset):
    ds = model_dataset.drop_vars("start_j2_root")
    with pytest.raises(ValueError, match=r"the start of factor j=2 has arrays"):
        HierarchicalModel.load(save(ds, tmp_path / "model.nc"))
    root = model_dataset["start_j1_root"].values[1:]  # one row of wavenumbers short
    ds = model_dataset.drop_vars("start_j1_root")
    ds = ds.assign(start_j1_root=([f"short_{d}" for d in range(root.ndim)], root))
    with pytest.raises(ValueError, match=r"the start of factor j=1: the arrays do not make"):
        HierarchicalModel.load(save(ds, tmp_path / "model1.nc"))
    ds = model_dataset.assign(start_j9_root=model_dataset["start_j2_root"])
    with pytest.raises(ValueError, match=r"\['start_j9_root'\] are no part of an rgfield model"):
        HierarchicalModel.load(save(ds, tmp_path / "model2.nc"))


def test_a_broken_calibration_is_named(tmp_path, free_field):
    fields = free_field(40, size=8)
    ds = HierarchicalModel(progress=False).fit(fields).calibrate(fields).to_dataset()
    assert ds["calibration_tau"].attrs["sampler"] == "hmc"
    with pytest.raises(ValueError, match=r"the calibration lacks \['calibration_tau'\]"):
        HierarchicalModel.load(save(ds.drop_vars("calibration_tau"), tmp_path / "m.nc"))
    bad = ds.copy()
    bad["calibration_step_size"].attrs["sampler"] = "gibbs"
    with pytest.raises(ValueError, match="the calibration's sampler must be one of .* 'gibbs'"):
        HierarchicalModel.load(save(bad, tmp_path / "m1.nc"))
    bad = ds.assign(calibration_tau=-ds["calibration_tau"])
    with pytest.raises(ValueError, match="steps and τ_int must be positive and finite"):
        HierarchicalModel.load(save(bad, tmp_path / "m2.nc"))
    bad = ds.assign_coords(calibration_scale=["j=9", "j=2", "j=1"])
    with pytest.raises(ValueError, match=r"names scales \['j=9'\] that the model of 3 levels"):
        HierarchicalModel.load(save(bad, tmp_path / "m3.nc"))
    # the burn-in curves: both or neither, one row per observable, finite up to the steps
    with pytest.raises(ValueError, match=r"the calibration lacks \['calibration_bias_error'\]"):
        HierarchicalModel.load(save(ds.drop_vars("calibration_bias_error"), tmp_path / "m4.nc"))
    bad = ds.isel(burn_in_observable=slice(1, None))
    with pytest.raises(ValueError, match=r"burn-in curves must be of \['energy'"):
        HierarchicalModel.load(save(bad, tmp_path / "m5.nc"))
    error = ds["calibration_bias_error"].copy()
    error[0, 1, 0] = np.nan
    with pytest.raises(ValueError, match="burn-in curves must be finite"):
        HierarchicalModel.load(save(ds.assign(calibration_bias_error=error), tmp_path / "m6.nc"))


def test_a_calibration_without_burn_in_curves_runs_ten_tau(tmp_path, free_field):
    # files calibrated before the burn-in was measured: 10 τ_int, the rule of then
    fields = free_field(40, size=8)
    ds = HierarchicalModel(progress=False).fit(fields).calibrate(fields).to_dataset()
    old = ds.drop_vars(["calibration_bias", "calibration_bias_error"])
    model = HierarchicalModel.load(save(old, tmp_path / "m.nc"), progress=False)
    for c in model.calibration_.values():
        assert c.bias == ()
        assert c.burn_in(500) == math.ceil(10 * c.tau)
    # one scale without curves beside others with them: each keeps its own
    fitted = HierarchicalModel(progress=False).fit(fields).calibrate(fields)
    fitted.calibration_["j=2"] = replace(fitted.calibration_["j=2"], bias=(), bias_error=())
    again = HierarchicalModel.load(fitted.save(tmp_path / "mixed.nc"), progress=False)
    assert again.calibration_ == fitted.calibration_
    assert again.calibration_["j=2"].bias == () and again.calibration_["j=1"].bias != ()


def test_broken_burn_in_curves_are_named(tmp_path, free_field):
    fields = free_field(40, size=8)
    ds = HierarchicalModel(progress=False).fit(fields).calibrate(fields).to_dataset()
    relabelled = ds.assign_coords(burn_in_observable=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="burn-in curves must be of"):
        HierarchicalModel.load(save(relabelled, tmp_path / "m.nc"))
    alone = ds.drop_vars(["calibration_step_size", "calibration_tau"])
    with pytest.raises(ValueError, match="burn-in curves without a calibration"):
        HierarchicalModel.load(save(alone, tmp_path / "m1.nc"))
    # stored in another order of dims, read the same
    turned = ds.transpose("burn_in_step", "burn_in_observable", "calibration_scale", ...)
    model = HierarchicalModel.load(save(turned, tmp_path / "m2.nc"), progress=False)
    assert model.calibration_ == HierarchicalModel.load(save(ds, tmp_path / "m3.nc")).calibration_


def test_files_that_are_not_models_get_clear_errors(tmp_path, model_dataset, free_field):
    spec = json.loads(model_dataset.attrs["specification"])
    spec["families"] = {k: v for k, v in spec["families"].items() if not k.startswith("free")}
    old = model_dataset.assign_attrs(specification=json.dumps(spec))
    with pytest.raises(ValueError, match="without free energies"):
        HierarchicalModel.load(save(old, tmp_path / "old-model.nc"))
    ensemble = save(to_dataset(free_field(3, size=8)), tmp_path / "fields.nc")
    with pytest.raises(ValueError, match="is an ensemble of fields.*not a model"):
        HierarchicalModel.load(ensemble)
    newer = model_dataset.assign_attrs(format_version=99)
    with pytest.raises(ValueError, match="model format 99"):
        HierarchicalModel.load(save(newer, tmp_path / "newer.nc"))
    (tmp_path / "text.nc").write_text("not netCDF")
    with pytest.raises(ValueError, match="not a netCDF file"):
        HierarchicalModel.load(tmp_path / "text.nc")
    with pytest.raises(ValueError, match="is not a file"):
        HierarchicalModel.load(tmp_path / "missing.nc")


class OnSiteQuartic(FeatureFamily):
    """Φ = Σ_i y_i⁴ over every sampled variable: ∇Φ = 4y³, ΔΦ = 12 Σ y², one feature."""

    name = "test_on_site_quartic"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, y, c, wavelet="db4"):
        self.scale = float(y.square().mean())
        return self

    @property
    def labels(self):
        return ["y^4"]

    def values(self, y, c):
        return (y**4).flatten(1).sum(1, keepdim=True) / self.scale

    def gradients(self, y, c):
        return (4 * y**3 / self.scale).unsqueeze(1)

    def laplacians(self, y, c):
        return 12 * y.square().flatten(1).sum(1, keepdim=True) / self.scale

    def get_state(self):
        return {"scale": self.scale, "unused": np.arange(3.0)}

    @classmethod
    def from_state(cls, state):
        assert np.array_equal(state["unused"], np.arange(3.0))  # arrays come back as arrays
        return cls(state["scale"])


@pytest.fixture
def quartic_family():
    register_feature(OnSiteQuartic)
    yield OnSiteQuartic.name
    del FEATURES[OnSiteQuartic.name]


def test_a_registered_family_needs_no_edit_of_the_model(tmp_path, free_field, quartic_family):
    fields = free_field(200, size=8)
    features = {"quadratic": {}, quartic_family: {}}
    model = HierarchicalModel(features=features, progress=False).fit(fields)
    names = [f.name for f in model.conditionals_[0].features]
    assert names == ["quadratic", quartic_family]
    # a Gaussian field: the fitted quartic coupling is small against the quadratic ones
    theta = model.conditionals_[0].theta
    assert abs(float(theta[-1])) < 0.1 * float(theta[:-1].abs().max())
    again = HierarchicalModel.load(model.save(tmp_path / "model.nc"), progress=False)
    a = model.sample(3, seed=1, steps=10, warmup=10).fields
    torch.testing.assert_close(again.sample(3, seed=1, steps=10, warmup=10).fields, a)
    del FEATURES[quartic_family]
    with pytest.raises(ValueError, match="is not registered"):
        HierarchicalModel.load(tmp_path / "model.nc")
    register_feature(OnSiteQuartic)
