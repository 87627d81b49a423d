import warnings

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from rgfield import io


def ensemble(samples=4, shape=(8, 16), seed=0):
    return np.random.default_rng(seed).standard_normal((samples, *shape)).astype(np.float32)


def write_foreign(path, variables: dict, dims: tuple[str, ...]):
    """A netCDF file written with the netCDF4 library directly, as another code would."""
    with netCDF4.Dataset(path, "w") as nc:
        first = next(iter(variables.values()))
        for name, size in zip(dims, first.shape, strict=True):
            nc.createDimension(name, size)
        nc.title = "external simulation"
        for name, values in variables.items():
            var = nc.createVariable(name, values.dtype, dims)
            var[:] = values
            var.units = "1/s"


def test_to_dataset_follows_the_convention():
    ds = io.to_dataset(torch.from_numpy(ensemble()), "phi", {"seed": 3, "beta": 0.7, "hot": True})
    assert ds["phi"].dims == ("sample", "y", "x")
    assert ds.attrs["generator"] == "user" and ds.attrs["seed"] == 3 and ds.attrs["hot"] == 1
    assert ds.attrs["rgfield_version"] and "T" in ds.attrs["created"]
    assert io.to_dataset(np.zeros((2, 4, 4, 4))).field.dims == ("sample", "z", "y", "x")
    assert io.to_dataset(np.zeros((4, 4))).field.sizes["sample"] == 1
    with pytest.raises(ValueError, match=r"attrs\['params'\]"):
        io.to_dataset(ensemble(), attrs={"params": {"beta": 1}})
    with pytest.raises(ValueError, match="fields must have shape"):
        io.to_dataset(np.zeros(5))


def test_save_load_round_trip(tmp_path):
    values = ensemble()
    ds = io.to_dataset(values, "phi", {"generator": "test", "seed": 7, "sizes": [1, 2]})
    path = io.save(ds, tmp_path / "phi.nc")
    da = io.load(path)
    assert da.name == "phi" and da.dims == ("sample", "y", "x") and da.dtype == np.float32
    np.testing.assert_array_equal(da.values, values)
    for key in ("generator", "seed", "rgfield_version", "created"):
        assert da.attrs[key] == ds.attrs[key]
    np.testing.assert_array_equal(da.attrs["sizes"], [1, 2])
    with xr.open_dataset(path) as raw:
        assert raw["phi"].encoding["zlib"] and raw["phi"].encoding["complevel"] == 4
    torch.testing.assert_close(io.as_tensor(da), torch.from_numpy(values))


