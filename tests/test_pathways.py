"""``rgfield pathways``: simulate, fit every pathway, compare on held-out fields, cost table."""

import numpy as np
import pytest
import torch

from rgfield import pathways
from rgfield.cli.pathways import KIND_CHOICES


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pathways") / "run"
    # every pathway, the diffusion one given as an object with a network trained for seconds
    tiny = pathways.DiffusionPathway({"width": 4, "levels": 2, "steps": 3, "batch": 4})
    chosen = [tiny if name == "diffusion" else name for name in pathways.PATHWAYS]
    result = pathways.run(
        "phi4",
        size=8,
        train=16,
        held_out=16,
        samples=8,
        pathways=chosen,
        out=out,
        progress=False,
        log=print,
    )
    return out, result


def test_every_existing_pathway_is_fitted_generated_and_compared(small_run):
    out, result = small_run
    assert list(result.generated) == list(pathways.PATHWAYS)
    assert all(tuple(f.shape) == (8, 8, 8) for f in result.generated.values())
    assert list(result.summary["ensemble"].values) == list(pathways.PATHWAYS)
    assert result.held_out.shape == result.train.shape == (16, 8, 8)
    assert result.held_out.attrs["seed"] != result.train.attrs["seed"]  # independent chains
    held = list(result.summary["quantity"].values)
    assert "statistics/memorisation" in held and "observables/phi4" in held
    rg = next(c for c in result.costs if c["pathway"] == "rg")
    assert rg["parameters"] > 0 and rg["fit_seconds"] > 0 and rg["evaluations_per_sample"] > 0
    table = (out / "pathways.md").read_text()
    for name in pathways.PATHWAYS:
        assert f"| {name} |" in table
    # one row per compared quantity and the pixel KS, each naming the pathway ahead
    z = result.summary["max_abs_z"].sel(quantity="statistics/power_spectrum")
    ahead = str(z["ensemble"].values[int(np.nanargmin(z.values))])
    row = next(r for r in table.splitlines() if r.startswith("| statistics/power_spectrum |"))
    assert row.endswith(f"| {ahead} |")
    assert sum(r.startswith("| pixels (KS") for r in table.splitlines()) == 1
    assert (out / "report" / "report.md").is_file()
    saved = sorted(p.name for p in (out / "ensembles").iterdir())
    per_pathway = [f"{n}.{ext}" for n in pathways.PATHWAYS for ext in ("nc", "json")]
    assert saved == sorted(["train.nc", "held_out.nc", *per_pathway])
    assert sorted(p.name for p in (out / "work").iterdir()) == sorted(
        [
            *(f"{n}.{ext}" for n in ("rg", "rg-scattering") for ext in ("model.nc", "fit.json")),
            "diffusion.checkpoint",
        ]
    )


