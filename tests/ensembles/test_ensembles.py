"""rgfield.ensembles: chunked, seeded, resumable ensembles in-process and on a Dask cluster.

The cluster tests run a distributed.LocalCluster of worker processes; the jobs they use are
defined here (the workers import this module by name, as they would any user's module).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from rgfield import ensembles, io
from rgfield.ensembles import store
from rgfield.ensembles.tasks import compute_chunk
from rgfield.fields.gaussian import GaussianConfig, lattice_free_field_spectrum

distributed = pytest.importorskip("distributed")


@dataclass(frozen=True)
class Noise:
    """White noise from numpy's generator of the block's seed: an exactly known job."""

    shape: tuple[int, int] = (8, 8)

    def run(self, n: int, seed: int) -> xr.Dataset:
        values = np.random.default_rng(seed).standard_normal((n, *self.shape), dtype=np.float32)
        return io.to_dataset(values, "field", {"generator": "noise", "seed": seed})

    def describe(self) -> dict:
        return {"job": "noise", "shape": list(self.shape)}


@dataclass(frozen=True)
class Faulty(Noise):
    """Noise that, the first time it meets the block of seed ``victim``, fails: by raising
    (``how="raise"``), by killing its process (``"kill"``), or by Ctrl-C (``"interrupt"``).
    A file in ``marks`` remembers that it did, across processes."""

    marks: str = ""
    victim: int = 0
    how: str = "raise"

    def run(self, n: int, seed: int) -> xr.Dataset:
        mark = Path(self.marks) / f"{seed}"
        if seed == self.victim and not mark.exists():
            mark.touch()
            if self.how == "kill":
                os._exit(1)
            raise KeyboardInterrupt if self.how == "interrupt" else RuntimeError("injected")
        return super().run(n, seed)


@dataclass(frozen=True)
class Broken(Noise):
    def run(self, n: int, seed: int) -> xr.Dataset:
        raise RuntimeError("always broken")


def _values(ds: xr.Dataset) -> np.ndarray:
    return ds["field"].values


@pytest.fixture(scope="module")
def client():
    with ensembles.cluster(workers=2) as client:
        yield client


def test_block_seeds_are_spawned_seed_sequences():
    """block_seed(s, b) is the b-th child of SeedSequence(s), independent of everything else."""
    children = np.random.SeedSequence(7).spawn(3)
    for b, child in enumerate(children):
        expected = int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))
        assert ensembles.block_seed(7, b) == expected
    assert len({ensembles.block_seed(7, b) for b in range(1000)}) == 1000


def test_in_process_ensemble_is_the_blocks_of_its_seeds(tmp_path):
    """Every sample is job.run(block, block_seed(seed, b)); the chunking changes nothing."""
    job = Noise()
    ds = ensembles.generate(job, 22, tmp_path / "a", seed=5, block=4, chunk=8, progress=False)
    expected = np.concatenate([_values(job.run(4, ensembles.block_seed(5, b))) for b in range(6)])[
        :22
    ]
    expected[20:] = _values(job.run(2, ensembles.block_seed(5, 5)))  # the short last block
    np.testing.assert_array_equal(_values(ds), expected)
    np.testing.assert_array_equal(ds["sample"], np.arange(22))
    assert len(list((tmp_path / "a").glob("chunk-*.nc"))) == 3
    other = ensembles.generate(job, 22, tmp_path / "b", seed=5, block=4, chunk=20, progress=False)
    np.testing.assert_array_equal(_values(other), _values(ds))
    assert ds.attrs["seed"] == 5 and ds.attrs["block"] == 4 and ds.attrs["generator"] == "noise"


def test_simulator_ensemble_equal_across_chunkings_and_workers(tmp_path, client):
    """A simulator's ensemble is bit-identical in-process and on 1 or 2 workers, chunk 4 or 12."""
    config = GaussianConfig(lattice_free_field_spectrum(0.5, 0.1), (16, 16))
    job = ensembles.Simulation(config)
    kwargs = dict(seed=11, block=4, progress=False)
    here = ensembles.generate(job, 24, tmp_path / "here", chunk=4, **kwargs)
    two = ensembles.generate(job, 24, tmp_path / "two", chunk=12, client=client, **kwargs)
    with ensembles.cluster(workers=1) as one_worker:
        one = ensembles.generate(job, 24, tmp_path / "one", chunk=4, client=one_worker, **kwargs)
    for ds in (two, one):
        np.testing.assert_array_equal(ds["field"].values, here["field"].values)
    assert here.attrs["generator"] == "rgfield.fields.gaussian.simulate"