def test_save_never_overwrites_silently(tmp_path):
    path = tmp_path / "a.nc"
    io.save(io.to_dataset(ensemble(seed=1)), path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        io.save(io.to_dataset(ensemble(seed=2)), path)
    np.testing.assert_array_equal(io.load(path).values, ensemble(seed=1))
    io.save(io.to_dataset(ensemble(seed=2)), path, overwrite=True)
    np.testing.assert_array_equal(io.load(path).values, ensemble(seed=2))
    with pytest.raises(ValueError, match="does not exist"):
        io.save(io.to_dataset(ensemble()), tmp_path / "missing" / "a.nc")


def test_interrupted_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    path = tmp_path / "a.nc"
    io.save(io.to_dataset(ensemble(seed=1)), path)

    def crash(self, target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save(io.to_dataset(ensemble(seed=2)), path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc"]
    monkeypatch.undo()
    np.testing.assert_array_equal(io.load(path).values, ensemble(seed=1))


def test_load_foreign_netcdf_renames_dims_and_says_so(tmp_path):
    path = tmp_path / "turb.nc"
    values = ensemble(3, (8, 8)).astype(np.float64)
    write_foreign(path, {"vort": values}, ("time", "lat", "lon"))
    with pytest.warns(UserWarning, match=r"\('time', 'lat', 'lon'\) as \('sample', 'y', 'x'\)"):
        da = io.load(path)
    assert da.dims == ("sample", "y", "x") and da.name == "vort"
    assert da.attrs["source_dims"] == "time lat lon"
    assert da.attrs["title"] == "external simulation" and da.attrs["units"] == "1/s"
    np.testing.assert_array_equal(da.values, values)


def test_load_chooses_or_asks_for_the_variable(tmp_path):
    path = tmp_path / "two.nc"
    a, b = ensemble(seed=1), ensemble(seed=2)
    write_foreign(path, {"u": a, "v": b}, ("sample", "y", "x"))
    with pytest.raises(ValueError, match=r"several field variables.*pass var="):
        io.load(path)
    np.testing.assert_array_equal(io.load(path, var="v").values, b)
    with pytest.raises(ValueError, match=r"no variable 'w'; it has \['u', 'v'\]"):
        io.load(path, var="w")
    # a scalar variable beside one field is not a candidate
    path = tmp_path / "one.nc"
    xr.Dataset({"phi": (("sample", "y", "x"), a), "beta": 0.5}).to_netcdf(path)
    np.testing.assert_array_equal(io.load(path).values, a)


def test_load_validation_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load(tmp_path / "nothing.nc")
    text = tmp_path / "notes.nc"
    text.write_text("not a netCDF file")
    with pytest.raises(ValueError, match="not a readable netCDF file"):
        io.load(text)
    bad = ensemble()
    bad[1, 2, 3] = np.nan
    bad[0, 0, 0] = np.inf
    xr.Dataset({"phi": (("sample", "y", "x"), bad)}).to_netcdf(tmp_path / "nan.nc")
    with pytest.raises(ValueError, match="contains 2 NaN or Inf values"):
        io.load(tmp_path / "nan.nc")
    xr.Dataset({"series": (("t",), np.arange(5.0))}).to_netcdf(tmp_path / "series.nc")
    with pytest.raises(ValueError, match="no field variables"):
        io.load(tmp_path / "series.nc")
    xr.Dataset({"s": (("t",), np.arange(5.0))}).to_netcdf(tmp_path / "s.nc")
    with pytest.raises(ValueError, match=r"has dims \('t',\)"):
        io.load(tmp_path / "s.nc", var="s")


@pytest.mark.filterwarnings("error")
def test_load_npy(tmp_path):
    values = ensemble()
    np.save(tmp_path / "a.npy", values)
    da = io.load(tmp_path / "a.npy")
    assert da.dims == ("sample", "y", "x")
    np.testing.assert_array_equal(da.values, values)
    np.save(tmp_path / "one.npy", values[0])
    assert io.load(tmp_path / "one.npy").sizes["sample"] == 1
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable .npy"):
        io.load(tmp_path / "obj.npy")
    np.save(tmp_path / "line.npy", np.arange(4.0))
    with pytest.raises(ValueError, match="expected"):
        io.load(tmp_path / "line.npy")


@pytest.mark.filterwarnings("error")
def test_load_npz_picks_the_only_field_array_or_the_named_one(tmp_path):
    values = ensemble()
    np.savez(tmp_path / "one.npz", fields=values, seeds=np.arange(3))
    da = io.load(tmp_path / "one.npz")
    assert da.name == "fields" and da.dims == ("sample", "y", "x")
    np.testing.assert_array_equal(da.values, values)
    np.savez(tmp_path / "two.npz", a=values, b=2 * values)
    with pytest.raises(ValueError, match=r"var: .* several arrays .*\['a', 'b'\]"):
        io.load(tmp_path / "two.npz")
    np.testing.assert_array_equal(io.load(tmp_path / "two.npz", var="b").values, 2 * values)
    with pytest.raises(ValueError, match="has no array 'c'"):
        io.load(tmp_path / "two.npz", var="c")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        io.load(tmp_path / "bad.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "two.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable .npz"):
        io.load(tmp_path / "cut.npz")


@pytest.mark.parametrize("consolidated", [True, False])
def test_load_zarr_written_by_xarray(tmp_path, consolidated):
    values = ensemble()
    ds = xr.Dataset({"vorticity": (("sample", "y", "x"), values)}, attrs={"generator": "x"})
    with warnings.catch_warnings():  # zarr warns that consolidation is not in its v3 spec
        warnings.simplefilter("ignore")
        ds.to_zarr(tmp_path / "flows.zarr", consolidated=consolidated)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read quietly either way
        da = io.load(tmp_path / "flows.zarr")
    assert da.name == "vorticity" and da.attrs["generator"] == "x"
    np.testing.assert_array_equal(da.values, values)
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        io.load(tmp_path / "missing.zarr")
    (tmp_path / "flows.zarr").rename(tmp_path / "flows")
    with pytest.raises(ValueError, match="is a directory; a zarr store's name ends in .zarr"):
        io.load(tmp_path / "flows")


def test_as_tensor_conversions():
    a = np.arange(6.0).reshape(2, 3)
    t = io.as_tensor(a)
    assert t.dtype == torch.float64 and np.shares_memory(t.numpy(), a)
    assert io.as_tensor(np.arange(4)).dtype == torch.float32
    assert io.as_tensor(xr.DataArray(a)).shape == (2, 3)
    assert io.as_tensor(a, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match="expected a numpy array"):
        io.as_tensor({"a": 1})
    with pytest.raises(ValueError, match="real numeric"):
        io.as_tensor(np.array(["a"]))


def test_saved_files_have_the_usual_permissions(tmp_path):
    import os

    path = io.save(io.to_dataset(ensemble()), tmp_path / "a.nc")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_no_overwrite_even_if_the_file_appears_during_the_write(tmp_path, monkeypatch):
    from pathlib import Path

    path = tmp_path / "a.nc"
    io.save(io.to_dataset(ensemble(seed=1)), path)
    monkeypatch.setattr(Path, "exists", lambda self: False)  # the early check sees nothing
    with pytest.raises(FileExistsError):
        io.save(io.to_dataset(ensemble(seed=2)), path)
    monkeypatch.undo()
    np.testing.assert_array_equal(io.load(path).values, ensemble(seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc"]


def test_saving_a_loaded_dataarray_keeps_global_provenance(tmp_path):
    io.save(io.to_dataset(ensemble(), "phi", {"seed": 5}), tmp_path / "a.nc")
    io.save(io.load(tmp_path / "a.nc"), tmp_path / "b.nc")
    with xr.open_dataset(tmp_path / "b.nc") as ds:
        assert ds.attrs["seed"] == 5 and "seed" not in ds["phi"].attrs


@pytest.mark.filterwarnings("error")
def test_rgfield_dims_in_another_order_are_transposed_by_name(tmp_path):
    values = ensemble(3, (4, 5))
    xr.Dataset({"phi": (("y", "x", "sample"), values.transpose(1, 2, 0))}).to_netcdf(
        tmp_path / "t.nc"
    )
    da = io.load(tmp_path / "t.nc")
    assert da.dims == ("sample", "y", "x")
    np.testing.assert_array_equal(da.values, values)


def test_unstorable_attrs_and_data_are_refused(tmp_path):
    with pytest.raises(ValueError, match="keys"):
        io.to_dataset(ensemble(), attrs={"a/b": 1})
    with pytest.raises(ValueError, match="64 bits"):
        io.to_dataset(ensemble(), attrs={"n": 2**70})
    with pytest.raises(ValueError, match="float16"):
        io.save(
            xr.Dataset({"h": (("sample", "y", "x"), np.zeros((1, 2, 2), np.float16))}),
            tmp_path / "h.nc",
        )
    with pytest.raises(ValueError, match="is a directory"):
        io.save(io.to_dataset(ensemble()), tmp_path)
    assert io.as_tensor(3.0).shape == ()
    big_endian = np.arange(4.0).astype(">f8")
    assert io.as_tensor(big_endian).tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_save_refuses_what_load_would_refuse_with_the_same_message(bad, tmp_path):
    fields = ensemble()
    fields[1, 2, 3] = bad
    path = tmp_path / "bad.nc"
    with pytest.raises(ValueError, match=r"variable 'phi' contains 1 NaN or Inf values"):
        io.save(io.to_dataset(fields, "phi"), path)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
    xr.Dataset({"phi": (("sample", "y", "x"), fields)}).to_netcdf(path)  # written by hand
    with pytest.raises(ValueError, match=r"variable 'phi' contains 1 NaN or Inf values"):
        io.load(path)