def test_an_existing_report_is_refused_before_any_work(small_run):
    out, _ = small_run
    with pytest.raises(FileExistsError, match="report exists"):
        pathways.run("phi4", size=8, train=16, held_out=16, samples=8, out=out, progress=False)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"kind": "ocean"}, "kind must be one of"),
        ({"size": 4}, "size must be an integer >= 8"),
        ({"train": 1}, "train must be an integer >= 2"),
        ({"samples": True}, "samples must be an integer >= 2"),
        ({"held_out": 2.5}, "held_out must be an integer >= 2"),
        ({"pathways": ["gan"]}, "pathways: unknown"),
        ({"pathways": ["rg", pathways.RGPathway()]}, "each name once"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    settings = {"kind": "phi4", "size": 8, "train": 4, "held_out": 4, "samples": 4}
    with pytest.raises(ValueError, match=message):
        pathways.run(**{**settings, **arguments}, progress=False)


def test_the_command_offers_every_kind():
    assert set(KIND_CHOICES) == set(pathways.KINDS)


def test_ensembles_a_user_has_are_compared_the_same_way(small_run, tmp_path):
    _, result = small_run
    again = pathways.compare_pathways(
        result.train, result.held_out, 8, pathways=["rg"], out=tmp_path / "mine", progress=False
    )
    assert list(again.generated) == ["rg"] and (tmp_path / "mine" / "pathways.md").is_file()
    # the same seed and training fields: the RG pathway draws the same fields as in run()
    assert (again.generated["rg"] == result.generated["rg"]).all()
    with pytest.raises(ValueError, match="samples must be an integer >= 2"):
        pathways.compare_pathways(result.train, result.held_out, 1, progress=False)
    with pytest.raises(ValueError, match="pathways: unknown"):
        pathways.compare_pathways(result.train, result.held_out, 4, pathways=["gan"])


def test_a_stopped_run_resumes_without_fitting_again(small_run, tmp_path, monkeypatch):
    from rgfield.rg import HierarchicalModel

    _, first = small_run
    out, chosen = tmp_path / "run", ["rg", "microcanonical"]
    kwargs = {"pathways": chosen, "out": out, "progress": False}
    done = pathways.compare_pathways(first.train, first.held_out, 8, **kwargs, log=print)
    assert (out / "work" / "rg.model.nc").is_file()
    # stopped while the RG pathway sampled (its model saved) and before microcanonical ended
    for name in ("rg.nc", "rg.json", "microcanonical.json"):
        (out / "ensembles" / name).unlink()

    def no_fit(*args, **kwargs):
        raise AssertionError("a resumed run fitted the RG model again")

    monkeypatch.setattr(HierarchicalModel, "fit", no_fit)
    lines = []
    again = pathways.compare_pathways(
        first.train, first.held_out, 8, **kwargs, resume=True, log=lines.append
    )
    # the saved model draws the fields the fitted one drew (same seed), and its fit time stays
    np.testing.assert_allclose(again.generated["rg"], done.generated["rg"], atol=1e-10)
    assert again.costs[0].keys() == done.costs[0].keys()
    assert again.costs[0]["fit_seconds"] == done.costs[0]["fit_seconds"]
    assert (out / "ensembles" / "microcanonical.json").is_file()
    # a finished pathway is read back exactly, not generated; the report is the same
    lines.clear()
    monkeypatch.setattr(pathways.RGPathway, "generate", no_fit)
    last = pathways.compare_pathways(
        first.train, first.held_out, 8, **kwargs, resume=True, log=lines.append
    )
    assert any(line.startswith("rg: read back") for line in lines)
    assert torch.equal(last.generated["rg"], again.generated["rg"])
    assert torch.equal(last.generated["microcanonical"], again.generated["microcanonical"])
    assert last.costs == again.costs
    # other settings than the run's are refused, before any work
    with pytest.raises(ValueError, match="resume: .*records seed 0"):
        pathways.compare_pathways(first.train, first.held_out, 8, **kwargs, seed=1, resume=True)
    floor = pathways.RGPathway("rg", min_curvature=0.5)
    with pytest.raises(ValueError, match=r"other settings\s+for \['rg'\]"):
        pathways.compare_pathways(
            first.train, first.held_out, 8, pathways=[floor], out=out, resume=True
        )


def test_resuming_with_more_samples_draws_again_from_the_saved_model(
    small_run, tmp_path, monkeypatch
):
    from rgfield.rg import HierarchicalModel

    _, first = small_run
    out = tmp_path / "run"
    pathways.compare_pathways(first.train, first.held_out, 4, pathways=["rg"], out=out)
    monkeypatch.setattr(HierarchicalModel, "fit", lambda *a, **k: pytest.fail("fitted again"))
    more = pathways.compare_pathways(
        first.train, first.held_out, 6, pathways=["rg"], out=out, resume=True, progress=False
    )
    assert more.generated["rg"].shape == (6, 8, 8)


def test_a_run_is_not_resumed_on_other_data_nor_replaced_unasked(small_run, tmp_path):
    _, first = small_run
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="resume: .* lacks .*no run to resume"):
        pathways.compare_pathways(first.train, first.held_out, 4, out=out, resume=True)
    with pytest.raises(ValueError, match="resume and overwrite exclude each other"):
        pathways.compare_pathways(
            first.train, first.held_out, 4, out=out, resume=True, overwrite=True
        )
    out.mkdir()
    (out / "ensembles").mkdir()  # an earlier run, stopped before its report
    with pytest.raises(FileExistsError, match="ensembles of an earlier run"):
        pathways.compare_pathways(first.train, first.held_out, 4, pathways=["rg"], out=out)
    pathways.compare_pathways(
        first.held_out, first.train, 4, pathways=["rg"], out=out, overwrite=True, progress=False
    )
    assert not (out / "ensembles" / "microcanonical.json").exists()
    with pytest.raises(ValueError, match="resume: .*train.nc holds other fields"):
        pathways.compare_pathways(first.train, first.held_out, 4, out=out, resume=True)
    # run() reads a resumed run's ensembles back, refusing other arguments
    with pytest.raises(ValueError, match=r"resume: .*shape \(16, 8, 8\), not \(5, 8, 8\)"):
        pathways.run("phi4", size=8, train=5, held_out=16, samples=4, out=out, resume=True)