def test_phi4_ensemble_is_the_same_here_and_on_workers(tmp_path, client):
    """φ⁴ with the default chains (min(4 × numba's threads, samples): 8 for a block of 16 on
    this machine's 2 threads) gives the same samples in this process, chunked by 16, and on
    the workers, chunked by 32: a block runs on one thread wherever it is."""
    import numba

    from rgfield.fields.phi4 import Phi4, Phi4Config

    job = ensembles.Simulation(Phi4Config(Phi4(beta=0.68), 8))
    threads = numba.get_num_threads()
    a = ensembles.generate(job, 32, tmp_path / "a", seed=2, block=16, chunk=16, progress=False)
    assert numba.get_num_threads() == threads  # restored
    b = ensembles.generate(job, 32, tmp_path / "b", seed=2, block=16, chunk=32, client=client)
    np.testing.assert_array_equal(a["phi"].values, b["phi"].values)
    assert np.unique(a["block_seed"]).size == 2 and a.attrs["chains"] == 4


def test_interrupted_run_resumes_and_computes_only_missing_chunks(tmp_path, monkeypatch):
    """Ctrl-C in the third chunk leaves two complete chunk files and nothing half-written; the
    rerun computes chunks 2 and 3 only and gives the uninterrupted ensemble."""
    out = tmp_path / "ens"
    victim = ensembles.block_seed(3, 2)
    job = Faulty(marks=str(tmp_path), victim=victim, how="interrupt")
    with pytest.raises(KeyboardInterrupt):
        ensembles.generate(job, 16, out, seed=3, block=4, chunk=4, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "chunk-000000.nc",
        "chunk-000001.nc",
        "ensemble.json",
    ]
    with pytest.raises(ValueError, match="2 of 4 chunks missing"):
        ensembles.open_ensemble(out)
    computed = []
    original = compute_chunk

    def counting(job, plan, chunk, **kwargs):
        computed.append(chunk)
        return original(job, plan, chunk, **kwargs)

    monkeypatch.setattr("rgfield.ensembles.tasks.compute_chunk", counting)
    ds = ensembles.generate(job, 16, out, seed=3, block=4, chunk=4, progress=False)
    assert computed == [2, 3]
    reference = ensembles.generate(Noise(), 16, tmp_path / "ref", seed=3, block=4, chunk=4)
    np.testing.assert_array_equal(_values(ds), _values(reference))


def test_a_different_ensemble_is_not_overwritten(tmp_path):
    out = tmp_path / "ens"
    ensembles.generate(Noise(), 8, out, seed=1, block=4, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(FileExistsError, match="holds another ensemble"):
        ensembles.generate(Noise(), 8, out, seed=2, block=4, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    ds = ensembles.generate(Noise(), 8, out, seed=2, block=4, overwrite=True, progress=False)
    assert ds.attrs["seed"] == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        ensembles.generate(Noise(), 8, tmp_path / "other", seed=1, progress=False)


def test_resume_keeps_the_manifest_and_compares_callables_by_name(tmp_path, monkeypatch):
    """A config holding a function (a spectrum) resumes in another process (its manifest names
    the function, not its address); the resumed chunks carry the ensemble's creation time; a
    relative path works; numpy integers are taken as ints."""
    import json
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    config = GaussianConfig(lattice_free_field_spectrum(0.5, 0.1), (8, 8))
    job = ensembles.Simulation(config)
    ensembles.generate(job, np.int64(8), "rel", seed=np.int64(1), block=4, chunk=4, progress=False)
    store.chunk_path(tmp_path / "rel", 1).unlink()
    created = json.loads((tmp_path / "rel" / "ensemble.json").read_text())["created"]
    script = (
        "from rgfield import ensembles\n"
        "from rgfield.fields.gaussian import GaussianConfig, lattice_free_field_spectrum\n"
        "config = GaussianConfig(lattice_free_field_spectrum(0.5, 0.1), (8, 8))\n"
        "job = ensembles.Simulation(config)\n"
        "ensembles.generate(job, 8, 'rel', block=4, chunk=4, progress=False)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    ds = ensembles.open_ensemble(tmp_path / "rel")
    assert ds.attrs["created"] == created and ds.attrs["seed"] == 1
    reference = ensembles.generate(job, 8, tmp_path / "ref", seed=1, block=4, progress=False)
    np.testing.assert_array_equal(ds["field"].values, reference["field"].values)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seed=-1), "seed must be a non-negative integer"),
        (dict(samples=0), "samples must be a positive integer"),
        (dict(block=0), "block must be a positive integer"),
        (dict(block=4, chunk=6), "chunk must be a multiple of block"),
        (dict(retries=-1), "retries must be a non-negative integer"),
    ],
)
def test_bad_plans_are_refused(tmp_path, kwargs, message):
    arguments = dict(samples=8, seed=0, progress=False) | kwargs
    with pytest.raises(ValueError, match=message):
        ensembles.generate(Noise(), out=tmp_path / "ens", **arguments)
    assert not (tmp_path / "ens").exists()


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failed_task_is_rerun_losing_and_duplicating_no_sample(how, tmp_path, client):
    """The task of block 2 fails once: it raises (and is retried), or its worker dies in
    mid-task (os._exit; the scheduler reruns it elsewhere). The ensemble equals the
    undisturbed one, each sample once, and no temporary file is left."""
    victim = ensembles.block_seed(6, 2)
    job = Faulty(marks=str(tmp_path), victim=victim, how=how)
    ds = ensembles.generate(job, 24, tmp_path / "ens", seed=6, block=4, client=client, chunk=4)
    assert (tmp_path / str(victim)).exists()  # it did fail once
    reference = ensembles.generate(Noise(), 24, tmp_path / "ref", seed=6, block=4, chunk=4)
    np.testing.assert_array_equal(_values(ds), _values(reference))
    np.testing.assert_array_equal(ds["sample"], np.arange(24))
    assert not list((tmp_path / "ens").glob(".*.tmp"))


def test_a_task_that_keeps_failing_names_its_chunk(tmp_path, client):
    with pytest.raises(RuntimeError, match=r"chunk 0 \(samples 0–3\) failed on the cluster"):
        ensembles.generate(Broken(), 4, tmp_path / "ens", seed=0, block=4, client=client, retries=1)
    assert not list((tmp_path / "ens").glob("chunk-*"))


def test_store_files_are_plain_netcdf_with_the_conventions(tmp_path):
    ensembles.generate(Noise(), 8, tmp_path / "ens", seed=9, block=4, chunk=4, progress=False)
    part = io.load(store.chunk_path(tmp_path / "ens", 1))
    assert part.sizes["sample"] == 4
    for key in ("generator", "seed", "block", "chunk", "created", "rgfield_version"):
        assert key in part.attrs


# --- the command line: --workers, --scheduler, --chunk, --block ------------------------------


def test_cli_simulate_on_a_running_scheduler_is_the_in_process_ensemble(tmp_path, client, capsys):
    from rgfield.cli import main

    argv = ["simulate", "cosmic", "--size", "16", "--samples", "6", "--model", "lognormal"]
    argv += ["--seed", "3", "--block", "2", "--no-progress"]
    address = client.scheduler.address
    assert main([*argv, "--scheduler", address, "--out", str(tmp_path / "there")]) == 0
    assert "Dask dashboard" in capsys.readouterr().out
    assert main([*argv, "--chunk", "6", "--out", str(tmp_path / "here")]) == 0
    assert main([*argv, "--out", str(tmp_path / "block")]) == 0  # --block alone: an ensemble
    assert (tmp_path / "block" / "ensemble.json").is_file()
    there, here = io.load(tmp_path / "there"), io.load(tmp_path / "here")
    np.testing.assert_array_equal(there.values, here.values)
    np.testing.assert_array_equal(io.load(tmp_path / "block").values, here.values)
    assert there.attrs["chunk"] == 8 and here.attrs["chunk"] == 6


def test_cli_simulate_writes_resumes_and_refuses_another_ensemble(tmp_path, capsys):
    from rgfield.cli import main

    out = tmp_path / "phi4"
    argv = ["simulate", "phi4", "--size", "8", "--beta", "0.68", "--samples", "8"]
    argv += ["--chains", "2", "--seed", "4", "--block", "4", "--chunk", "4", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "8 samples (seed 4, blocks of 4) in 2 chunk files" in capsys.readouterr().out
    files = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main([*argv, "--out", str(out)]) == 0  # complete: nothing recomputed or rewritten
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == files
    again = [*argv[:-7], "--seed", "5", *argv[-5:], "--out", str(out)]
    assert main(again) == 1
    assert "holds another ensemble" in capsys.readouterr().err
    phi = io.load(out)
    from rgfield.fields.phi4 import Phi4, Phi4Config, simulate

    block = simulate(Phi4Config(Phi4(0.68), 8, chains=2), 4, seed=ensembles.block_seed(4, 1))
    np.testing.assert_array_equal(phi.values[4:], block["phi"].values)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--workers", "2", "--scheduler", "tcp://localhost:1"], "give one of them"),
        (["--workers", "0"], "--workers must be a positive integer"),
        (["--chunk", "0"], "--chunk must be a positive integer"),
        (["--block", "0"], "--block must be a positive integer"),
        (["--chunk", "4", "--block", "3"], "chunk must be a multiple of block"),
    ],
)
def test_cli_ensemble_options_are_checked(extra, message, tmp_path, capsys):
    from rgfield.cli import main

    argv = ["simulate", "cosmic", "--size", "8", "--samples", "4", "--out", str(tmp_path / "e")]
    assert main([*argv, *extra, "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())


def test_cli_sample_and_synthesize_as_ensembles_are_their_seeded_blocks(tmp_path, client, capsys):
    """`rgfield sample` on the workers and `rgfield synthesize --chunk` here write, block by
    block, what model.sample and synthesize draw from the blocks' seeds."""
    from rgfield.cli import main
    from rgfield.fields.gaussian import gaussian_field
    from rgfield.microcanonical import synthesize
    from rgfield.rg import HierarchicalModel

    fields = gaussian_field(lattice_free_field_spectrum(1.0, 0.5), (8, 8), 100, seed=0)
    io.save(io.to_dataset(fields, "phi"), tmp_path / "train.nc")
    model = HierarchicalModel().fit(fields)
    model.save(tmp_path / "model.nc")
    common = ["--seed", "2", "--block", "2", "--chunk", "4", "--no-progress"]
    sample = ["sample", "--model", str(tmp_path / "model.nc"), "--n", "6", "--steps", "20"]
    on_workers = ["--scheduler", client.scheduler.address, "--out", str(tmp_path / "s")]
    assert main([*sample, "--warmup", "20", *common, *on_workers]) == 0
    drawn = io.load(tmp_path / "s")
    block = model.sample(2, seed=ensembles.block_seed(2, 2), steps=20, warmup=20)
    np.testing.assert_array_equal(drawn.values[4:], block.fields.float().numpy())
    synth = ["synthesize", "--data", str(tmp_path / "train.nc"), "--n", "2", "--steps", "5"]
    assert main([*synth, *common, "--out", str(tmp_path / "m")]) == 0
    made = io.load(tmp_path / "m")
    assert made.attrs["source"] == str(tmp_path / "train.nc")
    one = synthesize(fields[:1].numpy(), n=2, steps=5, seed=ensembles.block_seed(2, 0))
    np.testing.assert_array_equal(made.values, one.fields.numpy())


# --- fitting from chunks ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def phi4_ensemble(tmp_path_factory):
    """60 φ⁴ fields of 16² in chunks of 8: the held-out split (the last 6) cuts chunk 6."""
    from rgfield.fields.phi4 import Phi4, Phi4Config

    out = tmp_path_factory.mktemp("fit") / "phi4"
    job = ensembles.Simulation(Phi4Config(Phi4(beta=0.68), 16, chains=4))
    ensembles.generate(job, 60, out, seed=1, block=4, chunk=8, progress=False)
    return out


def _factors(model):
    """The factors and free energies in the fit reports' order: coarse to fine."""
    return [model.low_, *model.conditionals_[::-1]], model.free_energies_[::-1]


def assert_same_fit(streamed, in_memory):
    """θ of every factor and free energy equal to rounding: the sums differ by the order of
    their terms (a relative perturbation of H of a few ε), which a solve amplifies by at most
    κ(H) (the fit report's condition); 100 ε κ leaves room for the ε of every term."""
    eps = np.finfo(np.float64).eps
    for report, (ours, theirs) in (
        (in_memory.fit_report_, (_factors(streamed)[0], _factors(in_memory)[0])),
        (in_memory.free_energy_report_, (_factors(streamed)[1], _factors(in_memory)[1])),
    ):
        for kappa, a, b in zip(report["condition"].values, ours, theirs, strict=True):
            error = float((a.theta - b.theta).norm() / b.theta.norm())
            assert error <= 100 * eps * max(kappa, 1.0), (error, kappa)
    for name in ("train_loss", "heldout_loss", "heldout_loss_se"):
        np.testing.assert_allclose(
            streamed.fit_report_[name], in_memory.fit_report_[name], rtol=1e-8
        )
    np.testing.assert_allclose(
        [float(g) for g in streamed.scales_.details], [float(g) for g in in_memory.scales_.details]
    )
    # the chains' Gaussian starts: the same regressions and residual covariances
    assert streamed.starts_.keys() == in_memory.starts_.keys()
    for name, start in in_memory.starts_.items():
        ours = streamed.starts_[name]
        np.testing.assert_allclose(
            (ours.root @ ours.root.mH).numpy(), (start.root @ start.root.mH).numpy(), atol=1e-12
        )
        if start.gain is not None:
            np.testing.assert_allclose(ours.gain.numpy(), start.gain.numpy(), atol=1e-10)


def test_fit_from_chunks_equals_the_in_memory_fit(phi4_ensemble, client):
    from rgfield.rg import HierarchicalModel

    fields = io.load(phi4_ensemble).values
    in_memory = HierarchicalModel(ridge=[1e-6, 1e-3], progress=False).fit(fields)
    here = ensembles.fit(HierarchicalModel(ridge=[1e-6, 1e-3], progress=False), phi4_ensemble)
    assert_same_fit(here, in_memory)
    there = ensembles.fit(
        HierarchicalModel(ridge=[1e-6, 1e-3], progress=False), phi4_ensemble, client=client
    )
    assert_same_fit(there, in_memory)
    assert there.fit_report_["method"].values[0] == "maximum likelihood"  # 1×1 coarsest


def test_fit_from_chunks_keeps_a_family_out_of_the_finer_conditionals(phi4_ensemble):
    from rgfield.rg import HierarchicalModel

    features = {"potential": {"min_level": 2}, "quadratic": {"radius": 1}}
    fields = io.load(phi4_ensemble).values
    in_memory = HierarchicalModel(features=features, progress=False).fit(fields)
    here = ensembles.fit(HierarchicalModel(features=features, progress=False), phi4_ensemble)
    assert_same_fit(here, in_memory)
    for model in (here, in_memory):  # F_1 takes conditional 1's families: no potential
        assert [f.name for f in model.conditionals_[0].features] == ["quadratic"]
        assert [f.name for f in model.free_energies_[0].features] == ["quadratic"]
        assert [f.name for f in model.conditionals_[1].features] == ["potential", "quadratic"]


def test_a_small_pilot_fixes_the_knots_and_all_fields_the_scales(phi4_ensemble):
    from rgfield.rg import HierarchicalModel
    from rgfield.rg.scales import coarse_to_fine
    from rgfield.rg.scorematching import new_families
    from rgfield.wavelets import decompose, estimate_scales

    fields = torch_fields(phi4_ensemble)
    model = ensembles.fit(HierarchicalModel(progress=False), phi4_ensemble, pilot=10)
    expected = estimate_scales(decompose(fields, model.levels_, "db4"))
    np.testing.assert_allclose(float(model.scales_.low), float(expected.low), rtol=1e-12)
    finest = coarse_to_fine(model.scales_)[-1]
    y, c = finest.variables(decompose(fields[:10], model.levels_, "db4"))
    knots = new_families(model.feature_spec(), y, c, "db4")[0].centres
    np.testing.assert_array_equal(model.conditionals_[0].features[0].centres, knots)


def torch_fields(directory):
    import torch

    return torch.as_tensor(io.load(directory).values, dtype=torch.float64)


def test_fit_from_chunks_refuses_refinement_and_incomplete_ensembles(phi4_ensemble, tmp_path):
    from rgfield.rg import HierarchicalModel

    with pytest.raises(ValueError, match="refine: a fit from chunks is score matching only"):
        ensembles.fit(HierarchicalModel(refine=2, progress=False), phi4_ensemble)
    partial = tmp_path / "partial"
    shutil.copytree(phi4_ensemble, partial)
    store.chunk_path(partial, 3).unlink()
    with pytest.raises(ValueError, match="1 of 8 chunks missing"):
        ensembles.fit(HierarchicalModel(progress=False), partial)
    with pytest.raises(ValueError, match="pilot must be an integer"):
        ensembles.fit(HierarchicalModel(progress=False), phi4_ensemble, pilot=1)


def test_cli_fit_on_workers_writes_the_in_memory_model(phi4_ensemble, tmp_path, capsys):
    from rgfield.cli import main
    from rgfield.rg import HierarchicalModel

    argv = ["fit", "--data", str(phi4_ensemble), "--no-progress"]
    assert main([*argv, "--workers", "2", "--out", str(tmp_path / "m.nc")]) == 0
    assert "Dask dashboard" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "memory.nc")]) == 0
    there, memory = (
        HierarchicalModel.load(tmp_path / f, progress=False) for f in ("m.nc", "memory.nc")
    )
    assert_same_fit(there, memory)
    # both calibrated, on the same fields: the chunks read one after the other up to the
    # calibration's chains (all 60 here); θ equal to rounding only, so the chains differ
    assert there.calibration_.keys() == memory.calibration_.keys() != set()
    from types import SimpleNamespace

    from rgfield.cli.fit import _first_fields

    first = _first_fields(SimpleNamespace(data=str(phi4_ensemble), var=None))
    np.testing.assert_array_equal(first.values, io.load(phi4_ensemble).values)
    refused = ["fit", "--data", str(tmp_path / "memory.nc"), "--workers", "1"]
    assert main([*refused, "--out", str(tmp_path / "x.nc")]) == 1
    assert "is not an ensemble directory" in capsys.readouterr().err
